"""The platform's app plus one benchmark-only route: the unit listing without sharing.

    uvicorn bench.baseline_app:create_bench_app --factory

Both measurements of bench/bench_list_units.py are served by this one app and process:

* ``GET /api/v1/units?page=K&per_page=100``: the real listing, sharing applied;
* ``GET /bench/units-unfiltered?page=K&per_page=100``: the same page from
  ``bench.unfiltered.list_units_unfiltered``: same authentication (``api_principal``), same
  middleware, same unit-of-work transaction, same (cached) directory page and serialisation,
  no sharing step;
* ``GET /bench/units-unfiltered-read?page=K&per_page=100``: the same unfiltered page, which also
  appends the read event such a page owes (it discloses restricted fields to this viewer): the
  cost of the read event without the filter's.

It is never part of the product: the route exists only in this file.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Response

from atlaslink.app import create_app
from atlaslink.audit.service import send_end
from atlaslink.registry.endpoints import plain_json
from atlaslink.registry.repository import UnitFilters
from atlaslink.web.deps import DB, ApiPrincipal
from bench.unfiltered import list_units_unfiltered


def create_bench_app() -> FastAPI:
    app = create_app()

    @app.get("/bench/units-unfiltered", tags=["benchmark"])
    def units_unfiltered(
        db: DB,
        who: ApiPrincipal,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Response:
        # Serialised as the real listing is (plain values, no response validation).
        return plain_json(list_units_unfiltered(db, UnitFilters(), page, per_page))

    @app.get("/bench/units-unfiltered-read", tags=["benchmark"])
    def units_unfiltered_read(
        db: DB,
        who: ApiPrincipal,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Response:
        page_ = list_units_unfiltered(db, UnitFilters(), page, per_page, audited=True)
        send_end(db)  # as the real listing does
        return plain_json(page_)

    return app
