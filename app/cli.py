"""The `redline` command: migrate, seed, serve, import. A thin layer over app.services."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

import click

from app import ballots, documents, metrics
from app.db import Database, migrate
from app.errors import RedlineError
from app.observability import configure_logging
from app.oidc import check_issuers_at_start
from app.ranking import DEFAULT_RULES, Rules
from app.seeding import seed
from app.services import import_document
from app.settings import Settings, SettingsError
from app.startup import check_schema, check_settings
from app.summary import summary_lines


def _settings(ctx: click.Context, needs_secret: bool = False) -> Settings:
    """Settings for commands that only touch the database do not need a session secret."""
    import os

    env = dict(os.environ)
    if not needs_secret and not env.get("REDLINE_SECRET_KEY"):
        env.setdefault("REDLINE_DEMO", "1")
    try:
        return Settings.from_env(env)
    except SettingsError as error:
        ctx.fail(str(error))
        raise  # unreachable: ctx.fail exits


@click.group()
def main() -> None:
    """Redline: crowd-sourced consultation on draft guidance.

    Configuration comes from REDLINE_* environment variables (see README.md).
    """


@main.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Create or upgrade the database schema (Alembic migrations).

    On PostgreSQL it holds an advisory lock, so hosts that start together migrate once.
    """
    settings = _settings(ctx)
    configure_logging(settings.log_format)
    applied = migrate(settings.database_url)
    if applied:
        click.echo(f"Applied migrations {', '.join(applied)}.")
    click.echo(f"Database is up to date ({_redact(settings.database_url)}).")


@main.command("seed")
@click.option("--demo", is_flag=True, help="Also load demo personas, amendments and votes.")
@click.pass_context
def seed_command(ctx: click.Context, demo: bool) -> None:
    """Load seed/: the social media guidance and known organisations. Safe to run twice.

    Demo data is refused on any database but the embedded SQLite one.
    """
    settings = _settings(ctx)
    if demo and not settings.is_embedded_database:
        ctx.fail("--demo only works on the embedded SQLite database, never on PostgreSQL")
    database = Database(settings.database_url)
    report = database.call(seed, settings.seed_dir, demo)
    database.dispose()
    click.echo(
        f"Seeded: {report.organisations} new organisations, {report.consultations} new "
        f"consultations"
        + (f", {report.amendments} demo amendments, {report.votes} votes." if demo else ".")
    )


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option(
    "--graceful-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(1),
    help="On SIGTERM, seconds to let requests in flight finish before closing them.",
)
@click.pass_context
def serve_command(
    ctx: click.Context, host: str, port: int, workers: int, graceful_timeout: int
) -> None:
    """Serve the web app with uvicorn.

    Refuses to start (naming the variable) with settings fit only for a demo, a
    database that cannot be reached or whose schema is older than the code, or an
    identity provider whose discovery document names another issuer.
    """
    import uvicorn

    settings = _settings(ctx, needs_secret=True)
    configure_logging(settings.log_format)
    database = Database(settings.database_url)
    try:
        check_settings(settings)
        check_schema(database)
        check_issuers_at_start(settings)
    except SettingsError as error:
        ctx.fail(str(error))
    finally:
        database.dispose()
    made_metrics_dir = None
    if workers > 1 and not os.environ.get(metrics.MULTIPROC_DIR_VARIABLE):
        # Every worker counts into files here, so that a scrape of any one sums them all.
        # Set before the workers start (and import prometheus_client): see app.metrics.
        made_metrics_dir = tempfile.mkdtemp(prefix="redline-metrics-")
        os.environ[metrics.MULTIPROC_DIR_VARIABLE] = made_metrics_dir
    if settings.demo_sign_in_allowed:
        click.echo(f"Redline demo: open http://{host}:{port} and sign in as a demo persona.")
    try:
        uvicorn.run(
            "app.asgi:app",
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            log_level="info",
            # Logging is ours (app.observability): one access line per request, with its id.
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=graceful_timeout,
        )
    finally:
        if made_metrics_dir:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)


