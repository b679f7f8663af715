// The line form: show the SIP fieldset for the SIP driver and the modem fieldsets for the others.
// Only a nicety: without it every fieldset shows and the server keeps what the posted driver needs.
"use strict";

(() => {
  const driver = document.getElementById("driver");
  if (!driver) return;
  const show = () => {
    const kind = driver.value === "sip" ? "sip" : "modem";
    document.querySelectorAll("#line-form [data-for]").forEach((part) => {
      const off = part.dataset.for !== kind;
      part.hidden = off;
      part.style.display = off ? "none" : "";  // the stylesheet's display: grid would win over [hidden]
      if (part.tagName === "FIELDSET") part.disabled = off;  // a hidden fieldset is not posted either
    });
  };
  driver.addEventListener("change", show);
  show();
})();
