// Niceties for the configuration pages; every form works without them.
"use strict";

// Ask before a delete form is sent.
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

// "+" after a row of intervals adds one more empty from–to pair without saving first.
document.querySelectorAll(".intervals").forEach((box) => {
  const key = box.dataset.key;
  const add = document.createElement("button");
  add.type = "button";
  add.textContent = "+";
  add.className = "add-interval";
  add.title = "+";
  add.addEventListener("click", () => {
    const rows = box.querySelectorAll(".interval");
    const last = rows[rows.length - 1];
    const copy = last.cloneNode(true);
    const row = rows.length;
    copy.classList.remove("has-error");
    copy.querySelectorAll(".error").forEach((p) => p.remove());
    copy.querySelectorAll("input").forEach((input) => {
      const side = input.name.endsWith("-from") ? "from" : "to";
      input.name = input.id = `${key}-${row}-${side}`;
      input.value = "";
    });
    last.after(copy);
  });
  box.append(add);
});

// The operators table follows the engine's live state.
const operators = document.getElementById("operators");
if (operators && operators.dataset.statusUrl) {
  const labels = JSON.parse(operators.dataset.labels || "{}");
  const refresh = async () => {
    try {
      const response = await fetch(operators.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const status = await response.json();
      for (const op of status.operators || []) {
        const row = operators.querySelector(`tr[data-operator="${CSS.escape(op.id)}"]`);
        if (!row) continue;
        const cell = row.querySelector(".op-state");
        cell.textContent = labels[op.state] || op.state;
        cell.className = `op-state op-state-${op.state.replace(/ /g, "-")}`;
        row.querySelector(".op-calls").textContent = op.calls_taken;
        const form = row.querySelector("form input[name=state]");
        const button = form && form.form.querySelector("button");
        if (form && button) {
          const paused = op.state === "paused";
          form.value = paused ? "ready" : "paused";
          button.textContent = paused ? operators.dataset.ready : operators.dataset.pause;
        }
      }
    } catch (err) {
      // The engine may be restarting; the next round tries again.
    }
  };
  setInterval(refresh, 3000);
}
