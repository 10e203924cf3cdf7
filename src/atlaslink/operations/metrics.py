"""Response metrics: when a request first reached each milestone (acknowledgement, offer, full
coverage, a team on site), per request and across requests (the network dashboard). Derived
from the recorded timeline, never stored."""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import median

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.models import AssistanceRequest, Offer, OperationEvent
from atlaslink.operations import schemas, vocab
from atlaslink.operations.policy import readable
from atlaslink.operations.states import RequestKind
from atlaslink.registry.taxonomy_seed import display_country

ACK_KINDS = (
    "addressee.acknowledged",
    "answer.offer",
    "answer.counter_proposal",
    "answer.refuse",
    "answer.unable_to_fill",
)
OFFER_KINDS = ("answer.offer", "answer.counter_proposal")
_MILESTONES = ("first_acknowledgement", "first_offer", "full_coverage", "first_team_on_site")


def _first_events(
    session: Session, request_ids: list[int], kinds: tuple[str, ...]
) -> dict[int, datetime]:
    rows = session.execute(
        select(OperationEvent.request_id, func.min(OperationEvent.occurred_at))
        .where(OperationEvent.request_id.in_(request_ids), OperationEvent.kind.in_(kinds))
        .group_by(OperationEvent.request_id)
    ).tuples()
    return {rid: at for rid, at in rows if at is not None}


def _milestones(session: Session, request_ids: list[int]) -> dict[str, dict[int, datetime]]:
    """When each request first reached each milestone, from the recorded timeline."""
    if not request_ids:
        return {m: {} for m in _MILESTONES}
    on_site = session.execute(
        select(Offer.request_id, func.min(Offer.on_site_at))
        .where(Offer.request_id.in_(request_ids), Offer.on_site_at.is_not(None))
        .group_by(Offer.request_id)
    ).tuples()
    return {
        "first_acknowledgement": _first_events(session, request_ids, ACK_KINDS),
        "first_offer": _first_events(session, request_ids, OFFER_KINDS),
        "full_coverage": _first_events(session, request_ids, ("request.status.covered",)),
        "first_team_on_site": {rid: at for rid, at in on_site if at is not None},
    }


def _minutes(start: datetime | None, at: datetime | None) -> float | None:
    if start is None or at is None:
        return None
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return round((at - start).total_seconds() / 60, 1)


def _metrics_of(req: AssistanceRequest, ms: dict[str, dict[int, datetime]]) -> schemas.Metrics:
    return schemas.Metrics(
        **{m: _minutes(req.submitted_at, ms[m].get(req.id)) for m in _MILESTONES}
    )


def metrics(session: Session, req: AssistanceRequest) -> schemas.Metrics:
    """Response metrics in minutes from submission, from the recorded timeline."""
    return _metrics_of(req, _milestones(session, [req.id]))


def _summary(values: list[float]) -> schemas.MetricSummary:
    if not values:
        return schemas.MetricSummary(reached=0, median_minutes=None, p90_minutes=None)
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered)) - 1))]
    return schemas.MetricSummary(
        reached=len(values), median_minutes=round(median(ordered), 1), p90_minutes=p90
    )


def dashboard(
    session: Session, p: Principal, *, exercise: bool | None = None, recent: int = 25
) -> schemas.Dashboard:
    """Response metrics across requests. The support office, which runs the network's
    statistics, counts every submitted request (figures only, no request is named); everyone
    else counts the requests they may see. The list of requests is always what the viewer may
    see."""
    p.require(Permission.REQUESTS_READ)
    network = p.can(Permission.OPERATIONS_SUPERVISE)
    req = AssistanceRequest
    base = select(req).where(req.kind == RequestKind.REQUEST.value, req.submitted_at.is_not(None))
    if exercise is not None:
        base = base.where(req.exercise.is_(exercise))
    counted = base if network else base.where(readable(p))
    rows = list(session.scalars(counted))
    ms = _milestones(session, [r.id for r in rows])
    values: dict[str, list[float]] = {m: [] for m in _MILESTONES}
    for r in rows:
        for m in _MILESTONES:
            v = _minutes(r.submitted_at, ms[m].get(r.id))
            if v is not None:
                values[m].append(v)
    by_status: dict[str, int] = {}
    by_category: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
        label = vocab.CRISIS_CATEGORIES.get(r.crisis_category, r.crisis_category)
        by_category[label] = by_category.get(label, 0) + 1
    shown = list(
        session.scalars(
            base.where(readable(p)).order_by(req.submitted_at.desc(), req.id.desc()).limit(recent)
        )
    )
    shown_ms = _milestones(session, [r.id for r in shown])
    return schemas.Dashboard(
        scope="network" if network else "involved",
        exercise=exercise,
        requests=len(rows),
        by_status=dict(sorted(by_status.items())),
        by_category=dict(sorted(by_category.items(), key=lambda kv: -kv[1])),
        recent=[
            schemas.DashboardRow(
                id=r.id,
                reference=r.reference,
                title=r.title,
                exercise=r.exercise,
                status=r.status,
                crisis_category=vocab.CRISIS_CATEGORIES.get(r.crisis_category, r.crisis_category),
                requesting_country=display_country(r.requesting_country),
                submitted_at=r.submitted_at,
                metrics=_metrics_of(r, shown_ms),
            )
            for r in shown
        ],
        **{m: _summary(values[m]) for m in _MILESTONES},
    )
