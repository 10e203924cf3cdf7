"""Ranking candidate units for one request line (issue 3, item 2), on the real test database.

Every unit here records a capability type made for the test, so the demo network never enters
the expectations; where a real type is needed (explosive breaching), assertions look at the
test's own units only. Expected orders and bands are worked out by hand from docs/matching.md
(distances are great-circle distances between the cities named).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.audit.service import read_ledger
from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import MATCHING_ENGINE, SYSTEM, Principal
from atlaslink.config import Settings, get_settings
from atlaslink.models import (
    AssistanceRequest,
    BilateralAgreement,
    CapabilityEntry,
    CapabilityType,
    CountrySettings,
    Network,
    Offer,
    RequestAddressee,
    RequestLine,
    SharingRule,
    SharingTarget,
    TransportAsset,
    Unit,
)
from atlaslink.operations import geography, matching
from atlaslink.operations.matching import Candidate, Ranking
from atlaslink.registry import service as registry_service
from atlaslink.registry.schemas import SharingAgreementIO, SharingRuleIO
from atlaslink.sharing import matching_groups
from atlaslink.sharing.policy import Audience, FieldGroup, load_agreements, visible_groups

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TODAY = NOW.date()

# (latitude, longitude)
AMSTERDAM = (52.37, 4.90)  # the incident
UTRECHT = (52.09, 5.12)  # the requesting unit
ANTWERP = (51.22, 4.40)  # BE, ~129 km from Amsterdam
BRUSSELS = (50.85, 4.35)  # BE, ~173 km
MUNICH = (48.14, 11.58)  # DE, ~665 km
PARIS = (48.86, 2.35)  # FR (not a neighbour of NL), ~430 km
LISBON = (38.72, -9.14)  # PT, ~1,860 km
COUNTRIES = ("NL", "BE", "DE", "FR", "PT", "LU")
EN_DASH = "\N{EN DASH}"


@dataclass
class World:
    db: Session
    network_id: int
    ctype: CapabilityType
    home: Unit | None = None
    mine: set[str] = field(default_factory=set)
    seq: int = 0

    def unit(
        self,
        name: str,
        country: str,
        where: tuple[float, float] | None,
        *,
        level: int = 3,
        package: int | None = 12,
        notice: int | None = 1,
        languages: tuple[str, ...] = ("nl", "en"),
        abroad: bool = True,
        arms: bool = True,
        explosives: bool = True,
        confirmed_days_ago: int = 0,
        sharing: dict[str, str] | None = None,
        listed_countries: tuple[str, ...] = (),
        transport: tuple[str, ...] = (),
        ctype: CapabilityType | None = None,
        entry: bool = True,
    ) -> Unit:
        code = f"{country}-MX-{name}"
        unit = Unit(
            code=code,
            name=f"Test unit {name}",
            network_id=self.network_id,
            country_iso2=country,
            base_location=f"Base of {name}",
            latitude=where[0] if where else None,
            longitude=where[1] if where else None,
            languages=list(languages),
            competent_authority="Ministry",
        )
        self.db.add(unit)
        self.db.flush()
        self.mine.add(code)
        if entry:
            self.db.add(
                CapabilityEntry(
                    unit_id=unit.id,
                    capability_type_id=(ctype or self.ctype).id,
                    level=level,
                    package_size=package,
                    notice_to_move_hours=notice,
                    self_sufficiency_hours=48,
                    may_deploy_abroad=abroad,
                    may_carry_arms_abroad=arms,
                    may_carry_explosives_abroad=explosives,
                    confirmed_on=TODAY - timedelta(days=confirmed_days_ago),
                )
            )
        audiences = {g.value: "network" for g in FieldGroup} | (sharing or {})
        for group, audience in audiences.items():
            rule = SharingRule(unit_id=unit.id, field_group=group, audience=audience)
            self.db.add(rule)
            if audience == "listed":
                self.db.flush()
                for c in listed_countries:
                    self.db.add(SharingTarget(rule_id=rule.id, country_iso2=c))
        for kind in transport:
            self.db.add(TransportAsset(unit_id=unit.id, kind=kind, description=f"{kind} of {name}"))
        self.db.flush()
        # The rules were written directly, not through registry.service.set_sharing.
        matching_groups.refresh(self.db, [unit.id])
        return unit

    def request(
        self,
        *,
        country: str = "NL",
        where: tuple[float, float] | None = AMSTERDAM,
        nature: tuple[str, ...] = ("expertise",),
        legal_basis: str = "prum-art17",
        agreement: BilateralAgreement | None = None,
        min_level: int = 2,
        quantity: int = 10,
        needed_by: datetime | None = None,
        ctype: CapabilityType | None = None,
        status: str = "OPEN",
    ) -> tuple[AssistanceRequest, RequestLine]:
        self.seq += 1
        req = AssistanceRequest(
            reference=f"T-MX-{self.seq}",
            kind="request",
            status=status,
            exercise=True,
            requesting_country=country,
            requesting_unit_id=self.home.id if self.home and country == "NL" else None,
            created_by_label="test",
            title="Test request",
            crisis_category="hostage_taking",
            location_name="Amsterdam",
            latitude=where[0] if where else None,
            longitude=where[1] if where else None,
            nature=list(nature),
            legal_basis=legal_basis,
            bilateral_agreement_id=agreement.id if agreement else None,
            ack_minutes=10,
            max_escalations=2,
            incident_id=f"T-MX-{self.seq}",
        )
        self.db.add(req)
        self.db.flush()
        line = RequestLine(
            request_id=req.id,
            line_no=1,
            capability_type_id=(ctype or self.ctype).id,
            min_level=min_level,
            quantity=quantity,
            needed_by=needed_by,
        )
        self.db.add(line)
        self.db.flush()
        return req, line

    def settings(self, country: str, **flags: bool) -> None:
        cs = self.db.get(CountrySettings, country)
        if cs is None:
            cs = CountrySettings(country_iso2=country)
            self.db.add(cs)
        for name in (
            "national_approval_required",
            "requires_bilateral_agreement",
            "prohibits_foreign_arms",
            "prohibits_foreign_explosives",
            "excluded_from_2008_617",
        ):
            setattr(cs, name, flags.get(name, False))
        self.db.flush()

    def viewer(self) -> Principal:
        assert self.home is not None
        return Principal.for_user(
            user_id=1_000_001,
            username="viewer.nl",
            role=Role.DUTY_OFFICER,
            unit_id=self.home.id,
            country=None,
        )

    def rank(
        self,
        req: AssistanceRequest,
        line: RequestLine,
        *,
        viewer: Principal | None = None,
        limit: int = 25,
    ) -> Ranking:
        return matching.rank_line(self.db, viewer or self.viewer(), req, line, now=NOW, limit=limit)

    def order(self, ranking: Ranking) -> list[str]:
        return [c.unit_code for c in ranking.candidates if c.unit_code in self.mine]

    def excluded(self, ranking: Ranking) -> dict[str, list[str]]:
        return {e.unit_code: e.reasons for e in ranking.excluded if e.unit_code in self.mine}


def code(name: str, country: str = "BE") -> str:
    return f"{country}-MX-{name}"


def candidate(ranking: Ranking, unit_code: str) -> Candidate:
    (c,) = [c for c in ranking.candidates if c.unit_code == unit_code]
    return c


def factor(c: Candidate, name: str) -> matching.Factor:
    (f,) = [f for f in c.factors if f.code == name]
    return f


@pytest.fixture
def world(db: Session, monkeypatch: pytest.MonkeyPatch) -> World:
    # Never the network unless a test configures a routing service.
    monkeypatch.setattr(matching, "get_settings", lambda: Settings(routing_url=None))
    network_id = db.scalar(select(Network.id).where(Network.code == "ATLAS"))
    assert network_id is not None
    ctype = CapabilityType(
        code="test_matching_skill",
        kind="skill",
        name="Matching test capability",
        sort_order=999,
        introduced_in=1,
    )
    db.add(ctype)
    db.flush()
    w = World(db, network_id, ctype)
    for country in COUNTRIES:
        w.settings(country)
    # The requesting unit: working languages nl and en; it records no capability of the type.
    w.home = w.unit("HOME", "NL", UTRECHT, entry=False)
    return w


# --- geography ---------------------------------------------------------------------------


def test_neighbours_are_symmetric_and_cover_every_country() -> None:
    assert set(geography.NEIGHBOURS) == geography.COUNTRIES
    assert len(geography.COUNTRIES) == 32
    for a, near in geography.NEIGHBOURS.items():
        assert a not in near
        for b in near:
            assert a in geography.NEIGHBOURS[b], f"{a}-{b} is not symmetric"
    for a, b in (
        ("DK", "SE"),
        ("EE", "FI"),
        ("IE", "GB"),
        ("NL", "BE"),
        ("DE", "PL"),
        ("FR", "GB"),
    ):
        assert b in geography.NEIGHBOURS[a]
    assert geography.NEIGHBOURS["CY"] == frozenset()
    assert geography.NEIGHBOURS["IS"] == frozenset()
    assert "GR" not in geography.NEIGHBOURS["IT"]  # overnight ferry, not a short link
    assert set(geography.REGION_OF) == geography.COUNTRIES


def test_rings_and_distances() -> None:
    assert geography.ring_of("NL", "NL") == 0
    assert geography.ring_of("NL", "BE") == 1
    assert geography.ring_of("NL", "LU") == 2  # Benelux, no border
    assert geography.ring_of("NL", "PT") == 3
    assert geography.ring_of("FI", "EE") == 1  # ferry
    assert geography.ring_of("NL", "XX") == 3  # unknown country: rest of the network
    for a in geography.COUNTRIES:
        for b in geography.COUNTRIES:
            assert geography.ring_of(a, b) == geography.ring_of(b, a)
    assert geography.haversine_km(*PARIS, 52.52, 13.405) == pytest.approx(878, abs=5)
    assert geography.haversine_km(*AMSTERDAM, *AMSTERDAM) == 0
    assert geography.haversine_km(0, 0, 0, 180) == pytest.approx(20015, abs=5)


# --- ordering ----------------------------------------------------------------------------


def test_order_by_level_quantity_and_arrival(world: World) -> None:
    world.unit("A", "BE", ANTWERP, level=3, package=12)
    world.unit("B", "BE", ANTWERP, level=2, package=12)  # only the minimum level
    world.unit("C", "BE", ANTWERP, level=3, package=5)  # covers half the quantity
    world.unit("D", "DE", MUNICH, level=3, package=12)  # far: 13 h away
    req, line = world.request(min_level=2, quantity=10)
    r = world.rank(req, line)
    assert world.order(r) == [code("A"), code("B"), code("C"), code("D", "DE")]
    assert [c.rank for c in r.candidates] == [1, 2, 3, 4]
    assert r.candidate_count == 4 and r.excluded_count == 0 and r.excluded == []
    a = candidate(r, code("A"))
    # 129 km x 1.3 / 75 km/h + 0.5 h border + 1 h notice = 3.7 h
    assert a.eta_band == f"2{EN_DASH}4 h"
    assert candidate(r, code("D", "DE")).eta_band == f"12{EN_DASH}24 h"
    assert a.ring == 1 and a.country_display == "BE"
    assert factor(a, "level").text == "level 3 (minimum 2)"
    assert factor(a, "level").verdict == "good"
    assert factor(candidate(r, code("B")), "level").verdict == "ok"
    assert factor(a, "package").text == "package of 12 covers the 10 requested"
    assert (
        factor(candidate(r, code("C")), "package").text
        == "package of 5 covers 5 of the 10 requested"
    )
    assert factor(a, "eta").text == f"estimated arrival 2{EN_DASH}4 h (by road; notice-to-move 1 h)"
    assert factor(a, "languages").text == "shared working languages: en, nl"
    assert a.shown["level"] == 3 and a.shown["package_size"] == 12
    assert a.shown["notice_to_move_hours"] == 1 and a.shown["transport"] == []
    assert a.arrives_before_needed_by is None  # the line has no needed-by time
    assert r.capability_code == "test_matching_skill" and r.min_level == 2 and r.quantity == 10


def test_ties_are_broken_by_unit_code(world: World) -> None:
    world.unit("TIE-B", "BE", ANTWERP)
    world.unit("TIE-A", "BE", ANTWERP)
    world.unit("TIE-C", "BE", ANTWERP)
    req, line = world.request()
    assert world.order(world.rank(req, line)) == [code("TIE-A"), code("TIE-B"), code("TIE-C")]


def test_working_languages(world: World) -> None:
    world.unit("NATIVE", "BE", ANTWERP, languages=("nl", "fr", "en"))
    world.unit("ENGLISH", "BE", ANTWERP, languages=("fr", "en"))
    world.unit("NONE", "BE", ANTWERP, languages=("fr",))
    req, line = world.request()
    r = world.rank(req, line)
    assert world.order(r) == [code("NATIVE"), code("ENGLISH"), code("NONE")]
    assert factor(candidate(r, code("NATIVE")), "languages").verdict == "good"
    assert factor(candidate(r, code("ENGLISH")), "languages").text == (
        "shared working language: en only"
    )
    assert factor(candidate(r, code("NONE")), "languages").verdict == "weak"


def test_units_of_the_requesting_country_are_not_candidates(world: World, db: Session) -> None:
    world.unit("OWN", "NL", UTRECHT)
    world.unit("A", "BE", ANTWERP)
    req, line = world.request()
    r = world.rank(req, line)
    assert world.order(r) == [code("A")]
    assert code("OWN", "NL") not in r.model_dump_json()
    units = db.scalar(select(func.count(Unit.id)))
    assert r.not_considered == units - 1


def test_limit_and_the_bound_that_decides_how_much_to_read(world: World) -> None:
    # 25 units whose package is hidden from the engine score 15 below their bound; the one
    # whose package counts sorts last by the bound (same bound, last code), beyond the first
    # read of 22 rows. It must still come first.
    for i in range(25):
        world.unit(f"HID{i:02d}", "BE", ANTWERP, package=50, sharing={"package": "own_unit"})
    world.unit("ZZ-VISIBLE", "BE", ANTWERP, package=50)
    req, line = world.request()
    r = world.rank(req, line, limit=1)
    assert [c.unit_code for c in r.candidates] == [code("ZZ-VISIBLE")]
    assert r.candidate_count == 26
    with pytest.raises(ValueError):
        world.rank(req, line, limit=0)


# --- hard exclusions ---------------------------------------------------------------------


def test_each_hard_exclusion_with_its_reason(world: World) -> None:
    world.unit("FITS", "BE", ANTWERP)
    world.unit("LOW", "BE", ANTWERP, level=1)
    world.unit("HOME-ONLY", "BE", ANTWERP, abroad=False)
    world.unit("UNARMED", "BE", ANTWERP, arms=False)
    req, line = world.request(nature=("intervention",), min_level=2)
    r = world.rank(req, line)
    assert world.order(r) == [code("FITS")]
    assert world.excluded(r) == {
        code("LOW"): ["level 1 is below the minimum 2"],
        code("HOME-ONLY"): ["not cleared to deploy abroad"],
        code("UNARMED"): ["may not carry arms abroad, and the request includes an intervention"],
    }
    assert r.candidate_count == 1 and r.excluded_count == 3
    assert factor(candidate(r, code("FITS")), "arms").text == "cleared to carry arms abroad"
    # Excluded units show what the viewer may see of them, like candidates.
    (low,) = [e for e in r.excluded if e.unit_code == code("LOW")]
    assert low.shown["level"] == 1 and low.country == "BE"

    # Without an intervention, arms do not matter.
    req, line = world.request(nature=("expertise",), min_level=2)
    assert world.order(world.rank(req, line)) == [code("FITS"), code("UNARMED")]


def test_host_that_prohibits_foreign_arms_makes_the_arms_flag_moot(world: World) -> None:
    world.unit("UNARMED", "BE", ANTWERP, arms=False)
    world.settings("NL", prohibits_foreign_arms=True)
    req, line = world.request(nature=("intervention",))
    r = world.rank(req, line)
    assert world.order(r) == [code("UNARMED")]
    f = factor(candidate(r, code("UNARMED")), "host_arms")
    assert f.verdict == "ok" and "prohibits foreign officers' arms" in f.text


def test_explosive_breaching_needs_explosives_unless_the_host_prohibits_them(
    world: World, db: Session
) -> None:
    breaching = db.scalar(
        select(CapabilityType).where(CapabilityType.code == "breaching_explosive")
    )
    assert breaching is not None
    for name, explosives in (("BOOM", True), ("NOBOOM", False)):
        world.unit(
            name, "BE", AMSTERDAM, package=50, notice=0, explosives=explosives, ctype=breaching
        )
    req, line = world.request(ctype=breaching, nature=("expertise",))
    r = world.rank(req, line, limit=100)
    assert world.order(r) == [code("BOOM")]
    assert world.excluded(r) == {
        code("NOBOOM"): ["may not carry explosives abroad, which explosive breaching needs"]
    }
    world.settings("NL", prohibits_foreign_explosives=True)
    r = world.rank(req, line, limit=100)
    assert set(world.order(r)) == {code("BOOM"), code("NOBOOM")}
    assert (
        "prohibits foreign explosives"
        in factor(candidate(r, code("NOBOOM")), "host_explosives").text
    )


def test_bilateral_agreement_required_missing_expired_and_valid(world: World, db: Session) -> None:
    world.unit("J", "BE", ANTWERP)
    world.settings("BE", requires_bilateral_agreement=True)
    req, line = world.request()
    r = world.rank(req, line)
    assert world.order(r) == []
    assert world.excluded(r) == {
        code("J"): [f"BE requires a bilateral agreement for NL{EN_DASH}BE, and there is none"]
    }

    expired = BilateralAgreement(
        name="Benelux police treaty 2004",
        country_a="BE",
        country_b="NL",
        valid_from=date(2004, 1, 1),
        valid_to=date(2025, 12, 31),
    )
    db.add(expired)
    db.flush()
    (reason,) = world.excluded(world.rank(req, line))[code("J")]
    assert "“Benelux police treaty 2004” is not valid on 2026-11-23" in reason

    valid = BilateralAgreement(
        name="Benelux police treaty 2026",
        country_a="BE",
        country_b="NL",
        valid_from=date(2026, 1, 1),
    )
    db.add(valid)
    db.flush()
    r = world.rank(req, line)
    assert world.order(r) == [code("J")]
    assert factor(candidate(r, code("J")), "legal").text == (
        f"bilateral agreement “Benelux police treaty 2026” covers NL{EN_DASH}BE"
    )


def test_bilateral_required_by_the_requesting_country_and_named_agreement(
    world: World, db: Session
) -> None:
    world.unit("J", "BE", ANTWERP)
    world.unit("K", "DE", MUNICH)
    treaty = BilateralAgreement(name="NL-BE treaty", country_a="BE", country_b="NL")
    db.add(treaty)
    db.flush()
    world.settings("NL", requires_bilateral_agreement=True)
    req, line = world.request()
    r = world.rank(req, line)
    assert world.order(r) == [code("J")]
    assert world.excluded(r) == {
        code("K", "DE"): [f"NL requires a bilateral agreement for NL{EN_DASH}DE, and there is none"]
    }

    # A request based on a named agreement: only its partner country fits.
    world.settings("NL")
    req, line = world.request(legal_basis="bilateral", agreement=treaty)
    r = world.rank(req, line)
    assert world.order(r) == [code("J")]
    assert world.excluded(r) == {
        code("K", "DE"): [
            f"the request's bilateral agreement “NL-BE treaty” does not cover NL{EN_DASH}DE"
        ]
    }


def test_country_outside_decision_2008_617(world: World) -> None:
    world.unit("J", "BE", ANTWERP)
    world.unit("K", "DE", MUNICH)
    world.settings("DE", excluded_from_2008_617=True)
    req, line = world.request(legal_basis="2008/617-art3")
    r = world.rank(req, line)
    assert world.order(r) == [code("J")]
    assert world.excluded(r) == {
        code("K", "DE"): [
            "DE does not take part in Council Decision 2008/617/JHA, the legal basis of this request"
        ]
    }
    # Under Prüm, the same unit fits.
    req, line = world.request(legal_basis="prum-art17")
    assert world.order(world.rank(req, line)) == [code("J"), code("K", "DE")]


def test_legal_fit_on_its_own(world: World) -> None:
    world.settings("NL", prohibits_foreign_arms=True)
    req, _ = world.request(nature=("intervention",))
    ctx = matching.load_legal_context(world.db, req, on=TODAY)
    flags = matching.EntryFlags(True, False, False)
    assert matching.legal_fit(ctx, "BE", flags) == []  # the host prohibits arms anyway
    assert matching.legal_fit(ctx.for_line("breaching_explosive"), "BE", flags) == [
        "may not carry explosives abroad, which explosive breaching needs"
    ]
    assert matching.legal_fit(ctx, "NL", None) == [
        "unit of the requesting country: not assistance from another state"
    ]
    assert matching.legal_fit(ctx, "BE", matching.EntryFlags(False, True, True)) == [
        "not cleared to deploy abroad"
    ]


# --- sharing -----------------------------------------------------------------------------


def test_matching_only_fields_count_but_are_never_shown(world: World) -> None:
    only_matching = {"level": "matching", "package": "matching", "notice": "matching"}
    world.unit("H3", "BE", ANTWERP, level=3, package=47, notice=7, sharing=only_matching)
    world.unit("H2", "BE", ANTWERP, level=2, package=47, notice=7, sharing=only_matching)
    world.unit("SMALL", "BE", ANTWERP, level=2, package=3, notice=7, sharing=only_matching)
    req, line = world.request(min_level=2, quantity=10)
    r = world.rank(req, line)
    # The hidden level and package size count in the rank ...
    assert world.order(r) == [code("H3"), code("H2"), code("SMALL")]
    for name in ("H3", "H2", "SMALL"):
        c = candidate(r, code(name))
        # ... but are never shown, in the fields or in any text.
        for key in ("level", "package_size", "self_sufficiency_hours", "notice_to_move_hours"):
            assert key not in c.shown
        texts = " | ".join(f.text for f in c.factors)
        assert "47" not in texts and "notice-to-move 7" not in texts
        assert "47" not in json.dumps(c.shown, default=str)
        level = factor(c, "level")
        # Same verdict whatever the margin: a "good" would tell that the level is above 2.
        assert (level.verdict, level.text) == (
            "ok",
            "meets the minimum level 2 (level not shared with you)",
        )
        assert "notice-to-move not shared with you" in factor(c, "eta").text
    assert factor(candidate(r, code("H3")), "package").text == (
        "covers the whole requested quantity (package size not shared with you)"
    )
    assert factor(candidate(r, code("SMALL")), "package").text == (
        "covers part of the requested quantity (package size not shared with you)"
    )
    # The engine itself sees them (the same policy decides).
    agreement = load_agreements(world.db, [candidate(r, code("H3")).unit_id])
    groups = visible_groups(MATCHING_ENGINE, next(iter(agreement.values())))
    assert {FieldGroup.LEVEL, FieldGroup.PACKAGE, FieldGroup.NOTICE} <= groups


def test_own_unit_only_data_never_counts(world: World, db: Session) -> None:
    world.unit("SECRET", "BE", AMSTERDAM, level=3, package=99, sharing={"existence": "own_unit"})
    world.unit("NOLEVEL", "BE", ANTWERP, sharing={"level": "own_unit"})
    world.unit("NOPKG", "BE", ANTWERP, package=500, sharing={"package": "own_unit"})
    world.unit("NONOTICE", "BE", ANTWERP, notice=0, sharing={"notice": "own_unit"})
    world.unit("NOAIR", "PT", LISBON, transport=("aircraft",), sharing={"transport": "own_unit"})
    req, line = world.request(min_level=2)
    r = world.rank(req, line)
    dump = r.model_dump_json()
    assert code("SECRET") not in dump and "Test unit SECRET" not in dump
    assert world.excluded(r) == {
        code("NOLEVEL"): [
            "level not shared with the matching engine, so the minimum level 2 cannot be checked"
        ]
    }
    assert set(world.order(r)) == {code("NOPKG"), code("NONOTICE"), code("NOAIR", "PT")}
    assert r.candidate_count == 3 and r.excluded_count == 1
    units = db.scalar(select(func.count(Unit.id)))
    assert r.not_considered == units - 4  # SECRET, the requesting unit and the demo units
    nopkg = candidate(r, code("NOPKG"))
    assert factor(nopkg, "package").text == "package size not shared with the matching engine"
    assert "package_size" not in nopkg.shown
    nonotice = candidate(r, code("NONOTICE"))
    assert factor(nonotice, "notice").text == (
        "notice-to-move not shared with the matching engine: 12 h assumed"
    )
    # 12 h assumed + 2.7 h road, not 0 h + 2.7 h.
    assert nonotice.eta_band == f"12{EN_DASH}24 h"
    assert candidate(r, code("NOAIR", "PT")).eta_band == "> 24 h"  # the aircraft is hidden

    # With no minimum level, a unit that hides its level is a candidate, flagged.
    req, line = world.request(min_level=0)
    c = candidate(world.rank(req, line), code("NOLEVEL"))
    assert factor(c, "level").verdict == "weak"


def test_a_sharing_change_through_the_registry_changes_the_next_ranking(
    world: World, db: Session
) -> None:
    unit = world.unit("CHANGE", "BE", ANTWERP, level=3)
    world.unit("OTHER", "DE", MUNICH)
    req, line = world.request(min_level=2)
    assert world.order(world.rank(req, line)) == [code("CHANGE"), code("OTHER", "DE")]

    def share(**audiences: str) -> None:
        rules = {
            g: SharingRuleIO(audience=Audience(audiences.get(g.value, "network")))
            for g in FieldGroup
        }
        registry_service.set_sharing(db, SYSTEM, unit.id, SharingAgreementIO(rules=rules))

    share(level="own_unit")
    r = world.rank(req, line)
    assert world.order(r) == [code("OTHER", "DE")]
    assert world.excluded(r) == {
        code("CHANGE"): [
            "level not shared with the matching engine, so the minimum level 2 cannot be checked"
        ]
    }
    share(level="matching")  # counts again, and is never shown
    r = world.rank(req, line)
    assert world.order(r) == [code("CHANGE"), code("OTHER", "DE")]
    assert "level" not in candidate(r, code("CHANGE")).shown
    assert "3" not in factor(candidate(r, code("CHANGE")), "level").text
    before = r.not_considered
    share(existence="own_unit")
    r = world.rank(req, line)
    assert world.order(r) == [code("OTHER", "DE")] and world.excluded(r) == {}
    assert r.not_considered == before + 1
    assert code("CHANGE") not in r.model_dump_json()


def test_excluded_units_are_named_only_to_viewers_who_may_know_the_capability(
    world: World,
) -> None:
    world.unit("QUIET", "BE", ANTWERP, level=1, sharing={"existence": "matching"})
    world.unit("OPEN", "BE", ANTWERP, level=1)
    req, line = world.request(min_level=2)
    r = world.rank(req, line)
    assert set(world.excluded(r)) == {code("OPEN")}
    assert r.excluded_count == 2


def test_the_best_placed_excluded_units_the_viewer_may_know_are_named(world: World) -> None:
    # 30 excluded units, nearer first; the 10 nearest hide their capabilities from the viewer.
    for i in range(30):
        where = (ANTWERP[0] - 0.05 * i, ANTWERP[1])
        sharing = {"existence": "matching"} if i < 10 else None
        world.unit(f"X{i:02d}", "BE", where, level=1, sharing=sharing)
    req, line = world.request(min_level=2)
    r = world.rank(req, line)
    assert r.excluded_count == 30 and r.candidate_count == 0
    assert [e.unit_code for e in r.excluded] == [code(f"X{i:02d}") for i in range(10, 30)]


def test_listed_values_reach_the_read_audit(world: World) -> None:
    listed = world.unit(
        "LISTED", "BE", ANTWERP, sharing={"level": "listed"}, listed_countries=("NL",)
    )
    world.unit("PUBLIC", "BE", ANTWERP)
    req, line = world.request()
    nl = Principal.for_user(
        user_id=1_000_002, username="ncp.nl", role=Role.NATIONAL_CONTACT, unit_id=None, country="NL"
    )
    with read_ledger() as ledger:
        r = world.rank(req, line, viewer=nl)
    assert candidate(r, code("LISTED")).shown["level"] == 3
    assert ledger.objects == {("unit", str(listed.id)): {"level"}}
    observer = Principal.for_user(
        user_id=1_000_003, username="obs", role=Role.OBSERVER, unit_id=None, country=None
    )
    with read_ledger() as ledger:
        r = world.rank(req, line, viewer=observer)
    assert "level" not in candidate(r, code("LISTED")).shown
    assert ledger.objects == {}


# --- arrival times -----------------------------------------------------------------------


def test_air_assets_shorten_the_arrival_band(world: World) -> None:
    world.unit("PLANE", "PT", LISBON, transport=("aircraft",))
    world.unit("DRIVE", "PT", LISBON)
    world.unit("FARHELI", "PT", LISBON, transport=("helicopter",))  # beyond 700 km
    world.unit("HELI", "FR", PARIS, notice=0, transport=("helicopter",))
    world.unit("CAR", "FR", PARIS, notice=0, transport=("armoured_vehicle",))
    req, line = world.request()
    r = world.rank(req, line)
    bands = {c.unit_code: c.eta_band for c in r.candidates if c.unit_code in world.mine}
    assert bands == {
        # 1,860 km / 600 km/h + 2 h + 1 h notice = 6.1 h; by road 34 h
        code("PLANE", "PT"): f"4{EN_DASH}8 h",
        code("DRIVE", "PT"): "> 24 h",
        code("FARHELI", "PT"): "> 24 h",
        # 430 km / 220 km/h + 1 h = 3 h; by road 430 x 1.3 / 75 + 2 x 0.5 = 8.5 h
        code("HELI", "FR"): f"2{EN_DASH}4 h",
        code("CAR", "FR"): f"8{EN_DASH}12 h",
    }
    assert world.order(r)[0] == code("HELI", "FR")
    assert "by aircraft" in factor(candidate(r, code("PLANE", "PT")), "eta").text
    assert candidate(r, code("PLANE", "PT")).shown["transport"][0]["kind"] == "aircraft"


def test_needed_by(world: World) -> None:
    world.unit("NEAR", "BE", ANTWERP)
    world.unit("FAR", "DE", MUNICH)
    req, line = world.request(needed_by=NOW + timedelta(hours=6))
    r = world.rank(req, line)
    near, far = candidate(r, code("NEAR")), candidate(r, code("FAR", "DE"))
    assert near.arrives_before_needed_by is True
    assert factor(near, "needed_by").verdict == "good"
    assert far.arrives_before_needed_by is False  # 13 h away: still a candidate
    assert factor(far, "needed_by").verdict == "weak"


def test_unknown_coordinates(world: World) -> None:
    world.unit("NOWHERE", "BE", None, level=3, package=50)
    world.unit("FAR", "PT", LISBON, level=2, package=5)
    req, line = world.request()
    r = world.rank(req, line)
    # A known arrival time, however long, ranks before an unknown one.
    assert world.order(r) == [code("FAR", "PT"), code("NOWHERE")]
    nowhere = candidate(r, code("NOWHERE"))
    assert nowhere.eta_band == "unknown" and nowhere.arrives_before_needed_by is None
    assert factor(nowhere, "eta").text == "arrival time unknown: the unit's base has no coordinates"

    req, line = world.request(where=None)
    r = world.rank(req, line)
    assert {c.eta_band for c in r.candidates} == {"unknown"}
    assert world.order(r) == [code("NOWHERE"), code("FAR", "PT")]  # by score alone
    assert r.notes == ["The incident has no coordinates: no arrival time can be estimated."]


# --- freshness and commitments -----------------------------------------------------------


def test_stale_data_is_flagged_and_ranks_lower(world: World) -> None:
    days = get_settings().stale_after_days
    world.unit("OLD", "BE", ANTWERP, confirmed_days_ago=days + 10)
    world.unit("NEW", "BE", ANTWERP, confirmed_days_ago=days - 10)
    req, line = world.request()
    r = world.rank(req, line)
    assert world.order(r) == [code("NEW"), code("OLD")]
    old = factor(candidate(r, code("OLD")), "freshness")
    confirmed = (TODAY - timedelta(days=days + 10)).isoformat()
    assert old.verdict == "weak"
    assert old.text == f"capability data last confirmed on {confirmed}, more than {days} days ago"
    assert factor(candidate(r, code("NEW")), "freshness").verdict == "good"


def _offer(db: Session, req: AssistanceRequest, unit: Unit, status: str) -> None:
    addressee = RequestAddressee(
        request_id=req.id,
        unit_id=unit.id,
        status="ACCEPTED",
        addressed_by_label="test",
        ack_due_at=NOW,
    )
    db.add(addressee)
    db.flush()
    db.add(
        Offer(
            request_id=req.id,
            addressee_id=addressee.id,
            unit_id=unit.id,
            request_version=1,
            kind="offer",
            status=status,
            created_by_label="test",
        )
    )
    db.flush()


def test_commitments_elsewhere_lower_the_rank(world: World, db: Session) -> None:
    # BUSY would come first by its code; one deployment elsewhere puts it second.
    busy = world.unit("A-BUSY", "BE", ANTWERP)
    free = world.unit("B-FREE", "BE", ANTWERP)
    elsewhere, _ = world.request(country="FR")
    closed, _ = world.request(country="FR", status="CLOSED")
    req, line = world.request()
    _offer(db, elsewhere, busy, "EN_ROUTE")  # counts
    _offer(db, req, busy, "ON_SITE")  # this request: not "elsewhere"
    _offer(db, closed, free, "ON_SITE")  # not a live request
    _offer(db, elsewhere, free, "OFFERED")  # not deployed
    r = world.rank(req, line)
    assert world.order(r) == [code("B-FREE"), code("A-BUSY")]
    assert candidate(r, code("A-BUSY")).committed_elsewhere == 1
    assert candidate(r, code("B-FREE")).committed_elsewhere == 0
    assert factor(candidate(r, code("A-BUSY")), "commitments").text == (
        "deployed on 1 other live request"
    )


# --- the routing service -----------------------------------------------------------------


@dataclass
class RoutingStub:
    url: str
    # Road hours by the unit's longitude as the request path writes it; "status" overrides.
    hours: dict[str, float] = field(default_factory=dict)
    status: int = 200
    body: dict[str, Any] | None = None
    calls: list[str] = field(default_factory=list)


@pytest.fixture
def routing() -> Iterator[RoutingStub]:
    stub = RoutingStub(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.calls.append(self.path)
            origin = self.path.split("/route/v1/driving/", 1)[1].split(",", 1)[0]
            body = stub.body or {
                "code": "Ok",
                "routes": [{"duration": stub.hours.get(origin, 1.0) * 3600, "distance": 1}],
            }
            data = json.dumps(body).encode()
            self.send_response(stub.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()


def _use_routing(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setattr(
        matching, "get_settings", lambda: Settings(routing_url=url, routing_timeout_seconds=2.0)
    )


def test_routing_service_refines_road_times(
    world: World, routing: RoutingStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.unit("NEAR", "BE", ANTWERP)
    world.unit("FURTHER", "BE", BRUSSELS)
    req, line = world.request()
    assert world.order(world.rank(req, line)) == [code("NEAR"), code("FURTHER")]
    assert routing.calls == []  # not configured: never called

    _use_routing(monkeypatch, routing.url)
    routing.hours = {f"{ANTWERP[1]:.6f}": 10.0, f"{BRUSSELS[1]:.6f}": 1.0}
    r = world.rank(req, line)
    assert len(routing.calls) == 2
    assert routing.calls[0].startswith("/route/v1/driving/")
    assert routing.calls[0].endswith(f";{AMSTERDAM[1]:.6f},{AMSTERDAM[0]:.6f}?overview=false")
    assert world.order(r) == [code("FURTHER"), code("NEAR")]
    # 10 h + 0.5 h border + 1 h notice; 1 h + 0.5 h + 1 h
    assert candidate(r, code("NEAR")).eta_band == f"8{EN_DASH}12 h"
    assert candidate(r, code("FURTHER")).eta_band == f"2{EN_DASH}4 h"
    assert "road time from the routing service" in factor(candidate(r, code("NEAR")), "eta").text
    assert r.notes == ["Road times of 2 of 2 candidates from the routing service."]


def test_routing_service_errors_fall_back_to_the_estimate(
    world: World, routing: RoutingStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.unit("NEAR", "BE", ANTWERP)
    world.unit("FURTHER", "BE", BRUSSELS)
    req, line = world.request()
    _use_routing(monkeypatch, routing.url)

    routing.status = 500
    r = world.rank(req, line)
    assert len(routing.calls) == 1  # unavailable: not asked again for the second candidate
    assert world.order(r) == [code("NEAR"), code("FURTHER")]
    assert candidate(r, code("NEAR")).eta_band == f"2{EN_DASH}4 h"
    for name in ("NEAR", "FURTHER"):
        assert (
            "road time estimated from distance: routing service unavailable (HTTP 500)"
            in factor(candidate(r, code(name)), "eta").text
        )
    assert r.notes == [
        "Routing service unavailable (HTTP 500): road times estimated from distances."
    ]

    routing.status, routing.body = 400, {"code": "NoRoute", "message": "Impossible route"}
    r = world.rank(req, line)
    assert (
        "routing service gave no route (HTTP 400)" in factor(candidate(r, code("NEAR")), "eta").text
    )

    routing.status, routing.body = 200, {"code": "Ok", "routes": []}
    r = world.rank(req, line)
    assert "gave no route (unexpected answer)" in factor(candidate(r, code("NEAR")), "eta").text

    # Nothing listening at all.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    _use_routing(monkeypatch, f"http://127.0.0.1:{closed_port}")
    r = world.rank(req, line)
    assert world.order(r) == [code("NEAR"), code("FURTHER")]
    assert "routing service unavailable" in factor(candidate(r, code("NEAR")), "eta").text
    assert r.notes[0].startswith("Routing service unavailable")


# --- the score in SQL is the score in Python ---------------------------------------------


def test_sql_score_equals_the_python_score(world: World) -> None:
    """The statement chooses the best rows by the same formula as score(), from what the
    matching engine may use of each unit; the two must agree, or the ranking could miss its
    best units."""
    days = get_settings().stale_after_days
    s1 = world.unit("S1", "BE", ANTWERP, package=4, notice=30, languages=("fr", "en"))
    world.unit("S2", "PT", LISBON, transport=("aircraft",), confirmed_days_ago=days + 1)
    world.unit("S3", "FR", PARIS, transport=("helicopter", "aircraft"), notice=None)
    world.unit("S4", "DE", MUNICH, package=None, languages=("fr",))
    world.unit("S5", "BE", None)
    hidden = {"package": "own_unit", "notice": "own_unit", "transport": "own_unit"}
    world.unit("S6", "PT", LISBON, transport=("aircraft",), notice=0, sharing=hidden)
    world.unit("S7", "FR", PARIS, level=1, sharing={"level": "matching"})  # excluded
    req, line = world.request(needed_by=NOW + timedelta(hours=5), quantity=7, min_level=2)
    elsewhere, _ = world.request(country="FR")
    _offer(world.db, elsewhere, s1, "MOBILISING")
    ctx = matching.load_legal_context(world.db, req, on=TODAY).for_line(world.ctype.code)
    hours_left = 5.0
    stale_cut = TODAY - timedelta(days=days)
    statement = matching._candidate_statement(matching._dialect(world.db), ("nl",), True)
    params = matching._statement_params(req, line, ctx, stale_cut=stale_cut, hours_left=hours_left)
    rows = world.db.execute(statement, {**params, "fit_rows": 100, "unfit_rows": 100}).all()
    assert {r.code for r in rows} == {
        code(f"S{i}", c)
        for i, c in ((1, "BE"), (2, "PT"), (3, "FR"), (4, "DE"), (5, "BE"), (6, "PT"), (7, "FR"))
    }
    by_code = {r.code: r for r in rows}
    for row in rows:
        plan = matching._plan(row, matching_groups.groups(row.groups), line, stale_cut, hours_left)
        assert (row.eta_unknown == 1) == (plan.score.eta is None)
        assert float(row.score) == pytest.approx(plan.score.points, abs=1e-9), row.code
        if row.code == code("S1"):
            assert plan.inputs.notice == 30  # above the default, and counted as it is
        if row.code == code("S6", "PT"):
            # Hidden from the engine: no package, the default notice, road only.
            assert (plan.inputs.package, plan.inputs.notice, plan.inputs.aircraft) == (
                None,
                None,
                False,
            )
            assert plan.score.mode == "road"
    assert by_code[code("S7", "FR")].eligible == 0
    assert by_code[code("S7", "FR")].level == 1  # shared with the engine only: still counts
    assert by_code[code("S1")].committed == 1
    assert by_code[code("S1")].lang == matching.W_ENGLISH
    assert by_code[code("S4", "DE")].lang == 0
    assert by_code[code("S2", "PT")].lang == matching.W_NATIVE_LANGUAGE
