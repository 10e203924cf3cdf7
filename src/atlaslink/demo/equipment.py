"""Demo equipment: about 330 fictional items across the demo units, with varied sharing, some
maintenance windows and a dozen loans in different states, all made through the services (so
the audit trail, notifications and reservations are real). Idempotent: nothing is added if
the demo items are there already."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import ROLE_PERMISSIONS, Role
from atlaslink.auth.principal import SYSTEM, Principal
from atlaslink.equipment import loans, schemas, service
from atlaslink.equipment.states import LoanStatus
from atlaslink.errors import Conflict
from atlaslink.models import EquipmentItem, Unit, utcnow
from atlaslink.operations import geography
from atlaslink.sharing.policy import Audience

# category, fictional models, weight kg, air-transportable, needs a vehicle, training
_KINDS: tuple[tuple[str, tuple[str, ...], float, bool, bool, str], ...] = (
    ("armoured_vehicle", ("Bastion APC-4", "Ranger MRAP 6x6"), 12500, False, False, "C1 licence"),
    ("breaching_tools", ("Hydra hydraulic kit", "RamPro door set"), 45, True, False, ""),
    ("robot", ("Teodoro EOD-2", "Scout UGV mini"), 320, True, True, "Robot operator, 5 days"),
    ("drone", ("Kestrel Q4 quadcopter", "Heron VTOL"), 9, True, False, "Drone pilot licence A2"),
    ("counter_drone", ("SkyFence CD-7", "Aegis RF jammer"), 180, True, True, "CD operator, 3 d"),
    ("cbrn_detector", ("ChemSense GDA-X", "RadScout 300"), 6, True, False, "CBRN awareness"),
    ("boat", ("RIB Interceptor 9m", "Silent assault kayak set"), 2900, False, True, "Skipper"),
    ("night_vision", ("NV-G4 binocular set x6", "Panoramic NVG x4"), 8, True, False, ""),
    ("thermal_imaging", ("ThermaView handheld", "Mast thermal camera"), 15, True, False, ""),
    ("ballistic_shield", ("Level IV shield x4", "Mobile barrier"), 60, True, False, ""),
)
_AUDIENCES = (
    Audience.NETWORK,
    Audience.NETWORK,
    Audience.LISTED,
    Audience.SUPPORT_OFFICE,
    Audience.MATCHING,
    Audience.OWN_UNIT,
    Audience.NETWORK,
)
ITEMS_PER_UNIT = 7
LOANS = 14
_DEMO_PAIRS = (
    ("AT-ADLER", "DE-FALKE"),
    ("DE-FALKE", "AT-ADLER"),
    ("NL-REIGER", "DE-FALKE"),
    ("AT-ADLER", "NL-REIGER"),
    ("DE-FALKE", "NL-REIGER"),
    ("NL-REIGER", "AT-ADLER"),
)


def unit_principal(unit: Unit, role: Role = Role.UNIT_COMMANDER) -> Principal:
    """The demo acts for a unit as its commander would (audited under this label)."""
    return Principal(
        kind="user",
        label=f"demo:{unit.code}",
        role=role,
        unit_id=unit.id,
        country=unit.country_iso2,
        permissions=ROLE_PERMISSIONS[role],
    )


def load_equipment(session: Session, progress: Callable[[int, int], None] | None = None) -> int:
    if session.scalar(select(EquipmentItem.id).where(EquipmentItem.ref.like("DEMO-%")).limit(1)):
        return 0
    rng = random.Random(20261201)  # noqa: S311  # fictional demo data, not secrets
    units = list(session.scalars(select(Unit).order_by(Unit.id)))
    made: list[tuple[EquipmentItem, Unit]] = []
    today = utcnow().date()
    for n, unit in enumerate(units, start=1):
        for k in range(ITEMS_PER_UNIT):
            cat, models, weight, air, vehicle, training = _KINDS[(n + k) % len(_KINDS)]
            audience = _AUDIENCES[(n * 3 + k) % len(_AUDIENCES)]
            neighbours = sorted(geography.NEIGHBOURS.get(unit.country_iso2, frozenset()))
            sharing = schemas.Sharing(
                audience=audience,
                countries=(neighbours[:3] or ["DE"]) if audience is Audience.LISTED else [],
            )
            quantity = rng.choice((1, 1, 1, 2, 4))
            serials = (
                [f"{unit.code[:2]}{rng.randint(10000, 99999)}-{i + 1}" for i in range(quantity)]
                if rng.random() < 0.5
                else []
            )
            item = service.register_item(
                session,
                SYSTEM,
                schemas.ItemCreate(
                    ref=f"DEMO-{k + 1:02d}",
                    category=cat,
                    model=rng.choice(models),
                    unit=unit.code,
                    quantity=quantity,
                    serial_numbers=serials,
                    weight_kg=round(weight * rng.uniform(0.8, 1.2), 1),
                    air_transportable=air,
                    needs_vehicle=vehicle,
                    operator_training=training,
                    restrictions=(
                        "Export licence needed outside the EU." if rng.random() < 0.2 else ""
                    ),
                    maintenance_due=today + timedelta(days=rng.randint(-10, 200)),
                    sharing=sharing,
                ),
            )
            made.append((item, unit))
        if progress is not None:
            progress(n, len(units))
    _maintenance(session, made, rng, today)
    _loans(session, made, units, rng)
    return len(made)


def _maintenance(
    session: Session, made: list[tuple[EquipmentItem, Unit]], rng: random.Random, today: date
) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for item, unit in rng.sample(made, 25):
        start = now + timedelta(days=rng.randint(3, 60))
        service.add_maintenance(
            session,
            unit_principal(unit),
            item.id,
            schemas.MaintenanceCreate(
                starts_at=start, ends_at=start + timedelta(days=rng.randint(1, 5)), note="service"
            ),
        )


# The states the demo loans are left in, in order.
_PATHS: tuple[tuple[LoanStatus, ...], ...] = (
    (),
    (LoanStatus.RESERVED,),
    (LoanStatus.RESERVED, LoanStatus.ISSUED),
    (LoanStatus.RESERVED, LoanStatus.ISSUED, LoanStatus.IN_TRANSIT, LoanStatus.ON_LOAN),
    (LoanStatus.DECLINED,),
)


def _loans(
    session: Session,
    made: list[tuple[EquipmentItem, Unit]],
    units: list[Unit],
    rng: random.Random,
) -> None:
    shared = [(i, u) for i, u in made if i.audience == Audience.NETWORK.value]
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    handover = {"condition": "good", "signed_owner": "Demo lender", "signed_borrower": "Demo"}
    by_code = {u.code: u for u in units}
    # The first loans are between the units that have demo log-ins, so they show up there.
    pairs = [(by_code[a], by_code[b]) for a, b in _DEMO_PAIRS if a in by_code and b in by_code]
    picks: list[tuple[EquipmentItem, Unit, Unit]] = []
    for owner, borrower in pairs:
        own = [i for i, u in shared if u.id == owner.id and i.id not in {p[0].id for p in picks}]
        if own:
            picks.append((own[0], owner, borrower))
    for item, owner in rng.sample(shared, LOANS - len(picks)):
        if item.id not in {p[0].id for p in picks}:
            picks.append((item, owner, rng.choice([u for u in units if u.id != owner.id])))
    for n, (item, owner, borrower) in enumerate(picks):
        start = now + timedelta(days=rng.randint(2, 40))
        try:
            loan = loans.request_loan(
                session,
                unit_principal(borrower, Role.DUTY_OFFICER),
                item.id,
                schemas.LoanCreate(
                    starts_at=start,
                    ends_at=start + timedelta(days=rng.randint(2, 10)),
                    purpose=("exercise", "training", "operation")[n % 3],
                    purpose_note="Demo loan",
                ),
            )
        except Conflict:
            continue  # that item is in maintenance then
        for target in _PATHS[n % len(_PATHS)]:
            side = (
                unit_principal(borrower) if target is LoanStatus.ON_LOAN else unit_principal(owner)
            )
            extra = handover if target in (LoanStatus.ISSUED, LoanStatus.ON_LOAN) else {}
            loans.step(
                session,
                side,
                loan.id,
                schemas.LoanStep(
                    to=target.value, reason="Needed at home" if n % 5 == 4 else "", **extra
                ),
            )
