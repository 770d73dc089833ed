"""Loading seed/ (the guidance, known organisations, demo data) into the database, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session, select

from app import documents
from app.models import Amendment, Consultation, Organisation, OrganisationDomain, User, utcnow
from app.queries import clause_with_version
from app.services import (
    clause_ids_by_number,
    import_document,
    record_sign_in,
)
from app.tallies import change_vote

DEMO_ISSUER = "urn:redline:demo"


@dataclass(frozen=True)
class Persona:
    """A demo persona shown on the demo sign-in page."""

    key: str
    email: str
    display_name: str | None
    about: str
    show_organisation: bool = False
    # Demo data only: in demo mode the seed names the demo organiser, as configuration would.
    role: str = "participant"


@dataclass
class SeedReport:
    organisations: int = 0
    consultations: int = 0
    users: int = 0
    amendments: int = 0
    votes: int = 0


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def demo_personas(seed_dir: Path) -> list[Persona]:
    """The personas listed in seed/demo.yaml."""
    data = _load_yaml(seed_dir / "demo.yaml")
    return [
        Persona(
            key=p["key"],
            email=p["email"],
            display_name=p.get("display_name"),
            about=p.get("about", ""),
            show_organisation=bool(p.get("show_organisation", False)),
            role=p.get("role", "participant"),
        )
        for p in data["personas"]
    ]


def seed_organisations(session: Session, seed_dir: Path) -> int:
    """Add known organisations and their e-mail domains that are not in the database yet."""
    added = 0
    for name, domains in _load_yaml(seed_dir / "organisations.yaml").items():
        organisation = session.exec(select(Organisation).where(Organisation.name == name)).first()
        if organisation is None:
            organisation = Organisation(name=name)
            session.add(organisation)
            session.flush()
            added += 1
        for domain in domains:
            if session.get(OrganisationDomain, domain.lower()) is None:
                session.add(
                    OrganisationDomain(domain=domain.lower(), organisation_id=organisation.id)
                )
    session.commit()
    return added


def seed_consultations(session: Session, seed_dir: Path) -> int:
    """Create each consultation of seed/consultations.yaml that does not exist yet."""
    created = 0
    now = utcnow()
    for entry in _load_yaml(seed_dir / "consultations.yaml"):
        exists = session.exec(select(Consultation.id).where(Consultation.slug == entry["slug"]))
        if exists.first() is not None:
            continue
        parsed = documents.parse((seed_dir / entry["document"]).read_bytes())
        amendments_days = entry.get("amendments_close_in_days")
        voting_days = entry.get("voting_close_in_days")
        import_document(
            session,
            parsed,
            slug=entry["slug"],
            eligible_domains="\n".join(entry.get("eligible_domains", [])),
            status=entry.get("status", "draft"),
            amendments_close_at=now + timedelta(days=amendments_days) if amendments_days else None,
            voting_close_at=now + timedelta(days=voting_days) if voting_days else None,
        )
        created += 1
    return created


def demo_user(session: Session, persona: Persona) -> User:
    """Sign a persona in (creating them on first use) exactly as a real sign-in would."""
    user = record_sign_in(
        session,
        issuer=DEMO_ISSUER,
        subject=persona.key,
        email=persona.email,
        email_verified=True,
        name=persona.display_name,
    )
    # A persona's role is held by its (verified) demo address, as a granted role would be.
    role_address = user.email if persona.role != "participant" else None
    if (user.display_name, user.show_organisation, user.role, user.role_address) != (
        persona.display_name,
        persona.show_organisation,
        persona.role,
        role_address,
    ):
        user.display_name = persona.display_name
        user.show_organisation = persona.show_organisation
        user.role = persona.role
        user.role_address = role_address
        session.add(user)
        session.commit()
    return user


def seed_demo(session: Session, seed_dir: Path) -> SeedReport:
    """Personas, a crowd of voters, amendments and their votes; nothing is added twice."""
    report = SeedReport()
    data = _load_yaml(seed_dir / "demo.yaml")
    personas = {p.key: p for p in demo_personas(seed_dir)}
    users_by_domain: dict[str, list[User]] = {}
    users = {persona.key: demo_user(session, persona) for persona in personas.values()}
    for domain, count in data.get("crowd", {}).items():
        for i in range(1, count + 1):
            user = record_sign_in(
                session,
                issuer=DEMO_ISSUER,
                subject=f"crowd-{domain}-{i}",
                email=f"demo.voter{i}@{domain}",
                email_verified=True,
            )
            users_by_domain.setdefault(domain, []).append(user)
    report.users = len(users) + sum(len(v) for v in users_by_domain.values())

    for entry in data.get("amendments", []):
        consultation = session.exec(
            select(Consultation).where(Consultation.slug == entry["consultation"])
        ).one()
        clause_id = clause_ids_by_number(session, consultation.id)[str(entry["clause"])]
        author = users[entry["author"]]
        text = documents.normalise_wording(entry.get("text", ""))
        existing = session.exec(
            select(Amendment).where(
                Amendment.clause_id == clause_id,
                Amendment.author_id == author.id,
                Amendment.proposed_text == text,
            )
        ).first()
        if existing is not None:
            continue
        _, version = clause_with_version(session, consultation.id, str(entry["clause"]))
        amendment = Amendment(
            consultation_id=consultation.id,
            clause_id=clause_id,
            clause_version_id=version.id,
            author_id=author.id,
            kind=entry.get("kind", "change"),
            proposed_heading=entry.get("heading"),
            proposed_text=text,
            rationale=documents.normalise_wording(entry["rationale"]),
        )
        session.add(amendment)
        session.flush()
        report.amendments += 1
        for domain, stances in entry.get("votes", {}).items():
            voters = iter(users_by_domain[domain])
            for stance in ("support", "oppose"):
                for _ in range(stances.get(stance, 0)):
                    change_vote(session, consultation.id, amendment.id, next(voters).id, stance)
                    report.votes += 1
        session.commit()
    return report


def seed(session: Session, seed_dir: Path, demo: bool) -> SeedReport:
    """Everything seed/ holds; demo data only when ``demo`` is true."""
    report = SeedReport()
    report.organisations = seed_organisations(session, seed_dir)
    report.consultations = seed_consultations(session, seed_dir)
    if demo:
        demo_report = seed_demo(session, seed_dir)
        report.users = demo_report.users
        report.amendments = demo_report.amendments
        report.votes = demo_report.votes
    return report
