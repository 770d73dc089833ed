"""A real Redline server in its own process, and simulated people sending it requests.

Used by the concurrency tests and by `make soak` (bench/soak.py): requests go over
real sockets to `redline serve` (uvicorn), each person with an HTTP client of their
own, so that what is measured is what a deployment would do.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from app.auth import CSRF_HEADER
from app.main import SESSION_COOKIE
from tests.utils.sessions import signed_session

ROOT = Path(__file__).resolve().parent.parent.parent
REDLINE = str(Path(sys.executable).parent / "redline")
SECRET_KEY = "concurrency-test-secret-key-long-enough"
# An identity provider that is never contacted (people sign in by signed cookie).
PLACEHOLDER_PROVIDER_ENV = {
    "REDLINE_OIDC_PROVIDERS": "work",
    "REDLINE_OIDC_WORK_ISSUER": "https://login.example.invalid",
    "REDLINE_OIDC_WORK_CLIENT_ID": "redline-test",
    "REDLINE_OIDC_WORK_CLIENT_SECRET": "never-used",
    "REDLINE_OIDC_WORK_LABEL": "a test identity provider",
}
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def free_port() -> int:
    """A TCP port nobody is listening on just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, demo: bool, **extra: str) -> dict[str, str]:
    """The environment of a server on ``database_url`` with the fixed test secret."""
    env = {
        **os.environ,
        "REDLINE_DATABASE_URL": database_url,
        "REDLINE_SECRET_KEY": SECRET_KEY,
        "REDLINE_DEMO": "1" if demo else "0",
        "REDLINE_SEED_DIR": str(ROOT / "seed"),
    }
    if not (demo and database_url.startswith("sqlite")):
        # Outside demo mode a server refuses to start without an identity provider.
        env.update(PLACEHOLDER_PROVIDER_ENV)
    env.update(extra)
    return env


class Server:
    """`redline serve` as a child process; its output goes to ``log`` (never a full pipe)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.env = env
        self.log = log
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Server:
        """Start the server and wait until it answers; raise with its log if it does not."""
        command = [REDLINE, "serve", "--port", str(self.port), "--workers", str(self.workers)]
        with self.log.open("ab") as output:
            # A process group of its own, so that a kill reaches every worker at once.
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(self.base + "/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL to the server and all its workers: none gets a chance to finish anything."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Shut down gracefully (SIGTERM), or kill after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the server's output, for failure messages."""
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Outcome:
    """One request as the client saw it: status (0: no response at all) and clock times."""

    status: int
    sent: float
    received: float
    retry_after: str | None = None
    # False when no connection could be made at all (the server is down): never sent.
    connected: bool = True

    @property
    def acknowledged(self) -> bool:
        """The server said it was done (2xx, or the 303 after a form post)."""
        return 200 <= self.status < 400

    @property
    def server_error(self) -> bool:
        """5xx, or a connection dropped without any answer."""
        return self.status == 0 or self.status >= 500


class Person:
    """One simulated person: their own HTTP client, signed in, sending the CSRF header."""

    def __init__(self, base: str, connections: int = 20) -> None:
        self.client = httpx.Client(
            base_url=base,
            timeout=60,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=20),
        )

    @classmethod
    def with_cookie(
        cls, base: str, user_id: int, secret_key: str = SECRET_KEY, connections: int = 20
    ) -> Person:
        """Signed in by a session cookie signed with the server's secret (as its sign-in would)."""
        person = cls(base, connections)
        cookie, csrf = signed_session(secret_key, user_id)
        person.client.cookies.set(SESSION_COOKIE, cookie)
        person.client.headers[CSRF_HEADER] = csrf
        return person

    @classmethod
    def demo(cls, base: str, persona: str, connections: int = 20) -> Person:
        """Signed in through the demo sign-in form, as someone trying the demo would be."""
        person = cls(base, connections)
        page = person.client.get("/sign-in")
        person.client.headers[CSRF_HEADER] = _csrf(page.text)
        answer = person.client.post("/sign-in/demo", data={"persona": persona, "next": "/"})
        if answer.status_code != 303:
            raise RuntimeError(f"demo sign-in as {persona} answered {answer.status_code}")
        # Signing in starts a fresh session with a new CSRF token: read it from a page.
        person.client.headers[CSRF_HEADER] = _csrf(person.client.get("/").text)
        return person

    def post(self, path: str, data: dict[str, str]) -> Outcome:
        """POST a form; never raises for a failed request (status 0 records it)."""
        sent = time.monotonic()
        try:
            response = self.client.post(path, data=data)
        except httpx.ConnectError:
            return Outcome(0, sent, time.monotonic(), connected=False)
        except httpx.HTTPError:
            return Outcome(0, sent, time.monotonic())
        return Outcome(
            response.status_code, sent, time.monotonic(), response.headers.get("retry-after")
        )

    def get(self, path: str) -> httpx.Response:
        """GET a page or download (raises if the connection fails)."""
        return self.client.get(path)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


def _csrf(page: str) -> str:
    found = _CSRF_META.search(page)
    if not found:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1)
