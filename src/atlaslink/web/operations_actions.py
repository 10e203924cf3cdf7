"""What the forms of the operation pages do. Each form posts to one action; the action parses
the form into the API's body (``operations_forms``), calls the same service the API calls and
answers with a redirect (post/redirect/get). A refused action changes nothing: it runs in a
savepoint, and the page is shown again with the reasons. Forms that create something carry a
one-time key, so a double click or a resent form does it once."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from atlaslink.auth.principal import Principal
from atlaslink.errors import Conflict, DomainError, Invalid, NotFound
from atlaslink.models import IdempotencyKey
from atlaslink.operations import answers, deployments, schemas, service, views
from atlaslink.web.deps import DB, Page, PageAuth
from atlaslink.web.forms import check_csrf, redirect
from atlaslink.web.operations_forms import (
    build,
    errors_of,
    number,
    offer_lines,
    request_body,
    status_of,
    text,
    when,
)
from atlaslink.web.operations_pages import operation_page, request_form

router = APIRouter(include_in_schema=False)

# An action returns the message shown after the redirect and the part of the page to show.
Outcome = tuple[str, str]
RequestAction = Callable[[Session, Principal, int, FormData], Outcome]
OfferAction = Callable[[Session, Principal, int, int, FormData], Outcome]
_KEY = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def _once(db: Session, p: Principal, form: FormData, run: Callable[[], str]) -> str:
    """Run ``run`` (which returns where to go next) once per form key."""
    key = text(form, "form_key")
    if not _KEY.match(key) or p.user_id is None:
        return run()
    stored = f"page:{key}"
    seen = db.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == p.user_id, IdempotencyKey.key == stored
        )
    )
    if seen is not None:
        return str(seen.response["location"])
    location = run()
    db.add(
        IdempotencyKey(
            user_id=p.user_id,
            key=stored,
            fingerprint="page-form",
            status_code=303,
            response={"location": location},
        )
    )
    try:
        db.flush()
    except IntegrityError as exc:
        raise Conflict("This form was sent twice at the same time; reload the page.") from exc
    return location


def _after(request_id: int, outcome: Outcome) -> str:
    message, anchor = outcome
    return f"/requests/{request_id}?saved={quote(message)}#{anchor}"


# --- request actions ----------------------------------------------------------------------


def _submit(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    req = service.submit(db, p, rid)
    if req.status == "NATIONAL_APPROVAL":
        return "Sent to your national contact point for approval", "top"
    return ("Pre-alert issued" if req.kind == "pre_alert" else "Request submitted"), "top"


def _approve(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    service.decide_national(db, p, rid, approve=True, reason=text(form, "reason"))
    return "National approval given: the request is submitted", "top"


def _send_back(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    service.decide_national(db, p, rid, approve=False, reason=text(form, "reason"))
    return "Sent back to the requester", "top"


def _cancel(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    service.cancel(db, p, rid, text(form, "reason"))
    return "Cancelled", "top"


def _stand_down(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    service.stand_down(db, p, rid, text(form, "reason"))
    return "Operation stood down: teams are told to return", "top"


def _close(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    body = build(schemas.CloseBody, {"debrief": text(form, "debrief")}, [])
    service.close(db, p, rid, body.debrief)
    return "Closed: the after-action report is final", "top"


def _address(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    ids = [int(v) for v in form.getlist("unit_id") if isinstance(v, str) and v.isdigit()]
    body = build(
        schemas.AddressBody, {"unit_ids": ids, "next_ring": text(form, "next_ring") == "1"}, []
    )
    made = answers.address(db, p, rid, body)
    return f"Sent to {len(made)} unit{'s' if len(made) != 1 else ''}", "addressees"


def _acknowledge(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    answers.acknowledge(db, p, rid)
    return "Acknowledged: the requester sees that you are on it", "answer"


def _answer(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    problems: list[dict[str, str]] = []
    choice = text(form, "answer")
    data = {
        "answer": choice,
        "reason": text(form, "reason"),
        "lines": offer_lines(form, "qty", problems) if choice == "accept" else [],
        "nature": [n for n in form.getlist("nature") if isinstance(n, str) and n],
        "package": text(form, "package"),
        "eta_at": when(form, "eta_at", problems),
        "conditions": text(form, "conditions"),
        "costs": text(form, "costs"),
        "equipment": [
            int(v) for v in form.getlist("equipment") if isinstance(v, str) and v.isdigit()
        ],
        "equipment_until": when(form, "equipment_until", problems),
    }
    body = build(schemas.AnswerBody, data, problems)
    answers.answer(db, p, rid, body)
    words = {
        "accept": "Offer sent",
        "refuse": "Refusal recorded",
        "counter_propose": "Proposal sent",
        "unable_to_fill": "Recorded: unable to fill",
    }
    return words.get(choice, "Answer recorded"), "offers"


def _note(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    body = build(
        schemas.NoteBody, {"text": text(form, "text"), "pinned": text(form, "pinned") == "1"}, []
    )
    service.add_note(db, p, rid, body)
    return "Note added to the timeline", "timeline"


def _grant(db: Session, p: Principal, rid: int, form: FormData) -> Outcome:
    problems: list[dict[str, str]] = []
    data = {
        "grantee": text(form, "grantee"),
        "country": text(form, "country") or None,
        "unit_id": number(form, "unit_id", problems),
    }
    answers.grant(db, p, rid, build(schemas.GrantBody, data, problems))
    return "Visibility granted", "sharing"


REQUEST_ACTIONS: dict[str, RequestAction] = {
    "submit": _submit,
    "approve": _approve,
    "return": _send_back,
    "cancel": _cancel,
    "stand-down": _stand_down,
    "close": _close,
    "address": _address,
    "acknowledge": _acknowledge,
    "answer": _answer,
    "notes": _note,
    "grants": _grant,
}
_CREATED = {
    "DRAFT": "Draft saved",
    "NATIONAL_APPROVAL": "Sent to your national contact point for approval",
    "SUBMITTED": "Submitted: now ask units (next ring, or choose from the ranking)",
    "ALERTED": "Pre-alert issued: address the units that should know",
}
# Actions that create something: a repeated form does them once.
_ONCE = frozenset({"answer", "accept"})


# --- offer actions --------------------------------------------------------------------------


def _accept(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    problems: list[dict[str, str]] = []
    data = {
        "expected_lock": number(form, "expected_lock", problems),
        "lines": offer_lines(form, "take", problems) if text(form, "partial") == "1" else [],
    }
    answers.accept_offer(db, p, rid, oid, build(schemas.AcceptBody, data, problems))
    return "Offer accepted: agree the arrangements with the unit", f"offer-{oid}"


def _decline(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    answers.decline_offer(db, p, rid, oid, text(form, "reason"))
    return "Offer declined", f"offer-{oid}"


def _withdraw(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    answers.withdraw_offer(db, p, rid, oid, text(form, "reason"))
    return "Offer withdrawn", f"offer-{oid}"


def _arrangement(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    fields = ("command", "liaison_officer", "liaison_contact", "costs", "liability", "notes")
    data = {k: text(form, k) for k in fields}
    data["working_language"] = text(form, "working_language").lower() or "en"
    deployments.update_arrangement(db, p, rid, oid, build(schemas.ArrangementBody, data, []))
    return "Arrangements saved: both sides confirm the new revision", f"offer-{oid}"


def _confirm(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    problems: list[dict[str, str]] = []
    revision = number(form, "revision", problems)
    if revision is None:
        raise Invalid(
            "Say which revision you confirm.",
            errors=problems or [{"field": "revision", "message": "required"}],
        )
    deployments.confirm_arrangement(db, p, rid, oid, revision)
    return "Arrangements confirmed", f"offer-{oid}"


def _manifest(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    problems: list[dict[str, str]] = []
    data = {
        "category": text(form, "category"),
        "description": text(form, "description"),
        "quantity": number(form, "quantity", problems) or 1,
        "serial_numbers": text(form, "serial_numbers"),
    }
    deployments.add_manifest_item(db, p, rid, oid, build(schemas.ManifestItemIn, data, problems))
    return "Item declared: the host approves or prohibits it", f"offer-{oid}"


def _decide(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    problems: list[dict[str, str]] = []
    item_id = number(form, "item_id", problems)
    body = build(
        schemas.ManifestDecision,
        {"decision": text(form, "decision"), "note": text(form, "note")},
        problems,
    )
    if item_id is None:
        raise NotFound("No such manifest item.")
    deployments.decide_manifest_item(db, p, rid, oid, item_id, body)
    return f"Item {body.decision}", f"offer-{oid}"


def _movement(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    problems: list[dict[str, str]] = []
    data = {
        "kind": text(form, "kind"),
        "country": text(form, "country"),
        "reference": text(form, "reference"),
        "route": text(form, "route"),
        "valid_from": when(form, "valid_from", problems),
        "valid_to": when(form, "valid_to", problems),
        "status": text(form, "status") or "requested",
        "note": text(form, "note"),
    }
    deployments.add_movement(db, p, rid, oid, build(schemas.MovementIn, data, problems))
    return "Movement recorded", f"offer-{oid}"


def _status(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    body = build(
        schemas.StatusBody, {"status": text(form, "status"), "note": text(form, "note")}, []
    )
    deployments.set_status(db, p, rid, oid, body)
    return f"Team status: {body.status.replace('_', ' ').lower()}", f"offer-{oid}"


def _recall(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    deployments.recall(db, p, rid, oid, text(form, "reason"))
    return "Team recalled", f"offer-{oid}"


def _ask_status(db: Session, p: Principal, rid: int, oid: int, form: FormData) -> Outcome:
    deployments.ask_status(db, p, rid, oid)
    return "Status report asked", f"offer-{oid}"


OFFER_ACTIONS: dict[str, OfferAction] = {
    "accept": _accept,
    "decline": _decline,
    "withdraw": _withdraw,
    "arrangement": _arrangement,
    "confirm": _confirm,
    "manifest": _manifest,
    "decide": _decide,
    "movements": _movement,
    "status": _status,
    "recall": _recall,
    "status-request": _ask_status,
}


# --- routes ---------------------------------------------------------------------------------


async def _form(request: Request, page: PageAuth) -> FormData:
    form = await request.form()
    check_csrf(page, str(form.get("csrf_token", "")))
    return form


@router.post("/requests/new")
async def create_request(request: Request, page: Page, db: DB) -> Response:
    form = await _form(request, page)
    return await run_in_threadpool(_create, request, page, db, form)


def _create(request: Request, page: PageAuth, db: Session, form: FormData) -> Response:
    parsed = request_body(form)
    try:
        with db.begin_nested():
            body = build(schemas.RequestCreate, parsed["data"], parsed["problems"])

            def run() -> str:
                req = service.create_request(db, page.principal, body)
                done = _CREATED.get(req.status, "Saved")
                return f"/requests/{req.id}?saved={quote(done)}"

            location = _once(db, page.principal, form, run)
    except DomainError as exc:
        shown = parsed["data"] | {"flag": text(form, "exercise")}
        return request_form(
            request, page, db, body=shown, errors=errors_of(exc), status=status_of(exc)
        )
    return redirect(location)


@router.post("/requests/{request_id}/edit")
async def amend_request(request: Request, request_id: int, page: Page, db: DB) -> Response:
    form = await _form(request, page)
    return await run_in_threadpool(_amend, request, page, db, request_id, form)


def _amend(
    request: Request, page: PageAuth, db: Session, request_id: int, form: FormData
) -> Response:
    parsed = request_body(form, amend=True)
    try:
        with db.begin_nested():
            body = build(schemas.RequestAmend, parsed["data"], parsed["problems"])
            req = service.amend(db, page.principal, request_id, body)
            saved = "Draft saved" if req.status == "DRAFT" else f"Amended: version {req.version}"
    except DomainError as exc:
        existing = views.get_request(db, page.principal, request_id)
        shown = parsed["data"] | {"flag": text(form, "exercise"), "kind": existing.kind}
        return request_form(
            request,
            page,
            db,
            body=shown,
            errors=errors_of(exc),
            status=status_of(exc),
            existing=existing,
        )
    return redirect(f"/requests/{request_id}?saved={quote(saved)}")


@router.post("/requests/{request_id}/{action}")
async def request_action(
    request: Request, request_id: int, action: str, page: Page, db: DB
) -> Response:
    handler = REQUEST_ACTIONS.get(action)
    if handler is None:
        raise NotFound(f"There is no action {action!r} on a request.")
    form = await _form(request, page)

    def run(db: Session) -> str:
        return _after(request_id, handler(db, page.principal, request_id, form))

    return await run_in_threadpool(_act, request, page, db, request_id, form, action, run)


@router.post("/requests/{request_id}/offers/{offer_id}/{action}")
async def offer_action(
    request: Request, request_id: int, offer_id: int, action: str, page: Page, db: DB
) -> Response:
    handler = OFFER_ACTIONS.get(action)
    if handler is None:
        raise NotFound(f"There is no action {action!r} on an offer.")
    form = await _form(request, page)

    def run(db: Session) -> str:
        return _after(request_id, handler(db, page.principal, request_id, offer_id, form))

    return await run_in_threadpool(_act, request, page, db, request_id, form, action, run)


def _act(
    request: Request,
    page: PageAuth,
    db: Session,
    request_id: int,
    form: FormData,
    action: str,
    run: Callable[[Session], str],
) -> Response:
    try:
        with db.begin_nested():
            if action in _ONCE:
                location = _once(db, page.principal, form, lambda: run(db))
            else:
                location = run(db)
    except DomainError as exc:
        if isinstance(exc, NotFound) and exc.detail.startswith("No request"):
            raise
        return operation_page(
            request,
            page,
            db,
            request_id,
            errors=errors_of(exc),
            status=status_of(exc),
            form={
                "action": action,
                **{k: v for k, v in form.items() if k != "csrf_token"},
                "equipment": [v for v in form.getlist("equipment") if isinstance(v, str)],
            },
        )
    return redirect(location)
