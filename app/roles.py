"""Roles held by one identity, and ending a person's sessions on the server.

A role belongs to one identity, (issuer, subject), and to the verified address it
had when the role was granted: ``app.auth.role_of`` applies it only while the
identity still has that address, verified. Granting refuses identities whose
address is not verified; revoking finds an identity by the address it has now or
by the one it was granted the role for, so a changed address cannot keep a role.
Both end the identity's sessions, so that no cookie issued under the old role
still works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import or_
from sqlmodel import Session, col, select

from app.errors import InvalidInput
from app.models import ROLES, User

log = logging.getLogger("redline.roles")


def _log_role(user: User) -> None:
    # The user id only: logs are kept longer and read more widely than the database.
    log.info(
        "role of user %s set to %s",
        user.id,
        user.role,
        extra={"event": "role", "user_id": user.id},
    )


@dataclass(frozen=True)
class IdentityLine:
    """One identity as the command line reports it."""

    issuer: str
    subject: str
    address: str
    verified: bool

    def __str__(self) -> str:
        state = "verified" if self.verified else "NOT verified"
        return f"issuer={self.issuer} subject={self.subject} address={self.address} ({state})"


@dataclass
class RoleChange:
    """What a grant or revoke did: identities changed, and those refused (with why)."""

    changed: list[IdentityLine] = field(default_factory=list)
    refused: list[tuple[IdentityLine, str]] = field(default_factory=list)


def _line(user: User) -> IdentityLine:
    return IdentityLine(user.issuer, user.subject, user.email, user.email_verified)


def end_sessions(session: Session, user_id: int) -> None:
    """End every session of this user on the server: each copy of their cookie is refused."""
    user = session.get(User, user_id)
    if user is not None:
        user.session_version += 1
        session.add(user)
        session.commit()


def _matching(
    session: Session, address: str, issuer: str | None, subject: str | None, *, revoking: bool
) -> list[User]:
    address = address.strip().lower()
    where = User.email == address
    if revoking:
        # The address the role was granted to, even if the identity's address has changed.
        where = or_(where, User.role_address == address)
    query = select(User).where(where)
    if issuer:
        query = query.where(User.issuer == issuer)
    if subject:
        query = query.where(User.subject == subject)
    return list(session.exec(query.order_by(col(User.id))).all())


def grant_role(
    session: Session,
    address: str,
    role: str,
    *,
    issuer: str | None = None,
    subject: str | None = None,
) -> RoleChange:
    """Give ``role`` to the one identity with this verified address (narrowed by issuer/subject).

    Identities whose address is not verified are refused. When several verified
    identities share the address (one person signed in through two providers, or two
    providers vouching for one address), nothing is granted until ``issuer`` (and if
    need be ``subject``) says which.
    """
    if role not in ROLES or role == "participant":
        raise InvalidInput({"role": "Role must be organiser or admin"})
    change = RoleChange()
    users = _matching(session, address, issuer, subject, revoking=False)
    verified = [u for u in users if u.email_verified]
    for user in users:
        if not user.email_verified:
            change.refused.append((_line(user), "its provider does not vouch for the address"))
    if len(verified) > 1:
        for user in verified:
            change.refused.append(
                (_line(user), "several identities have this address: name one with --issuer")
            )
        return change
    for user in verified:
        if (user.role, user.role_address) != (role, user.email):
            if user.role == "admin":
                # Less than before (admin to organiser): sessions under the old role end.
                user.session_version += 1
            user.role = role
            user.role_address = user.email
            session.add(user)
        change.changed.append(_line(user))
    session.commit()
    for user in verified:
        _log_role(user)
    return change


def revoke_role(
    session: Session, address: str, *, issuer: str | None = None, subject: str | None = None
) -> RoleChange:
    """Take granted roles from every identity with this address now or when granted.

    Their sessions end, so a cookie copied while they held the role is refused.
    """
    change = RoleChange()
    revoked: list[User] = []
    for user in _matching(session, address, issuer, subject, revoking=True):
        if user.role == "participant" and user.role_address is None:
            continue
        user.role = "participant"
        user.role_address = None
        user.session_version += 1
        session.add(user)
        change.changed.append(_line(user))
        revoked.append(user)
    session.commit()
    for user in revoked:
        _log_role(user)
    return change
