"""Registry API: networks, countries, taxonomy, units, capabilities, sharing agreements, matrix."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic_core import to_json

from atlaslink.audit.service import send_end
from atlaslink.errors import Invalid
from atlaslink.registry import schemas, service
from atlaslink.registry.repository import UnitFilters
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(tags=["registry"])


def plain_json(body: Any) -> Response:
    """A JSON response from plain values, without FastAPI's response validation."""
    return Response(to_json(body), media_type="application/json")


def _blank(value: str | None) -> str | None:
    """Forms send empty fields; an empty filter means "any"."""
    return value.strip() or None if value is not None else None


async def unit_filters(
    q: Annotated[str | None, Query(max_length=100, description="Name, code or base")] = None,
    country: Annotated[str | None, Query(max_length=2, description="ISO 3166-1 code")] = None,
    network: Annotated[str | None, Query(max_length=32)] = None,
    language: Annotated[str | None, Query(max_length=2, description="ISO 639-1 code")] = None,
    capability: Annotated[str | None, Query(max_length=64)] = None,
    min_level: Annotated[str | None, Query(max_length=1, description="0 to 3")] = None,
    kind: Annotated[str | None, Query(description="environment or skill")] = None,
) -> UnitFilters:
    errors = []
    country, language, kind = _blank(country), _blank(language), _blank(kind)
    if country and not (len(country) == 2 and country.isalpha()):
        errors.append({"field": "country", "message": "a two-letter ISO 3166-1 code"})
    if language and not (len(language) == 2 and language.isalpha()):
        errors.append({"field": "language", "message": "a two-letter ISO 639-1 code"})
    if kind and kind not in ("environment", "skill"):
        errors.append({"field": "kind", "message": "environment or skill"})
    level = _blank(min_level)
    if level and level not in ("0", "1", "2", "3"):
        errors.append({"field": "min_level", "message": "a level from 0 to 3"})
    # async (pure checks, no I/O): FastAPI then runs it without a thread-pool hop.
    if errors:
        raise Invalid("Some filters are not valid.", errors=errors)
    return UnitFilters(
        q=_blank(q),
        country=country.upper() if country else None,
        network=_blank(network),
        language=language.lower() if language else None,
        capability=_blank(capability),
        min_level=int(level) if level else None,
        environment=kind,
    )


Filters = Annotated[UnitFilters, Depends(unit_filters)]
PageNo = Annotated[int, Query(ge=1)]
PerPage = Annotated[int, Query(ge=1, le=500)]


@router.get("/networks", response_model=schemas.Page[schemas.Network])
def networks(
    db: DB, who: ApiPrincipal, page: PageNo = 1, per_page: PerPage = 50
) -> schemas.Page[schemas.Network]:
    return schemas.Page[schemas.Network](
        **service.paginate(service.list_networks(db), page, per_page)
    )


@router.post("/networks", response_model=schemas.Network, status_code=201)
def create_network(data: schemas.NetworkCreate, db: DB, who: ApiPrincipal) -> schemas.Network:
    service.create_network(db, who, data)
    return next(n for n in service.list_networks(db) if n.code == data.code)


@router.put("/networks/{code}/members/{iso2}", response_model=schemas.Network)
def put_member(
    code: str, iso2: str, data: schemas.Membership, db: DB, who: ApiPrincipal
) -> schemas.Network:
    service.set_member(db, who, code, iso2, data.voting)
    return next(n for n in service.list_networks(db) if n.code == code)


@router.delete("/networks/{code}/members/{iso2}", response_model=schemas.Network)
def delete_member(code: str, iso2: str, db: DB, who: ApiPrincipal) -> schemas.Network:
    service.set_member(db, who, code, iso2, None)
    return next(n for n in service.list_networks(db) if n.code == code)


@router.get("/countries", response_model=schemas.Page[schemas.Country])
def countries(
    db: DB, who: ApiPrincipal, page: PageNo = 1, per_page: PerPage = 100
) -> schemas.Page[schemas.Country]:
    return schemas.Page[schemas.Country](
        **service.paginate(service.list_countries(db), page, per_page)
    )


