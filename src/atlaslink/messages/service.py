"""Partners, their endpoints and subscriptions, the outbox and the delivery log. Services
flush, never commit; every change is audited."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.principal import Principal
from atlaslink.errors import Conflict, Invalid, NotFound
from atlaslink.messages import policy, repository, schemas
from atlaslink.models import Country, OutboxMessage, Partner, PartnerEndpoint, Unit, utcnow
from atlaslink.registry.service import page_dict


def _partner_dict(p: Partner) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": p.name,
        "sender_id": p.sender_id,
        "unit_id": p.unit_id,
        "country": p.country_iso2,
        "observer": p.observer,
        "de_version": p.de_version,
        "topics": list(p.topics or []),
        "exercise_traffic": p.exercise_traffic,
        "active": p.active,
    }


def get_partner(session: Session, p: Principal, code: str) -> Partner:
    policy.require_manage(p)
    partner = repository.partner_by_code(session, code)
    if partner is None:
        raise NotFound(f"No partner {code}.")
    return partner


def create_partner(session: Session, p: Principal, body: schemas.PartnerCreate) -> Partner:
    policy.require_manage(p)
    unit_id = None
    if body.unit_code:
        unit = session.scalar(select(Unit).where(Unit.code == body.unit_code))
        if unit is None:
            raise Invalid(
                "No such unit.", errors=[{"field": "unit_code", "message": "unknown unit"}]
            )
        unit_id = unit.id
    country = body.country.upper() if body.country else None
    if country and session.get(Country, country) is None:
        raise Invalid("No such country.", errors=[{"field": "country", "message": "unknown"}])
    if unit_id is not None and (country or body.observer):
        raise Invalid(
            "A unit's partner reads as the unit; give a country or observer only for others.",
            errors=[{"field": "unit_code", "message": "not with country or observer"}],
        )
    for field, value in (("code", body.code), ("sender_id", body.sender_id)):
        clash = session.scalar(
            select(Partner.id).where(getattr(Partner, field) == value)  # field is one of two
        )
        if clash is not None:
            raise Conflict(
                f"A partner with this {field} exists.",
                errors=[{"field": field, "message": "taken"}],
            )
    partner = Partner(
        code=body.code,
        name=body.name,
        sender_id=body.sender_id,
        unit_id=unit_id,
        country_iso2=country,
        observer=body.observer,
        de_version=body.de_version,
        topics=sorted(set(body.topics)),
        exercise_traffic=body.exercise_traffic,
        note=body.note,
    )
    session.add(partner)
    session.flush()
    audit.append(session, p, "partner.created", "partner", partner.id, after=_partner_dict(partner))
    return partner


def update_partner(
    session: Session, p: Principal, code: str, body: schemas.PartnerUpdate
) -> Partner:
    partner = get_partner(session, p, code)
    before = _partner_dict(partner)
    for k, v in body.model_dump(exclude_none=True).items():
        setattr(partner, k, sorted(set(v)) if k == "topics" else v)
    session.flush()
    audit.append(
        session,
        p,
        "partner.updated",
        "partner",
        partner.id,
        before=before,
        after=_partner_dict(partner),
    )
    return partner


def add_endpoint(
    session: Session, p: Principal, code: str, body: schemas.EndpointCreate
) -> tuple[PartnerEndpoint, str]:
    partner = get_partner(session, p, code)
    if body.kind == "http" and not body.target.startswith(("http://", "https://")):
        raise Invalid(
            "An HTTP endpoint is an http:// or https:// URL.",
            errors=[{"field": "target", "message": "not an HTTP URL"}],
        )
    if body.kind == "directory" and not body.target.startswith("/"):
        raise Invalid(
            "A drop directory is an absolute path.",
            errors=[{"field": "target", "message": "not an absolute path"}],
        )
    secret = body.secret or (secrets.token_urlsafe(32) if body.kind == "http" else "")
    endpoint = PartnerEndpoint(
        partner_id=partner.id, kind=body.kind, target=body.target, secret=secret
    )
    session.add(endpoint)
    session.flush()
    audit.append(
        session,
        p,
        "partner.endpoint_added",
        "partner",
        partner.id,
        after={"endpoint": endpoint.id, "kind": endpoint.kind, "target": endpoint.target},
    )
    return endpoint, secret


def set_endpoint_active(
    session: Session, p: Principal, code: str, endpoint_id: int, active: bool
) -> PartnerEndpoint:
    partner = get_partner(session, p, code)
    endpoint = session.get(PartnerEndpoint, endpoint_id)
    if endpoint is None or endpoint.partner_id != partner.id:
        raise NotFound(f"No endpoint {endpoint_id} of partner {code}.")
    before = endpoint.active
    endpoint.active = active
    session.flush()
    audit.append(
        session,
        p,
        "partner.endpoint_" + ("enabled" if active else "disabled"),
        "partner",
        partner.id,
        before={"endpoint": endpoint.id, "active": before},
        after={"endpoint": endpoint.id, "active": active},
    )
    return endpoint


def reads_as(session: Session, partner: Partner, units: dict[int, str]) -> str:
    if partner.unit_id is not None:
        return f"unit {units.get(partner.unit_id, partner.unit_id)} (its duty desk's view)"
    parts = []
    if partner.observer:
        parts.append("requests granted to observers")
    if partner.country_iso2:
        parts.append(f"requests granted to {partner.country_iso2}")
    return ", ".join(parts) or "nothing (no grant can reach it)"


def partner_out(
    session: Session,
    partner: Partner,
    endpoints: list[PartnerEndpoint],
    counts: dict[tuple[int, str], int],
    units: dict[int, str],
    secrets_shown: dict[int, str] | None = None,
) -> schemas.PartnerOut:
    shown = secrets_shown or {}
    return schemas.PartnerOut(
        id=partner.id,
        code=partner.code,
        name=partner.name,
        sender_id=partner.sender_id,
        unit_code=units.get(partner.unit_id) if partner.unit_id else None,
        country=partner.country_iso2,
        observer=partner.observer,
        de_version=partner.de_version,
        topics=list(partner.topics or []),
        exercise_traffic=partner.exercise_traffic,
        active=partner.active,
        note=partner.note,
        created_at=partner.created_at,
        reads_as=reads_as(session, partner, units),
        endpoints=[
            schemas.EndpointOut(
                id=e.id,
                kind=e.kind,
                target=e.target,
                active=e.active,
                created_at=e.created_at,
                secret=shown.get(e.id),
            )
            for e in endpoints
        ],
        pending=counts.get((partner.id, "pending"), 0),
        parked=counts.get((partner.id, "parked"), 0),
    )


def describe(
    session: Session, partner: Partner, secrets_shown: dict[int, str] | None = None
) -> schemas.PartnerOut:
    eps = repository.endpoints_of(session, [partner.id])
    counts = repository.outbox_counts(session, [partner.id])
    units = repository.unit_codes(session, {partner.unit_id} if partner.unit_id else set())
    return partner_out(session, partner, eps.get(partner.id, []), counts, units, secrets_shown)


def list_partners(session: Session, p: Principal, *, page: int, per_page: int) -> dict[str, Any]:
    policy.require_manage(p)
    rows, total = repository.partners_page(session, page, per_page)
    ids = [r.id for r in rows]
    eps = repository.endpoints_of(session, ids)
    counts = repository.outbox_counts(session, ids)
    units = repository.unit_codes(session, {r.unit_id for r in rows if r.unit_id})
    items = [partner_out(session, r, eps.get(r.id, []), counts, units) for r in rows]
    return page_dict(items, total, page, per_page)


def list_outbox(
    session: Session,
    p: Principal,
    *,
    page: int,
    per_page: int,
    state: str | None = None,
    partner: str | None = None,
) -> dict[str, Any]:
    policy.require_manage(p)
    partner_id = None
    if partner:
        found = repository.partner_by_code(session, partner)
        if found is None:
            raise NotFound(f"No partner {partner}.")
        partner_id = found.id
    rows, total = repository.outbox_page(
        session, page, per_page, state=state, partner_id=partner_id
    )
    items = [
        schemas.OutboxOut(
            id=m.id,
            message_id=m.message_id,
            message_type=m.message_type,
            partner=code,
            endpoint=target,
            request_reference=ref,
            state=m.state,
            attempts=m.attempts,
            next_attempt_at=m.next_attempt_at,
            last_error=m.last_error,
            created_at=m.created_at,
            delivered_at=m.delivered_at,
        )
        for m, code, target, ref in rows
    ]
    return page_dict(items, total, page, per_page)


def list_attempts(
    session: Session,
    p: Principal,
    *,
    page: int,
    per_page: int,
    outbox_id: int | None = None,
    failed_only: bool = False,
) -> dict[str, Any]:
    policy.require_manage(p)
    rows, total = repository.attempts_page(
        session, page, per_page, outbox_id=outbox_id, failed_only=failed_only
    )
    items = [
        schemas.AttemptOut(
            id=a.id,
            outbox_id=a.outbox_id,
            message_id=mid,
            partner=code,
            at=a.at,
            ok=a.ok,
            status_code=a.status_code,
            error=a.error,
            duration_ms=a.duration_ms,
        )
        for a, mid, code in rows
    ]
    return page_dict(items, total, page, per_page)


def outbox_body(session: Session, p: Principal, outbox_id: int) -> OutboxMessage:
    policy.require_manage(p)
    m = session.get(OutboxMessage, outbox_id)
    if m is None:
        raise NotFound(f"No outbox message {outbox_id}.")
    return m


def retry(session: Session, p: Principal, outbox_id: int) -> OutboxMessage:
    """Put a parked (or pending) message back in line now; its attempts start again."""
    m = outbox_body(session, p, outbox_id)
    if m.state == "sent":
        raise Conflict("This message was delivered; nothing to retry.")
    if m.last_error.startswith("invalid:"):
        raise Conflict("This message failed its schema; it is kept for the record, not sent.")
    before = {"state": m.state, "attempts": m.attempts}
    m.state = "pending"
    m.attempts = 0
    m.next_attempt_at = utcnow()
    try:
        session.flush()
    except IntegrityError as exc:  # pragma: no cover - only a concurrent delete
        raise Conflict("The message changed meanwhile; try again.") from exc
    audit.append(
        session,
        p,
        "outbox.retry",
        "outbox_message",
        m.id,
        before=before,
        after={"state": m.state, "message_id": m.message_id},
    )
    return m
