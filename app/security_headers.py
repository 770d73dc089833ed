"""Security headers on every response: a nonce-based Content-Security-Policy and friends.

A pure ASGI middleware of our own rather than a library: the maintained options
(``secure``, ``starlette-csp``) either cannot make a fresh CSP nonce per request and
hand it to the templates, or wrap responses in ``BaseHTTPMiddleware``, which buffers
streamed exports. What Redline needs is one fixed list of headers and one nonce, in
about forty lines that touch nothing but the ``http.response.start`` message, so that
pages, htmx fragments, streamed downloads, static files and error pages all get them.

The one response this middleware cannot see is the 500 page: Starlette builds it in
``ServerErrorMiddleware``, outside every user middleware. ``app.main.server_error``
adds the same headers with ``headers_for`` and the nonce this middleware put in the
scope, so there is still one list.
"""

from __future__ import annotations

import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Where the request's nonce is kept, for the templates (``cspNonce``) and the 500 page.
NONCE_KEY = "csp_nonce"

# Two years, as hstspreload.org asks; only ever sent when the base URL is https.
HSTS_MAX_AGE = 63072000


def content_security_policy(nonce: str) -> str:
    """The policy: our own origin only, no inline script or style except the nonced script.

    GOV.UK Frontend's template has one inline script (it marks ``<body>`` as
    ``js-enabled``) and takes the nonce as ``cspNonce``. htmx 4 would otherwise adopt a
    constructed stylesheet for indicators; _layout.html turns that off (``htmx-config``).
    ``data:`` images are GOV.UK Frontend's own small icons in its CSS.
    """
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def headers_for(nonce: str, hsts: bool) -> dict[str, str]:
    """Every security header of one response, by name."""
    headers = {
        "Content-Security-Policy": content_security_policy(nonce),
        # For browsers that predate frame-ancestors.
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # Clause and report addresses stay on this site; other sites learn nothing.
        "Referrer-Policy": "same-origin",
        "Permissions-Policy": (
            "accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
            "magnetometer=(), microphone=(), payment=(), usb=()"
        ),
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if hsts:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE}; includeSubDomains"
    return headers


class SecurityHeaders:
    """Add ``headers_for`` to every HTTP response, with a fresh nonce per request."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        # Kept in the scope itself (not a copy): the 500 handler outside us reads it too.
        scope[NONCE_KEY] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in headers_for(nonce, self.hsts).items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
