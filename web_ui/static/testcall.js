// The test-call panel: the forms post in the background, then the call is followed live:
// each engine event re-fetches its timeline from the server. Needs dashboard.js (Hotline).
"use strict";

(() => {
  const root = document.getElementById("testcall");
  if (!root) return;
  const text = Hotline.strings(root);
  const watch = document.getElementById("watch");
  const body = document.getElementById("watch-body");
  let lastLook = false;  // the call has ended: one more look catches the journal's last lines

  const refresh = Hotline.debounced(async () => {
    const callId = watch.dataset.call;
    if (!callId) return;
    const response = await fetch("/testcall/calls/" + encodeURIComponent(callId), {credentials: "same-origin"});
    if (response.redirected || response.status === 401) { window.location.reload(); return; }
    if (!response.ok) return;
    body.innerHTML = await response.text();
    Hotline.startClocks(body);
    const ended = body.firstElementChild && body.firstElementChild.dataset.ended === "1";
    if (ended && !lastLook) { lastLook = true; setTimeout(refresh, 1500); }
  }, 150);

  function follow(callId) {
    watch.dataset.call = callId;
    watch.hidden = false;
    lastLook = false;
    history.replaceState(null, "", "?call=" + encodeURIComponent(callId));
    refresh();
  }

  root.addEventListener("submit", async (event) => {
    const form = event.target;
    event.preventDefault();
    const error = form.querySelector("[data-form-error]");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const reply = await Hotline.post(form.action, new FormData(form));
      error.hidden = reply.ok;
      error.textContent = reply.ok ? "" : reply.message || "";
      if (reply.ok) follow(reply.call);
    } finally {
      button.disabled = false;
    }
  });

  Hotline.connect((event) => {
    const ended = body.firstElementChild && body.firstElementChild.dataset.ended === "1";
    if (watch.dataset.call && !ended && event.type !== "sms.received") refresh();
  }, (state) => Hotline.showState(document.getElementById("live-state"), text, state));
  if (watch.dataset.call) refresh();
})();
