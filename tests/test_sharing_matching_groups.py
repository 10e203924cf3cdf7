"""units.matching_groups: what the matching engine may use of each unit, derived from its
sharing agreement and rewritten with it (sharing.matching_groups), on the real test database."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.principal import MATCHING_ENGINE, SYSTEM
from atlaslink.models import Unit
from atlaslink.registry import service
from atlaslink.registry.schemas import SharingAgreementIO, SharingRuleIO, UnitCreate
from atlaslink.sharing import matching_groups
from atlaslink.sharing.policy import Audience, FieldGroup, load_agreements, visible_groups

G = FieldGroup


def stored(db: Session, unit_id: int) -> frozenset[FieldGroup]:
    value = db.scalar(select(Unit.matching_groups).where(Unit.id == unit_id))
    assert value is not None
    return matching_groups.groups(value)


def engine_view(db: Session, unit_id: int) -> frozenset[FieldGroup]:
    return visible_groups(MATCHING_ENGINE, load_agreements(db, [unit_id])[unit_id])


def share(db: Session, unit_id: int, **audiences: str) -> None:
    rules = {
        g: SharingRuleIO(
            audience=Audience(audiences.get(g.value, "network")),
            countries=["DE"] if audiences.get(g.value) == "listed" else [],
        )
        for g in FieldGroup
    }
    service.set_sharing(db, SYSTEM, unit_id, SharingAgreementIO(rules=rules))


def test_mask_and_groups_are_inverse() -> None:
    for value in range(64):
        assert matching_groups.mask(matching_groups.groups(value)) == value
    assert matching_groups.mask([G.EXISTENCE, G.LEVEL]) == 3


def test_every_unit_of_the_demo_network_has_the_groups_its_agreement_gives_the_engine(
    db: Session,
) -> None:
    ids = list(db.scalars(select(Unit.id)))
    agreements = load_agreements(db, ids)
    have = dict(db.execute(select(Unit.id, Unit.matching_groups)).tuples().all())
    want = {i: matching_groups.mask(visible_groups(MATCHING_ENGINE, agreements[i])) for i in ids}
    assert have == want
    assert len(set(have.values())) > 2  # the demo agreements differ


def test_a_new_unit_gives_the_engine_nothing_and_set_sharing_rewrites_the_groups(
    db: Session,
) -> None:
    unit = service.create_unit(
        db,
        SYSTEM,
        UnitCreate(code="BE-MG-TEST", name="Groups test", country="BE", base_location="Gent"),
    )
    assert stored(db, unit.id) == frozenset() == engine_view(db, unit.id)

    share(db, unit.id, level="matching", package="own_unit", notice="listed")
    assert stored(db, unit.id) == engine_view(db, unit.id)
    assert stored(db, unit.id) == {G.EXISTENCE, G.LEVEL, G.NOTICE, G.TRANSPORT, G.CONTACTS}

    # Without the existence of its capabilities, none of their details count either.
    share(db, unit.id, existence="own_unit", level="network")
    assert stored(db, unit.id) == engine_view(db, unit.id) == {G.TRANSPORT, G.CONTACTS}

    share(db, unit.id, **dict.fromkeys((g.value for g in FieldGroup), "own_unit"))
    assert stored(db, unit.id) == frozenset()


def test_refresh_repairs_units_whose_rules_were_written_directly(db: Session) -> None:
    ids = list(db.scalars(select(Unit.id).limit(5)))
    db.execute(Unit.__table__.update().where(Unit.id.in_(ids)).values(matching_groups=0))
    edited = dict(
        db.execute(select(Unit.id, Unit.updated_at).where(Unit.id.in_(ids))).tuples().all()
    )
    matching_groups.refresh(db, ids)
    for unit_id in ids:
        assert stored(db, unit_id) == engine_view(db, unit_id)
    # A derived value: the unit itself was not edited.
    after = dict(
        db.execute(select(Unit.id, Unit.updated_at).where(Unit.id.in_(ids))).tuples().all()
    )
    assert after == edited
