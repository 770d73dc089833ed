"""The application factory: settings in, Starlette app out."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import exc as sa_exc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app import metrics
from app.db import Database, is_busy
from app.errors import Busy, RedlineError
from app.observability import RequestObservability, configure_logging
from app.oidc import make_registry
from app.path_params import IdConvertor  # noqa: F401  (registers {name:id} for routes)
from app.rate_limiting import RateLimiter
from app.security_headers import NONCE_KEY, SecurityHeaders, headers_for
from app.settings import Settings, SettingsError
from app.startup import check_schema, check_settings
from app.views import (
    amendments,
    consultations,
    details,
    operations,
    organise,
    report,
    results,
    session,
    votes,
)
from app.web import is_htmx, make_templates, render

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
SESSION_COOKIE = "redline_session"
log = logging.getLogger("redline")


def asset_mounts() -> list[Mount]:
    """GOV.UK Frontend, htmx and our own stylesheet, served from this machine (never a CDN)."""
    govuk = NODE_MODULES / "govuk-frontend" / "dist" / "govuk"
    htmx = NODE_MODULES / "htmx.org" / "dist"
    for needed in (govuk, htmx):
        if not needed.is_dir():
            raise SettingsError(f"front-end assets are missing ({needed}): run `make install`")
    return [
        Mount("/assets", StaticFiles(directory=govuk / "assets"), name="assets"),
        Mount("/static/govuk", StaticFiles(directory=govuk), name="govuk"),
        Mount("/static/htmx", StaticFiles(directory=htmx), name="htmx"),
        Mount("/static/app", StaticFiles(directory=ROOT / "static"), name="static"),
    ]


def routes() -> list[Route | Mount]:
    """Every page and form handler; POST handlers are CSRF-protected (see app.auth)."""
    return [
        Route("/", consultations.home, name="home"),
        Route("/healthz", operations.healthz, name="healthz"),
        Route("/readyz", operations.readyz, name="readyz"),
        Route("/metrics", operations.metrics_page, name="metrics"),
        Route("/sign-in", session.sign_in, name="sign_in"),
        Route("/sign-in/demo", session.demo_sign_in, methods=["POST"], name="demo_sign_in"),
        Route("/auth/{provider}/login", session.provider_sign_in, name="provider_sign_in"),
        Route("/auth/{provider}/callback", session.provider_callback, name="provider_callback"),
        Route("/organise", organise.index, name="organise"),
        Route("/organise/new", organise.new_form, name="organise_new"),
        Route("/organise/new", organise.create, methods=["POST"], name="organise_create"),
        Route("/organise/{slug}", organise.dashboard, name="organise_consultation"),
        Route(
            "/organise/{slug}/details", organise.update_details, methods=["POST"], name="details"
        ),
        Route("/organise/{slug}/status", organise.change_status, methods=["POST"], name="status"),
        Route("/organise/{slug}/close", organise.confirm_step, name="confirm_close"),
        Route("/organise/{slug}/publish", organise.confirm_step, name="confirm_publish"),
        Route("/organise/{slug}/clauses/{number}/revise", organise.revise_form, name="revise_form"),
        Route(
            "/organise/{slug}/clauses/{number}/revise",
            organise.revise,
            methods=["POST"],
            name="revise",
        ),
        Route("/organise/{slug}/moderation", organise.moderation, name="moderation"),
        Route("/organise/{slug}/decisions", organise.decisions, name="decisions"),
        Route(
            "/organise/{slug}/clauses/{number}/final-wording",
            organise.final_wording_form,
            name="final_wording_form",
        ),
        Route(
            "/organise/{slug}/clauses/{number}/final-wording",
            organise.final_wording,
            methods=["POST"],
            name="final_wording",
        ),
        Route("/organise/{slug}/audit", organise.audit_log, name="audit"),
        Route("/organise/{slug}/audit.csv", organise.audit_csv, name="audit_csv"),
        Route(
            "/organise/amendments/{amendment_id:id}/moderate",
            organise.moderate,
            methods=["POST"],
            name="moderate",
        ),
        Route(
            "/organise/amendments/{amendment_id:id}/decide",
            organise.decide,
            methods=["POST"],
            name="decide",
        ),
        Route("/consultations/{slug}/report", report.report, name="report"),
        Route("/consultations/{slug}/report.{format}", report.download, name="report_download"),
        Route("/consultations/{slug}/ballots.csv", report.ballot_file, name="ballots"),
        Route("/amendments/{amendment_id:id}/flag", amendments.flag, methods=["POST"], name="flag"),
        Route("/sign-out", session.sign_out, methods=["POST"], name="sign_out"),
        Route("/your-details", details.your_details, name="your_details"),
        Route("/your-details", details.save, methods=["POST"], name="save_details"),
        Route("/consultations/{slug}", consultations.consultation, name="consultation"),
        Route("/consultations/{slug}/results", results.results, name="results"),
        Route("/how-ranking-works", results.how_ranking_works, name="how_ranking_works"),
        Route("/consultations/{slug}/clauses/{number}", consultations.clause, name="clause"),
        Route(
            "/consultations/{slug}/clauses/{number}/amend",
            amendments.propose_form,
            name="propose_form",
        ),
        Route(
            "/consultations/{slug}/clauses/{number}/amend",
            amendments.propose,
            methods=["POST"],
            name="propose",
        ),
        Route(
            "/amendments/{amendment_id:id}/withdraw",
            amendments.withdraw,
            methods=["POST"],
            name="withdraw",
        ),
        Route("/amendments/{amendment_id:id}/vote", votes.vote, methods=["POST"], name="vote"),
        Route("/amendments/{amendment_id:id}/edit", amendments.edit_form, name="edit_form"),
        Route("/amendments/{amendment_id:id}/edit", amendments.edit, methods=["POST"], name="edit"),
        *asset_mounts(),
    ]


async def redline_error(request: Request, exc: Exception) -> Response:
    """A refusal from a service, as a page (or, for htmx, a fragment) with its status."""
    assert isinstance(exc, RedlineError)
    template = "errors/_error.html" if is_htmx(request) else "errors/error.html"
    response = await render(
        request,
        template,
        {"title": exc.title, "message": exc.message, "status": exc.status},
        status_code=exc.status,
    )
    if isinstance(exc, Busy):
        # Operators need to know how often this happens: it should be rare.
        log.warning("503 busy on %s %s: %s", request.method, request.url.path, exc.__cause__)
    if getattr(exc, "retry_after", None):
        # Scripts, proxies and crawlers that retry wait this long first (503 busy, 429).
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def database_error(request: Request, exc: Exception) -> Response:
    """Lock contention that reached the web layer outside ``Database``'s wrappers: a 503.

    Anything else from the database is unexpected: re-raised, so that ``server_error``
    logs it and answers 500.
    """
    if is_busy(exc):
        busy = Busy()
        busy.__cause__ = exc
        return await redline_error(request, busy)
    raise exc


async def http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and friends from routing, as GOV.UK-style pages."""
    assert isinstance(exc, HTTPException)
    titles = {404: "Page not found", 405: "That cannot be done here"}
    messages = {
        404: "If you typed the web address, check it is correct.",
        405: "This address does not accept that kind of request.",
    }
    return await render(
        request,
        "errors/error.html",
        {
            "title": titles.get(exc.status_code, "There is a problem"),
            "message": messages.get(exc.status_code, exc.detail),
            "status": exc.status_code,
        },
        status_code=exc.status_code,
    )


