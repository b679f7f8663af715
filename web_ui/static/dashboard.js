// The live pages. Hotline.connect() listens to /events (server-sent events relayed from
// the engine); the dashboard and the wallboard re-fetch their state on each event and
// re-render. A page refused a stream (too many open, logged out) polls instead.
"use strict";

const Hotline = (() => {
  const POLL_MS = 3000;       // while there is no event stream
  const REOPEN_MS = 30000;    // then try the stream again
  const SAFETY_MS = 30000;    // a refresh now and then even when all is quiet

  function strings(root) {
    return JSON.parse(root.dataset.strings || "{}");
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // POST a form's fields; resolves to {ok, message, ...} whatever the status.
  async function post(url, fields) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", body: new URLSearchParams(fields),
      headers: {"X-CSRFToken": csrfToken(), "Accept": "application/json"},
    });
    if (response.status === 401 || response.redirected) { window.location.reload(); return {ok: false}; }
    try {
      return await response.json();
    } catch (err) {
      return {ok: false, message: response.status + " " + response.statusText};
    }
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    seconds = Math.floor(seconds);
    if (seconds < 60) return seconds + " s";
    const hours = Math.floor(seconds / 3600), minutes = Math.floor(seconds % 3600 / 60);
    const ss = String(seconds % 60).padStart(2, "0");
    return hours ? hours + ":" + String(minutes).padStart(2, "0") + ":" + ss : minutes + ":" + ss;
  }

  // A duration that keeps counting in the page between two fetches.
  function clock(element, seconds) {
    element.classList.add("clock");
    element.dataset.base = seconds;
    element.dataset.at = Date.now();
    element.textContent = duration(seconds);
    return element;
  }

  // Clocks the server rendered start counting when the page (or a fragment) arrives.
  function startClocks(container) {
    for (const element of container.querySelectorAll(".clock[data-base]")) element.dataset.at = Date.now();
  }

  function tickClocks() {
    for (const element of document.querySelectorAll(".clock[data-base][data-at]")) {
      const seconds = Number(element.dataset.base) + (Date.now() - Number(element.dataset.at)) / 1000;
      element.textContent = duration(seconds);
    }
  }

  // Runs `work` soon after the last call, never twice at once (a burst of events = one fetch).
  function debounced(work, delay = 200) {
    let timer = null, running = false, again = false;
    async function run() {
      timer = null;
      if (running) { again = true; return; }
      running = true;
      try { await work(); } finally {
        running = false;
        if (again) { again = false; schedule(); }
      }
    }
    function schedule() {
      if (timer === null) timer = setTimeout(run, delay);
    }
    return schedule;
  }

  // Calls onEvent(event) for each engine event, and onState("live" | "reconnecting" | "polling").
  function connect(onEvent, onState = () => {}) {
    let poller = null;
    function polling(on) {
      if (on && poller === null) poller = setInterval(() => onEvent({type: "poll"}), POLL_MS);
      if (!on && poller !== null) { clearInterval(poller); poller = null; }
    }
    function open() {
      const source = new EventSource("/events");
      source.onopen = () => { polling(false); onState("live"); };
      source.onmessage = (message) => {
        let event;
        try { event = JSON.parse(message.data); } catch (err) { return; }
        onEvent(event);
      };
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) {
          onState("polling");
          polling(true);
          onEvent({type: "poll"});
          setTimeout(open, REOPEN_MS);
        } else {
          onState("reconnecting");  // the browser reconnects by itself
        }
      };
    }
    if (window.EventSource) open(); else { onState("polling"); polling(true); }
    setInterval(() => onEvent({type: "poll"}), SAFETY_MS);
  }

  function cell(content, className) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content); else td.textContent = content;
    if (className) td.className = className;
    return td;
  }

  // Empties a table's body; with no rows, puts `emptyText` across it.
  function fill(table, rows, emptyText) {
    const body = table.querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(emptyText);
      td.colSpan = table.querySelectorAll("thead th").length;
      tr.append(td);
      body.append(tr);
    }
    return body;
  }

  function showState(element, text, state) {
    if (element) element.textContent = text[state] || "";
  }

  setInterval(tickClocks, 1000);
  return {strings, csrfToken, post, duration, clock, startClocks, debounced, connect, cell, fill, showState};
})();
window.Hotline = Hotline;

// --- the dashboard ----------------------------------------------------------------------