@main.command("import")
@click.argument("document", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slug", help="Address of the consultation (default: from the title).")
@click.option(
    "--eligible",
    default="",
    help="Comma-separated e-mail domains that may take part, e.g. '*.gov.uk,*.nhs.uk'.",
)
@click.pass_context
def import_command(ctx: click.Context, document: Path, slug: str | None, eligible: str) -> None:
    """Create a draft consultation from a Markdown DOCUMENT ('# Title', '## 1. Clause' ...)."""
    settings = _settings(ctx)
    size = document.stat().st_size
    if size > documents.MAX_DOCUMENT_BYTES:
        # Refuse before reading a huge file into memory.
        _fail(
            f"{document}: the file is {size:,} bytes; the limit is {documents.MAX_DOCUMENT_BYTES:,}"
        )
    try:
        parsed = documents.parse(document.read_bytes())
    except documents.DocumentError as error:
        where = f"{document}:{error.line}" if error.line else str(document)
        _fail(f"{where}: {error.message}")
    database = Database(settings.database_url)
    try:
        consultation = database.call(import_document, parsed, slug=slug, eligible_domains=eligible)
    except RedlineError as error:
        _fail(error.message)
    finally:
        database.dispose()
    click.echo(
        f"Imported {consultation.title!r} as draft consultation {consultation.slug!r} "
        f"with {len(parsed.clauses)} clauses."
    )


_IDENTITY_OPTIONS = (
    click.option("--issuer", help="Only the identity from this issuer (as stored at sign-in)."),
    click.option("--subject", help="Only the identity with this subject at its issuer."),
)


def _identity_options(command):
    for option in reversed(_IDENTITY_OPTIONS):
        command = option(command)
    return command


def _report_change(change, verb: str) -> None:
    for line in change.changed:
        click.echo(f"{verb}: {line}")
    for line, why in change.refused:
        click.echo(f"Refused: {line}: {why}", err=True)


@main.command("grant")
@click.argument("email")
@click.argument("role", type=click.Choice(["organiser", "admin"]))
@_identity_options
@click.pass_context
def grant_command(
    ctx: click.Context, email: str, role: str, issuer: str | None, subject: str | None
) -> None:
    """Make the identity with the verified address EMAIL an organiser or administrator.

    The role belongs to one identity (issuer, subject) and holds only while that
    identity still has EMAIL, verified by its provider. Identities whose address is not
    verified are refused. The person must have signed in once. People named in
    REDLINE_ORGANISERS or REDLINE_ADMINS have their role from configuration.
    """
    from app.roles import grant_role

    settings = _settings(ctx)
    change = _with_database(settings, grant_role, email, role, issuer=issuer, subject=subject)
    _report_change(change, f"Now an {role}")
    if not change.changed:
        if change.refused:
            _fail(f"nothing granted: no identity with a verified address {email} can have it")
        _fail(f"no identity has the address {email}; they must sign in once first")


@main.command("revoke")
@click.argument("email")
@_identity_options
@click.pass_context
def revoke_command(ctx: click.Context, email: str, issuer: str | None, subject: str | None) -> None:
    """Take organiser and administrator rights from identities with EMAIL, now or when granted.

    Their sessions end at once: a copied cookie no longer works.
    """
    from app.roles import revoke_role

    settings = _settings(ctx)
    change = _with_database(settings, revoke_role, email, issuer=issuer, subject=subject)
    _report_change(change, "Now a participant")
    if settings.role_for_email(email):
        click.echo(
            f"Note: {email} is still named in REDLINE_ORGANISERS or REDLINE_ADMINS, "
            "which keeps the role of any identity with that verified address until it is "
            "removed there.",
            err=True,
        )
    if not change.changed:
        _fail(f"no identity with the address {email} (now or when granted) holds a granted role")


@main.command("export")
@click.argument("slug")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "ods", "json", "odt", "docx", "ballots"]),
    default="csv",
    show_default=True,
    help="The report in a format (odt and docx: the consolidated text with tracked "
    "changes), or the ballot file (one row per vote).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: SLUG-report.FORMAT or SLUG-ballots.csv).",
)
@click.pass_context
def export_command(ctx: click.Context, slug: str, fmt: str, output: Path | None) -> None:
    """Export the ranked amendment report, or the ballots that `redline tally` reads."""
    from app.briefing import opened_at
    from app.exports import export_stream
    from app.queries import consultation_by_slug
    from app.reporting import build_report, wordings
    from app.tallies import ballot_rows

    settings = _settings(ctx)
    output = output or Path(f"{slug}-{'ballots.csv' if fmt == 'ballots' else 'report.' + fmt}")
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            try:
                consultation = consultation_by_slug(session, slug, include_drafts=True)
            except RedlineError as error:
                _fail(error.message)
            if fmt == "ballots":
                if consultation.status not in ("closed", "published"):
                    _fail(
                        "the ballot file is frozen when the consultation closes; "
                        f"{slug!r} is {consultation.status}"
                    )
                with output.open("wb") as handle:
                    for line in ballots.csv_lines(ballot_rows(session, consultation)):
                        handle.write(line)
            else:
                click.echo("Ranking amendments...", err=True)
                report = build_report(session, consultation)
                with (
                    click.progressbar(
                        length=len(report.rows), label=f"Writing {fmt}", file=sys.stderr
                    ) as bar,
                    output.open("wb") as handle,
                ):
                    opened = opened_at(session, consultation)
                    chunks = export_stream(
                        report,
                        fmt,
                        consultation.ballots_sha256,
                        opened,
                        wordings=partial(wordings, session),
                    )
                    for chunk in chunks:
                        handle.write(chunk)
                    bar.update(len(report.rows))
    finally:
        database.dispose()
    click.echo(f"Wrote {output}")


