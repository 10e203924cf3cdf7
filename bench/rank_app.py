"""The platform's app plus one benchmark-only route: a request line's plain candidate query.

    uvicorn bench.rank_app:create_rank_bench_app --factory

Both measurements of bench/bench_rank_api.py are served by this one app and process:

* ``GET /api/v1/requests/{id}/lines/{n}/candidates``: the real ranking (operations.matching);
* ``GET /bench/requests/{id}/lines/{n}/candidates-plain``: the same authentication
  (``api_principal``), request visibility check, line look-up, middleware and unit-of-work
  transaction, then ``plain_candidates``: every entry of the line's capability in other
  countries fetched with its unit (no sharing, no ranking), answering the first 25.

It is never part of the product: the route exists only in this file.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.app import create_app
from atlaslink.auth.permissions import Permission
from atlaslink.errors import NotFound
from atlaslink.models import AssistanceRequest, CapabilityEntry, RequestLine, Unit
from atlaslink.operations import policy
from atlaslink.web.deps import DB, ApiPrincipal


def plain_candidates(session: Session, req: AssistanceRequest, line: RequestLine) -> list[Any]:
    """The plain candidate query of bench/bench_rank_line.py's baseline: every row fetched."""
    return list(
        session.execute(
            select(
                CapabilityEntry.id,
                CapabilityEntry.unit_id,
                CapabilityEntry.level,
                CapabilityEntry.package_size,
                CapabilityEntry.notice_to_move_hours,
                CapabilityEntry.may_deploy_abroad,
                CapabilityEntry.may_carry_arms_abroad,
                CapabilityEntry.may_carry_explosives_abroad,
                CapabilityEntry.confirmed_on,
                Unit.code,
                Unit.name,
                Unit.country_iso2,
                Unit.latitude,
                Unit.longitude,
                Unit.languages,
            )
            .join(Unit, Unit.id == CapabilityEntry.unit_id)
            .where(
                CapabilityEntry.capability_type_id == line.capability_type_id,
                Unit.country_iso2 != req.requesting_country,
            )
        ).all()
    )


def create_rank_bench_app() -> FastAPI:
    app = create_app()

    @app.get("/bench/requests/{request_id}/lines/{line_no}/candidates-plain", tags=["benchmark"])
    def candidates_plain(request_id: int, line_no: int, db: DB, p: ApiPrincipal) -> dict[str, Any]:
        req, inv = policy.get_visible(db, p, request_id)
        policy.require_requester(p, inv, Permission.REQUESTS_CREATE)
        line = db.scalar(
            select(RequestLine).where(
                RequestLine.request_id == req.id,
                RequestLine.line_no == line_no,
                RequestLine.removed_in_version.is_(None),
            )
        )
        if line is None:
            raise NotFound(f"No open line {line_no} on this request.")
        rows = plain_candidates(db, req, line)
        return {
            "count": len(rows),
            "candidates": [
                {"unit_id": r.unit_id, "unit_code": r.code, "unit_name": r.name, "level": r.level}
                for r in rows[:25]
            ],
        }

    return app
