"""The ranking over the per-process columns (operations.matching_columns, the default) gives
exactly the ranking of the SQL statement (the reference, ``scoring="sql"``): order, factors,
exclusions, counts, what is shown, on hand-built and randomised data, and after every kind of
registry write that the columns copy.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import SYSTEM, Principal
from atlaslink.models import (
    AssistanceRequest,
    BilateralAgreement,
    CapabilityEntry,
    CapabilityType,
    RequestLine,
    TransportAsset,
    Unit,
)
from atlaslink.operations import matching, matching_columns
from atlaslink.registry import service as registry_service
from atlaslink.registry import version as registry_version
from atlaslink.registry.schemas import SharingAgreementIO, SharingRuleIO
from atlaslink.sharing.policy import Audience, FieldGroup
from tests.test_operations_matching import (
    AMSTERDAM,
    ANTWERP,
    BRUSSELS,
    LISBON,
    MUNICH,
    NOW,
    PARIS,
    TODAY,
    World,
    _offer,
    code,
    world,
)

__all__ = ["world"]  # the fixture, used by name

VIEWERS = {
    "support office": Principal.for_user(
        user_id=1_000_010, username="so", role=Role.SUPPORT_OFFICE, unit_id=None, country=None
    ),
    "ncp.be": Principal.for_user(
        user_id=1_000_011, username="ncp.be", role=Role.NATIONAL_CONTACT, unit_id=None, country="BE"
    ),
    "observer": Principal.for_user(
        user_id=1_000_012, username="obs", role=Role.OBSERVER, unit_id=None, country=None
    ),
}


def same_ranking(
    world: World,
    req: AssistanceRequest,
    line: RequestLine,
    *,
    viewer: Principal | None = None,
    limit: int = 25,
) -> matching.Ranking:
    """Rank both ways and assert that the two are identical; return the ranking."""
    who = viewer or world.viewer()
    by_columns = matching.rank_line(world.db, who, req, line, now=NOW, limit=limit)
    by_sql = matching.rank_line(world.db, who, req, line, now=NOW, limit=limit, scoring="sql")
    assert by_columns.model_dump() == by_sql.model_dump()
    return by_columns


def hand_built(world: World) -> dict[str, Unit]:
    days = 90
    w = world
    units = {
        "near": w.unit("NEAR", "BE", ANTWERP, package=4, notice=30, languages=("fr", "en")),
        "lisbon": w.unit("LIS", "PT", LISBON, transport=("aircraft",), confirmed_days_ago=days + 1),
        "paris": w.unit("PAR", "FR", PARIS, transport=("helicopter", "aircraft"), notice=None),
        "munich": w.unit("MUN", "DE", MUNICH, package=None, languages=("de",)),
        "nowhere": w.unit("NOWHERE", "BE", None),
        "hidden": w.unit(
            "HID",
            "PT",
            LISBON,
            transport=("aircraft",),
            notice=0,
            sharing={"package": "own_unit", "notice": "own_unit", "transport": "own_unit"},
        ),
        "low": w.unit("LOW", "FR", PARIS, level=1, sharing={"level": "matching"}),
        "quiet": w.unit("QUIET", "BE", BRUSSELS, level=1, sharing={"existence": "matching"}),
        "secret": w.unit("SECRET", "BE", AMSTERDAM, sharing={"existence": "own_unit"}),
        "nolevel": w.unit("NOLEVEL", "BE", ANTWERP, sharing={"level": "own_unit"}),
        "grounded": w.unit("GROUNDED", "DE", MUNICH, abroad=False),
        "unarmed": w.unit("UNARMED", "BE", BRUSSELS, arms=False, explosives=False),
        "listed": w.unit(
            "LISTED", "BE", ANTWERP, sharing={"level": "listed"}, listed_countries=("BE",)
        ),
        "lux": w.unit("LUX", "LU", (49.61, 6.13), languages=("lb", "fr", "de")),
        "twin": w.unit("TWIN", "BE", ANTWERP, package=4, notice=30, languages=("fr", "en")),
        "home": w.unit("HOMECAP", "NL", AMSTERDAM),
    }
    elsewhere, _ = w.request(country="FR")
    _offer(w.db, elsewhere, units["near"], "MOBILISING")
    _offer(w.db, elsewhere, units["munich"], "ON_SITE")
    other, _ = w.request(country="DE")
    _offer(w.db, other, units["munich"], "AGREED")
    return units


@pytest.mark.parametrize("limit", [1, 3, 25])
def test_hand_built_registry_every_rule(world: World, limit: int) -> None:
    hand_built(world)
    world.settings("FR", prohibits_foreign_explosives=True)
    world.settings("LU", excluded_from_2008_617=True)
    world.settings("DE", requires_bilateral_agreement=True)
    agreement = BilateralAgreement(name="NL-DE", country_a="DE", country_b="NL")
    world.db.add(agreement)
    world.db.flush()
    cases = [
        {},
        {"min_level": 0},
        {"min_level": 3, "quantity": 3},
        {"nature": ("intervention",), "needed_by": NOW + timedelta(hours=5)},
        {"legal_basis": "2008/617-art3", "needed_by": NOW + timedelta(hours=30)},
        {"legal_basis": "bilateral", "agreement": agreement},
        {"where": None},
        {"country": "BE", "where": ANTWERP},
    ]
    for case in cases:
        req, line = world.request(**case)  # type: ignore[arg-type]
        r = same_ranking(world, req, line, limit=limit)
        assert r.candidate_count > 0 and r.excluded_count > 0
        for viewer in VIEWERS.values():
            same_ranking(world, req, line, viewer=viewer, limit=limit)
    # The host prohibits foreign arms: the arms flag is moot.
    world.settings("NL", prohibits_foreign_arms=True, requires_bilateral_agreement=True)
    req, line = world.request(nature=("intervention",), min_level=1)
    same_ranking(world, req, line, limit=limit)


def test_explosive_breaching_with_the_demo_units(world: World, db: Session) -> None:
    ctype = db.scalar(select(CapabilityType).where(CapabilityType.code == "breaching_explosive"))
    assert ctype is not None
    world.unit("BOOM", "BE", ANTWERP, explosives=False, ctype=ctype)
    world.unit("BANG", "DE", MUNICH, ctype=ctype)
    for settings in ({}, {"prohibits_foreign_explosives": True}):
        world.settings("NL", **settings)
        req, line = world.request(ctype=ctype, min_level=0)
        same_ranking(world, req, line)
    # Every other type of the demo network too.
    for other in db.scalars(select(CapabilityType).order_by(CapabilityType.id)):
        req, line = world.request(ctype=other, min_level=1, nature=("intervention",))
        same_ranking(world, req, line)


def test_every_registry_write_the_columns_copy_is_seen(world: World, db: Session) -> None:
    units = hand_built(world)
    req, line = world.request(min_level=2, needed_by=NOW + timedelta(hours=6))
    first = same_ranking(world, req, line)
    version = registry_version.current(db)

    def entry_of(unit: Unit) -> CapabilityEntry:
        entry = db.scalar(select(CapabilityEntry).where(CapabilityEntry.unit_id == unit.id))
        assert entry is not None
        return entry

    # Each write below changes the ranking; the columns must follow at once.
    entry_of(units["lisbon"]).level = 1
    db.flush()
    r = same_ranking(world, req, line)
    assert code("LIS", "PT") in {e.unit_code for e in r.excluded}
    assert code("LIS", "PT") in {c.unit_code for c in first.candidates}

    units["munich"].latitude, units["munich"].longitude = ANTWERP
    db.flush()
    same_ranking(world, req, line)

    db.add(TransportAsset(unit_id=units["nowhere"].id, kind="helicopter", description="h"))
    units["nowhere"].latitude, units["nowhere"].longitude = LISBON
    db.add(TransportAsset(unit_id=units["twin"].id, kind="helicopter", description="h"))
    db.flush()
    r = same_ranking(world, req, line)
    twin = next(c for c in r.candidates if c.unit_code == code("TWIN"))
    assert "by helicopter" in next(f.text for f in twin.factors if f.code == "eta")

    units["twin"].languages = ["de"]
    units["twin"].base_location = "Aachen-Brand"
    db.flush()
    r = same_ranking(world, req, line)
    twin = next(c for c in r.candidates if c.unit_code == code("TWIN"))
    # What the viewer is shown of a candidate is kept per process too: it follows at once.
    assert twin.shown["base_location"] == "Aachen-Brand" and twin.shown["languages"] == ["de"]
    assert [t["kind"] for t in twin.shown["transport"]] == ["helicopter"]

    rules = {g: SharingRuleIO(audience=Audience.NETWORK) for g in FieldGroup}
    rules[FieldGroup.EXISTENCE] = SharingRuleIO(audience=Audience.OWN_UNIT)
    registry_service.set_sharing(db, SYSTEM, units["near"].id, SharingAgreementIO(rules=rules))
    r = same_ranking(world, req, line)
    assert code("NEAR") not in r.model_dump_json()

    db.execute(update(Unit).where(Unit.id == units["paris"].id).values(country_iso2="BE"))
    db.execute(
        update(CapabilityEntry)
        .where(CapabilityEntry.unit_id == units["quiet"].id)
        .values(confirmed_on=TODAY - timedelta(days=400), level=3)
    )
    db.expire_all()
    same_ranking(world, req, line)
    assert registry_version.current(db) != version


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_randomised_registries(world: World, db: Session, seed: int) -> None:
    rng = random.Random(seed)
    countries = ("NL", "BE", "DE", "FR", "PT", "LU")
    audiences = ("network", "matching", "own_unit", "support_office", "listed")
    for n in range(120):
        lat, lon = rng.uniform(36.0, 62.0), rng.uniform(-10.0, 25.0)
        sharing = {g.value: rng.choice(audiences) for g in FieldGroup if rng.random() < 0.35}
        world.unit(
            f"R{n:03d}",
            rng.choice(countries),
            None if rng.random() < 0.05 else (lat, lon),
            level=rng.randint(0, 3),
            # Few distinct values, so that equal scores (ties broken by code) happen.
            package=rng.choice((None, 2, 4, 10, 20)),
            notice=rng.choice((None, 0, 1, 2, 6, 24)),
            languages=tuple(rng.sample(("nl", "en", "fr", "de", "pt"), rng.randint(0, 3))),
            abroad=rng.random() < 0.9,
            arms=rng.random() < 0.7,
            explosives=rng.random() < 0.7,
            confirmed_days_ago=rng.choice((0, 10, 89, 91, 400)),
            sharing=sharing,
            listed_countries=tuple(rng.sample(countries, 2)),
            transport=tuple(k for k in ("aircraft", "helicopter", "van") if rng.random() < 0.2),
        )
    # Some units at the same place with the same data: equal scores, ties by code.
    for n in range(6):
        world.unit(f"T{n}", "BE", ANTWERP, package=4, notice=2)
    busy = list(db.scalars(select(Unit).where(Unit.code.like("%-MX-R%")).limit(25)))
    elsewhere, _ = world.request(country="PT")
    for unit in busy:
        _offer(db, elsewhere, unit, rng.choice(("AGREED", "EN_ROUTE", "ON_SITE", "OFFERED")))
    for country in countries:
        world.settings(
            country,
            requires_bilateral_agreement=rng.random() < 0.2,
            prohibits_foreign_arms=rng.random() < 0.2,
            prohibits_foreign_explosives=rng.random() < 0.2,
            excluded_from_2008_617=rng.random() < 0.2,
        )
    for partner in rng.sample(countries[1:], 2):
        a, b = sorted(("NL", partner))
        db.add(BilateralAgreement(name=f"NL-{partner}", country_a=a, country_b=b))
    db.flush()
    viewers = [world.viewer(), *VIEWERS.values()]
    for _ in range(12):
        req, line = world.request(
            country=rng.choice(("NL", "NL", "BE", "DE")),
            where=(rng.uniform(40.0, 58.0), rng.uniform(-5.0, 20.0)),
            nature=rng.choice((("expertise",), ("intervention",))),
            legal_basis=rng.choice(("2008/617-art3", "prum-art17", "prum-art18")),
            min_level=rng.randint(0, 3),
            quantity=rng.choice((1, 2, 4, 10, 15)),
            needed_by=rng.choice((None, NOW + timedelta(hours=rng.randint(1, 30)))),
        )
        same_ranking(world, req, line, viewer=rng.choice(viewers), limit=rng.choice((1, 5, 25)))


def test_a_chosen_row_is_its_stored_facts_then_what_the_request_computes() -> None:
    facts = matching_columns.EntryFacts._fields
    assert matching._ROW_FIELDS[: len(facts)] == facts
