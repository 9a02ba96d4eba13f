/* The touchscreen's fulfilment flows: a customer drops a return, store staff load an order,
   a courier collects. Screens in templates/fulfil.html; the kiosk's routes in docs/kiosk.md
   ("Fulfilment"). Hooks into screen.js through window.kioskScreen. */
"use strict";

(() => {
  const S = window.kioskScreen;
  const T = S.T;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1000;
  let busy = false;
  let timer = null;

  const problem = (answer, status, prefix) => S.problem(answer, status, prefix);

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
      S.say("return-message", problem(answer, status, "return_"));
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
      S.say("load-message", problem(answer, status));
      return;
    }
    if (!answer.orders.length) S.say("load-message", T.load_none, "good");
    for (const order of answer.orders) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary choice";
      button.textContent = `${order.reference} · ${S.fmt("load_items", order)}`;
      button.addEventListener("click", () => load(order.reference));
      item.append(button);
      list.append(item);
    }
  }

  function showLoading(loading) {
    const list = $("load-items");
    list.replaceChildren();
    if (!loading) return false;
    $("load-orders").replaceChildren();
    for (const item of loading.items) {
      listItem(
        list,
        item.compartment ? item.compartment.label : "",
        item.tracking_number,
        item.state,
        T[`load_${item.state}`],
      );
    }
    const open = loading.items.filter((i) => i.state === "open" && i.compartment);
    S.mark("courier-wall", open.map((i) => i.compartment.label));
    if (loading.done) {
      S.say(
        "load-message",
        S.fmt(loading.sent ? "load_done" : "load_done_offline", { reference: loading.reference }),
        "good",
      );
      return !loading.sent;
    }
    if (loading.problem) S.say("load-message", T[loading.problem] || T.failed);
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
      S.say("load-message", problem(answer, status, "deposit_"));
      return;
    }
    S.say("load-message", "");
    showLoading(answer.loading);
    repeat(async () => {
      if (!$("load").hidden) {
        const polled = await S.call("/api/orders/loading");
        return polled.ok && showLoading(polled.answer.loading);
      }
      return false;
    });
  }

  S.add("load", {
    field: "load-reference",
    courier: true,
    submit: () => load($("load-reference").value),
    scan: (text) => load(text),
    shown: () => {
      $("load-items").replaceChildren();
      S.say("load-message", "");
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
    $("collect-title").textContent = S.fmt("collect_count", { count: visit.count });
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
    if (!visit.count) S.say("collect-message", T.collect_none, "good");
    else if (visit.done) S.say("collect-message", S.fmt("collect_summary", visit), "good");
  }

  async function collectStep(path, payload) {
    if (busy) return;
    busy = true;
    S.say("collect-message", T.wait, "wait");
    const { ok, status, answer } = await S.call(path, payload);
    busy = false;
    $("collect-tracking").value = "";
    if (!ok) {
      S.say("collect-message", problem(answer, status));
      S.refocus();
      return;
    }
    S.say("collect-message", "");
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
      $("collect-title").textContent = T.wait;
      $("collect-items").replaceChildren();
      collectStep("/api/collection", {});
    },
  });
})();
