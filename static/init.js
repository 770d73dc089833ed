// Start GOV.UK Frontend's components. A file of its own rather than an inline script,
// so that the Content-Security-Policy needs no 'unsafe-inline' (app/security_headers.py).
import { initAll } from "/static/govuk/govuk-frontend.min.js";
initAll();