function startDashboard(root) {
  const text = Hotline.strings(root);
  const role = document.body.dataset.role;
  const supervising = role === "admin" || role === "supervisor";
  const myOperator = root.dataset.operator;
  const stateName = (state) => (text.states || {})[state] || state;
  const $ = (id) => document.getElementById(id);

  function hiddenInput(name, value) {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = name; input.value = value;
    return input;
  }

  // The same small form the server renders, so one submit handler serves both.
  function commandForm(action, label, fields, disabled, className) {
    const form = document.createElement("form");
    form.method = "post"; form.action = action; form.className = "inline";
    form.append(hiddenInput("csrf_token", Hotline.csrfToken()));
    for (const [name, value] of Object.entries(fields)) form.append(hiddenInput(name, value));
    const button = document.createElement("button");
    button.type = "submit"; button.textContent = label; button.disabled = disabled;
    if (className) button.className = className;
    if (fields.state) button.dataset.state = fields.state;
    form.append(button);
    return form;
  }

  function bars(line) {
    if (line.signal_dbm === null || line.signal_dbm === undefined || line.signal_bars == null) return Hotline.cell("");
    const span = document.createElement("span");
    span.className = "bars";
    span.title = line.signal_dbm + " dBm";
    span.textContent = "\u25AE".repeat(line.signal_bars) + "\u25AF".repeat(5 - line.signal_bars);
    return Hotline.cell(span);
  }

  // A SIP line: its address and the UDP port it really listens on (0 in the settings means any free one).
  function lineKind(line) {
    if (line.driver !== "sip") return Hotline.cell(line.model || line.driver || "");
    const cell = Hotline.cell("SIP");
    if (line.port !== null && line.port !== undefined) {
      const span = document.createElement("span");
      span.className = "sip-address";
      span.textContent = (line.address || "0.0.0.0") + ":" + line.port;
      cell.append(" ", span);
    }
    return cell;
  }

  // A SIP line has no signal: its channels in use take that column.
  function channels(line) {
    if (typeof line.channels !== "number") return Hotline.cell("");
    const span = document.createElement("span");
    span.className = "channels";
    span.title = text.channelsInUse || "";
    span.textContent = (line.channels_in_use || 0) + "/" + line.channels;
    return Hotline.cell(span);
  }

  function renderLines(lines) {
    const body = Hotline.fill($("lines"), lines, text.noLines);
    for (const line of lines) {
      const tr = document.createElement("tr");
      tr.dataset.line = line.id;
      const name = Hotline.cell(" ");
      const small = document.createElement("small");
      small.textContent = "(" + line.id + ")";
      name.append(small);
      if (supervising) {
        const link = document.createElement("a");
        link.href = "/lines/" + encodeURIComponent(line.id);
        link.textContent = line.name;
        name.prepend(link);
      } else {
        name.prepend(line.name);
      }
      const activity = line.activity || line.state || "";
      const state = stateName(activity) + (line.error ? " \u2014 " + line.error : "");
      tr.append(name, lineKind(line),
                Hotline.cell(state, "state state-" + activity.replaceAll(" ", "-")),
                line.driver === "sip" ? channels(line) : bars(line),
                Hotline.cell(line.registration || ""), Hotline.cell(line.operator || ""),
                Hotline.cell(line.balance_text || ""));
      body.append(tr);
    }
  }

  function renderCalls(calls, queue) {
    const body = Hotline.fill($("calls"), calls, text.noCalls);
    for (const call of calls) {
      const tr = document.createElement("tr");
      tr.dataset.call = call.id;
      const entry = call.role === "caller" && call.caller &&
        queue.find((e) => e.kind === "caller" && e.number === call.caller);
      const waiting = entry ? Hotline.clock(document.createElement("span"), entry.waited_seconds) : "";
      tr.append(Hotline.cell(String(call.id)), Hotline.cell(call.line), Hotline.cell(call.caller || (call.direction === "out" ? "" : text.withheld)),
                Hotline.cell(call.callee || ""), Hotline.cell(call.step),
                Hotline.cell(Hotline.clock(document.createElement("span"), call.seconds)), Hotline.cell(waiting));
      if (supervising) {
        tr.append(Hotline.cell(commandForm("/dashboard/calls/" + call.id + "/hangup", text.hangUp, {}, false, "hangup")));
      }
      body.append(tr);
    }
  }

  function renderQueue(queue) {
    const body = Hotline.fill($("queue"), queue, text.nobodyWaiting);
    for (const entry of queue) {
      const tr = document.createElement("tr");
      const who = entry.number + (entry.kind === "caller" ? "" : " (" + text.callback + ")");
      tr.append(Hotline.cell(entry.queue), Hotline.cell(who), Hotline.cell(String(entry.position)),
                Hotline.cell(Hotline.clock(document.createElement("span"), entry.waited_seconds)),
                Hotline.cell((entry.ringing || []).join(", ")));
      body.append(tr);
    }
  }

  function renderOperators(operators) {
    const body = Hotline.fill($("operators"), operators, text.noOperators);
    for (const operator of operators) {
      const tr = document.createElement("tr");
      tr.dataset.operator = operator.id;
      const name = Hotline.cell(operator.name + " ");
      const small = document.createElement("small");
      small.textContent = "(" + operator.id + ")";
      name.append(small);
      const actions = Hotline.cell("");
      if (supervising || myOperator === operator.id) {
        const action = "/dashboard/operators/" + encodeURIComponent(operator.id) + "/state";
        actions.append(commandForm(action, text.ready, {state: "ready"}, operator.state === "ready"),
                       commandForm(action, text.pause, {state: "paused"}, operator.state === "paused"));
      }
      tr.append(name, Hotline.cell(operator.number),
                Hotline.cell(stateName(operator.state), "state state-" + operator.state.replaceAll(" ", "-")),
                Hotline.cell(String(operator.calls_taken)), actions);
      body.append(tr);
    }
  }

  function renderReminders(reminders) {
    const panel = $("reminders-panel");
    panel.hidden = reminders === undefined;
    if (reminders === undefined) return;
    const body = Hotline.fill($("reminders"), reminders, text.noReminders);
    for (const reminder of reminders) {
      const tr = document.createElement("tr");
      const link = document.createElement("a");
      link.href = "/contacts/" + encodeURIComponent(reminder.number);
      link.textContent = reminder.number;
      const who = Hotline.cell(link);
      if (reminder.name) who.append(" " + reminder.name);
      tr.append(who, Hotline.cell((reminder.due_at || "").slice(0, 16).replace("T", " ")),
                Hotline.cell(reminder.text || ""));
      body.append(tr);
    }
  }

  function renderHealth(health) {
    // Problems the box found in itself (disk, temperature, power, clock, modems): shown until solved.
    const list = $("health-problems");
    const problems = (health && health.problems) || [];
    list.hidden = problems.length === 0;
    list.replaceChildren(...problems.map((item) => {
      const li = document.createElement("li");
      li.dataset.level = item.level;
      li.textContent = item.message;
      return li;
    }));
  }

  function showError(id, message) {
    $(id).hidden = !message;
    $(id).textContent = message || "";
  }

  let wrapUpTimer = null;
  function render(status) {
    showError("engine-error", status.error);
    showError("config-problem", status.config_problem);
    renderLines(status.lines || []);
    renderCalls(status.calls || [], status.queue || []);
    renderQueue(status.queue || []);
    renderOperators(status.operators || []);
    renderReminders(status.reminders);
    renderHealth(status.health);
    // Wrap-up ends without an event: look again shortly after.
    clearTimeout(wrapUpTimer);
    if ((status.operators || []).some((op) => op.state === "wrap-up")) wrapUpTimer = setTimeout(refresh, 2000);
  }

  const refresh = Hotline.debounced(async () => {
    try {
      const response = await fetch("/api/status", {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (response.status === 401) { window.location.reload(); return; }
      render(await response.json());
    } catch (err) {
      showError("engine-error", text.webDown + " " + err);  // the tables keep their last state
    }
  });

  root.addEventListener("submit", async (event) => {
    const form = event.target;
    event.preventDefault();
    if (form.querySelector("button.hangup")) {
      const callId = form.closest("tr").dataset.call;
      if (!window.confirm(text.confirmHangUp.replace("{call}", callId))) return;
    }
    const reply = await Hotline.post(form.action, new FormData(form));
    showError("command-error", reply.ok ? "" : reply.message);
    refresh();
  });

  Hotline.connect((event) => {
    if (event.type === "engine.down") showError("engine-error", text.engineDown + " (" + event.error + ")");
    if (event.type !== "sms.received") refresh();
  }, (state) => Hotline.showState($("live-state"), text, state));
}

// --- the wallboard ----------------------------------------------------------------------

function startWallboard(root) {
  const text = Hotline.strings(root);

  function render(board) {
    for (const element of root.querySelectorAll("[data-figure]")) {
      const value = board[element.dataset.figure];
      if (element.dataset.kind === "clock") Hotline.clock(element, value || 0);
      else if (element.dataset.kind === "percent") element.textContent = value === null ? "\u2014" : value + " %";
      else element.textContent = value;
    }
    const longest = root.querySelector('[data-figure="longest_wait_seconds"]');
    if (longest && !board.waiting) longest.classList.remove("clock");  // nobody waits: stop counting
    root.classList.toggle("busy", board.waiting > 0 && board.operators_ready === 0);
    const error = document.getElementById("engine-error");
    error.hidden = !board.error;
    error.textContent = board.error || "";
  }

  const refresh = Hotline.debounced(async () => {
    try {
      const response = await fetch("/api/wallboard", {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (response.status === 401) { window.location.reload(); return; }
      render(await response.json());
    } catch (err) {
      const error = document.getElementById("engine-error");
      error.hidden = false;
      error.textContent = text.webDown + " " + err;  // the figures keep their last values
    }
  });

  Hotline.connect((event) => { if (event.type !== "sms.received") refresh(); },
                  (state) => Hotline.showState(document.getElementById("live-state"), text, state));
}

if (document.getElementById("dashboard")) startDashboard(document.getElementById("dashboard"));
if (document.getElementById("wallboard")) startWallboard(document.getElementById("wallboard"));
