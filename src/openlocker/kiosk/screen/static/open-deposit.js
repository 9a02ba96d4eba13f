/* Open deposit on the touchscreen: a signed-in courier with no tracking number finds a
   resident in the site's directory, picks a size, and a door opens; closing it on the parcel
   deposits it and the resident gets their pickup code. Uses the page's screen.js
   (window.kioskScreen) and the kiosk's /api/courier/... routes (docs/kiosk.md). */
"use strict";

(() => {
  const ui = window.kioskScreen;
  const $ = (id) => document.getElementById(id);
  const M = JSON.parse($("open-deposit-messages").textContent);
  const fmt = (key, values = {}) =>
    M[key].replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
  const SEARCH_PAUSE_MS = 300; // the server asks kiosks to search after a pause in typing
  const WATCH_MS = 1000;

  let recipient = null; // the entry chosen: {id, display_name, unit}
  let requestId = ""; // one per visit of the size screen: a double tap opens one door
  let busy = false;
  let typed = "";
  let searched = "";
  let typedAt = 0;
  let door = null; // {compartment, name} while its closing is awaited

  const field = $("open-deposit-query");
  const newRequestId = () =>
    [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, "0")).join("");

  function refused(id, answer, status) {
    if (answer.code === "courier_required") {
      ui.show("courier-login");
      ui.say("courier-login-message", ui.T.courier_required);
      return;
    }
    if (answer.code === "too_many_searches") {
      const s = Math.max(1, Math.ceil(answer.retry_after || 60));
      ui.say(id, fmt("too_many_searches", { time: `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}` }));
      return;
    }
    const text = M[answer.code] || (answer.code === "unreachable" ? ui.T.unreachable : ui.problem(answer, status));
    ui.say(id, text);
  }

  // --- search -------------------------------------------------------------------------------

  function start() {
    recipient = null;
    field.value = "";
    typed = searched = "";
    $("open-deposit-results").replaceChildren();
    ui.say("open-deposit-message", document.body.classList.contains("is-offline") ? M.open_deposit_offline : "");
  }

  // The keyboard and a scanner's keys change the field without input events: watch it.
  setInterval(() => {
    if (ui.current() !== "open-deposit") return;
    const value = field.value.trim();
    if (value !== typed) {
      typed = value;
      typedAt = Date.now();
    } else if (value !== searched && !busy && Date.now() - typedAt >= SEARCH_PAUSE_MS) {
      search(value);
    }
  }, 100);

  async function search(query) {
    searched = query;
    if (!query) {
      $("open-deposit-results").replaceChildren();
      ui.say("open-deposit-message", "");
      return;
    }
    busy = true;
    ui.say("open-deposit-message", M.searching, "wait");
    const { ok, status, answer } = await ui.call(`/api/courier/directory?q=${encodeURIComponent(query)}`);
    busy = false;
    if (field.value.trim() !== query) return; // typed on meanwhile: the next search answers
    if (!ok) {
      $("open-deposit-results").replaceChildren();
      refused("open-deposit-message", answer, status);
      return;
    }
    const items = answer.items || [];
    $("open-deposit-results").replaceChildren(...items.map(resultButton));
    ui.say(
      "open-deposit-message",
      !items.length ? fmt("no_match", { query }) : answer.more ? M.more : "",
      "wait",
    );
  }

  function resultButton(entry) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "choice od-result";
    const name = document.createElement("span");
    name.className = "od-name";
    name.textContent = entry.display_name;
    button.append(name);
    if (entry.unit) {
      const unit = document.createElement("span");
      unit.className = "od-unit";
      unit.textContent = fmt("unit", { unit: entry.unit });
      button.append(" ", unit);
    }
    button.addEventListener("click", () => chooseSize(entry));
    item.append(button);
    return item;
  }

  // --- sizes --------------------------------------------------------------------------------

  async function chooseSize(entry) {
    recipient = entry;
    requestId = newRequestId();
    $("open-deposit-for").textContent = fmt("for", {
      name: entry.unit ? `${entry.display_name}, ${fmt("unit", { unit: entry.unit })}` : entry.display_name,
    });
    $("open-deposit-sizes").replaceChildren();
    ui.say("open-deposit-size-message", ui.T.wait, "wait");
    ui.show("open-deposit-size");
    const { ok, status, answer } = await ui.call("/api/courier/open-deposit/sizes");
    if (!ok) {
      refused("open-deposit-size-message", answer, status);
      return;
    }
    const sizes = answer.sizes || [];
    ui.say("open-deposit-size-message", sizes.length ? "" : M.no_sizes);
    $("open-deposit-sizes").replaceChildren(...sizes.map(sizeButton));
  }

  function sizeButton(size) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "choice od-size";
    button.dataset.size = size.code;
    const code = document.createElement("span");
    code.className = "od-size-code";
    code.textContent = size.code;
    const cm = (mm) => String(Math.round(mm / 10));
    const measures = document.createElement("span");
    measures.className = "od-measures";
    measures.textContent = fmt("size_measures", {
      width: cm(size.width_mm),
      height: cm(size.height_mm),
      depth: cm(size.depth_mm),
    });
    button.append(code, " ", measures);
    button.addEventListener("click", () => deposit(size.code));
    item.append(button);
    return item;
  }

  // --- the door -----------------------------------------------------------------------------

  async function deposit(size) {
    if (busy || !recipient) return;
    busy = true;
    for (const button of document.querySelectorAll(".od-size")) button.disabled = true;
    ui.say("open-deposit-size-message", ui.T.wait, "wait");
    const { ok, status, answer } = await ui.call("/api/courier/open-deposit", {
      entry_id: recipient.id,
      size,
      request_id: requestId,
    });
    busy = false;
    for (const button of document.querySelectorAll(".od-size")) button.disabled = false;
    if (!ok) {
      requestId = newRequestId(); // a refusal opened nothing: the next tap is a new request
      refused("open-deposit-size-message", answer, status);
      return;
    }
    const label = answer.compartment.label;
    door = { compartment: answer.compartment, name: recipient.display_name, state: "open" };
    $("open-deposit-opened-title").textContent = fmt("opened", { label });
    $("open-deposit-label").textContent = label;
    $("open-deposit-put").textContent = M.put;
    ui.say("open-deposit-opened-message", M.waiting, "wait");
    ui.mark("open-deposit-wall", [label]);
    ui.show("open-deposit-opened", $("open-deposit-opened-title"));
  }

  // The door's closing confirms the deposit, unless it shut on an empty compartment.
  setInterval(async () => {
    if (!door || door.state !== "open" || ui.current() !== "open-deposit-opened") return;
    const id = door.compartment.id;
    const { ok, answer } = await ui.call(`/api/courier/deposits?compartment_id=${encodeURIComponent(id)}`);
    if (!ok || !door || door.compartment.id !== id) return;
    const shut = (answer.deposits || []).find((d) => d.compartment_id === id);
    if (!shut || shut.door === "open") return;
    door.state = shut.confirmed ? "done" : "empty";
    ui.say(
      "open-deposit-opened-message",
      shut.confirmed ? fmt("done", { name: door.name }) : M.empty,
      shut.confirmed ? "good" : "bad",
    );
    ui.touch();
  }, WATCH_MS);

  $("open-deposit-next").addEventListener("click", () => {
    door = null;
    ui.goTo("open-deposit");
  });

  ui.add("open-deposit", { field: "open-deposit-query", courier: true, enter: start, submit: () => search(field.value.trim()) });
  ui.add("open-deposit-size", { courier: true });
  ui.add("open-deposit-opened", { courier: true });
})();
