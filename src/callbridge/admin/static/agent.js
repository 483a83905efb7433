// The agent console (DESIGN §12.1): call cards from the agent's Server-Sent Events.
// EventSource reconnects by itself and sends Last-Event-ID: nothing still relevant is missed.
// The Open CTI softphone page runs in Salesforce's iframe, where the session cookie is not
// sent: it signs in with a pairing code, keeps its token in this origin's localStorage and
// reads the same stream with fetch() and an Authorization header (EventSource cannot send
// one), resuming with Last-Event-ID itself.
(function () {
  "use strict";
  var root = document.getElementById("agent-console");
  if (!root) return;
  var t = root.dataset;
  var cards = document.getElementById("agent-cards");
  var status = document.getElementById("agent-status");
  var csrf = (JSON.parse(document.body.getAttribute("hx-headers") || "{}"))["X-CSRF-Token"];
  var TAB = "callbridge-crm"; // one named tab, reused for every record
  var softphone = !!root.dataset.opencti;
  var TOKEN_KEY = "callbridge.softphone";

  // The softphone's token and who it signs in ({token, username, display_name, extension}),
  // in this origin's localStorage. A browser that blocks third-party storage (cookies
  // blocked for other sites, private windows) denies it inside Salesforce's iframe: the
  // token is then kept in memory, until Salesforce's page is reloaded.
  var memory = null;
  function storage() {
    try { var s = window.localStorage; s.getItem(TOKEN_KEY); return s; } catch (e) { return null; }
  }
  function stored() {
    var s = storage();
    if (!s) return memory;
    try { return JSON.parse(s.getItem(TOKEN_KEY) || "null"); } catch (e) { return null; }
  }
  function keep(value) {
    memory = value;
    var s = storage();
    if (!s) return;
    if (value) s.setItem(TOKEN_KEY, JSON.stringify(value)); else s.removeItem(TOKEN_KEY);
  }

  // How a request proves who sends it: the softphone's token, or the page's CSRF token
  // beside the session cookie.
  function authHeaders(headers) {
    headers = headers || {};
    if (softphone) {
      var saved = stored();
      if (saved) headers.Authorization = "Bearer " + saved.token;
    } else {
      headers["X-CSRF-Token"] = csrf;
    }
    return headers;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // Inside Salesforce (the Open CTI softphone page): pop with Open CTI, not a tab.
  function openCti() {
    return root.dataset.opencti && window.sforce && window.sforce.opencti ? window.sforce.opencti : null;
  }

  function ctiPop(cti, data, match) {
    var types = cti.SCREENPOP_TYPE || {};
    if (match) {
      cti.screenPop({ type: types.SOBJECT || "sobject", params: { recordId: match.id } });
    } else {
      var entity = (data.new_record_url || "").split("/lightning/o/")[1];
      cti.screenPop({
        type: types.NEW_RECORD_MODAL || "newRecordModal",
        params: { entityName: entity ? entity.split("/")[0] : "Contact", defaultFieldValues: { Phone: data.tel || "" } },
      });
    }
  }

  function show(data, match, card) {
    var cti = openCti();
    if (cti && (match || data.new_record_url)) { ctiPop(cti, data, match); return; }
    if (!match && data.form) { submitForm(data.form); return; }
    openRecord(match ? match.url : data.url, card, data);
  }

  // A browser_post access (seed 002): the console posts its form fields to the named tab.
  function submitForm(spec) {
    var form = el("form", { method: "post", action: spec.action, target: TAB, hidden: "" });
    spec.fields.forEach(function (pair) {
      form.appendChild(el("input", { type: "hidden", name: pair[0], value: pair[1] }));
    });
    document.body.appendChild(form);
    form.submit();
    form.remove();
  }

  // What a message opens (url or form), so an update opens only what is new.
  var openedFor = {};
  function pageOf(data) { return data.form ? JSON.stringify(data.form) : (data.url || ""); }

  function clickCard(data, result) {
    var action = data.click;
    if (action.url) { window.open(action.url, TAB); return; }
    if (action.form) { submitForm(action.form); return; }
    fetch("/api/v1/agent/calls/" + encodeURIComponent(data.call_id) + "/click", {
      method: "POST",
      headers: authHeaders(),
    }).then(function (response) {
      return response.json().then(function (body) {
        result.textContent = response.ok && !body.error ? t.sent : t.sendFailed.replace("{error}", body.error || body.detail);
      });
    });
  }

  function openRecord(url, card, data) {
    var tab = window.open(url, TAB);
    if (!tab && card) {
      card.querySelector(".pop-blocked").hidden = false;
      notify(url, card, data);
    }
  }

  // Desktop notifications (DESIGN §12.1): when the browser blocked the automatic tab, a
  // notification whose click opens the record (a click lets the page open a tab).
  var notifyBox = document.getElementById("agent-notify");
  var notifyState = document.getElementById("agent-notify-state");

  function notifications() {
    return "Notification" in window ? window.Notification : null;
  }

  function showNotifyState() {
    var api = notifications();
    if (!notifyBox || !api) return;
    notifyBox.hidden = false;
    var button = document.getElementById("agent-notify-button");
    button.hidden = api.permission !== "default";
    notifyState.textContent = api.permission === "granted" ? t.notifyOn : api.permission === "denied" ? t.notifyDenied : "";
  }

  if (notifyBox && notifications()) {
    document.getElementById("agent-notify-button").addEventListener("click", function () {
      var asked = notifications().requestPermission(showNotifyState);
      if (asked && asked.then) asked.then(showNotifyState);
    });
    showNotifyState();
  }

  function notify(url, card, data) {
    var api = notifications();
    if (!api || api.permission !== "granted" || !data) return;
    var who = data.matches && data.matches.length === 1 ? data.matches[0].name : data.tel_name || "";
    var shown = new api(t.notifyTitle.replace("{number}", data.anonymous ? data.tel_name : data.tel || ""), {
      body: (who ? who + "\n" : "") + t.notifyClick,
      tag: data.call_id,
    });
    card.dataset.notified = "1";
    shown.onclick = function () {
      window.focus();
      if (window.open(url, TAB)) card.querySelector(".pop-blocked").hidden = true;
      shown.close();
    };
  }

  function card(data) {
    var existing = cards.querySelector('[data-call-id="' + CSS.escape(data.call_id) + '"]');
    var node = el("div", { "class": "panel call-card", "data-call-id": data.call_id });
    node.appendChild(el("div", { "class": "pop-number" }, data.anonymous ? data.tel_name : data.tel));
    if (!data.anonymous && data.tel_name) node.appendChild(el("div", { "class": "pop-name" }, data.tel_name));
    if (data.queue) node.appendChild(el("div", { "class": "pop-queue" }, t.queue + ": " + data.queue));
    if (data.company || data.name) {
      node.appendChild(el("div", { "class": "pop-crm" }, [data.company, data.name].filter(Boolean).join(" · ")));
    }
    if (data.lookup_pending) node.appendChild(el("div", { "class": "muted pop-pending" }, t.pending));
    if (data.lookup_error) {
      node.appendChild(el("div", { "class": "banner error pop-error", role: "alert" },
        t.lookupFailed.replace("{error}", data.lookup_error)));
    }
    if (data.matches.length > 1) {
      node.appendChild(el("div", { "class": "pop-choices-title" }, t.choices));
      var list = el("ul", { "class": "pop-choices" });
      data.matches.forEach(function (m) {
        var item = el("li");
        var link = el("a", { href: m.url, target: TAB }, m.name + " (" + m.object + ")");
        link.addEventListener("click", function (event) {
          if (openCti()) { event.preventDefault(); show(data, m, null); }
        });
        item.appendChild(link);
        list.appendChild(item);
      });
      node.appendChild(list);
    } else if (data.matches.length === 1) {
      node.appendChild(el("div", { "class": "pop-match" }, data.matches[0].name + " (" + data.matches[0].object + ")"));
    }
    if (data.url || data.form) {
      var custom = !data.matches.length && !data.new_record_url;
      var button = el("button", { type: "button", "class": "btn pop-open" },
        data.matches.length ? t.openRecord : (custom ? t.openPage : t.newRecord));
      button.addEventListener("click", function () { show(data, data.matches[0] || null, null); });
      node.appendChild(button);
    }
    if (data.click) {
      var clicked = el("span", { "class": "pop-click-result", role: "status" });
      var clickButton = el("button", { type: "button", "class": "btn secondary pop-click" },
        data.click.server ? t.clickServer : t.clickBrowser);
      clickButton.addEventListener("click", function () { clickCard(data, clicked); });
      node.appendChild(clickButton);
      node.appendChild(clicked);
    }
    node.appendChild(el("div", { "class": "banner warning pop-blocked", hidden: "" }, t.blocked));
    // An update keeps what the agent typed: the notes form moves to the new card.
    var notes = existing && existing.querySelector(".pop-notes");
    node.appendChild(notes || notesForm(data));
    if (existing) cards.replaceChild(node, existing); else cards.prepend(node);
    var waiting = document.getElementById("agent-waiting");
    if (waiting) waiting.remove();
    return node;
  }

  function notesForm(data) {
    var form = el("form", { "class": "stacked pop-notes" });
    var label = el("label", {}, t.notes);
    var area = el("textarea", { name: "notes", rows: "3" });
    label.appendChild(area);
    form.appendChild(label);
    var select = null;
    if (data.wrapup_reasons && data.wrapup_reasons.length) {
      var wrap = el("label", {}, t.wrapup);
      select = el("select", { name: "wrapup" });
      select.appendChild(el("option", { value: "" }, "—"));
      data.wrapup_reasons.forEach(function (r) { select.appendChild(el("option", { value: r }, r)); });
      wrap.appendChild(select);
      form.appendChild(wrap);
    }
    var save = el("button", { type: "submit", "class": "btn secondary" }, t.save);
    var result = el("span", { "class": "pop-notes-result", role: "status" });
    form.appendChild(save);
    form.appendChild(result);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      fetch("/api/v1/agent/calls/" + encodeURIComponent(data.call_id) + "/notes", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json" }),
        body: JSON.stringify({ notes: area.value, wrapup: select ? select.value : "" }),
      }).then(function (response) {
        return response.json().then(function (body) {
          if (response.ok) { result.textContent = t.saved; return; }
          var detail = Array.isArray(body.detail) ? body.detail.map(function (d) { return d.msg; }).join("; ") : body.detail;
          result.textContent = t.saveFailed.replace("{error}", detail);
        });
      });
    });
    return form;
  }

  function pop(event) {
    var data = JSON.parse(event.data);
    var node = card(data);
    if (data.copy_number && data.tel && navigator.clipboard) {
      navigator.clipboard.writeText(data.tel).catch(function () {});
    }
    var page = pageOf(data);
    if (page && openedFor[data.call_id] !== page) {
      openedFor[data.call_id] = page;
      window.setTimeout(function () { show(data, data.matches[0] || null, node); }, (data.open_delay_seconds || 0) * 1000);
    }
    window.setTimeout(function () {
      var area = node.querySelector("textarea");
      if (node.isConnected && !(area && area.value)) node.remove();
    }, (data.display_seconds || 30) * 1000);
  }

  function end(event) {
    var data = JSON.parse(event.data);
    var node = cards.querySelector('[data-call-id="' + CSS.escape(data.call_id) + '"]');
    if (node && !node.querySelector(".pop-ended")) {
      node.insertBefore(el("div", { "class": "muted pop-ended" }, t.ended), node.firstChild);
    }
    // A disconnect access opened in the browser (seed 002 切断時アクセス).
    if (data.form) submitForm(data.form);
    else if (data.url) openRecord(data.url, node);
  }

  var handlers = { pop: pop, update: pop, end: end };

  function connected() { status.hidden = true; root.dataset.connected = "1"; }

  if (!softphone) {
    var source = new EventSource("/api/v1/agent/events");
    Object.keys(handlers).forEach(function (name) { source.addEventListener(name, handlers[name]); });
    // The session ended (expired or signed out): no reconnecting; sign in again.
    source.addEventListener("signed_out", function () {
      source.close();
      delete root.dataset.connected;
      status.textContent = t.signedOut;
      status.hidden = false;
      root.dataset.signedOut = "1";
    });
    source.addEventListener("open", connected);
    source.addEventListener("error", function () { status.textContent = t.connection; status.hidden = false; });
    return;
  }

  // ---- the softphone: pairing code → token → stream -------------------------------------
  var signin = document.getElementById("softphone-signin");
  var pairForm = document.getElementById("softphone-pair");
  var pairError = document.getElementById("softphone-pair-error");
  var who = document.getElementById("softphone-who");
  var line = document.getElementById("agent-line");
  var lastEventId = null;
  var retryMs = 2000;
  var reading = null; // the AbortController of the open stream

  function askForCode(message) {
    keep(null);
    if (reading) reading.abort();
    reading = null;
    lastEventId = null;
    delete root.dataset.connected;
    status.hidden = true;
    who.hidden = true;
    line.hidden = true;
    signin.hidden = false;
    pairError.textContent = message || "";
    pairError.hidden = !message;
    root.dataset.signedOut = "1";
  }

  function signedIn(saved) {
    signin.hidden = true;
    pairError.hidden = true;
    delete root.dataset.signedOut;
    document.getElementById("softphone-user").textContent = t.who.replace("{name}", saved.display_name || saved.username);
    who.hidden = false;
    document.getElementById("softphone-no-storage").hidden = !!storage();
    line.textContent = saved.extension ? t.line.replace("{extension}", saved.extension) : t.noExtension;
    line.className = saved.extension ? "" : "banner warning";
    line.hidden = false;
    stream();
  }

  // Server-Sent Events read from a fetch() body (the format EventSource parses).
  function readEvents(body) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var fields = { data: [] };
    var ended = false;
    function field(text) {
      if (text === "") {
        if (fields.id !== undefined) lastEventId = fields.id;
        if (fields.data.length) {
          var name = fields.event || "message";
          if (name === "signed_out") { ended = true; }
          else if (handlers[name]) handlers[name]({ data: fields.data.join("\n") });
        }
        fields = { data: [] };
        return;
      }
      if (text.charAt(0) === ":") {
        if (text.indexOf(": connected") === 0) connected();
        return;
      }
      var colon = text.indexOf(":");
      var key = colon < 0 ? text : text.slice(0, colon);
      var value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.charAt(0) === " ") value = value.slice(1);
      if (key === "data") fields.data.push(value);
      else if (key === "event") fields.event = value;
      else if (key === "id") fields.id = value;
      else if (key === "retry" && /^\d+$/.test(value)) retryMs = parseInt(value, 10);
    }
    function pump() {
      if (ended) return Promise.resolve("signed_out");
      return reader.read().then(function (chunk) {
        if (chunk.done) return "closed";
        buffer += decoder.decode(chunk.value, { stream: true });
        var lines = buffer.split("\n");
        buffer = lines.pop();
        lines.forEach(function (text) { field(text.replace(/\r$/, "")); });
        return pump();
      });
    }
    return pump();
  }

  function stream() {
    var saved = stored();
    if (!saved) { askForCode(); return; }
    var controller = new AbortController();
    reading = controller;
    var headers = { Authorization: "Bearer " + saved.token, Accept: "text/event-stream" };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    fetch("/api/v1/agent/events", { headers: headers, cache: "no-store", signal: controller.signal })
      .then(function (response) {
        if (response.status === 401) return "signed_out";
        if (!response.ok || !response.body) return "closed";
        return readEvents(response.body);
      })
      .catch(function () { return "closed"; })
      .then(function (outcome) {
        if (reading !== controller) return; // signed out meanwhile, or a newer stream
        if (outcome === "signed_out") { askForCode(t.tokenEnded); return; }
        // A dropped connection: reconnect and resume after the last message received.
        delete root.dataset.connected;
        status.textContent = t.connection;
        status.hidden = false;
        window.setTimeout(function () { if (reading === controller) stream(); }, retryMs);
      });
  }

  pairForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = pairForm.elements.code.value;
    fetch("/api/v1/agent/softphone/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: code }),
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.status === 201) {
          keep(body);
          pairForm.reset();
          signedIn(body);
          return;
        }
        var message = response.status === 422 ? t.codeRefused
          : response.status === 429 ? t.codeThrottled
          : t.codeFailed.replace("{error}", body.detail || response.status);
        askForCode(message);
      });
    });
  });

  document.getElementById("softphone-sign-out").addEventListener("click", function () {
    var saved = stored();
    askForCode(t.signedOutHere);
    if (saved) {
      fetch("/api/v1/agent/softphone/token", { method: "DELETE", headers: { Authorization: "Bearer " + saved.token } });
    }
  });

  var saved = stored();
  if (saved) signedIn(saved); else askForCode();
})();
