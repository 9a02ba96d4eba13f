/* The locker's touchscreen. Talks only to the kiosk's own JSON API (/api/...) on this
   origin; every word it shows comes translated in the page (#messages). */
"use strict";

(() => {
  const body = document.body;
  const T = JSON.parse(document.getElementById("messages").textContent);
  const config = {
    lang: body.dataset.lang,
    homeLang: body.dataset.homeLang,
    pinLength: Number(body.dataset.pinLength),
    phoneDigits: Number(body.dataset.phoneDigits),
    idleMs: Number(body.dataset.idleS) * 1000,
    openedMs: Number(body.dataset.openedS) * 1000,
    courierIdleMs: Number(body.dataset.courierIdleS) * 1000,
    courierWarnMs: Number(body.dataset.courierWarnS) * 1000,
  };
  // A keyboard-wedge scanner types a burst: keys closer than SCAN_GAP_MS belong to one, and
  // a burst of SCAN_MIN characters or more ending in Enter is a scan, not a person typing.
  const SCAN_GAP_MS = 50;
  const SCAN_MIN = 12;
  const POLL_MS = 2000;
  const POLL_BUSY_MS = 1000; // while a door's screen or a courier waits on doors
  // A door the kiosk has not yet reported open is taken for shut only after this long.
  const DOOR_REPORT_MS = 3000;
  const POLL_TIMEOUT_MS = 4000;
  const REQUEST_TIMEOUT_MS = 15000;
  // The home screen reloads after this much quiet, to pick up a renamed site or language.
  const RELOAD_MS = 15 * 60 * 1000;
  const CLOSED_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const fmt = (key, values = {}) =>
    T[key].replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
  const joined = (items) =>
    items.length < 2
      ? items.join("")
      : fmt("and", { first: items.slice(0, -1).join(", "), last: items[items.length - 1] });
  const clock = (seconds) => {
    const s = Math.max(0, Math.ceil(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };

  // --- the kiosk's API -----------------------------------------------------------------------

  async function call(path, payload, timeoutMs = REQUEST_TIMEOUT_MS) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const post = payload !== undefined;
    try {
      const response = await fetch(path, {
        method: post ? "POST" : "GET",
        headers: post
          ? { "Content-Type": "application/json", Accept: "application/json" }
          : { Accept: "application/json" },
        body: post ? JSON.stringify(payload) : undefined,
        cache: "no-store",
        signal: controller.signal,
      });
      let answer = {};
      try {
        answer = await response.json();
      } catch {
        answer = {};
      }
      if (!response.ok && answer.retry_after === undefined) {
        const retry = Number(response.headers.get("Retry-After"));
        if (retry > 0) answer.retry_after = retry;
      }
      return { ok: response.ok, status: response.status, answer };
    } catch {
      return { ok: false, status: 0, answer: { code: "unreachable" } };
    } finally {
      clearTimeout(timer);
    }
  }

  // --- screens, fields and messages ----------------------------------------------------------

  const FIELDS = { home: "pin", phone: "phone-digits", "courier-login": "courier-code", courier: "tracking" };
  let current = "home";
  let lastTouch = Date.now();
  let busy = false;
  let pendingPin = ""; // kept while the phone digits are asked for
  const countdowns = new Map();

  // Screens other scripts add (open-deposit.js, fulfil.js): the field's id, what Enter and a
  // scan do there, what happens on going there (enter) and once shown, and whether a
  // signed-in courier works there.
  const added = new Map();
  const fieldOf = (screen) =>
    FIELDS[screen] ? $(FIELDS[screen]) : added.has(screen) && added.get(screen).field ? $(added.get(screen).field) : null;

  function show(screen, focus) {
    for (const section of document.querySelectorAll(".screen")) {
      section.hidden = section.id !== screen;
    }
    current = screen;
    body.dataset.screen = screen;
    (focus || fieldOf(screen) || $(`${screen}-title`)).focus({ preventScroll: true });
    touch();
    // Other scripts follow the screens shown (fulfil.js refreshes the courier's tasks).
    document.dispatchEvent(new CustomEvent("kiosk:shown", { detail: { screen } }));
  }

  // After an answer, the screen's field takes the keys again (a scanner needs no focus, but
  // a person tabbing does).
  function refocus() {
    const field = fieldOf(current);
    if (field) field.focus({ preventScroll: true });
  }

  function say(id, text, tone = "bad") {
    stopCountdown(id);
    const element = $(id);
    element.textContent = text;
    element.dataset.tone = text ? tone : "";
  }

  function sayCountdown(id, key, seconds) {
    const until = Date.now() + seconds * 1000;
    const update = () => {
      const left = (until - Date.now()) / 1000;
      if (left <= 0) {
        say(id, "");
        return;
      }
      $(id).textContent = fmt(key, { time: clock(left) });
    };
    say(id, fmt(key, { time: clock(seconds) }));
    countdowns.set(id, setInterval(update, 1000));
  }

  function stopCountdown(id) {
    clearInterval(countdowns.get(id));
    countdowns.delete(id);
  }

  function put(field, text) {
    const chars = field.dataset.chars;
    let value = field.value;
    for (const ch of text) {
      if (value.length >= field.maxLength) break;
      if (chars === "any" ? ch >= " " : chars.includes(ch)) value += ch;
    }
    field.value = value;
  }

  function clearFields() {
    for (const id of Object.values(FIELDS)) $(id).value = "";
  }

  function touch() {
    lastTouch = Date.now();
    $("courier-warning").hidden = true;
  }

  // --- typing, keypads and the scanner --------------------------------------------------------

  document.addEventListener("click", (event) => {
    const key = event.target.closest("[data-key], [data-action]");
    if (key) {
      const field = $(key.dataset.target);
      if (key.dataset.key !== undefined) put(field, key.dataset.key);
      else if (key.dataset.action === "delete") field.value = field.value.slice(0, -1);
      else field.value = "";
      return;
    }
    const go = event.target.closest("[data-go]");
    if (go) goTo(go.dataset.go);
  });

  document.addEventListener("pointerdown", touch, { capture: true, passive: true });

  let burst = "";
  let lastKeyAt = -Infinity;
  let beforeBurst = null;

  // Keys typed anywhere on the page go to the screen's field, so a scanner needs no focus.
  document.addEventListener(
    "keydown",
    (event) => {
      if (event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
      const field = fieldOf(current);
      if (event.timeStamp - lastKeyAt > SCAN_GAP_MS) {
        burst = "";
        beforeBurst = field ? field.value : null;
      }
      lastKeyAt = event.timeStamp;
      touch();
      const onButton = event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement;
      if (event.key === "Enter") {
        const scanned = burst;
        burst = "";
        if (scanned.length >= SCAN_MIN) {
          event.preventDefault();
          if (field && beforeBurst !== null) field.value = beforeBurst;
          scan(scanned);
        } else if (field && !onButton) {
          event.preventDefault();
          submit();
        }
        return;
      }
      if (event.key.length === 1) {
        if (onButton && event.key === " ") return; // a space presses the button
        burst += event.key;
        if (field) {
          event.preventDefault();
          put(field, event.key);
        }
      } else if (event.key === "Backspace" && field) {
        event.preventDefault();
        field.value = field.value.slice(0, -1);
      }
    },
    true,
  );

  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
  }

  function submit() {
    if (busy) return;
    if (current === "home") pickupPin();
    else if (current === "phone") pickupPhone();
    else if (current === "courier-login") courierLogin();
    else if (current === "courier") deposit();
    else if (added.has(current) && added.get(current).submit) added.get(current).submit();
  }

  function scan(text) {
    if (busy) return;
    const hooks = added.get(current);
    if (hooks && hooks.scan) {
      hooks.scan(text);
      return;
    }
    if (current === "courier-login") {
      $("courier-code").value = text;
      courierLogin();
    } else if (current === "courier" || (added.has(current) && added.get(current).courier)) {
      // A label scanned while delivering to a resident is an announced parcel after all.
      if (current !== "courier") show("courier");
      $("tracking").value = text;
      deposit();
    } else {
      pickup({ qr: text });
    }
  }

  function goTo(screen) {
    if (screen === "home") {
      home();
      return;
    }
    clearFields();
    for (const id of ["courier-login-message", "courier-message"]) say(id, "");
    if (added.has(screen) && added.get(screen).enter) added.get(screen).enter();
    show(screen);
    if (added.has(screen) && added.get(screen).shown) added.get(screen).shown();
  }

  function home(message = "", tone = "bad") {
    clearFields();
    pendingPin = "";
    for (const element of document.querySelectorAll(".message")) say(element.id, "");
    show("home");
    if (message) say("home-message", message, tone);
  }

  // --- pickups --------------------------------------------------------------------------------

  function pickupPin() {
    const pin = $("pin").value;
    if (pin.length !== config.pinLength) {
      say("home-message", fmt("pin_short", { count: config.pinLength }));
      return;
    }
    pickup({ pin });
  }

  function pickupPhone() {
    const phone = $("phone-digits").value;
    if (phone.length !== config.phoneDigits) {
      say("phone-message", fmt("phone_short", { count: config.phoneDigits }));
      return;
    }
    pickup({ pin: pendingPin, phone });
  }

  function problem(answer, status, prefix = "") {
    const code = answer.code || (status === 422 ? "invalid_input" : "failed");
    if (T[prefix + code] !== undefined) return T[prefix + code];
    if (T[code] !== undefined) return T[code];
    return status === 422 ? T.invalid_input : T.failed;
  }

  async function pickup(payload) {
    const from = current === "phone" ? "phone" : "home";
    if (current !== from) show(from);
    busy = true;
    say(`${from}-message`, T.wait, "wait");
    const { ok, status, answer } = await call("/api/pickup", payload);
    busy = false;
    $("pin").value = ""; // a code never stays on the screen
    $("phone-digits").value = "";
    if (ok) {
      pendingPin = "";
      const compartments = answer.compartments && answer.compartments.length
        ? answer.compartments
        : [answer.compartment];
      opened(compartments, answer.failed || []);
      if (answer.age_restricted) say("opened-message", T.age_restricted, "wait");
      return;
    }
    if (answer.code === "too_many_attempts" && answer.phone_accepted && payload.pin && !payload.phone) {
      pendingPin = payload.pin;
      say("home-message", "");
      show("phone");
      return;
    }
    if (from === "phone") home();
    pendingPin = "";
    refocus();
    if (answer.code === "too_many_attempts") {
      sayCountdown("home-message", "too_many_attempts", answer.retry_after || 30);
    } else if (answer.code === "invalid_code" && payload.phone) {
      say("home-message", T.invalid_code_phone);
    } else {
      say("home-message", problem(answer, status));
    }
  }

  // --- doors that opened ------------------------------------------------------------------------

  let shownIds = new Set();
  let announced = new Set(); // open doors a door's screen has shown
  let seenOpen = false;
  let shownAt = 0;
  let closedTimer = null;

  function mark(wallId, labels) {
    const wall = $(wallId);
    if (!wall) return;
    for (const element of wall.querySelectorAll(".open")) element.classList.remove("open");
    const cells = new Map([...wall.querySelectorAll(".cell[data-label]")].map((c) => [c.dataset.label, c]));
    const places = [];
    for (const label of labels) {
      const cell = cells.get(label);
      if (!cell) continue;
      cell.classList.add("open");
      for (const head of wall.querySelectorAll(
        `.column-head[data-column="${cell.dataset.column}"], .row-head[data-row="${cell.dataset.row}"]`,
      )) {
        head.classList.add("open");
      }
      const place = fmt("position", { column: cell.dataset.column, row: cell.dataset.row });
      places.push(labels.length > 1 ? `${label}: ${place}` : place);
    }
    wall.hidden = places.length === 0;
    const text = places.join(" · ");
    wall.querySelector(".position").textContent = text;
  }

  function opened(compartments, failed) {
    const labels = compartments.map((c) => c.label);
    $("opened-title").textContent =
      labels.length === 1
        ? fmt("opened_one", { label: labels[0] })
        : fmt("opened_many", { labels: joined(labels) });
    $("opened-labels").textContent = labels.join(" ");
    $("opened-labels").parentElement.classList.toggle("many", labels.length > 1);
    $("opened-take").textContent = labels.length === 1 ? T.take_one : T.take_many;
    say(
      "opened-message",
      failed.length ? fmt("not_opened", { labels: joined(failed.map((c) => c.label)) }) : "",
    );
    mark("opened-wall", labels);
    shownIds = new Set(compartments.map((c) => c.id));
    for (const id of shownIds) announced.add(id);
    seenOpen = false;
    shownAt = Date.now();
    clearTimeout(closedTimer);
    closedTimer = null;
    show("opened", $("opened-title"));
  }

  // --- couriers ---------------------------------------------------------------------------------

  const deposits = new Map(); // compartment id -> {item}

  async function courierLogin() {
    const code = $("courier-code").value.trim();
    if (!code) return;
    busy = true;
    say("courier-login-message", T.wait, "wait");
    const { ok, status, answer } = await call("/api/courier/login", { code });
    busy = false;
    $("courier-code").value = "";
    if (!ok) {
      if (answer.code === "too_many_attempts") {
        sayCountdown("courier-login-message", "courier_too_many_attempts", answer.retry_after || 30);
      } else {
        say("courier-login-message", problem(answer, status, "courier_"));
      }
      refocus();
      return;
    }
    deposits.clear();
    $("deposits").replaceChildren();
    mark("courier-wall", []);
    $("courier-name").textContent = fmt("signed_in", { name: answer.courier ? answer.courier.name : "" });
    say("courier-login-message", "");
    say("courier-message", "");
    typing(false);
    show("courier");
  }

  async function deposit() {
    const tracking = $("tracking").value.trim();
    if (!tracking) return;
    busy = true;
    say("courier-message", T.wait, "wait");
    const { ok, status, answer } = await call("/api/courier/deposit", { tracking_number: tracking });
    busy = false;
    $("tracking").value = "";
    if (!ok) {
      if (answer.code === "courier_required") {
        show("courier-login");
        say("courier-login-message", T.courier_required);
      } else {
        say("courier-message", problem(answer, status, "deposit_"));
      }
      refocus();
      return;
    }
    const compartment = answer.compartment;
    const number = answer.tracking_number || tracking;
    say("courier-message", fmt("deposit_opened", { tracking: number, label: compartment.label }), "good");
    let entry = deposits.get(compartment.id);
    if (!entry) {
      const item = document.createElement("li");
      item.innerHTML = '<span class="deposit-label"></span> <span class="deposit-number"></span> <span class="deposit-state"></span>';
      $("deposits").prepend(item);
      entry = { item };
      deposits.set(compartment.id, entry);
    }
    entry.item.querySelector(".deposit-label").textContent = compartment.label;
    entry.item.querySelector(".deposit-number").textContent = number;
    depositState(entry, "open");
    typing(false);
    mark("courier-wall", [compartment.label]);
    refocus();
  }

  function depositState(entry, state) {
    entry.item.dataset.state = state;
    entry.item.querySelector(".deposit-state").textContent = T[`deposit_${state}`];
  }

  // Each door's closing confirms its parcel, unless the compartment was shut empty.
  async function pollDeposits() {
    const waiting = [...deposits].filter(([, e]) => e.item.dataset.state !== "done");
    if (current !== "courier" || !waiting.length) return;
    const query = waiting.map(([id]) => `compartment_id=${encodeURIComponent(id)}`).join("&");
    const { ok, answer } = await call(`/api/courier/deposits?${query}`, undefined, POLL_TIMEOUT_MS);
    if (!ok) return;
    for (const door of answer.deposits || []) {
      const entry = deposits.get(door.compartment_id);
      if (!entry) continue;
      depositState(entry, door.door === "open" ? "open" : door.confirmed ? "done" : "empty");
    }
  }

  function typing(on) {
    $("courier-typing").hidden = !on;
    $("courier-done").hidden = on;
    $("courier-type").setAttribute("aria-expanded", String(on));
    $("courier").classList.toggle("typing", on);
  }

  $("courier-type").addEventListener("click", () => {
    typing($("courier-typing").hidden);
    $("tracking").focus({ preventScroll: true });
  });
  $("courier-logout").addEventListener("click", () => {
    signOut();
    home(T.signed_out, "good");
  });
  $("courier-stay").addEventListener("click", () => {
    touch();
    $("tracking").focus({ preventScroll: true });
  });

  function signOut() {
    call("/api/courier/logout", {});
    deposits.clear();
    $("deposits").replaceChildren();
  }

  // --- what the kiosk says: network, presence code, doors -----------------------------------

  let reachable = false;
  let firstPoll = true;
  const REMOTE = new Set(["pickup", "command"]);

  async function poll() {
    try {
      await showState();
    } finally {
      setTimeout(poll, current === "home" ? POLL_MS : POLL_BUSY_MS);
    }
  }

  async function showState() {
    const { ok, answer } = await call("/api/state", undefined, POLL_TIMEOUT_MS);
    reachable = ok;
    const trouble = !ok ? "kiosk_down" : answer.online === false ? "offline" : "";
    $("network").textContent = trouble ? T[trouble] : "";
    body.classList.toggle("is-offline", Boolean(trouble));
    if (ok) {
      if (answer.site && answer.site.name) {
        document.querySelector(".site-name").textContent = answer.site.name;
      }
      presence(answer.presence_code);
      // Doors already open when the page loaded were shown by the page before it, if any.
      if (firstPoll) for (const door of answer.open_doors || []) announced.add(door.compartment.id);
      doors(answer.open_doors || []);
      await pollDeposits();
      // A courier left signed in by a page that went away is signed out with it.
      if (firstPoll && answer.courier) call("/api/courier/logout", {});
      firstPoll = false;
    } else {
      presence(null);
    }
  }

  function presence(shown) {
    const code = shown && shown.code ? String(shown.code) : "";
    $("presence").hidden = !code;
    const half = Math.ceil(code.length / 2);
    $("presence-code").textContent = code.length > 4 ? `${code.slice(0, half)} ${code.slice(half)}` : code;
  }

  function doors(open) {
    const ids = new Set(open.map((door) => door.compartment.id));
    if (current === "opened" && !closedTimer) {
      const still = [...shownIds].some((id) => ids.has(id));
      if (still) seenOpen = true;
      else if (seenOpen || Date.now() - shownAt > DOOR_REPORT_MS) {
        $("opened-take").textContent = T.closed;
        closedTimer = setTimeout(() => {
          closedTimer = null;
          if (current === "opened") home();
        }, CLOSED_MS);
      }
    }
    // A door opened for a pickup elsewhere (the link page on the recipient's phone, the
    // server): shown as if opened here, so the recipient sees where it is.
    announced = new Set([...announced].filter((id) => ids.has(id)));
    const remote = open.filter(
      (door) => REMOTE.has(door.purpose) && !announced.has(door.compartment.id),
    );
    const quiet = (current === "home" && !busy && !$("pin").value) || (current === "opened" && closedTimer);
    if (remote.length && quiet) {
      opened(remote.map((door) => door.compartment), []);
    }
  }

  // --- idle -------------------------------------------------------------------------------------

  function tick() {
    const idle = Date.now() - lastTouch;
    if (current === "courier" || (added.has(current) && added.get(current).courier)) {
      const left = config.courierIdleMs - idle;
      if (left <= 0) {
        signOut();
        home(T.signed_out, "good");
      } else if (left <= config.courierWarnMs) {
        $("courier-warning").hidden = false;
        $("courier-warning-time").textContent = clock(left / 1000);
      }
    } else if (current === "opened") {
      if (idle >= config.openedMs) home();
    } else if (current !== "home" || $("pin").value || $("home-message").textContent) {
      if (idle >= config.idleMs) home();
    } else if (reachable && idle >= (config.lang !== config.homeLang ? config.idleMs : RELOAD_MS)) {
      location.replace("/");
    }
  }

  window.kioskScreen = {
    T, call, fmt, say, show, goTo, home, mark, opened, problem, refocus, touch,
    current: () => current,
    add: (screen, hooks) => added.set(screen, hooks),
  };

  setInterval(tick, 1000);
  show("home");
  poll();
})();
