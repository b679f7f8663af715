// Refreshes the dashboard's tables from /api/status every two seconds, without reloading.
"use strict";

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function bars(line) {
  if (line.signal_dbm === null || line.signal_dbm === undefined) return cell("");
  const td = cell("\u25AE".repeat(line.signal_bars) + "\u25AF".repeat(5 - line.signal_bars), "bars");
  td.title = line.signal_dbm + " dBm";
  return td;
}

function fill(tableId, rows, columns, emptyText) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(emptyText);
    td.colSpan = columns;
    tr.append(td);
    body.append(tr);
  }
  return body;
}

function render(status) {
  const error = document.getElementById("engine-error");
  error.hidden = !status.error;
  error.textContent = status.error || "";
  const lines = fill("lines", status.lines, 7, "No lines.");
  for (const line of status.lines) {
    const tr = document.createElement("tr");
    tr.dataset.line = line.id;
    const state = line.activity + (line.error ? " \u2014 " + line.error : "");
    const name = cell(" (" + line.id + ")");
    if (document.body.dataset.role === "admin" || document.body.dataset.role === "supervisor") {
      const link = document.createElement("a");
      link.href = "/lines/" + encodeURIComponent(line.id);
      link.textContent = line.name;
      name.prepend(link);
    } else {
      name.prepend(line.name);
    }
    tr.append(name, cell(line.model || line.driver),
              cell(state, "state state-" + line.activity.replace(" ", "-")), bars(line),
              cell(line.registration || ""), cell(line.operator || ""), cell(line.balance_text || ""));
    lines.append(tr);
  }
  const calls = fill("calls", status.calls, 5, "No calls in progress.");
  for (const call of status.calls) {
    const tr = document.createElement("tr");
    tr.append(cell(call.id), cell(call.line), cell(call.caller || "withheld"), cell(call.step), cell(call.seconds + " s"));
    calls.append(tr);
  }
}

async function refresh() {
  try {
    const response = await fetch("/api/status", {credentials: "same-origin"});
    if (response.status === 401) { window.location.reload(); return; }
    render(await response.json());
  } catch (err) {
    render({error: "The web UI does not answer: " + err, lines: [], calls: []});
  }
}

setInterval(refresh, 2000);