@router.post("/countries", response_model=schemas.Country, status_code=201)
def create_country(data: schemas.CountryCreate, db: DB, who: ApiPrincipal) -> schemas.Country:
    service.create_country(db, who, data)
    return next(c for c in service.list_countries(db) if c.iso2 == data.iso2)


@router.get("/taxonomy", response_model=schemas.Taxonomy)
def taxonomy(db: DB, who: ApiPrincipal, include_retired: bool = False) -> schemas.Taxonomy:
    return service.taxonomy(db, include_retired)


@router.post("/taxonomy/types", response_model=schemas.CapabilityType, status_code=201)
def create_type(
    data: schemas.CapabilityTypeCreate, db: DB, who: ApiPrincipal
) -> schemas.CapabilityType:
    service.create_type(db, who, data)
    return next(t for t in service.taxonomy(db).types if t.code == data.code)


@router.patch("/taxonomy/types/{code}", response_model=schemas.CapabilityType)
def update_type(
    code: str, data: schemas.CapabilityTypeUpdate, db: DB, who: ApiPrincipal
) -> schemas.CapabilityType:
    service.update_type(db, who, code, data)
    return next(t for t in service.taxonomy(db, include_retired=True).types if t.code == code)


@router.get("/units", response_model=schemas.Page[schemas.UnitSummary])
def list_units(
    db: DB, who: ApiPrincipal, f: Filters, page: PageNo = 1, per_page: PerPage = 50
) -> Response:
    # The hottest endpoint: the page is built as plain values and serialised once, while the
    # read event's durable commit is on its way (send_end; waited for before the response).
    body = service.list_units_page(db, who, f, page, per_page)
    send_end(db)
    return plain_json(body)


@router.post("/units", response_model=schemas.UnitDetail, status_code=201)
def create_unit(data: schemas.UnitCreate, db: DB, who: ApiPrincipal) -> schemas.UnitDetail:
    unit = service.create_unit(db, who, data)
    return service.get_unit(db, who, unit.id)


@router.get("/units/{unit_id}", response_model=schemas.UnitDetail)
def get_unit(unit_id: int, db: DB, who: ApiPrincipal) -> schemas.UnitDetail:
    return service.get_unit(db, who, unit_id)


@router.patch("/units/{unit_id}", response_model=schemas.UnitDetail)
def update_unit(
    unit_id: int, data: schemas.UnitUpdate, db: DB, who: ApiPrincipal
) -> schemas.UnitDetail:
    service.update_unit(db, who, unit_id, data)
    return service.get_unit(db, who, unit_id)


@router.put("/units/{unit_id}/capabilities/{type_code}", response_model=schemas.Capability)
def put_capability(
    unit_id: int, type_code: str, data: schemas.CapabilityWrite, db: DB, who: ApiPrincipal
) -> schemas.Capability:
    service.put_capability(db, who, unit_id, type_code, data)
    return next(
        c for c in service.get_unit(db, who, unit_id).capabilities if c.type_code == type_code
    )


@router.delete("/units/{unit_id}/capabilities/{type_code}", status_code=204)
def delete_capability(unit_id: int, type_code: str, db: DB, who: ApiPrincipal) -> Response:
    service.delete_capability(db, who, unit_id, type_code)
    return Response(status_code=204)


@router.post("/units/{unit_id}/capabilities/confirm")
def confirm(unit_id: int, db: DB, who: ApiPrincipal) -> dict[str, int]:
    return {"confirmed": service.confirm_capabilities(db, who, unit_id)}


@router.get("/units/{unit_id}/sharing", response_model=schemas.SharingAgreementIO)
def get_sharing(unit_id: int, db: DB, who: ApiPrincipal) -> schemas.SharingAgreementIO:
    return service.get_sharing(db, who, unit_id)


@router.put("/units/{unit_id}/sharing", response_model=schemas.SharingAgreementIO)
def put_sharing(
    unit_id: int, data: schemas.SharingAgreementIO, db: DB, who: ApiPrincipal
) -> schemas.SharingAgreementIO:
    return service.set_sharing(db, who, unit_id, data)


@router.get("/matrix", response_model=schemas.Matrix)
def matrix(
    db: DB, who: ApiPrincipal, f: Filters, page: PageNo = 1, per_page: PerPage = 50
) -> schemas.Matrix:
    return service.matrix(db, who, f, page, per_page)
