"""Logging set-up, request ids, and the access line and metrics of every request.

Logging is configured once per process (``redline serve`` before uvicorn starts, and
``create_app`` in each worker): one handler on the ``redline`` and ``uvicorn``
loggers, writing plain text or, with ``REDLINE_LOG_FORMAT=json``, one JSON object a
line. Every record carries the request id of the request it was logged in.

``RequestObservability`` is pure ASGI middleware (not ``BaseHTTPMiddleware``, which
runs the app in another task, so that context variables set here would not reach the
handlers, and which buffers streamed responses). For each request it takes the
``X-Request-ID`` header when it is sane (bounded, safe characters: it ends up in log
lines) or makes a new id, returns it in the response's ``X-Request-ID``, logs one
access line (method, path without the query, status, duration) and counts the request
for Prometheus by its route template. Health probes are not logged: a load balancer
asks every few seconds and would drown everything else.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from starlette.routing import Mount

from app import metrics

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from a proxy or load balancer are kept when they look like ids: UUIDs, hex, or
# the likes of AWS's "Root=1-5759e988-bd862e3fe1be46a994272793". Anything else (too long,
# spaces, quotes, control characters that could forge a log line) is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")
# Not logged as access lines (still counted in metrics).
QUIET_PATHS = frozenset({"/healthz", "/readyz"})

request_id_var: ContextVar[str] = ContextVar("redline_request_id", default="-")
access_log = logging.getLogger("redline.access")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(request_id)s %(message)s"
_CONFIGURED_LOGGERS = ("redline", "uvicorn")


def accepted_request_id(header: str | None) -> str:
    """The request id to use: the client's or proxy's when sane, else a new random one."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being handled ('-' outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class _RedlineHandler(logging.StreamHandler):
    """Our one handler, told apart from any other so that configuring twice replaces it."""


def configure_logging(log_format: str = "text", stream: Any = None) -> None:
    """Send Redline's and uvicorn's logs at INFO to stderr as text or JSON lines.

    Safe to call again (each worker calls it, and tests build many apps): the handler
    is replaced, never added twice.
    """
    handler = _RedlineHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                _JSON_FIELDS,
                rename_fields={
                    "asctime": "time",
                    "levelname": "level",
                    "name": "logger",
                    "process": "pid",
                },
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    for name in _CONFIGURED_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _RedlineHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        if name == "uvicorn":
            # Served by plain `uvicorn app.asgi:app`, uvicorn's default config has put its
            # own handler here: drop it, or every line would be printed twice.
            for other in [h for h in logger.handlers if h is not handler]:
                logger.removeHandler(other)
            logger.propagate = False


def route_label(scope: dict[str, Any]) -> tuple[str, str | None]:
    """The route template a request matched (bounded cardinality) and the route's name."""
    route = scope.get("route")
    if route is None:
        return "unmatched", None
    path = getattr(route, "path", "") or "/"
    if isinstance(route, Mount):
        # Static files: one label for everything under the mount.
        return path.rstrip("/") + "/{path}", route.name
    return path, getattr(route, "name", None)


class RequestObservability:
    """Pure ASGI middleware: request id in and out, one access line, request metrics."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                header = value.decode("latin-1")
                break
        request_id = accepted_request_id(header)
        request_id_var.set(request_id)
        # For the error handlers, which run outside this middleware (Starlette's
        # ServerErrorMiddleware): they read it from request.state.
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode("ascii")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # Unhandled: Starlette's ServerErrorMiddleware answers 500 (and logs it).
            status = 500
            raise
        finally:
            self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: dict, status: int, seconds: float) -> None:
        method = scope["method"]
        route, route_name = route_label(scope)
        metrics.observe_request(method, route, route_name, status, seconds)
        path = scope.get("path", "")
        if path not in QUIET_PATHS:
            access_log.info(
                "%s %s %d %.1fms",
                method,
                path,
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
