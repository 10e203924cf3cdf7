"""Assistance requests API: requests, addressing, answers, offers, deployments, timeline."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.errors import Conflict, Invalid
from atlaslink.models import IdempotencyKey
from atlaslink.operations import (
    answers,
    deployments,
    inbox,
    live,
    matching,
    policy,
    schemas,
    service,
    views,
)
from atlaslink.operations import metrics as response_metrics
from atlaslink.registry.schemas import Page
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(prefix="/requests", tags=["requests"])
notifications_router = APIRouter(tags=["notifications"])

IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=100,
        description="Repeat a create or answer call safely: the same key returns the first result.",
    ),
]
PageNo = Annotated[int, Query(ge=1)]
PerPage = Annotated[int, Query(ge=1, le=200)]
After = Annotated[
    int | None,
    Query(
        ge=0,
        description="first send what committed after this `live_seq` (the highest one a client "
        "has, e.g. from `…/events`)",
    ),
]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", max_length=20, description="sent by a reconnecting browser"),
]
EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}
}


def _token_check(request: Request) -> live.Authenticate:
    """The stream's later checks: the same bearer token, still valid."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()

    def check(session: Session) -> Principal | None:
        user = auth.authenticate_token(session, token)
        return auth.principal_of(user) if user is not None else None

    return check


def _idempotent(
    db: DB,
    p: Principal,
    request: Request,
    key: str | None,
    body: BaseModel | None,
    run: Callable[[], BaseModel],
    status_code: int,
) -> JSONResponse:
    if not key:
        return JSONResponse(run().model_dump(mode="json"), status_code=status_code)
    if p.user_id is None:
        raise Invalid("Idempotency keys need a user.")
    raw = body.model_dump_json() if body is not None else ""
    fingerprint = hashlib.sha256(f"{request.method} {request.url.path} {raw}".encode()).hexdigest()
    seen = db.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == p.user_id, IdempotencyKey.key == key)
    )
    if seen is not None:
        if seen.fingerprint != fingerprint:
            raise Invalid(
                "This Idempotency-Key was already used for a different request.",
                errors=[{"field": "Idempotency-Key", "message": "reused with another body"}],
            )
        return JSONResponse(
            seen.response, status_code=seen.status_code, headers={"Idempotent-Replayed": "true"}
        )
    payload = run().model_dump(mode="json")
    db.add(
        IdempotencyKey(
            user_id=p.user_id,
            key=key,
            fingerprint=fingerprint,
            status_code=status_code,
            response=payload,
        )
    )
    try:
        db.flush()
    except IntegrityError as exc:
        raise Conflict(
            "Another call with this Idempotency-Key was processed at the same time; "
            "repeat the call to get its result."
        ) from exc
    return JSONResponse(payload, status_code=status_code)


def _out(db: DB, p: Principal, request_id: int) -> schemas.RequestOut:
    db.expire_all()
    return views.get_request(db, p, request_id)


