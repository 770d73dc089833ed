"""For operators and their machines: liveness, readiness and Prometheus metrics.

``/healthz`` answers without touching the database (is the process alive?);
``/readyz`` says whether this process can serve: the database answers and its schema
is the one this code needs. A load balancer sends traffic only to ready processes; an
orchestrator restarts processes that are not alive. Neither is access-logged (see
app.observability); neither is rate-limited.
"""

from __future__ import annotations

import hmac

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import metrics
from app.db import schema_behind
from app.errors import Busy

_NO_STORE = {"Cache-Control": "no-store"}


async def healthz(_request: Request) -> Response:
    """The process is alive and answering (no database call: a database outage is not ours)."""
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


async def readyz(request: Request) -> Response:
    """200 when the database answers and its schema is current; 503 with the reason if not."""
    database = request.app.state.database
    try:
        # First by the road requests take (on PostgreSQL, the event loop's own pool).
        await database.run(_answers)
        behind = await run_in_threadpool(schema_behind, database.engine)
    except (sa_exc.SQLAlchemyError, OSError, Busy) as error:
        reason = f"database unreachable: {type(getattr(error, 'orig', None) or error).__name__}"
        return JSONResponse(
            {"status": "unavailable", "reason": reason}, status_code=503, headers=_NO_STORE
        )
    if behind:
        return JSONResponse(
            {"status": "unavailable", "reason": f"{behind}: run `redline migrate`"},
            status_code=503,
            headers=_NO_STORE,
        )
    return JSONResponse({"status": "ready"}, headers=_NO_STORE)


def _answers(session: Session) -> int:
    return session.execute(text("SELECT 1")).scalar_one()


async def metrics_page(request: Request) -> Response:
    """Prometheus metrics, for a scraper holding REDLINE_METRICS_TOKEN (else 404 or 401)."""
    token = request.app.state.settings.metrics_token
    if token is None:
        # Not configured: as if there were no such page.
        raise HTTPException(404)
    sent = request.headers.get("authorization", "")
    scheme, _, credentials = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        return Response(
            "A bearer token is needed to read the metrics.\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', **_NO_STORE},
        )
    body, content_type = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=content_type, headers=_NO_STORE)
