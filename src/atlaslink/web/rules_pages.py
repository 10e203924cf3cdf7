"""The country rules page: each country's rules and the bilateral agreements (operations.rules)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from atlaslink.auth.permissions import Permission
from atlaslink.errors import DomainError, Invalid
from atlaslink.operations import rules, schemas
from atlaslink.web.deps import DB, Page
from atlaslink.web.forms import check_csrf, redirect
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)
PER_PAGE = 20


def _errors(exc: Exception) -> list[dict[str, Any]]:
    if isinstance(exc, ValidationError):
        return [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
    if isinstance(exc, DomainError):
        return exc.errors or [{"message": exc.detail}]
    return [{"message": str(exc)}]


def _page(
    request: Request,
    page: Page,
    db: DB,
    *,
    p: int = 1,
    edit: str | None = None,
    country: str | None = None,
    status: int = 200,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    principal = page.principal
    all_rules = rules.list_rules(db, principal)
    editable = [r for r in all_rules if r.editable]
    target = None
    if editable:
        wanted = rules.iso_of(edit) if edit else (principal.country or editable[0].iso2)
        target = next((r for r in editable if r.iso2 == wanted), editable[0])
    return render(
        request,
        "rules.html",
        status,
        rules=all_rules,
        labels=rules.RULE_LABELS,
        editable=editable,
        target=target,
        agreements=rules.list_agreements(
            db, principal, page=p, per_page=PER_PAGE, country=country or None
        ),
        country=(country or "").upper(),
        may_add=principal.can(Permission.COUNTRY_RULES_EDIT)
        or principal.can(Permission.COUNTRY_RULES_EDIT_OWN),
        errors=errors or [],
        flash=request.query_params.get("saved"),
    )


@router.get("/network/rules", response_class=HTMLResponse)
def rules_page(
    request: Request,
    page: Page,
    db: DB,
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
    edit: Annotated[str | None, Query(max_length=2)] = None,
    country: Annotated[str | None, Query(max_length=2)] = None,
) -> Response:
    return _page(request, page, db, p=p, edit=edit or None, country=country or None)


@router.post("/network/rules")
def rules_submit(
    request: Request,
    page: Page,
    db: DB,
    action: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    national_approval_required: Annotated[str, Form()] = "",
    requires_bilateral_agreement: Annotated[str, Form()] = "",
    prohibits_foreign_arms: Annotated[str, Form()] = "",
    prohibits_foreign_explosives: Annotated[str, Form()] = "",
    excluded_from_2008_617: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    country_a: Annotated[str, Form()] = "",
    country_b: Annotated[str, Form()] = "",
    valid_from: Annotated[str, Form()] = "",
    valid_to: Annotated[str, Form()] = "",
    agreement_id: Annotated[int | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    try:
        if action == "rules":
            # A form sends the whole state: an unticked box is "no".
            saved = rules.set_rules(
                db,
                page.principal,
                country,
                schemas.CountryRulesUpdate(
                    national_approval_required=national_approval_required == "1",
                    requires_bilateral_agreement=requires_bilateral_agreement == "1",
                    prohibits_foreign_arms=prohibits_foreign_arms == "1",
                    prohibits_foreign_explosives=prohibits_foreign_explosives == "1",
                    excluded_from_2008_617=excluded_from_2008_617 == "1",
                    note=note,
                ),
            )
            return redirect(
                f"/network/rules?edit={saved.iso2}&saved=Rules+of+{saved.country}+saved"
            )
        if action == "agreement":
            added = rules.add_agreement(
                db,
                page.principal,
                schemas.AgreementIn.model_validate(
                    {
                        "name": name,
                        "country_a": country_a,
                        "country_b": country_b,
                        "valid_from": valid_from or None,
                        "valid_to": valid_to or None,
                        "note": note,
                    }
                ),
            )
            return redirect(f"/network/rules?saved=Agreement+{added.id}+recorded")
        if action == "retire" and agreement_id is not None:
            retired = rules.retire_agreement(
                db,
                page.principal,
                agreement_id,
                schemas.AgreementRetire.model_validate(
                    {"valid_to": valid_to or None, "reason": reason}
                ),
            )
            return redirect(f"/network/rules?saved=Agreement+{retired.id}+retired")
        raise Invalid("Unknown action.")
    except (ValidationError, DomainError) as exc:
        db.rollback()
        return _page(
            request,
            page,
            db,
            edit=country or None,
            status=getattr(exc, "status", 422),
            errors=_errors(exc),
        )
