"""Loading reference data (countries, ATLAS network, taxonomy) and the fictional demo network."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth import service as auth
from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import SYSTEM
from atlaslink.config import get_settings
from atlaslink.demo import data
from atlaslink.models import (
    AssistanceRequest,
    BilateralAgreement,
    CapabilityEntry,
    CapabilityType,
    Country,
    CountrySettings,
    Network,
    NetworkMember,
    SharingRule,
    SharingTarget,
    TaxonomyVersion,
    TransportAsset,
    Unit,
    UnitContact,
    User,
    utcnow,
)
from atlaslink.registry.taxonomy_seed import INITIAL_TYPES
from atlaslink.sharing import matching_groups


def ensure_reference_data(session: Session) -> bool:
    """Countries, the ATLAS network and the starting taxonomy. Returns False if already there."""
    if session.scalar(select(Network.id).where(Network.code == "ATLAS")) is not None:
        return False
    for c in data.COUNTRIES:
        session.add(Country(iso2=c.iso2, name=c.name, status=c.status))
    atlas = Network(
        code="ATLAS",
        name="ATLAS network of special intervention units",
        description="Police special intervention units of the EU member states, NO, IS and CH.",
    )
    session.add(atlas)
    session.flush()
    for c in data.COUNTRIES:
        if c.status in ("eu", "associated") or c.iso2 == "GB":
            session.add(
                NetworkMember(network_id=atlas.id, country_iso2=c.iso2, voting=c.status == "eu")
            )
    session.add(TaxonomyVersion(version=1, created_by="system", summary="initial taxonomy"))
    session.flush()
    for order, (code, kind, name, rtlt) in enumerate(INITIAL_TYPES, start=1):
        session.add(
            CapabilityType(
                code=code, kind=kind, name=name, rtlt_id=rtlt, sort_order=order, introduced_in=1
            )
        )
    session.flush()
    audit.append(session, SYSTEM, "reference.load", "network", atlas.id, after={"code": "ATLAS"})
    return True


def load_units(session: Session, progress: Callable[[int, int], None] | None = None) -> int:
    """The fictional units with their capabilities, transport and sharing agreements."""
    if session.scalar(select(Unit.id).limit(1)) is not None:
        return 0
    atlas_id = session.scalar(select(Network.id).where(Network.code == "ATLAS"))
    assert atlas_id is not None
    types = {t.code: t.id for t in session.scalars(select(CapabilityType))}
    today = utcnow().date()
    by_code: dict[str, Unit] = {}
    for u in data.UNITS:
        unit = Unit(
            code=u.code,
            name=u.name,
            network_id=atlas_id,
            country_iso2=u.country,
            base_location=u.base_location,
            latitude=u.latitude,
            longitude=u.longitude,
            languages=list(u.languages),
            competent_authority=u.competent_authority,
        )
        session.add(unit)
        by_code[u.code] = unit
    session.flush()
    for i, u in enumerate(data.UNITS, start=1):
        unit = by_code[u.code]
        for c in u.contacts:
            session.add(UnitContact(unit_id=unit.id, kind=c.kind, label=c.label, value=c.value))
        for t in u.transport:
            session.add(
                TransportAsset(
                    unit_id=unit.id,
                    kind=t.kind,
                    description=t.description,
                    quantity=t.quantity,
                    capacity_persons=t.capacity_persons,
                )
            )
        for cap in u.capabilities:
            session.add(
                CapabilityEntry(
                    unit_id=unit.id,
                    capability_type_id=types[cap.type_code],
                    level=cap.level,
                    package_size=cap.package_size,
                    notice_to_move_hours=cap.notice_to_move_hours,
                    self_sufficiency_hours=cap.self_sufficiency_hours,
                    may_deploy_abroad=cap.may_deploy_abroad,
                    may_carry_arms_abroad=cap.may_carry_arms_abroad,
                    may_carry_explosives_abroad=cap.may_carry_explosives_abroad,
                    last_validated=cap.last_validated,
                    validated_exercise=cap.validated_exercise,
                    confirmed_on=today - timedelta(days=cap.confirmed_days_ago),
                )
            )
        for group, audience in u.sharing.audiences.items():
            rule = SharingRule(unit_id=unit.id, field_group=group, audience=audience)
            session.add(rule)
            if audience == "listed":
                session.flush()
                for country in u.sharing.listed_countries:
                    session.add(SharingTarget(rule_id=rule.id, country_iso2=country))
                for code in u.sharing.listed_units:
                    session.add(SharingTarget(rule_id=rule.id, unit_id=by_code[code].id))
        if progress is not None:
            progress(i, len(data.UNITS))
    session.flush()
    # The rules were written directly, not through registry.service.set_sharing.
    matching_groups.refresh(session, [u.id for u in by_code.values()])
    audit.append(
        session, SYSTEM, "demo.load", "network", atlas_id, after={"units": len(data.UNITS)}
    )
    return len(data.UNITS)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    password: str
    totp_secret: str
    where: str


# username, role, unit code or country
DEMO_ACCOUNTS: tuple[tuple[str, Role, str | None], ...] = (
    ("admin", Role.PLATFORM_ADMIN, None),
    ("support", Role.SUPPORT_OFFICE, None),
    ("commander.at", Role.UNIT_COMMANDER, "AT-ADLER"),
    ("duty.at", Role.DUTY_OFFICER, "AT-ADLER"),
    ("commander.de", Role.UNIT_COMMANDER, "DE-FALKE"),
    ("duty.de", Role.DUTY_OFFICER, "DE-FALKE"),
    ("commander.nl", Role.UNIT_COMMANDER, "NL-REIGER"),
    ("ncp.de", Role.NATIONAL_CONTACT, "DE"),
    ("observer", Role.OBSERVER, None),
)
# Invented people for the demo accounts.
DEMO_NAMES: dict[str, str] = {
    "admin": "Platform Operator",
    "support": "Ines Varga (Support Office)",
    "commander.at": "Col. Lena Moser",
    "duty.at": "Insp. Jakob Huber",
    "commander.de": "PD Katrin Vogel",
    "duty.de": "PHK Tobias Brandt",
    "commander.nl": "Cdt. Sanne de Wit",
    "ncp.de": "Dr. Markus Lenz (NCP Germany)",
    "observer": "Elena Russo (Europol liaison)",
}


def create_demo_accounts(
    session: Session, password: str | None = None, secrets_by_user: dict[str, str] | None = None
) -> list[DemoAccount]:
    """One account per role, with a known password and an enrolled TOTP secret."""
    out: list[DemoAccount] = []
    for username, role, where in DEMO_ACCOUNTS:
        if session.scalar(select(Unit.id).limit(1)) is None and where and "-" in where:
            continue
        pw = password or secrets.token_urlsafe(12)
        secret = (secrets_by_user or {}).get(username) or pyotp.random_base32()
        is_unit = where is not None and "-" in where
        user = auth.create_user(
            session,
            SYSTEM,
            username=username,
            display_name=DEMO_NAMES.get(username, username),
            role=role,
            password=pw,
            email=f"{username}@demo.example.invalid",
            unit_code=where if is_unit else None,
            country=where if where and not is_unit else None,
            totp_secret=secret,
        )
        out.append(DemoAccount(username, role, pw, secret, where or "network"))
        if role is Role.UNIT_COMMANDER and user.unit_id is not None:
            # A unit's commander owns its demo entries (keeps them confirmed); units without
            # an account keep theirs unowned until someone saves them.
            session.execute(
                update(CapabilityEntry)
                .where(
                    CapabilityEntry.unit_id == user.unit_id,
                    CapabilityEntry.owner_user_id.is_(None),
                )
                .values(owner_user_id=user.id)
            )
    return out


# --- country rules, bilateral agreements and a live exercise ----------------------------------

# Fictional settings that show each rule at work (DOMAIN.md §2.9); edit them on /network/rules.
DEMO_COUNTRY_RULES: dict[str, dict[str, bool | str]] = {
    "NL": {
        "requires_bilateral_agreement": True,
        "note": "Specific bilateral arrangements are needed before Dutch units assist or are "
        "assisted.",
    },
    "GB": {
        "excluded_from_2008_617": True,
        "note": "Takes part outside the EU framework: requests need another legal basis.",
    },
    "DE": {
        "national_approval_required": True,
        "note": "Demo: outgoing requests are approved by the national contact point first.",
    },
    "PL": {
        "prohibits_foreign_explosives": True,
        "note": "Demo: as host, foreign breaching explosives are not admitted.",
    },
}
# name, country, country, valid from, valid to (all invented)
DEMO_AGREEMENTS: tuple[tuple[str, str, str, date, date | None], ...] = (
    ("Demo agreement DE-NL on special intervention support", "DE", "NL", date(2019, 3, 1), None),
    ("Demo agreement BE-NL on cross-border tactical support", "BE", "NL", date(2020, 6, 15), None),
    ("Demo agreement GB-NL on intervention liaison", "GB", "NL", date(2021, 1, 1), None),
    ("Demo agreement FR-NL (expired)", "FR", "NL", date(2012, 1, 1), date(2022, 12, 31)),
)
DEMO_REQUEST_TITLE = "Regional train hijacked near Aachen, hostages on board"


def load_rules(session: Session) -> int:
    """Demo country rules and agreements; a country or agreement already there is left as is."""
    from atlaslink.operations import rules, schemas

    made = 0
    for iso, values in DEMO_COUNTRY_RULES.items():
        if session.get(CountrySettings, iso) is None:
            rules.set_rules(session, SYSTEM, iso, schemas.CountryRulesUpdate(**values))
            made += 1
    known = set(session.scalars(select(BilateralAgreement.name)))
    for name, a, b, start, end in DEMO_AGREEMENTS:
        if name not in known:
            rules.add_agreement(
                session,
                SYSTEM,
                schemas.AgreementIn(
                    name=name, country_a=a, country_b=b, valid_from=start, valid_to=end
                ),
            )
            made += 1
    return made


DEMO_PARTNER = "DEMO-BE-NCC"


def load_partners(session: Session, drop_dir: Path) -> int:
    """A fictional partner system (Belgium's national coordination centre, reading as
    BE-HERMELIJN) that receives the platform's standard messages in a drop directory, so the
    outbox and delivery log of the demo show real traffic. Left as is when already there."""
    from atlaslink.messages import schemas as msg
    from atlaslink.messages import service as messages
    from atlaslink.models import Partner

    if session.scalar(select(Partner.id).where(Partner.code == DEMO_PARTNER)) is not None:
        return 0
    if session.scalar(select(Unit.id).where(Unit.code == "BE-HERMELIJN")) is None:
        return 0
    drop_dir.mkdir(parents=True, exist_ok=True)
    messages.create_partner(
        session,
        SYSTEM,
        msg.PartnerCreate(
            code=DEMO_PARTNER,
            name="Demo national coordination centre, Belgium (fictional)",
            sender_id="ncc.demo.example.invalid",
            unit_code="BE-HERMELIJN",
            note="Demo: messages land in a drop directory on this machine.",
        ),
    )
    messages.add_endpoint(
        session,
        SYSTEM,
        DEMO_PARTNER,
        msg.EndpointCreate(kind="directory", target=str(drop_dir.resolve())),
    )
    return 1


def load_operation(session: Session) -> int | None:
    """One live EXERCISE request of DE-FALKE, made through the services as the demo users
    would (so its timeline, notifications and audit are real): approved by Germany's contact
    point, sent to three units, acknowledged by NL-REIGER, AT-ADLER's offer accepted and the
    arrangements proposed. Returns its id, or None if it is already there (or users are not)."""
    from atlaslink.operations import answers, deployments, schemas, service

    if session.scalar(
        select(AssistanceRequest.id).where(AssistanceRequest.title == DEMO_REQUEST_TITLE)
    ):
        return None
    users = {
        u.username: auth.principal_of(u)
        for u in session.scalars(
            select(User).where(
                User.username.in_(("duty.de", "ncp.de", "duty.at", "commander.nl")),
                User.disabled.is_(False),
            )
        )
    }
    if len(users) < 4:
        return None
    de, ncp, at, nl = users["duty.de"], users["ncp.de"], users["duty.at"], users["commander.nl"]
    now = utcnow()
    req = service.create_request(
        session,
        de,
        schemas.RequestCreate(
            exercise=True,
            title=DEMO_REQUEST_TITLE,
            crisis_category="hijack_train",
            location_name="Aachen-Rothe Erde, regional line RB 33",
            latitude=50.7703,
            longitude=6.1166,
            nature=["intervention", "expertise"],
            operational_necessity=(
                "Exercise ATLAS RAIL: two trains taken at once; our own teams are committed to "
                "the first. We need a second assault team and negotiators for the second."
            ),
            legal_basis="2008/617-art3",
            classification="RESTREINT_UE",
            distribution_marking="LIMITE",
            handling_code="H2",
            lines=[
                schemas.LineIn(capability="land_transport", min_level=2, quantity=8),
                schemas.LineIn(capability="crisis_negotiation", min_level=1, quantity=2),
            ],
            # Long enough that the ladder does not fire while someone explores the demo.
            ack_minutes=240,
            submit=True,
        ),
    )
    service.decide_national(
        session, ncp, req.id, approve=True, reason="Exercise approved by the ministry."
    )
    codes = ("AT-ADLER", "NL-REIGER", "BE-HERMELIJN")
    unit_ids = list(session.scalars(select(Unit.id).where(Unit.code.in_(codes))))
    answers.address(session, de, req.id, schemas.AddressBody(unit_ids=unit_ids))
    for grantee in ("support_office", "observers"):
        answers.grant(session, de, req.id, schemas.GrantBody(grantee=grantee))
    answers.acknowledge(session, nl, req.id)
    _, offer = answers.answer(
        session,
        at,
        req.id,
        schemas.AnswerBody(
            answer="accept",
            lines=[schemas.OfferLineIn(line_no=1, quantity=6)],
            package="6 operators with rail-breaching kit, 2 armoured vehicles",
            eta_at=now + timedelta(hours=4),
            conditions="Our own weapons and ammunition; no explosives.",
            costs="Own costs; fuel and lodging by the host.",
        ),
    )
    assert offer is not None
    answers.accept_offer(session, de, req.id, offer.id, schemas.AcceptBody())
    settings = get_settings()
    deployments.update_arrangement(
        session,
        de,
        req.id,
        offer.id,
        schemas.ArrangementBody(
            command=settings.default_command,
            liaison_officer="PHK Tobias Brandt",
            liaison_contact="+49 555 0199 310 (demo)",
            working_language="de",
            costs=settings.default_costs,
            liability=settings.default_liability,
            notes="Assembly point: Aachen West freight yard.",
        ),
    )
    session.flush()
    return req.id
