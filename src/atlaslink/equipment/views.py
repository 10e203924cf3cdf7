"""The one place that shapes equipment data for a viewer (API, pages, exports, feeds).

Whether a viewer sees an item at all is decided by ``policy`` (which asks
``sharing.policy``); this module decides what of a visible item, calendar period or loan is
shown: the sharing settings to the owning unit only, who borrowed an item to the two units of
the loan only. Items shown beyond network-wide are noted for the read audit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from atlaslink.audit.service import note_read
from atlaslink.auth.principal import Principal
from atlaslink.equipment import policy, schemas
from atlaslink.equipment.states import OUT, LoanStatus
from atlaslink.models import (
    EquipmentCategory,
    EquipmentItem,
    EquipmentLoan,
    EquipmentLoanEvent,
    EquipmentReservation,
    EquipmentShareTarget,
    Unit,
    utcnow,
)
from atlaslink.registry.taxonomy_seed import display_country
from atlaslink.sharing.policy import Audience


def unit_ref(unit: Unit) -> schemas.UnitRef:
    return schemas.UnitRef(
        id=unit.id, code=unit.code, name=unit.name, country=display_country(unit.country_iso2)
    )


def sharing_of(
    item: EquipmentItem, targets: Sequence[EquipmentShareTarget], units: Mapping[int, Unit]
) -> schemas.Sharing:
    return schemas.Sharing.model_construct(
        audience=Audience(item.audience),
        countries=sorted(t.country_iso2 for t in targets if t.country_iso2),
        units=sorted(units[t.unit_id].code for t in targets if t.unit_id and t.unit_id in units),
    )


def item_out(
    viewer: Principal,
    item: EquipmentItem,
    unit: Unit,
    category: EquipmentCategory,
    *,
    targets: Sequence[EquipmentShareTarget] = (),
    units: Mapping[int, Unit] | None = None,
    distance_km: float | None = None,
    eta_hours: float | None = None,
    actions: Sequence[str] = (),
) -> schemas.Item:
    """A visible item as ``viewer`` receives it (the caller has checked visibility)."""
    if item.audience != Audience.NETWORK.value and not policy.is_owner(viewer, item.unit_id):
        note_read("equipment", item.id, item.unit_id, ["equipment"])
    owner = policy.is_owner(viewer, item.unit_id)
    return schemas.Item(
        id=item.id,
        ref=item.ref,
        unit=unit_ref(unit),
        category=category.code,
        category_name=category.name,
        model=item.model,
        quantity=item.quantity,
        serial_numbers=list(item.serial_numbers or []),
        location_name=item.location_name,
        latitude=item.latitude,
        longitude=item.longitude,
        weight_kg=item.weight_kg,
        length_cm=item.length_cm,
        width_cm=item.width_cm,
        height_cm=item.height_cm,
        air_transportable=item.air_transportable,
        needs_vehicle=item.needs_vehicle,
        operator_training=item.operator_training,
        restrictions=item.restrictions,
        maintenance_due=item.maintenance_due,
        status=item.status,
        notes=item.notes,
        sharing=sharing_of(item, targets, units or {}) if owner else None,
        distance_km=round(distance_km, 1) if distance_km is not None else None,
        eta_hours=round(eta_hours, 1) if eta_hours is not None else None,
        actions=list(actions),
    )


def period_out(
    viewer: Principal,
    reservation: EquipmentReservation,
    loan: EquipmentLoan | None,
    units: Mapping[int, Unit],
    operations: Mapping[int, schemas.OperationRef] | None = None,
) -> schemas.Period:
    """A busy period; its loan (borrower, status) only for the two units of that loan; the
    request an operation loan serves only where ``operations`` (``operation_links``, which
    asks the request's visibility) names it."""
    party = loan is not None and policy.loan_side(viewer, loan) is not None
    borrower = units.get(loan.borrower_unit_id) if loan is not None and party else None
    return schemas.Period(
        id=reservation.id,
        kind="maintenance" if reservation.kind == "maintenance" else "loan",
        starts_at=reservation.starts_at,
        ends_at=reservation.ends_at,
        status=loan.status if loan is not None and party else None,
        loan_id=loan.id if loan is not None and party else None,
        borrower=unit_ref(borrower) if borrower is not None else None,
        note=reservation.note if reservation.kind == "maintenance" or party else "",
        operation=(operations or {}).get(loan.id) if loan is not None else None,
    )


def is_overdue(loan: EquipmentLoan) -> bool:
    return LoanStatus(loan.status) in OUT and loan.ends_at < utcnow()


def loan_out(
    loan: EquipmentLoan,
    item: EquipmentItem,
    category: EquipmentCategory,
    units: Mapping[int, Unit],
    *,
    events: Sequence[tuple[EquipmentLoanEvent, list[int]]] = (),
    actions: Sequence[str] = (),
) -> schemas.Loan:
    """A loan for one of its two units (the caller has checked ``policy.loan_side``)."""
    return schemas.Loan(
        id=loan.id,
        item_id=item.id,
        item_ref=item.ref,
        item_model=item.model,
        category=category.name,
        owner=unit_ref(units[loan.owner_unit_id]),
        borrower=unit_ref(units[loan.borrower_unit_id]),
        purpose=loan.purpose,
        purpose_note=loan.purpose_note,
        starts_at=loan.starts_at,
        ends_at=loan.ends_at,
        status=loan.status,
        overdue=is_overdue(loan),
        requested_by=loan.requested_by,
        decided_by=loan.decided_by,
        decline_reason=loan.decline_reason,
        created_at=loan.created_at,
        events=[
            schemas.LoanEvent(
                id=e.id,
                occurred_at=e.occurred_at,
                from_status=e.from_status,
                to_status=e.to_status,
                actor=e.actor_label,
                condition=e.condition,
                notes=e.notes,
                signed_owner=e.signed_owner,
                signed_borrower=e.signed_borrower,
                photos=photos,
            )
            for e, photos in events
        ],
        actions=list(actions),
    )
