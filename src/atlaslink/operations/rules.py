"""Country rules and bilateral agreements, kept as data (DOMAIN.md §2.9).

``country_settings`` holds what a country requires (a national approval step before its
requests go out, a bilateral agreement with the other country, host bans on foreign arms or
explosives, exclusion from Decision 2008/617); ``bilateral_agreements`` the agreements between
pairs of countries. Requests, addressing and matching read them (``service.validate_body``,
``matching.load_legal_context``); this module is the one place that changes them.

Everyone reads them. The support office edits any country's rules and any agreement; a
national contact point its own country's rules and the agreements its country is party to.
An agreement is never deleted (requests name it): it is retired by ending its validity.
Every change is audited with its before and after.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.errors import Conflict, Forbidden, Invalid, NotFound
from atlaslink.models import BilateralAgreement, Country, CountrySettings, utcnow
from atlaslink.operations import schemas
from atlaslink.registry.service import page_dict
from atlaslink.registry.taxonomy_seed import EU_DISPLAY, display_country

RULE_FIELDS = (
    "national_approval_required",
    "requires_bilateral_agreement",
    "prohibits_foreign_arms",
    "prohibits_foreign_explosives",
    "excluded_from_2008_617",
)
RULE_LABELS = {
    "national_approval_required": "National approval step before requests go out",
    "requires_bilateral_agreement": "Bilateral agreement required with the other country",
    "prohibits_foreign_arms": "As host, bans foreign officers' arms",
    "prohibits_foreign_explosives": "As host, bans foreign explosives (breaching)",
    "excluded_from_2008_617": "Cannot use Decision 2008/617",
}
_FROM_DISPLAY = {v: k for k, v in EU_DISPLAY.items()}


def iso_of(code: str) -> str:
    """An ISO 3166-1 code from what people type: ``nl``, ``EL`` (Greece), ``UK``."""
    code = code.strip().upper()
    return _FROM_DISPLAY.get(code, code)


def _country(session: Session, code: str) -> Country:
    iso = iso_of(code)
    country = session.get(Country, iso) if len(iso) == 2 else None
    if country is None:
        raise NotFound(f"No country {code.strip().upper()!r}.")
    return country


def may_edit_country(p: Principal, iso: str) -> bool:
    return p.can(Permission.COUNTRY_RULES_EDIT) or (
        p.can(Permission.COUNTRY_RULES_EDIT_OWN) and p.country == iso
    )


def _may_edit_agreement(p: Principal, a: BilateralAgreement) -> bool:
    return p.can(Permission.COUNTRY_RULES_EDIT) or (
        p.can(Permission.COUNTRY_RULES_EDIT_OWN) and p.country in (a.country_a, a.country_b)
    )


def _rules_dict(cs: CountrySettings | None) -> dict[str, Any]:
    out: dict[str, Any] = {f: bool(cs and getattr(cs, f)) for f in RULE_FIELDS}
    out["note"] = cs.note if cs else ""
    return out


def _rules_out(p: Principal, country: Country, cs: CountrySettings | None) -> schemas.CountryRules:
    return schemas.CountryRules(
        country=display_country(country.iso2),
        iso2=country.iso2,
        name=country.name,
        updated_at=cs.updated_at if cs else None,
        editable=may_edit_country(p, country.iso2),
        **_rules_dict(cs),
    )


# ------------------------------------------------------------------------------ rules


def get_rules(session: Session, p: Principal, code: str) -> schemas.CountryRules:
    p.require(Permission.COUNTRY_RULES_READ)
    country = _country(session, code)
    return _rules_out(p, country, session.get(CountrySettings, country.iso2))


def list_rules(
    session: Session, p: Principal, *, only_set: bool = False
) -> list[schemas.CountryRules]:
    """Every country with its rules (``only_set``: those that differ from the defaults)."""
    p.require(Permission.COUNTRY_RULES_READ)
    settings = {cs.country_iso2: cs for cs in session.scalars(select(CountrySettings))}
    out = []
    for country in session.scalars(select(Country).order_by(Country.iso2)):
        cs = settings.get(country.iso2)
        if only_set and not (cs and (any(getattr(cs, f) for f in RULE_FIELDS) or cs.note)):
            continue
        out.append(_rules_out(p, country, cs))
    return out


def set_rules(
    session: Session, p: Principal, code: str, body: schemas.CountryRulesUpdate
) -> schemas.CountryRules:
    p.require(Permission.COUNTRY_RULES_READ)
    country = _country(session, code)
    if not may_edit_country(p, country.iso2):
        raise Forbidden(
            "Only the support office, or the national contact point of "
            f"{display_country(country.iso2)}, changes its rules."
        )
    cs = session.get(CountrySettings, country.iso2, with_for_update=True)
    before = _rules_dict(cs)
    if cs is None:
        cs = CountrySettings(country_iso2=country.iso2, **{f: False for f in RULE_FIELDS})
        cs.note = ""
        session.add(cs)
    for field, value in body.model_dump(exclude_none=True).items():
        setattr(cs, field, value)
    cs.updated_at = utcnow()
    session.flush()
    after = _rules_dict(cs)
    if after != before:
        audit.append(
            session, p, "country_rules.updated", "country", country.iso2, before=before, after=after
        )
    return _rules_out(p, country, cs)


# ------------------------------------------------------------------------------ agreements


def agreement_status(a: BilateralAgreement, today: date | None = None) -> str:
    day = today or utcnow().date()
    if a.valid_to is not None and a.valid_to < day:
        return "expired"
    if a.valid_from is not None and a.valid_from > day:
        return "not_yet"
    return "in_force"


def _agreement_dict(a: BilateralAgreement) -> dict[str, Any]:
    return {
        "name": a.name,
        "countries": [a.country_a, a.country_b],
        "valid_from": a.valid_from.isoformat() if a.valid_from else None,
        "valid_to": a.valid_to.isoformat() if a.valid_to else None,
        "note": a.note,
    }


def agreement_out(p: Principal, a: BilateralAgreement) -> schemas.AgreementOut:
    return schemas.AgreementOut(
        id=a.id,
        name=a.name,
        countries=[display_country(a.country_a), display_country(a.country_b)],
        valid_from=a.valid_from,
        valid_to=a.valid_to,
        status=agreement_status(a),
        note=a.note,
        editable=_may_edit_agreement(p, a),
    )


def get_agreement(session: Session, p: Principal, agreement_id: int) -> schemas.AgreementOut:
    p.require(Permission.COUNTRY_RULES_READ)
    a = session.get(BilateralAgreement, agreement_id)
    if a is None:
        raise NotFound(f"No bilateral agreement {agreement_id}.")
    return agreement_out(p, a)


def list_agreements(
    session: Session,
    p: Principal,
    *,
    page: int = 1,
    per_page: int = 50,
    country: str | None = None,
    in_force: bool | None = None,
) -> dict[str, Any]:
    p.require(Permission.COUNTRY_RULES_READ)
    stmt = select(BilateralAgreement)
    if country:
        iso = _country(session, country).iso2
        stmt = stmt.where(
            or_(BilateralAgreement.country_a == iso, BilateralAgreement.country_b == iso)
        )
    if in_force is not None:
        today = utcnow().date()
        current = (
            BilateralAgreement.valid_from.is_(None) | (BilateralAgreement.valid_from <= today)
        ) & (BilateralAgreement.valid_to.is_(None) | (BilateralAgreement.valid_to >= today))
        stmt = stmt.where(current if in_force else ~current)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(
            BilateralAgreement.country_a, BilateralAgreement.country_b, BilateralAgreement.id
        )
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return page_dict([agreement_out(p, a) for a in rows], total, page, per_page)


def add_agreement(
    session: Session, p: Principal, body: schemas.AgreementIn
) -> schemas.AgreementOut:
    p.require(Permission.COUNTRY_RULES_READ)
    problems = []
    parties = []
    for field in ("country_a", "country_b"):
        code = getattr(body, field)
        iso = iso_of(code)
        if session.get(Country, iso) is None:
            problems.append({"field": field, "message": f"no country {code!r}"})
        parties.append(iso)
    if len(parties) == 2 and parties[0] == parties[1]:
        problems.append({"field": "country_b", "message": "an agreement needs two countries"})
    if body.valid_from and body.valid_to and body.valid_to < body.valid_from:
        problems.append({"field": "valid_to", "message": "ends before it starts"})
    if problems:
        raise Invalid("The agreement is not valid.", errors=problems)
    a_iso, b_iso = sorted(parties)
    if not (
        p.can(Permission.COUNTRY_RULES_EDIT)
        or (p.can(Permission.COUNTRY_RULES_EDIT_OWN) and p.country in (a_iso, b_iso))
    ):
        raise Forbidden(
            "Only the support office, or the national contact point of one of the two "
            "countries, records a bilateral agreement."
        )
    same = session.scalar(
        select(BilateralAgreement.id).where(
            BilateralAgreement.country_a == a_iso,
            BilateralAgreement.country_b == b_iso,
            func.lower(BilateralAgreement.name) == body.name.lower(),
            BilateralAgreement.valid_to.is_(None)
            | (BilateralAgreement.valid_to >= utcnow().date()),
        )
    )
    if same is not None:
        raise Conflict(f"This agreement is already recorded (agreement {same}).")
    a = BilateralAgreement(
        name=body.name,
        country_a=a_iso,
        country_b=b_iso,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        note=body.note,
    )
    session.add(a)
    session.flush()
    audit.append(
        session,
        p,
        "bilateral_agreement.added",
        "bilateral_agreement",
        a.id,
        after=_agreement_dict(a),
    )
    return agreement_out(p, a)


def retire_agreement(
    session: Session, p: Principal, agreement_id: int, body: schemas.AgreementRetire
) -> schemas.AgreementOut:
    """End an agreement's validity (requests that named it keep the reference)."""
    p.require(Permission.COUNTRY_RULES_READ)
    a = session.get(BilateralAgreement, agreement_id, with_for_update=True)
    if a is None:
        raise NotFound(f"No bilateral agreement {agreement_id}.")
    if not _may_edit_agreement(p, a):
        raise Forbidden(
            "Only the support office, or the national contact point of one of the two "
            "countries, retires a bilateral agreement."
        )
    today = utcnow().date()
    end = body.valid_to or today
    if a.valid_to is not None and a.valid_to < today:
        raise Conflict(f"The agreement already expired on {a.valid_to.isoformat()}.")
    if a.valid_from is not None and end < a.valid_from:
        raise Invalid(
            "An agreement cannot end before it starts.",
            errors=[{"field": "valid_to", "message": f"before {a.valid_from.isoformat()}"}],
        )
    before = _agreement_dict(a)
    a.valid_to = end
    if body.reason:
        a.note = (a.note + "\n" if a.note else "") + f"Retired: {body.reason}"
    session.flush()
    audit.append(
        session,
        p,
        "bilateral_agreement.retired",
        "bilateral_agreement",
        a.id,
        before=before,
        after=_agreement_dict(a),
    )
    return agreement_out(p, a)
