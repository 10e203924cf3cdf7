"""Build the benchmark database: 10,000 units x 20 capability entries on PostgreSQL.

    .venv/bin/python bench/load_registry.py            # drop and rebuild atlaslink_bench
    .venv/bin/python bench/load_registry.py --reuse    # keep it if it is already loaded
    .venv/bin/python bench/load_registry.py --database atlaslink_bench_ops   # another database

Runs the migrations, loads the reference data (countries, ATLAS network, the 27 capability
types), then bulk-loads with PostgreSQL COPY: units, 20 capability entries each (20 of the 27
types, picked deterministically), 2 contacts each, transport assets for some units, and a
sharing agreement per unit (6 rules, one per field group; audiences vary and "listed" rules
have sharing_targets rows). Finally creates the benchmark users and their API tokens and writes
them to bench/results/tokens.json (git-ignored), which bench/bench_list_units.py reads; with
``--database NAME`` (another benchmark's own copy, so two benchmarks never rebuild each other's
data) the tokens go to bench/results/tokens-NAME.json instead.

Everything is generated from a fixed seed, so every run builds the same data.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import SYSTEM
from atlaslink.db import make_engine
from atlaslink.demo import data
from atlaslink.demo.seed import ensure_reference_data
from atlaslink.migrate import upgrade
from atlaslink.models import ApiToken, CapabilityType, Country, Network, Unit, User
from atlaslink.sharing import matching_groups
from atlaslink.sharing.policy import Audience, FieldGroup

SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "atlaslink_bench"
RESULTS = Path(__file__).resolve().parent / "results"
TOKENS_FILE = RESULTS / "tokens.json"
SEED = 20261123
ENTRIES_PER_UNIT = 20
BATCH = 1000  # units per COPY batch (progress granularity)

# The benchmark's viewers: (username, role, which unit or country). The duty officer is the
# measured viewer; the observer sees network-wide data only (never listed), for diagnosis.
BENCH_USERS: tuple[tuple[str, Role], ...] = (
    ("bench.duty", Role.DUTY_OFFICER),
    ("bench.observer", Role.OBSERVER),
)
DUTY_COUNTRY = "DE"

_WORDS_A = (
    "Alpine", "Amber", "Arctic", "Black", "Blue", "Bronze", "Coastal", "Crimson", "Eastern",
    "Falcon", "Golden", "Granite", "Grey", "Iron", "Lake", "Northern", "Red", "River", "Silver",
    "Southern", "Steel", "Storm", "Western", "White",
)  # fmt: skip
_WORDS_B = (
    "Adler", "Bear", "Cobra", "Eagle", "Falke", "Fox", "Hawk", "Heron", "Kestrel", "Lynx",
    "Osprey", "Otter", "Panther", "Raven", "Reiger", "Shark", "Viper", "Wolf", "Wolverine",
)  # fmt: skip
_LANGS = ("en", "fr", "de", "es", "it", "nl", "pl", "sv", "pt", "el", "ro", "hu", "cs", "fi")
_TRANSPORT = (
    ("helicopter", "Medium twin-engine helicopter", 9),
    ("aircraft", "Light twin-turboprop aircraft", 8),
    ("armoured_vehicle", "Armoured personnel carrier (wheeled 4x4)", 10),
    ("boat", "Rigid-hull inflatable boat (9 m RHIB)", 8),
)
_GROUPS = [g.value for g in FieldGroup]

# Sharing agreement templates (field group -> audience), with their weights.
_TEMPLATES: tuple[tuple[int, dict[str, str]], ...] = (
    # generous: everything network-wide, contacts to listed countries/units
    (35, {**dict.fromkeys(_GROUPS, "network"), "contacts": "listed"}),
    # mixed
    (
        30,
        {
            "existence": "network",
            "level": "network",
            "package": "listed",
            "notice": "support_office",
            "transport": "listed",
            "contacts": "own_unit",
        },
    ),
    # open
    (15, dict.fromkeys(_GROUPS, "network")),
    # strict
    (
        10,
        {
            "existence": "support_office",
            "level": "matching",
            "package": "own_unit",
            "notice": "matching",
            "transport": "own_unit",
            "contacts": "own_unit",
        },
    ),
)
_RANDOM_TEMPLATE_WEIGHT = 10  # the rest: each group's audience drawn at random


def database_url(name: str = DB_NAME) -> str:
    return f"{SERVER}/{name}"


def log(console: Console, message: str) -> None:
    console.print(f"[bold]{time.strftime('%H:%M:%S')}[/] {message}")


def tokens_file(name: str = DB_NAME) -> Path:
    return TOKENS_FILE if name == DB_NAME else RESULTS / f"tokens-{name}.json"


def prepare_database(console: Console, reuse: bool, name: str = DB_NAME) -> None:
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and reuse:
            log(console, f"reusing database {name}")
            return
        if exists:
            log(console, f"dropping database {name}")
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        log(console, f"creating database {name}")
        conn.execute(f'CREATE DATABASE "{name}"')


def _template(rng: random.Random) -> dict[str, str]:
    total = sum(w for w, _ in _TEMPLATES) + _RANDOM_TEMPLATE_WEIGHT
    pick = rng.randrange(total)
    for weight, template in _TEMPLATES:
        if pick < weight:
            return template
        pick -= weight
    audiences = [a.value for a in Audience]
    return {g: rng.choice(audiences) for g in _GROUPS}


class Generator:
    """Deterministic rows for the COPY statements; ids are assigned here."""

    def __init__(
        self,
        *,
        units: int,
        network_id: int,
        countries: Sequence[str],
        type_ids: Sequence[int],
        first_ids: dict[str, int],
    ) -> None:
        self.rng = random.Random(SEED)
        self.units = units
        self.network_id = network_id
        self.countries = list(countries)
        self.type_ids = list(type_ids)
        self.next_id = dict(first_ids)
        self.now = datetime.now(UTC)
        self.today = self.now.date()
        self.unit_ids = list(range(first_ids["units"], first_ids["units"] + units))

    def _id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def batches(self, size: int) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
        for start in range(0, self.units, size):
            yield self._batch(start, min(start + size, self.units))

    def _batch(self, start: int, stop: int) -> dict[str, list[tuple[Any, ...]]]:
        rng = self.rng
        out: dict[str, list[tuple[Any, ...]]] = {
            "units": [],
            "capability_entries": [],
            "unit_contacts": [],
            "transport_assets": [],
            "sharing_rules": [],
            "sharing_targets": [],
        }
        for n in range(start, stop):
            uid = self.unit_ids[n]
            country = self.countries[n % len(self.countries)]
            code = f"{country}-B{n:05d}"
            name = f"{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)} {n:05d}"
            languages = sorted({"en", *rng.sample(_LANGS, rng.randint(1, 3))})
            out["units"].append(
                (
                    uid,
                    code,
                    name,
                    self.network_id,
                    country,
                    f"Base {rng.randint(1, 400)}, {country}",
                    round(rng.uniform(36.0, 70.0), 4),
                    round(rng.uniform(-10.0, 30.0), 4),
                    json.dumps(languages),
                    f"Ministry of the Interior ({country})",
                    self.now,
                    self.now,
                )
            )
            for type_id in sorted(rng.sample(self.type_ids, ENTRIES_PER_UNIT)):
                level = rng.randint(0, 3)
                validated = rng.random() < 0.6
                out["capability_entries"].append(
                    (
                        self._id("capability_entries"),
                        uid,
                        type_id,
                        level,
                        rng.choice((None, 4, 8, 12, 16, 24, 40)),
                        rng.choice((None, 1, 2, 4, 6, 12, 24)),
                        rng.choice((None, 12, 24, 48, 72, 96)),
                        level == 3 or rng.random() < 0.3,
                        rng.random() < 0.4,
                        rng.random() < 0.15,
                        self.today - timedelta(days=rng.randint(30, 900)) if validated else None,
                        f"Exercise {rng.randint(1, 99)}" if validated else None,
                        None,
                        self.today - timedelta(days=rng.randint(0, 200)),
                    )
                )
            out["unit_contacts"].append(
                (
                    self._id("unit_contacts"),
                    uid,
                    "phone",
                    "24/7 duty desk",
                    f"+00 555 {n:05d} 0",
                )
            )
            out["unit_contacts"].append(
                (
                    self._id("unit_contacts"),
                    uid,
                    "email",
                    "Operations",
                    f"ops-{code.lower()}@bench.example.invalid",
                )
            )
            if rng.random() < 0.4:
                for _ in range(rng.randint(1, 3)):
                    kind, description, capacity = rng.choice(_TRANSPORT)
                    out["transport_assets"].append(
                        (
                            self._id("transport_assets"),
                            uid,
                            kind,
                            description,
                            rng.randint(1, 4),
                            capacity,
                        )
                    )
            audiences = _template(rng)
            listed_countries = sorted(rng.sample(self.countries, rng.randint(1, 4)))
            listed_units = sorted(rng.sample(self.unit_ids, rng.randint(0, 2)))
            for group in _GROUPS:
                rule_id = self._id("sharing_rules")
                audience = audiences[group]
                out["sharing_rules"].append((rule_id, uid, group, audience, self.now))
                if audience == Audience.LISTED.value:
                    for c in listed_countries:
                        out["sharing_targets"].append(
                            (self._id("sharing_targets"), rule_id, c, None)
                        )
                    for other in listed_units:
                        out["sharing_targets"].append(
                            (self._id("sharing_targets"), rule_id, None, other)
                        )
        return out


COLUMNS: dict[str, tuple[str, ...]] = {
    "units": (
        "id",
        "code",
        "name",
        "network_id",
        "country_iso2",
        "base_location",
        "latitude",
        "longitude",
        "languages",
        "competent_authority",
        "created_at",
        "updated_at",
    ),
    "capability_entries": (
        "id",
        "unit_id",
        "capability_type_id",
        "level",
        "package_size",
        "notice_to_move_hours",
        "self_sufficiency_hours",
        "may_deploy_abroad",
        "may_carry_arms_abroad",
        "may_carry_explosives_abroad",
        "last_validated",
        "validated_exercise",
        "owner_user_id",
        "confirmed_on",
    ),
    "unit_contacts": ("id", "unit_id", "kind", "label", "value"),
    "transport_assets": ("id", "unit_id", "kind", "description", "quantity", "capacity_persons"),
    "sharing_rules": ("id", "unit_id", "field_group", "audience", "updated_at"),
    "sharing_targets": ("id", "rule_id", "country_iso2", "unit_id"),
}


def _copy(cur: psycopg.Cursor[Any], table: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def bulk_load(console: Console, url: str, units: int) -> None:
    engine = make_engine(url)
    with Session(engine) as s:
        network_id = s.scalar(select(Network.id).where(Network.code == "ATLAS"))
        assert network_id is not None
        members = set(s.scalars(select(Country.iso2)))
        type_ids = list(
            s.scalars(
                select(CapabilityType.id)
                .where(CapabilityType.retired_in.is_(None))
                .order_by(CapabilityType.sort_order)
            )
        )
    engine.dispose()
    countries = [
        c.iso2
        for c in data.COUNTRIES
        if (c.status in ("eu", "associated") or c.iso2 == "GB") and c.iso2 in members
    ]
    if len(type_ids) < ENTRIES_PER_UNIT:
        sys.exit(f"only {len(type_ids)} capability types; need {ENTRIES_PER_UNIT}")
    log(console, f"{len(type_ids)} capability types, {len(countries)} member countries")
    counts = dict.fromkeys(COLUMNS, 0)
    with psycopg.connect(url) as conn:
        first_ids = {
            table: (conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()
                    or (1,))[0]
            for table in COLUMNS
        }  # fmt: skip
        gen = Generator(
            units=units,
            network_id=network_id,
            countries=countries,
            type_ids=type_ids,
            first_ids=first_ids,
        )
        started = time.monotonic()
        with Progress(
            TextColumn("[bold]COPY[/] units"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rows]} rows"),
            console=console,
        ) as progress:
            task = progress.add_task("load", total=units, rows=0)
            # Listed units may come later in the load: their targets go in last.
            targets: list[tuple[Any, ...]] = []
            with conn.cursor() as cur:
                for batch in gen.batches(BATCH):
                    targets.extend(batch.pop("sharing_targets"))
                    for table, rows in batch.items():
                        _copy(cur, table, rows)
                        counts[table] += len(rows)
                    progress.update(task, advance=len(batch["units"]), rows=sum(counts.values()))
                _copy(cur, "sharing_targets", targets)
                counts["sharing_targets"] = len(targets)
        for table in COLUMNS:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        conn.commit()
        log(console, f"loaded in {time.monotonic() - started:.1f} s: {counts}")
    # COPY bypassed registry.service.set_sharing: derive units.matching_groups as it would.
    with Session(engine := make_engine(url)) as s:
        matching_groups.refresh(s)
        s.commit()
    engine.dispose()
    log(console, "units.matching_groups derived from the agreements")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    log(console, "VACUUM ANALYZE done")


def ensure_users(console: Console, url: str, tokens: Path = TOKENS_FILE) -> dict[str, Any]:
    """The benchmark users with one fresh API token each (tokens are stored only hashed)."""
    engine = make_engine(url)
    out: dict[str, Any] = {"database_url": url, "users": {}}
    with Session(engine) as s:
        duty_unit = s.scalar(
            select(Unit.code)
            .where(Unit.country_iso2 == DUTY_COUNTRY)
            .order_by(Unit.country_iso2, Unit.name, Unit.id)
            .limit(1)
        )
        assert duty_unit is not None
        for username, role in BENCH_USERS:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                user = auth.create_user(
                    s,
                    SYSTEM,
                    username=username,
                    display_name=username,
                    role=role,
                    password="bench-password-not-secret",
                    unit_code=duty_unit if role is Role.DUTY_OFFICER else None,
                )
            for old in s.scalars(
                select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            ):
                old.revoked_at = datetime.now(UTC)
            issued = auth.create_token(s, user, "benchmark")
            out["users"][username] = {
                "role": role.value,
                "unit_id": user.unit_id,
                "country": user.country_iso2,
                "token": issued.token,
            }
        s.commit()
    engine.dispose()
    RESULTS.mkdir(exist_ok=True)
    tokens.write_text(json.dumps(out, indent=2) + "\n")
    tokens.chmod(0o600)
    log(console, f"users and tokens written to {tokens}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    parser.add_argument("--units", type=int, default=10_000, help="units to load (10000)")
    parser.add_argument(
        "--database", default=DB_NAME, help=f"database name on the server ({DB_NAME})"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.units <= 100_000:
        parser.error("--units must be between 1 and 100000")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.database):
        parser.error("--database must be a plain lower-case PostgreSQL identifier")
    console = Console()
    started = time.monotonic()
    prepare_database(console, args.reuse, args.database)
    url = database_url(args.database)
    engine = make_engine(url)
    log(console, "running migrations")
    upgrade(engine)
    with Session(engine) as s:
        if ensure_reference_data(s):
            log(console, "reference data loaded")
        s.commit()
        have = s.scalar(select(func.count(Unit.id))) or 0
    engine.dispose()
    if have == 0:
        bulk_load(console, url, args.units)
    elif have == args.units:
        log(console, f"{have} units already loaded; keeping them")
    else:
        sys.exit(f"{args.database} holds {have} units, not {args.units}: run without --reuse")
    ensure_users(console, url, tokens_file(args.database))
    log(console, f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