async def server_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged in full, shown as a plain apology without a traceback.

    The page shows the request id, so that a person can quote it and an operator find
    the traceback in the logs.
    """
    request_id = getattr(request.state, "request_id", None)
    log.exception(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"request_id": request_id or "-"},
    )
    response = await render(
        request,
        "errors/error.html",
        {
            "title": "Sorry, there is a problem with the service",
            "message": "Try again later. Nothing you sent has been half-saved.",
            "status": 500,
            "request_id": request_id,
        },
        status_code=500,
    )
    if request_id:
        # This answer is sent outside RequestObservability, which adds it to all others.
        response.headers["X-Request-ID"] = request_id
    # Built outside every middleware (ServerErrorMiddleware), so the headers are added here.
    nonce = request.scope.get(NONCE_KEY, "")
    response.headers.update(headers_for(nonce, request.app.state.settings.secure_cookies))
    return response


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the Redline app from settings (read from the environment when not given)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format)
    check_settings(settings)
    database = Database(settings.database_url)
    try:
        check_schema(database)
    except SettingsError:
        database.dispose()
        raise
    pools = {"read": database.engine}
    if database.write_engine is not database.engine:
        pools["write"] = database.write_engine
    for name, engine in pools.items():
        metrics.watch_pool(engine, name)

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        # On PostgreSQL, requests' reads and writes run on this event loop from now on.
        on_loop = await database.open_on_loop()
        if on_loop is not None:
            metrics.watch_pool(on_loop.sync_engine, "loop")
        yield
        # uvicorn has let every in-flight request finish (or timed out) before this.
        if on_loop is not None:
            metrics.unwatch_pool(on_loop.sync_engine, "loop")
            await database.close_on_loop()
        for name, engine in pools.items():
            metrics.unwatch_pool(engine, name)
        database.dispose()
        metrics.process_exiting()
        log.info("shut down: database connections closed")

    app = Starlette(
        routes=routes(),
        middleware=[
            # Outermost: the request id must be set before anything else logs.
            Middleware(RequestObservability),
            Middleware(SecurityHeaders, hsts=settings.secure_cookies),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie=SESSION_COOKIE,
                max_age=12 * 60 * 60,
                same_site="lax",
                https_only=settings.secure_cookies,
            ),
        ],
        exception_handlers={
            RedlineError: redline_error,
            sa_exc.DBAPIError: database_error,
            sa_exc.TimeoutError: database_error,
            HTTPException: http_error,
            Exception: server_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.templates = make_templates()
    app.state.oauth = make_registry(settings)
    app.state.rate_limiter = RateLimiter(settings, database)
    return app
