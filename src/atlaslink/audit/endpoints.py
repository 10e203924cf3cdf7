"""Audit API: the log, filtered to what the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from atlaslink.audit.policy import AuditFilters, AuditPage, readable
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditPage)
def audit_log(
    db: DB,
    who: ApiPrincipal,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    unit_id: int | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    return readable(db, who, AuditFilters(action, object_type, actor, unit_id), page, per_page)
