"""Which operation an item is reserved for, as a viewer may learn it: an operation loan (made
when an offer with equipment is accepted, ``operations.offer_equipment``) names its request
only to those who may see that request (``operations.policy``); others see a busy period."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.principal import Principal
from atlaslink.equipment import schemas
from atlaslink.models import AssistanceRequest, EquipmentLoan, Offer, OfferEquipment
from atlaslink.operations.policy import involvement


def operation_refs(
    session: Session, viewer: Principal, loans: Iterable[EquipmentLoan | None]
) -> dict[int, schemas.OperationRef]:
    """loan id -> the request it serves, for the operation loans whose request ``viewer``
    may see."""
    ids = sorted(
        {
            loan.id
            for loan in loans
            if loan is not None and loan.purpose in ("operation", "exercise")
        }
    )
    if not ids:
        return {}
    rows = session.execute(
        select(OfferEquipment.loan_id, AssistanceRequest)
        .join(Offer, Offer.id == OfferEquipment.offer_id)
        .join(AssistanceRequest, AssistanceRequest.id == Offer.request_id)
        .where(OfferEquipment.loan_id.in_(ids))
    ).tuples()
    seen: dict[int, bool] = {}
    out: dict[int, schemas.OperationRef] = {}
    for loan_id, req in rows:
        if req.id not in seen:
            seen[req.id] = involvement(session, viewer, req).visible
        if seen[req.id] and loan_id is not None:
            out[loan_id] = schemas.OperationRef(
                request_id=req.id, reference=req.reference, title=req.title
            )
    return out