@router.get("", response_model=Page[schemas.RequestSummary])
def list_requests(
    db: DB,
    p: ApiPrincipal,
    page: PageNo = 1,
    per_page: PerPage = 50,
    status: Annotated[str | None, Query(max_length=32, description="a status, or 'live'")] = None,
    exercise: bool | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    p.require(Permission.REQUESTS_READ)
    return views.list_requests(
        db, p, page=page, per_page=per_page, status=status or None, exercise=exercise, q=q or None
    )


@router.post("", status_code=201, response_model=schemas.RequestOut)
def create_request(
    body: schemas.RequestCreate, db: DB, p: ApiPrincipal, request: Request, key: IdemKey = None
) -> JSONResponse:
    def run() -> BaseModel:
        req = service.create_request(db, p, body)
        return _out(db, p, req.id)

    return _idempotent(db, p, request, key, body, run, 201)


@router.get("/{request_id}", response_model=schemas.RequestOut)
def get_request(request_id: int, db: DB, p: ApiPrincipal) -> schemas.RequestOut:
    return views.get_request(db, p, request_id)


@router.put("/{request_id}", response_model=schemas.RequestOut)
def amend_request(
    request_id: int, body: schemas.RequestAmend, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    service.amend(db, p, request_id, body)
    return _out(db, p, request_id)


@router.post("/{request_id}/submit", response_model=schemas.RequestOut)
def submit(request_id: int, db: DB, p: ApiPrincipal) -> schemas.RequestOut:
    service.submit(db, p, request_id)
    return _out(db, p, request_id)


@router.post("/{request_id}/approve", response_model=schemas.RequestOut)
def approve(
    request_id: int, body: schemas.Transition, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    service.decide_national(db, p, request_id, approve=True, reason=body.reason)
    return _out(db, p, request_id)


@router.post("/{request_id}/return", response_model=schemas.RequestOut)
def send_back(
    request_id: int, body: schemas.Transition, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    service.decide_national(db, p, request_id, approve=False, reason=body.reason)
    return _out(db, p, request_id)


@router.post("/{request_id}/cancel", response_model=schemas.RequestOut)
def cancel(
    request_id: int, body: schemas.Transition, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    service.cancel(db, p, request_id, body.reason)
    return _out(db, p, request_id)


@router.post("/{request_id}/stand-down", response_model=schemas.RequestOut)
def stand_down(
    request_id: int, body: schemas.Transition, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    service.stand_down(db, p, request_id, body.reason)
    return _out(db, p, request_id)


@router.post("/{request_id}/close", response_model=schemas.RequestOut)
def close(request_id: int, body: schemas.CloseBody, db: DB, p: ApiPrincipal) -> schemas.RequestOut:
    service.close(db, p, request_id, body.debrief)
    return _out(db, p, request_id)


@router.post("/{request_id}/addressees", response_model=schemas.RequestOut)
def address(
    request_id: int, body: schemas.AddressBody, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    answers.address(db, p, request_id, body)
    return _out(db, p, request_id)


@router.post("/{request_id}/acknowledge", response_model=schemas.RequestOut)
def acknowledge(request_id: int, db: DB, p: ApiPrincipal) -> schemas.RequestOut:
    answers.acknowledge(db, p, request_id)
    return _out(db, p, request_id)


@router.post("/{request_id}/answers", status_code=201, response_model=schemas.RequestOut)
def answer(
    request_id: int,
    body: schemas.AnswerBody,
    db: DB,
    p: ApiPrincipal,
    request: Request,
    key: IdemKey = None,
) -> JSONResponse:
    def run() -> BaseModel:
        answers.answer(db, p, request_id, body)
        return _out(db, p, request_id)

    return _idempotent(db, p, request, key, body, run, 201)


@router.get("/{request_id}/lines/{line_no}/candidates", response_model=matching.Ranking)
def candidates(
    request_id: int,
    line_no: int,
    db: DB,
    p: ApiPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> matching.Ranking:
    return views.candidates(db, p, request_id, line_no, limit=limit)


@router.post("/{request_id}/offers/{offer_id}/accept", response_model=schemas.RequestOut)
def accept_offer(
    request_id: int,
    offer_id: int,
    body: schemas.AcceptBody,
    db: DB,
    p: ApiPrincipal,
    request: Request,
    key: IdemKey = None,
) -> JSONResponse:
    def run() -> BaseModel:
        answers.accept_offer(db, p, request_id, offer_id, body)
        return _out(db, p, request_id)

    return _idempotent(db, p, request, key, body, run, 200)


@router.post("/{request_id}/offers/{offer_id}/decline", response_model=schemas.RequestOut)
def decline_offer(
    request_id: int, offer_id: int, body: schemas.Transition, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    answers.decline_offer(db, p, request_id, offer_id, body.reason)
    return _out(db, p, request_id)


@router.post("/{request_id}/offers/{offer_id}/withdraw", response_model=schemas.RequestOut)
def withdraw_offer(
    request_id: int, offer_id: int, body: schemas.Transition, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    answers.withdraw_offer(db, p, request_id, offer_id, body.reason)
    return _out(db, p, request_id)


@router.put("/{request_id}/offers/{offer_id}/arrangement", response_model=schemas.RequestOut)
def edit_arrangement(
    request_id: int, offer_id: int, body: schemas.ArrangementBody, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    deployments.update_arrangement(db, p, request_id, offer_id, body)
    return _out(db, p, request_id)


class ConfirmBody(BaseModel):
    revision: int


@router.post(
    "/{request_id}/offers/{offer_id}/arrangement/confirm", response_model=schemas.RequestOut
)
def confirm_arrangement(
    request_id: int, offer_id: int, body: ConfirmBody, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    deployments.confirm_arrangement(db, p, request_id, offer_id, body.revision)
    return _out(db, p, request_id)


@router.post(
    "/{request_id}/offers/{offer_id}/manifest", status_code=201, response_model=schemas.RequestOut
)
def add_manifest_item(
    request_id: int, offer_id: int, body: schemas.ManifestItemIn, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    deployments.add_manifest_item(db, p, request_id, offer_id, body)
    return _out(db, p, request_id)


@router.post(
    "/{request_id}/offers/{offer_id}/manifest/{item_id}/decision",
    response_model=schemas.RequestOut,
)
def decide_manifest_item(
    request_id: int,
    offer_id: int,
    item_id: int,
    body: schemas.ManifestDecision,
    db: DB,
    p: ApiPrincipal,
) -> schemas.RequestOut:
    deployments.decide_manifest_item(db, p, request_id, offer_id, item_id, body)
    return _out(db, p, request_id)


@router.post(
    "/{request_id}/offers/{offer_id}/movements",
    status_code=201,
    response_model=schemas.RequestOut,
)
def add_movement(
    request_id: int, offer_id: int, body: schemas.MovementIn, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    deployments.add_movement(db, p, request_id, offer_id, body)
    return _out(db, p, request_id)


@router.post("/{request_id}/offers/{offer_id}/status", response_model=schemas.RequestOut)
def deployment_status(
    request_id: int, offer_id: int, body: schemas.StatusBody, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    deployments.set_status(db, p, request_id, offer_id, body)
    return _out(db, p, request_id)


@router.post("/{request_id}/offers/{offer_id}/status-request", response_model=schemas.RequestOut)
def ask_status(request_id: int, offer_id: int, db: DB, p: ApiPrincipal) -> schemas.RequestOut:
    """The requesting side asks the team for a status report (EDXL-RM
    RequestResourceDeploymentStatus to the parties' systems)."""
    deployments.ask_status(db, p, request_id, offer_id)
    return _out(db, p, request_id)


@router.post("/{request_id}/offers/{offer_id}/recall", response_model=schemas.RequestOut)
def recall(
    request_id: int, offer_id: int, body: schemas.Transition, db: DB, p: ApiPrincipal
) -> schemas.RequestOut:
    deployments.recall(db, p, request_id, offer_id, body.reason)
    return _out(db, p, request_id)


@router.get("/{request_id}/events", response_model=list[schemas.EventOut])
def events(
    request_id: int,
    db: DB,
    p: ApiPrincipal,
    after: Annotated[int, Query(ge=0, description="only events after this id")] = 0,
    after_seq: Annotated[
        int | None,
        Query(
            ge=0,
            description="only events committed after this `live_seq`, in commit order: what a "
            "client that has the events up to it can have missed (ids are not in commit order)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> list[schemas.EventOut]:
    """The request's timeline as the caller may see it, in id order, or in commit order with
    `after_seq` (to catch up after a live signal)."""
    req, inv = policy.get_visible(db, p, request_id)
    return views.visible_events(db, p, req, inv, after_id=after, after_seq=after_seq, limit=limit)


@router.get(
    "/{request_id}/live", response_class=live.EventStream, responses=EVENT_STREAM, status_code=200
)
async def live_timeline(
    request_id: int,
    request: Request,
    db: DB,
    p: ApiPrincipal,
    after: After = None,
    last_event_id: LastEventId = None,
) -> live.EventStream:
    """Server-sent events: `event: timeline`, `data: {"request_id", "event_id"}` for each new
    event the caller may see, with the event's `live_seq` as the frame's `id` (read what is new
    from `…/events?after_seq=`); a comment every 15 s."""
    return await live.request_stream(
        request,
        db,
        p,
        request_id,
        after=live.resume_after(last_event_id, after),
        authenticate=_token_check(request),
    )


@router.post("/{request_id}/notes", status_code=201, response_model=list[schemas.EventOut])
def add_note(
    request_id: int, body: schemas.NoteBody, db: DB, p: ApiPrincipal
) -> list[schemas.EventOut]:
    event_id = service.add_note(db, p, request_id, body)
    req, inv = policy.get_visible(db, p, request_id)
    return views.visible_events(db, p, req, inv, after_id=event_id - 1, limit=1)


@router.post("/{request_id}/grants", response_model=schemas.RequestOut)
def grant(request_id: int, body: schemas.GrantBody, db: DB, p: ApiPrincipal) -> schemas.RequestOut:
    answers.grant(db, p, request_id, body)
    return _out(db, p, request_id)


@router.get("/{request_id}/metrics", response_model=schemas.Metrics)
def metrics(request_id: int, db: DB, p: ApiPrincipal) -> schemas.Metrics:
    req, _ = policy.get_visible(db, p, request_id)
    return response_metrics.metrics(db, req)


@notifications_router.get("/notifications", response_model=Page[schemas.NotificationOut])
def list_notifications(
    db: DB, p: ApiPrincipal, page: PageNo = 1, per_page: PerPage = 50, unread: bool = False
) -> dict[str, Any]:
    return inbox.list_notifications(db, p, page=page, per_page=per_page, unread=unread)


@notifications_router.get(
    "/notifications/live", response_class=live.EventStream, responses=EVENT_STREAM, status_code=200
)
async def live_notifications(
    request: Request,
    db: DB,
    p: ApiPrincipal,
    after: After = None,
    last_event_id: LastEventId = None,
) -> live.EventStream:
    """Server-sent events: `event: notification`, `data: {"id", "urgent"}` for each new
    notification of the caller."""
    return await live.notification_stream(
        request,
        db,
        p,
        after=live.resume_after(last_event_id, after),
        authenticate=_token_check(request),
    )


@notifications_router.post("/notifications/{notification_id}/read", status_code=204)
def mark_read(notification_id: int, db: DB, p: ApiPrincipal) -> None:
    inbox.mark_read(db, p, notification_id)


@notifications_router.post("/notifications/read-all", response_model=dict[str, int])
def mark_all_read(db: DB, p: ApiPrincipal) -> dict[str, int]:
    return {"marked": inbox.mark_all_read(db, p)}


@notifications_router.get("/account/preferences", response_model=schemas.Preferences)
def get_preferences(db: DB, p: ApiPrincipal) -> schemas.Preferences:
    return inbox.get_preferences(db, p)


@notifications_router.put("/account/preferences", response_model=schemas.Preferences)
def put_preferences(body: schemas.Preferences, db: DB, p: ApiPrincipal) -> schemas.Preferences:
    return inbox.set_preferences(db, p, body)


@notifications_router.get("/dashboard", response_model=schemas.Dashboard, tags=["requests"])
def dashboard(
    db: DB, p: ApiPrincipal, exercise: Annotated[bool | None, Query()] = None
) -> schemas.Dashboard:
    """Response metrics across requests: every submitted request of the network for the
    support office (figures only), the requests one may see for everyone else."""
    return response_metrics.dashboard(db, p, exercise=exercise)
