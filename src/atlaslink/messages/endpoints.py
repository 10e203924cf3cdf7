"""Standard messages API: import and check messages, the capability value list, partners,
their endpoints, the outbox and the delivery log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response

from atlaslink.errors import Invalid
from atlaslink.messages import inbound, schemas, service, valuelist
from atlaslink.registry.schemas import Page
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(tags=["messages"])

PageNo = Annotated[int, Query(ge=1)]
PerPage = Annotated[int, Query(ge=1, le=200)]


XmlBody = Annotated[bytes, Body(media_type="application/xml")]


def _xml(data: bytes) -> bytes:
    if not data.strip():
        raise Invalid("Send the XML message as the request body.")
    return data


@router.post(
    "/messages",
    status_code=201,
    response_model=schemas.ImportResult,
    summary="Import a standard message (the same MessageID twice changes nothing)",
)
def import_message(data: XmlBody, db: DB, p: ApiPrincipal) -> JSONResponse:
    result = inbound.import_message(db, p, _xml(data))
    return JSONResponse(
        result.model_dump(mode="json"), status_code=200 if result.duplicate else 201
    )


@router.post(
    "/messages/check",
    response_model=schemas.CheckResult,
    summary="Check a message against the schemas and rules, without importing it",
)
def check_message(data: XmlBody, p: ApiPrincipal) -> schemas.CheckResult:
    return inbound.check_document(_xml(data))


@router.get("/messages/valuelists/capability-types", summary="The capability value list")
def capability_types(db: DB, p: ApiPrincipal) -> dict[str, Any]:
    return valuelist.published(db)


@router.get("/partners", response_model=Page[schemas.PartnerOut])
def list_partners(db: DB, p: ApiPrincipal, page: PageNo = 1, per_page: PerPage = 50) -> Any:
    return service.list_partners(db, p, page=page, per_page=per_page)


@router.post("/partners", status_code=201, response_model=schemas.PartnerOut)
def create_partner(body: schemas.PartnerCreate, db: DB, p: ApiPrincipal) -> schemas.PartnerOut:
    partner = service.create_partner(db, p, body)
    return service.describe(db, partner)


@router.get("/partners/{code}", response_model=schemas.PartnerOut)
def get_partner(code: str, db: DB, p: ApiPrincipal) -> schemas.PartnerOut:
    return service.describe(db, service.get_partner(db, p, code))


@router.patch("/partners/{code}", response_model=schemas.PartnerOut)
def update_partner(
    code: str, body: schemas.PartnerUpdate, db: DB, p: ApiPrincipal
) -> schemas.PartnerOut:
    return service.describe(db, service.update_partner(db, p, code, body))


@router.post("/partners/{code}/endpoints", status_code=201, response_model=schemas.PartnerOut)
def add_endpoint(
    code: str, body: schemas.EndpointCreate, db: DB, p: ApiPrincipal
) -> schemas.PartnerOut:
    endpoint, secret = service.add_endpoint(db, p, code, body)
    partner = service.get_partner(db, p, code)
    return service.describe(db, partner, {endpoint.id: secret} if secret else None)


@router.post("/partners/{code}/endpoints/{endpoint_id}/disable", response_model=schemas.PartnerOut)
def disable_endpoint(code: str, endpoint_id: int, db: DB, p: ApiPrincipal) -> schemas.PartnerOut:
    service.set_endpoint_active(db, p, code, endpoint_id, False)
    return service.describe(db, service.get_partner(db, p, code))


@router.post("/partners/{code}/endpoints/{endpoint_id}/enable", response_model=schemas.PartnerOut)
def enable_endpoint(code: str, endpoint_id: int, db: DB, p: ApiPrincipal) -> schemas.PartnerOut:
    service.set_endpoint_active(db, p, code, endpoint_id, True)
    return service.describe(db, service.get_partner(db, p, code))


@router.get("/outbox", response_model=Page[schemas.OutboxOut])
def list_outbox(
    db: DB,
    p: ApiPrincipal,
    page: PageNo = 1,
    per_page: PerPage = 50,
    state: Annotated[str | None, Query(pattern="^(pending|sent|parked)$")] = None,
    partner: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    return service.list_outbox(db, p, page=page, per_page=per_page, state=state, partner=partner)


@router.get("/outbox/{outbox_id}/body", summary="The message as it goes out")
def outbox_body(outbox_id: int, db: DB, p: ApiPrincipal) -> Response:
    m = service.outbox_body(db, p, outbox_id)
    return Response(m.body, media_type="application/xml")


@router.post("/outbox/{outbox_id}/retry", response_model=schemas.OutboxOut)
def retry(outbox_id: int, db: DB, p: ApiPrincipal) -> Any:
    service.retry(db, p, outbox_id)
    page = service.list_outbox(db, p, page=1, per_page=200)
    return next(i for i in page["items"] if i.id == outbox_id)


@router.get("/delivery-attempts", response_model=Page[schemas.AttemptOut])
def attempts(
    db: DB,
    p: ApiPrincipal,
    page: PageNo = 1,
    per_page: PerPage = 50,
    outbox_id: int | None = None,
    failed: bool = False,
) -> Any:
    return service.list_attempts(
        db, p, page=page, per_page=per_page, outbox_id=outbox_id, failed_only=failed
    )
