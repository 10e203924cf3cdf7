"""Country rules and bilateral agreements API (``operations.rules``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from atlaslink.operations import rules, schemas
from atlaslink.registry.endpoints import PageNo, PerPage
from atlaslink.registry.schemas import Page
from atlaslink.registry.service import paginate
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(tags=["country rules"])


@router.get("/country-rules", response_model=Page[schemas.CountryRules])
def list_rules(
    db: DB,
    p: ApiPrincipal,
    only_set: Annotated[bool, Query(description="only countries with a rule set")] = False,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> Any:
    return paginate(rules.list_rules(db, p, only_set=only_set), page, per_page)


@router.get("/countries/{iso}/rules", response_model=schemas.CountryRules)
def get_rules(iso: str, db: DB, p: ApiPrincipal) -> schemas.CountryRules:
    return rules.get_rules(db, p, iso)


@router.put("/countries/{iso}/rules", response_model=schemas.CountryRules)
def set_rules(
    iso: str, body: schemas.CountryRulesUpdate, db: DB, p: ApiPrincipal
) -> schemas.CountryRules:
    return rules.set_rules(db, p, iso, body)


@router.get("/bilateral-agreements", response_model=Page[schemas.AgreementOut])
def list_agreements(
    db: DB,
    p: ApiPrincipal,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
    country: Annotated[str | None, Query(max_length=2)] = None,
    in_force: bool | None = None,
) -> dict[str, Any]:
    return rules.list_agreements(
        db, p, page=page, per_page=per_page, country=country or None, in_force=in_force
    )


@router.post("/bilateral-agreements", status_code=201, response_model=schemas.AgreementOut)
def add_agreement(body: schemas.AgreementIn, db: DB, p: ApiPrincipal) -> schemas.AgreementOut:
    return rules.add_agreement(db, p, body)


@router.get("/bilateral-agreements/{agreement_id}", response_model=schemas.AgreementOut)
def get_agreement(agreement_id: int, db: DB, p: ApiPrincipal) -> schemas.AgreementOut:
    return rules.get_agreement(db, p, agreement_id)


@router.post("/bilateral-agreements/{agreement_id}/retire", response_model=schemas.AgreementOut)
def retire_agreement(
    agreement_id: int, body: schemas.AgreementRetire, db: DB, p: ApiPrincipal
) -> schemas.AgreementOut:
    return rules.retire_agreement(db, p, agreement_id, body)
