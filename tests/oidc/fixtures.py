"""A real OpenID Connect provider on loopback, and a person's browser for its login screens.

The provider is npm's oidc-provider (tests/oidc/provider.mjs), run by Node. In
front of it sits a small forwarding proxy that the tests can tell to misbehave
the way a broken or hostile provider would: send an ID token with a bad
signature, the wrong audience or issuer, an expired or wrong-nonce token, no ID
token at all, or answer too slowly. The provider's issuer is the proxy's
address, so from Redline's side the pair is one provider; the proxy publishes
its own signing key in the provider's JWKS so that the tokens it re-signs are
checked claim by claim, exactly as a real provider's would be.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import httpx2 as httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_SCRIPT = Path(__file__).with_name("provider.mjs")
CLIENT_ID = "redline-test"
CLIENT_SECRET = "redline-test-client-secret"
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
}
MODES = {
    "pass",
    "resigned",
    "bad-signature",
    "wrong-audience",
    "wrong-issuer",
    "expired",
    "wrong-nonce",
    "no-id-token",
    # The discovery document names another issuer (OpenID Connect Discovery 1.0, 4.3).
    "advertise-other-issuer",
}
OTHER_ISSUER = "http://127.0.0.1:9/another-provider"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_unavailable_reason() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (ROOT / "node_modules" / "oidc-provider").is_dir():
        return "oidc-provider is not installed (run make install)"
    return None


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class TamperingProxy:
    """Forwards every request to the provider; changes token answers when told to."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.delay = 0.0
        self.key = RSAKey.generate_key(2048, parameters={"kid": "tampering-proxy", "use": "sig"})
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                proxy.forward(self)

            def do_POST(self) -> None:
                proxy.forward(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        if self.delay:
            time.sleep(self.delay)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            upstream = httpx.request(
                handler.command,
                self.upstream + handler.path,
                headers=headers,
                content=body,
                follow_redirects=False,
                timeout=30,
            )
        except httpx.HTTPError:
            # The provider is still starting (or already stopped).
            handler.send_error(502)
            return
        content = upstream.content
        path = handler.path.split("?", 1)[0]
        if path == "/jwks":
            keys = json.loads(content)
            keys["keys"].append(self.key.as_dict(private=False, alg="RS256"))
            content = json.dumps(keys).encode()
        elif path == "/.well-known/openid-configuration" and self.mode == "advertise-other-issuer":
            content = json.dumps({**json.loads(content), "issuer": OTHER_ISSUER}).encode()
        elif (
            path == "/token"
            and upstream.status_code == 200
            and self.mode
            not in (
                "pass",
                "advertise-other-issuer",
            )
        ):
            content = json.dumps(self.tamper(json.loads(content))).encode()
        handler.send_response(upstream.status_code)
        for name, value in upstream.headers.multi_items():
            if name.lower() not in HOP_HEADERS:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    def tamper(self, token: dict) -> dict:
        if self.mode == "no-id-token":
            return {k: v for k, v in token.items() if k != "id_token"}
        header, payload, signature = token["id_token"].split(".")
        if self.mode == "bad-signature":
            flipped = bytearray(_b64decode(signature))
            flipped[len(flipped) // 2] ^= 0xFF
            forged = base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
            return {**token, "id_token": f"{header}.{payload}.{forged}"}
        claims = json.loads(_b64decode(payload))
        now = int(time.time())
        if self.mode == "wrong-audience":
            claims["aud"] = "some-other-service"
        elif self.mode == "wrong-issuer":
            claims["iss"] = "http://127.0.0.1:9/not-the-issuer"
        elif self.mode == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif self.mode == "wrong-nonce":
            claims["nonce"] = "not-the-nonce-redline-sent"
        signed = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
        return {**token, "id_token": signed}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Provider:
    """oidc-provider behind a TamperingProxy; ``issuer`` is what Redline is configured with."""

    def __init__(self, redirect_uris: list[str]) -> None:
        port = free_port()
        self.proxy = TamperingProxy(f"http://127.0.0.1:{port}")
        # The key Redline's private_key_jwt client signs its token requests with.
        self.client_key = RSAKey.generate_key(2048, parameters={"kid": "redline-client"})
        self.issuer = self.proxy.url
        env = {
            **os.environ,
            "OIDC_ISSUER": self.issuer,
            "OIDC_PORT": str(port),
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
            "OIDC_CLIENT_PUBLIC_JWK": json.dumps(self.client_key.as_dict(private=False)),
        }
        self.process = subprocess.Popen(
            ["node", str(PROVIDER_SCRIPT)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                discovery = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2)
                if discovery.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.close()
        output = self.process.stdout.read().decode() if self.process.stdout else ""
        raise RuntimeError(f"the OpenID Connect provider did not start:\n{output[-2000:]}")

    def misbehave(self, mode: str = "pass", delay: float = 0.0) -> None:
        assert mode in MODES, mode
        self.proxy.mode, self.proxy.delay = mode, delay

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.proxy.close()


class ProviderBrowser:
    """A person's browser on the provider's own pages (its cookies, its login and consent forms)."""

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=10)

    def close(self) -> None:
        self.http.close()

    def _until_back(self, response: httpx.Response, back_to: str) -> httpx.Response | str:
        """Follow redirects on the provider until it sends us back to ``back_to``."""
        for _ in range(20):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(back_to):
                    return location
                response = self.http.get(location)
            else:
                return response
        raise AssertionError("too many redirects at the provider")

    def sign_in(self, authorize_url: str, login: str, back_to: str) -> str:
        """Log in with ``login`` and consent; returns the callback URL the provider sends us to."""
        step = self._until_back(self.http.get(authorize_url), back_to)
        for _ in range(4):
            if isinstance(step, str):
                return step
            page = step.text
            action = unescape(re.search(r'<form[^>]*action="([^"]+)"', page).group(1))
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
            if 'name="login"' in page:
                fields.update(login=login, password="any-password")
            response = self.http.post(urljoin(str(step.url), action), data=fields)
            step = self._until_back(response, back_to)
        raise AssertionError("the provider never sent us back")

    def cancel(self, authorize_url: str, back_to: str) -> str:
        """Press the provider's cancel link on its login page."""
        step = self._until_back(self.http.get(authorize_url), back_to)
        abort = re.search(r'href="([^"]*/abort)"', step.text).group(1)
        back = self._until_back(self.http.get(urljoin(str(step.url), unescape(abort))), back_to)
        assert isinstance(back, str)
        return back
