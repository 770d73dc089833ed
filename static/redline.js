// Redline's behaviour on top of GOV.UK Frontend and htmx. A file, not an inline script,
// so that a strict Content Security Policy can allow it.
import { initAll } from "/static/govuk/govuk-frontend.min.js";

initAll();

// htmx swaps a part of the page: bring GOV.UK Frontend's components in it to life (the
// error summary then moves focus to itself, character counts and conditional radios
// work), and when the swap removed the element that had focus (the "Withdraw my vote"
// button) move focus to the status the swap put in its place rather than the body.
// htmx 4 fires htmx:after:swap on the swap target once the new content is in, and sets
// document.title itself from a <title> in the response ("Error: ..." on a 422).
document.addEventListener("htmx:after:swap", (event) => {
  const scope = event.target instanceof Element ? event.target : null;
  if (!scope || !scope.isConnected) return;
  // After htmx has restored focus to an element of the same id, if there was one.
  window.setTimeout(() => {
    initAll({ scope });
    if (scope.querySelector(".govuk-error-summary")) return; // it focused itself
    const active = document.activeElement;
    if (!active || active === document.body || !active.isConnected) {
      const fallback = scope.querySelector("[data-app-focus-after-swap]");
      if (fallback) fallback.focus();
    }
  }, 0);
});
