// The operator's page: the live panel is re-rendered on the server at each engine event
// and swapped in; Ready / Pause post in the background. Needs dashboard.js (Hotline).
"use strict";

(() => {
  const root = document.getElementById("me");
  if (!root) return;
  const text = Hotline.strings(root);
  const panel = document.getElementById("me-panel");
  const note = document.getElementById("me-note");

  async function fetchHtml(url) {
    const response = await fetch(url, {credentials: "same-origin"});
    if (response.redirected || response.status === 401) { window.location.reload(); return null; }
    return response.ok ? response.text() : null;
  }

  // Nothing typed into the note form, so it may be replaced (by the next call's, or this one ended).
  function pristine() {
    const form = note.querySelector("form");
    if (!form) return true;
    const category = form.elements.category;
    return !form.elements.note.value.trim() && category.value === category.defaultValue;
  }

  let wrapUpTimer = null;
  // Wrap-up ends without an event: look again shortly after.
  function watchWrapUp() {
    clearTimeout(wrapUpTimer);
    const state = document.getElementById("my-state");
    if (state && state.dataset.state === "wrap-up") wrapUpTimer = setTimeout(refresh, 2000);
  }

  const refresh = Hotline.debounced(async () => {
    const html = await fetchHtml(root.dataset.panelUrl);
    if (html === null) return;
    panel.innerHTML = html;
    Hotline.startClocks(panel);
    watchWrapUp();
    const last = panel.firstElementChild ? panel.firstElementChild.dataset.lastCall || "" : "";
    const shown = note.querySelector("[data-version]");
    if (last !== (shown ? shown.dataset.version : "") && pristine()) {
      const form = await fetchHtml(root.dataset.noteUrl);
      if (form !== null) note.innerHTML = form;
    }
  });

  // Ready / Pause without leaving the page (the forms still work without scripts).
  panel.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const button of panel.querySelectorAll(".big-buttons button")) button.disabled = true;
    await Hotline.post(event.target.action, new FormData(event.target));
    refresh();
  });

  Hotline.startClocks(panel);
  watchWrapUp();
  Hotline.connect((event) => { if (event.type !== "sms.received") refresh(); },
                  (state) => Hotline.showState(document.getElementById("live-state"), text, state));
})();
