"""The OpenID Connect ``state`` values Redline issued, each usable once (kept in the database).

Authlib keeps a sign-in's state in the session cookie and drops it at the callback,
but a copy of the cookie taken before the callback still holds it: replayed with a
fresh authorisation code for the same state, it would sign in a second time. The
server's record closes that: a state is stored when the sign-in starts and marked
used by the first callback that presents it, in one conditional UPDATE, so two
callbacks racing each other cannot both win. States older than the lifetime are
refused and cleared away when new ones are issued.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col

from app.models import SignInState, utcnow

# Time a person has at their provider between leaving Redline and coming back.
STATE_LIFETIME = timedelta(minutes=15)
MAX_STATE_CHARS = 128


def issue_state(session: Session, state: str, provider: str) -> None:
    """Record a state just sent to ``provider``; forget states long past their lifetime."""
    now = utcnow()
    session.execute(
        delete(SignInState).where(col(SignInState.created_at) < now - timedelta(days=1))
    )
    session.add(SignInState(state=state, provider=provider, created_at=now))
    session.commit()


def use_state(session: Session, state: str, provider: str) -> bool:
    """Mark ``state`` used; False if Redline never issued it, it expired or was used before."""
    if not state or len(state) > MAX_STATE_CHARS:
        return False
    now = utcnow()
    result = session.execute(
        update(SignInState)
        .where(
            col(SignInState.state) == state,
            col(SignInState.provider) == provider,
            col(SignInState.used_at).is_(None),
            col(SignInState.created_at) >= now - STATE_LIFETIME,
        )
        .values(used_at=now)
    )
    session.commit()
    return result.rowcount == 1
