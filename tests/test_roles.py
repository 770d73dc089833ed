"""Roles belong to one identity (issuer, subject) with a verified address, on both engines.

Through the services the sign-in uses (``record_sign_in``), the `redline grant` and
`redline revoke` commands, and ``app.auth.role_of`` that every page asks.
"""

from __future__ import annotations

from click.testing import CliRunner
from sqlmodel import select

from app.auth import role_of
from app.cli import main
from app.db import Database
from app.models import User
from app.services import record_sign_in
from tests.conftest import settings_for

OLIVE = "olive@cabinetoffice.gov.uk"
WORK = "https://work.idp.test"
OTHER = "https://other.idp.test"


def sign_in(database: Database, issuer: str, subject: str, email: str, verified: bool) -> User:
    return database.write_call(
        record_sign_in, issuer=issuer, subject=subject, email=email, email_verified=verified
    )


def user(database: Database, issuer: str, subject: str) -> User:
    return database.call(
        lambda s: s.exec(select(User).where(User.issuer == issuer, User.subject == subject)).one()
    )


def redline(database: Database, *args: str):
    return CliRunner().invoke(main, list(args), env={"REDLINE_DATABASE_URL": database.url})


def test_grant_names_the_identity_and_refuses_an_unverified_one(database):
    sign_in(database, WORK, "olive", OLIVE, True)
    sign_in(database, OTHER, "impostor", OLIVE, False)
    result = redline(database, "grant", OLIVE, "admin")
    assert result.exit_code == 0, result.output
    assert f"Now an admin: issuer={WORK} subject=olive address={OLIVE} (verified)" in result.output
    assert f"Refused: issuer={OTHER} subject=impostor address={OLIVE} (NOT verified)" in (
        result.output
    )
    settings = settings_for(database.url)
    assert role_of(user(database, WORK, "olive"), settings) == "admin"
    # The case: an unverified account under the organiser's address gets nothing.
    assert role_of(user(database, OTHER, "impostor"), settings) == "participant"


def test_grant_to_only_unverified_identities_fails_and_says_why(database):
    sign_in(database, OTHER, "impostor", OLIVE, False)
    result = redline(database, "grant", OLIVE, "organiser")
    assert result.exit_code == 1
    assert "does not vouch for the address" in result.output
    assert "nothing granted" in result.output
    assert user(database, OTHER, "impostor").role == "participant"


def test_two_verified_identities_with_one_address_need_the_issuer_named(database):
    sign_in(database, WORK, "olive", OLIVE, True)
    sign_in(database, OTHER, "olive-2", OLIVE, True)
    ambiguous = redline(database, "grant", OLIVE, "organiser")
    assert ambiguous.exit_code == 1 and "--issuer" in ambiguous.output
    assert user(database, WORK, "olive").role == "participant"
    named = redline(database, "grant", OLIVE, "organiser", "--issuer", WORK)
    assert named.exit_code == 0, named.output
    settings = settings_for(database.url)
    assert role_of(user(database, WORK, "olive"), settings) == "organiser"
    assert role_of(user(database, OTHER, "olive-2"), settings) == "participant"


def test_a_granted_role_stops_when_the_address_changes_or_stops_being_verified(database):
    sign_in(database, WORK, "olive", OLIVE, True)
    assert redline(database, "grant", OLIVE, "admin").exit_code == 0
    settings = settings_for(database.url)
    # The provider stops vouching for the address: no role.
    sign_in(database, WORK, "olive", OLIVE, False)
    assert role_of(user(database, WORK, "olive"), settings) == "participant"
    # Verified again, same address: the grant applies again.
    sign_in(database, WORK, "olive", OLIVE, True)
    assert role_of(user(database, WORK, "olive"), settings) == "admin"
    # The provider changes the address to a personal one, verified or not: no role.
    sign_in(database, WORK, "olive", "olive.personal@example.com", True)
    assert role_of(user(database, WORK, "olive"), settings) == "participant"


def test_revoke_works_by_the_granted_address_after_the_address_changed(database):
    sign_in(database, WORK, "olive", OLIVE, True)
    assert redline(database, "grant", OLIVE, "admin").exit_code == 0
    before = user(database, WORK, "olive").session_version
    sign_in(database, WORK, "olive", "olive.personal@example.com", False)
    result = redline(database, "revoke", OLIVE)
    assert result.exit_code == 0, result.output
    assert f"issuer={WORK} subject=olive address=olive.personal@example.com" in result.output
    revoked = user(database, WORK, "olive")
    assert (revoked.role, revoked.role_address) == ("participant", None)
    assert revoked.session_version == before + 1
    # Signing back in with the old address verified does not bring the role back.
    sign_in(database, WORK, "olive", OLIVE, True)
    assert role_of(user(database, WORK, "olive"), settings_for(database.url)) == "participant"
    nothing = redline(database, "revoke", OLIVE)
    assert nothing.exit_code == 1 and "holds a granted role" in nothing.output


def test_a_configured_role_needs_a_verified_address_still_on_the_list(database):
    listed = settings_for(database.url, organisers=frozenset({OLIVE}))
    sign_in(database, WORK, "olive", OLIVE, True)
    assert role_of(user(database, WORK, "olive"), listed) == "organiser"
    # Another provider's unverified account with the listed address: not an organiser.
    sign_in(database, OTHER, "impostor", OLIVE, False)
    assert role_of(user(database, OTHER, "impostor"), listed) == "participant"
    # Removed from the list: no longer an organiser.
    assert role_of(user(database, WORK, "olive"), settings_for(database.url)) == "participant"
    # Still listed, but the provider stopped vouching for the address.
    sign_in(database, WORK, "olive", OLIVE, False)
    assert role_of(user(database, WORK, "olive"), listed) == "participant"


def test_migration_0006_keeps_granted_roles_only_for_verified_identities(database_url):
    """Roles granted by address before 0006 stay with verified identities, held by that address."""
    from sqlalchemy import text

    from app.db import make_engine, migrate
    from tests.test_migrations import downgrade

    downgrade(database_url, "0005")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for subject, verified, role in (("a", True, "admin"), ("b", False, "organiser")):
            connection.execute(
                text(
                    "INSERT INTO user_account (issuer, subject, email, email_verified, pseudonym,"
                    " show_organisation, role, created_at, last_sign_in_at) VALUES (:issuer,"
                    " :subject, :email, :verified, :pseudonym, false, :role, CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                ),
                {
                    "issuer": WORK,
                    "subject": subject,
                    "email": OLIVE,
                    "verified": verified,
                    "pseudonym": f"P {subject}",
                    "role": role,
                },
            )
    engine.dispose()
    migrate(database_url)
    database = Database(database_url)
    try:
        verified, unverified = user(database, WORK, "a"), user(database, WORK, "b")
        assert (verified.role, verified.role_address, verified.session_version) == (
            "admin",
            OLIVE,
            0,
        )
        assert (unverified.role, unverified.role_address) == ("participant", None)
        assert role_of(verified, settings_for(database_url)) == "admin"
    finally:
        database.dispose()


def test_revoking_a_configured_address_says_the_configuration_keeps_the_role(database):
    sign_in(database, WORK, "olive", OLIVE, True)
    result = CliRunner().invoke(
        main,
        ["revoke", OLIVE],
        env={"REDLINE_DATABASE_URL": database.url, "REDLINE_ORGANISERS": OLIVE},
    )
    assert result.exit_code == 1
    assert "still named in REDLINE_ORGANISERS or REDLINE_ADMINS" in result.output