@main.command("tally")
@click.argument("ballot_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--min-votes",
    default=DEFAULT_RULES.min_votes,
    show_default=True,
    type=click.IntRange(1),
    help="Votes an amendment needs before it can carry (the report states its value).",
)
@click.option(
    "--min-organisations",
    default=DEFAULT_RULES.min_organisations,
    show_default=True,
    type=click.IntRange(1),
    help="Organisations an amendment needs votes from before it can carry.",
)
def tally_command(ballot_file: Path, min_votes: int, min_organisations: int) -> None:
    """Recompute everything the report computes from votes, from a BALLOT_FILE alone.

    Prints the SHA-256 of the file (compare it with the one the report states), the
    rules, every amendment in ranked order (counts, support share with its 95 %
    interval, score, result, flags, lead and robustness) and each clause's outcome.
    """
    digest = hashlib.sha256()

    def lines():
        with ballot_file.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                digest.update(raw)
                try:
                    yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise ballots.BallotFileError(f"line {number}: not UTF-8 text") from None

    rules = Rules(min_votes=min_votes, min_organisations=min_organisations)
    try:
        ranked, outcome = ballots.tally_file(lines(), rules)
    except ballots.BallotFileError as error:
        _fail(f"{ballot_file}: {error}")
    click.echo(f"SHA-256 {digest.hexdigest()}")
    for line in summary_lines(ranked, outcome, rules):
        click.echo(line)


@main.command("recount")
@click.argument("slug")
@click.pass_context
def recount_command(ctx: click.Context, slug: str) -> None:
    """Check the counts kept with every vote against the votes, and rebuild them.

    Prints how many (amendment, organisation) counts differed from a recount; after
    this they are equal. Needed only after votes were loaded around Redline.
    """
    from app.queries import consultation_by_slug
    from app.tallies import kept_counts, rebuild_tallies, recount

    settings = _settings(ctx)
    database = Database(settings.database_url)
    try:
        with database.write_session() as session:
            try:
                consultation = consultation_by_slug(session, slug, include_drafts=True)
            except RedlineError as error:
                _fail(error.message)
            counted = {k: v for k, v in recount(session, consultation.id).items() if v != (0, 0)}
            kept = kept_counts(session, consultation.id)
            differing = {k for k in counted.keys() | kept.keys() if counted.get(k) != kept.get(k)}
            rebuild_tallies(session, consultation.id)
            session.commit()
    finally:
        database.dispose()
    click.echo(
        f"{len(counted)} counts recounted; {len(differing)} differed from the kept counts "
        "and are now corrected."
        if differing
        else f"{len(counted)} counts recounted; all matched the kept counts."
    )


def _with_database(settings: Settings, fn, *args, **kwargs):
    database = Database(settings.database_url)
    try:
        return database.call(fn, *args, **kwargs)
    finally:
        database.dispose()


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _redact(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
