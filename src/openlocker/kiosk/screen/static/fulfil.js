/* The touchscreen's fulfilment flows: a customer drops a return, store staff load an order,
   a courier collects. Screens in templates/fulfil.html; the kiosk's routes in docs/kiosk.md
   ("Fulfilment"). Hooks into screen.js through window.kioskScreen. */
"use strict";

(() => {
  const S = window.kioskScreen;
  const T = S.T;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 500; // the loading view is the kiosk's own, small and local
  let busy = false;
  let timer = null;

  // A courier signed out by the kiosk (idle) signs in again; anything else is said at `id`.
  function refused(id, answer, status, prefix) {
    if (answer.code === "courier_required") {
      S.show("courier-login");
      S.say("courier-login-message", T.courier_required);
      return;
    }
    S.say(id, S.problem(answer, status, prefix));
  }

  const collectLabel = (count) =>
    count === 0 ? T.collect_nothing : count === 1 ? T.collect_one : S.fmt("collect_many", { count });

  function listItem(list, label, text, state, extra) {
    const item = document.createElement("li");
    item.dataset.state = state;
    const head = document.createElement("span");
    head.className = "deposit-label";
    head.textContent = label;
    const number = document.createElement("span");
    number.className = "deposit-number";
    number.textContent = text;
    const said = document.createElement("span");
    said.className = "deposit-state";
    said.textContent = extra;
    item.append(head, " ", number, " ", said);
    list.append(item);
  }

  function repeat(fn) {
    clearTimeout(timer);
    const step = async () => {
      if (!(await fn())) return;
      timer = setTimeout(step, POLL_MS);
    };
    timer = setTimeout(step, POLL_MS);
  }

  // --- the courier's tasks: what waits to be loaded and collected here ----------------------

  async function showTasks() {
    const load = $("courier-load");
    const collect = $("courier-collect");
    collect.textContent = T.collect_parcels;
    collect.disabled = false;
    const [orders, manifest] = await Promise.all([
      S.call("/api/orders"),
      S.call("/api/collection/manifest"),
    ]);
    if (S.current() !== "courier") return;
    // Only staff whose retailer has orders waiting here are offered loading.
    load.hidden = !(orders.ok && orders.answer.orders.length);
    // Offline the count is unknown: the button stays, and its screen says why it cannot.
    if (manifest.ok) {
      collect.textContent = collectLabel(manifest.answer.count);
      collect.disabled = manifest.answer.count === 0;
    }
  }

  document.addEventListener("kiosk:shown", (event) => {
    if (event.detail.screen === "courier") showTasks();
  });

  // --- a return's drop-off ---------------------------------------------------------------

  async function dropOff(code) {
    code = code.trim();
    if (busy || !code) return;
    if (code.replace(/[-\s]/g, "").length !== 16) {
      S.say("return-message", T.return_short);
      return;
    }
    busy = true;
    S.say("return-message", T.wait, "wait");
    const { ok, status, answer } = await S.call("/api/returns", { code });
    busy = false;
    $("return-code").value = "";
    if (!ok) {
      S.say("return-message", S.problem(answer, status, "return_"));
      S.refocus();
      return;
    }
    S.opened([answer.compartment], []);
    $("opened-take").textContent = T.return_put;
  }

  S.add("return", {
    field: "return-code",
    submit: () => dropOff($("return-code").value),
    scan: (text) => dropOff(text),
  });

  // --- loading an order ------------------------------------------------------------------

  async function showOrders() {
    const { ok, status, answer } = await S.call("/api/orders");
    const list = $("load-orders");
    list.replaceChildren();
    if (!ok) {
      refused("load-message", answer, status);
      return;
    }
    if (!answer.orders.length) S.say("load-message", T.load_none, "good");
    for (const order of answer.orders) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      const reference = document.createElement("span");
      reference.className = "choice-name";
      reference.textContent = order.reference;
      const count = document.createElement("span");
      count.className = "choice-detail";
      count.textContent = S.fmt("load_items", order);
      button.append(reference, " ", count);
      button.addEventListener("click", () => load(order.reference));
      item.append(button);
      list.append(item);
    }
  }

  function showLoading(loading) {
    const list = $("load-items");
    list.replaceChildren();
    $("load-again").hidden = true;
    if (!loading) return false;
    $("load-orders").replaceChildren();
    for (const item of loading.items) {
      // Waiting with a door already named: that door was shut on an empty compartment.
      const state = item.state === "waiting" && item.compartment ? "empty" : item.state;
      listItem(list, item.compartment ? item.compartment.label : "", item.tracking_number, state, T[`load_${state}`]);
    }
    const open = loading.items.filter((i) => i.state === "open" && i.compartment);
    S.mark("load-wall", open.map((i) => i.compartment.label));
    if (loading.done) {
      S.say(
        "load-message",
        S.fmt(loading.sent ? "load_done" : "load_done_offline", { reference: loading.reference }),
        "good",
      );
      return !loading.sent;
    }
    // No door open: the last one shut on an empty compartment, or the next did not open.
    $("load-again").hidden = open.length > 0;
    $("load-again").onclick = () => load(loading.reference);
    if (loading.problem) S.say("load-message", T[`deposit_${loading.problem}`] || T[loading.problem] || T.failed);
    else if (open.length) S.say("load-message", S.fmt("load_put", { label: open[0].compartment.label }), "good");
    else S.say("load-message", T.load_again);
    return true;
  }

  async function load(reference) {
    reference = reference.trim();
    if (busy || !reference) return;
    busy = true;
    S.say("load-message", T.wait, "wait");
    const { ok, status, answer } = await S.call("/api/orders/load", { reference });
    busy = false;
    $("load-reference").value = "";
    if (!ok) {
      refused("load-message", answer, status, "deposit_");
      return;
    }
    showLoading(answer.loading);
    repeat(async () => {
      if ($("load").hidden) return false;
      const polled = await S.call("/api/orders/loading");
      return polled.ok && showLoading(polled.answer.loading);
    });
  }

  S.add("load", {
    field: "load-reference",
    courier: true,
    submit: () => load($("load-reference").value),
    scan: (text) => load(text),
    shown: async () => {
      $("load-items").replaceChildren();
      S.mark("load-wall", []);
      S.say("load-message", "");
      // An order half loaded (a door shut empty) is shown again, with its open door.
      const { ok, answer } = await S.call("/api/orders/loading");
      if (ok && answer.loading && !answer.loading.done) {
        showLoading(answer.loading);
        return;
      }
      showOrders();
    },
  });

  // --- collecting ------------------------------------------------------------------------

  let openItem = null;

  function showVisit(visit) {
    const list = $("collect-items");
    list.replaceChildren();
    openItem = null;
    if (!visit) return;
    $("collect-title").textContent = collectLabel(visit.count);
    for (const item of visit.items) {
      if (item.state === "open") openItem = item;
      listItem(
        list,
        item.compartment ? item.compartment.label : "",
        item.reference || item.tracking_number,
        item.state,
        T[`collect_${item.state}`],
      );
    }
    $("collect-missing").hidden = !openItem;
    S.mark("collect-wall", openItem && openItem.compartment ? [openItem.compartment.label] : []);
    if (!visit.count) S.say("collect-message", T.collect_none, "good");
    else if (visit.done) S.say("collect-message", S.fmt("collect_summary", visit), "good");
    else if (openItem) {
      S.say(
        "collect-message",
        S.fmt("collect_take", { label: openItem.compartment.label, parcel: openItem.reference || openItem.tracking_number }),
        "good",
      );
    }
  }

  async function collectStep(path, payload) {
    if (busy) return;
    busy = true;
    S.say("collect-message", T.wait, "wait");
    const { ok, status, answer } = await S.call(path, payload);
    busy = false;
    $("collect-tracking").value = "";
    if (!ok) {
      refused("collect-message", answer, status);
      S.refocus();
      return;
    }
    showVisit(answer.collection);
  }

  const scanOut = (text) =>
    text.trim() && collectStep("/api/collection/scan", { tracking_number: text.trim() });

  $("collect-missing").addEventListener("click", () => {
    if (openItem) collectStep(`/api/collection/${encodeURIComponent(openItem.parcel_id)}/missing`, {});
  });
  $("collect-finish").addEventListener("click", async () => {
    await S.call("/api/collection/finish", {});
    S.show("courier");
  });

  S.add("collect", {
    field: "collect-tracking",
    courier: true,
    submit: () => scanOut($("collect-tracking").value),
    scan: scanOut,
    shown: () => {
      $("collect-title").textContent = T.collect_parcels;
      $("collect-items").replaceChildren();
      $("collect-missing").hidden = true;
      S.mark("collect-wall", []);
      collectStep("/api/collection", {});
    },
  });
})();
