"""In-process benchmark: ranking one request line (issue 3) on 10,000 units x 20 entries.

    .venv/bin/python bench/load_registry.py --database atlaslink_bench_ops --reuse
    .venv/bin/python bench/bench_rank_line.py                 # 240 lines x 5 rounds

Target: ``matching.rank_line`` p95 <= 20 ms in process, against a baseline measured in the same
run: the plain candidate query (the line's capability entries of units of other countries,
with their units, every row fetched; no sharing rules, no ranking). Two more variants show where
the time goes: the ranking statement alone (matching's SQL, no Python explanation) and
``rank_line_sql``, the complete ranking choosing its rows with that statement
(``scoring="sql"``, the reference; the default scores the per-process columns with numpy).
Before the warm-up the columns are built once from nothing and timed (what the first ranking of
a capability type pays after a registry change); the rounds measure them built.

Every line gets a random capability type, minimum level 0-3, quantity, incident location,
requesting country, nature and legal basis; some countries get settings (bilateral agreement
required, host prohibitions, outside 2008/617), some pairs an agreement, and 300 units a
deployment on another live request. All of it is written in one transaction that is rolled
back at the end: the benchmark database is never changed.

Rounds are interleaved: in every round each line runs all variants back to back, in an order
that rotates per line. Before each round the script waits (bounded) for the machine to be
quiet, then runs a fixed pure-Python loop ("calibration"); during the round it splits the CPU
time into ours (this process and its PostgreSQL backend) and foreign, and runs the round again
when foreign work took more than --max-foreign %. After the warm-up it calls gc.freeze(), as a
server should after start-up (--no-gc-freeze to measure without). The results are printed as
Markdown and written to bench/results/rank_line-<time>.json (git-ignored).

Only one benchmark runs at a time on this machine: the script waits while
/tmp/atlaslink-benching exists (another benchmark), then holds that file until it is done.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import Principal
from atlaslink.db import make_engine
from atlaslink.models import (
    AssistanceRequest,
    BilateralAgreement,
    CapabilityEntry,
    CapabilityType,
    CountrySettings,
    NetworkMember,
    Offer,
    RequestAddressee,
    RequestLine,
    Unit,
)
from atlaslink.operations import matching, matching_columns
from atlaslink.registry import version as registry_version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lock import benchmark_lock

SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "atlaslink_bench_ops"
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20261124
VARIANTS = ("baseline", "statement", "rank_line_sql", "rank_line")


# --- the machine and the lock ------------------------------------------------------------


def machine(session: Session) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model[1] if model else "unknown",
        "ram_gib": round(int(mem[1]) / 1024 / 1024, 1) if mem else None,
        "python": platform.python_version(),
        "postgresql": session.scalar(text("SHOW server_version")),
        "kernel": platform.release(),
    }


def calibration_ms() -> float:
    """A fixed pure-Python loop: how fast this machine runs Python right now."""
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i * i % 7
    return (time.perf_counter() - started) * 1000


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def busy_pct(seconds: float = 2.0) -> float:
    """How busy the whole machine was over the next ``seconds`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]) - fields[3] - fields[4], sum(fields[:8])

    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return 100 * (b1 - b0) / max(1, t1 - t0)


def wait_for_quiet(limit_pct: float, timeout: float) -> float:
    """Wait (at most ``timeout`` s) until the machine is at most ``limit_pct`` % busy."""
    deadline = time.monotonic() + timeout
    while (pct := busy_pct()) > limit_pct and time.monotonic() < deadline:
        print(f"# machine {pct:.0f}% busy with other work; waiting", file=sys.stderr)
    return pct


def _jiffies_of(pid: int) -> int:
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(rest[11]) + int(rest[12])  # utime + stime


class CpuSplit:
    """The machine's CPU time during a round, split into ours (this process and its
    PostgreSQL backend) and foreign (everything else: other people's work on the 2 cores)."""

    def __init__(self, backend_pid: int | None) -> None:
        self.backend = backend_pid or 0

    def _machine(self) -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]) - fields[3] - fields[4], sum(fields[:8])

    def __enter__(self) -> CpuSplit:
        self.m0, self.t0 = self._machine()
        self.own0 = os.times()
        self.pg0 = _jiffies_of(self.backend)
        return self

    def __exit__(self, *exc: object) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        m1, t1 = self._machine()
        own = os.times()
        ours = (own.user + own.system - self.own0.user - self.own0.system) + (
            _jiffies_of(self.backend) - self.pg0
        ) / hz
        busy, total = (m1 - self.m0) / hz, (t1 - self.t0) / hz
        self.foreign_pct = 100 * max(0.0, busy - ours) / total if total else 0.0


# --- the scenario ------------------------------------------------------------------------


class Scenario:
    """Requests, lines and network facts, written in the session's (rolled back) transaction."""

    def __init__(
        self,
        session: Session,
        lines: int,
        rng: random.Random,
        requesting: dict[str, int] | None = None,
    ) -> None:
        """``requesting``: the requesting countries to draw from, each with its requesting unit
        (default: every country, its first unit)."""
        self.session = session
        self.rng = rng
        self.today = datetime.now(UTC).date()
        self.types = list(
            session.scalars(select(CapabilityType).where(CapabilityType.retired_in.is_(None)))
        )
        self.countries = sorted(
            set(session.scalars(select(NetworkMember.country_iso2)))
            & set(session.scalars(select(Unit.country_iso2).distinct()))
        )
        self.viewers = {
            c: session.scalar(
                select(Unit.id).where(Unit.country_iso2 == c).order_by(Unit.id).limit(1)
            )
            for c in self.countries
        }
        self.requesting = requesting or self.viewers
        self._country_facts()
        self._deployments()
        self.lines = [self._line(i) for i in range(lines)]
        session.flush()

    def _country_facts(self) -> None:
        s, rng = self.session, self.rng
        facts = {
            "NL": {"requires_bilateral_agreement": True},
            "CH": {"requires_bilateral_agreement": True},
            "GB": {"excluded_from_2008_617": True},
            "FR": {"prohibits_foreign_explosives": True},
            "DK": {"prohibits_foreign_arms": True},
        }
        for country, flags in facts.items():
            if country in self.countries:
                s.merge(CountrySettings(country_iso2=country, **flags))
        for partner in rng.sample([c for c in self.countries if c != "NL"], 8):
            a, b = sorted(("NL", partner))
            s.add(BilateralAgreement(name=f"NL-{partner}", country_a=a, country_b=b))
        s.add(
            BilateralAgreement(
                name="CH-AT (expired)",
                country_a="AT",
                country_b="CH",
                valid_to=self.today - timedelta(days=30),
            )
        )
        s.flush()

    def _request(self, n: int, country: str, **over: Any) -> AssistanceRequest:
        lat, lon = self.rng.uniform(36.0, 70.0), self.rng.uniform(-10.0, 30.0)
        req = AssistanceRequest(
            reference=f"BENCH-{n}",
            kind="request",
            status="OPEN",
            exercise=True,
            requesting_country=country,
            requesting_unit_id=over.pop("requesting_unit_id", self.viewers[country]),
            created_by_label="bench",
            title="Benchmark request",
            crisis_category="hostage_taking",
            location_name="Somewhere",
            latitude=lat,
            longitude=lon,
            nature=over.pop("nature", ["expertise"]),
            legal_basis=over.pop("legal_basis", "prum-art17"),
            ack_minutes=10,
            max_escalations=2,
            incident_id=f"BENCH-{n}",
            **over,
        )
        self.session.add(req)
        self.session.flush()
        return req

    def _deployments(self) -> None:
        """300 units deployed on other live requests (commitments count in the ranking)."""
        s = self.session
        elsewhere = [self._request(100_000 + i, self.rng.choice(self.countries)) for i in range(10)]
        units = self.rng.sample(list(s.scalars(select(Unit.id))), 300)
        for i, unit_id in enumerate(units):
            req = elsewhere[i % len(elsewhere)]
            a = RequestAddressee(
                request_id=req.id,
                unit_id=unit_id,
                status="ACCEPTED",
                addressed_by_label="bench",
                ack_due_at=datetime.now(UTC),
            )
            s.add(a)
            s.flush()
            s.add(
                Offer(
                    request_id=req.id,
                    addressee_id=a.id,
                    unit_id=unit_id,
                    request_version=1,
                    kind="offer",
                    status=self.rng.choice(("AGREED", "EN_ROUTE", "ON_SITE")),
                    created_by_label="bench",
                )
            )
        s.flush()

    def _line(self, n: int) -> tuple[AssistanceRequest, RequestLine]:
        rng = self.rng
        country = rng.choice(sorted(self.requesting))
        req = self._request(
            n,
            country,
            requesting_unit_id=self.requesting[country],
            nature=rng.choice((["expertise"], ["intervention"], ["intervention", "equipment"])),
            legal_basis=rng.choice(("2008/617-art3", "prum-art17", "prum-art18")),
        )
        line = RequestLine(
            request_id=req.id,
            line_no=1,
            capability_type_id=rng.choice(self.types).id,
            min_level=rng.randint(0, 3),
            quantity=rng.choice((2, 4, 6, 10, 15, 20)),
            needed_by=(
                datetime.now(UTC) + timedelta(hours=rng.randint(2, 24))
                if rng.random() < 0.5
                else None
            ),
        )
        self.session.add(line)
        self.session.flush()
        return req, line

    def viewer(self, req: AssistanceRequest) -> Principal:
        return Principal.for_user(
            user_id=0,
            username="bench.requester",
            role=Role.DUTY_OFFICER,
            unit_id=req.requesting_unit_id,
            country=None,
        )


# --- the variants ------------------------------------------------------------------------


def baseline(session: Session, req: AssistanceRequest, line: RequestLine) -> int:
    """The plain candidate query: every entry of the type in other countries, with its unit."""
    rows = session.execute(
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
    return len(rows)


def statement_only(session: Session, req: AssistanceRequest, line: RequestLine) -> int:
    """matching's ranking statement alone, as rank_line runs it (with its legal-context reads)."""
    ctx = matching.load_legal_context(session, req).for_line("x")
    languages = matching._requesting_languages(session, req)
    # The code before perf-matching (for a before/after run with the same harness) prepared the
    # connection itself and read 3 x limit fitting rows first.
    before: Any = getattr(matching, "_prepare_connection", None)
    stmt = matching._candidate_statement(
        before(session) if before else matching._dialect(session),
        tuple(sorted(languages - {matching.ENGLISH})),
        matching.ENGLISH in languages,
    )
    params = matching._statement_params(
        req, line, ctx, stale_cut=date.today() - timedelta(days=90), hours_left=None
    )
    rows = session.execute(
        stmt, {**params, "fit_rows": 75 if before else 25, "unfit_rows": matching.MAX_EXCLUDED * 3}
    ).all()
    return len(rows)


def ranked(
    session: Session,
    req: AssistanceRequest,
    line: RequestLine,
    viewer: Principal,
    scoring: Literal["columns", "sql"] = "columns",
) -> int:
    r = matching.rank_line(session, viewer, req, line, now=datetime.now(UTC), scoring=scoring)
    return len(r.candidates)


def build_columns(session: Session, types: Sequence[int]) -> dict[str, Any]:
    """The per-process columns built from nothing, as after a registry change: the units once,
    then each capability type (what the first ranking of a type pays then)."""
    matching_columns.clear()
    version = registry_version.current(session)
    started = time.perf_counter()
    matching_columns.units_at(session, version)
    units_ms = (time.perf_counter() - started) * 1000
    per_type: list[float] = []
    for type_id in types:
        started = time.perf_counter()
        matching_columns.type_at(session, version, type_id)
        per_type.append((time.perf_counter() - started) * 1000)
    return {
        "units_ms": round(units_ms, 1),
        "type_median_ms": round(statistics.median(per_type), 1),
        "type_max_ms": round(max(per_type), 1),
        "types": len(per_type),
    }


# --- running -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run(args: argparse.Namespace) -> dict[str, Any]:
    engine = make_engine(f"{SERVER}/{args.database}")
    rng = random.Random(SEED)
    with Session(engine) as session:
        units = session.scalar(text("SELECT count(*) FROM units"))
        entries = session.scalar(text("SELECT count(*) FROM capability_entries"))
        if not units or units < 10_000:
            sys.exit(f"{args.database} holds {units} units: run bench/load_registry.py first")
        info = machine(session)
        info |= {
            "units": units,
            "entries": entries,
            "lines": args.lines,
            "rounds": args.rounds,
            "gc_freeze": args.gc_freeze,
        }
        scenario = Scenario(session, args.lines, rng)
        calls: dict[str, Callable[[AssistanceRequest, RequestLine], int]] = {
            "baseline": lambda r, ln: baseline(session, r, ln),
            "statement": lambda r, ln: statement_only(session, r, ln),
            "rank_line_sql": lambda r, ln: ranked(
                session, r, ln, scenario.viewer(r), scoring="sql"
            ),
            "rank_line": lambda r, ln: ranked(session, r, ln, scenario.viewer(r)),
        }
        info["columns_build"] = build_columns(session, [t.id for t in scenario.types])
        # Warm-up: caches, prepared statements (psycopg prepares after 5 runs of a statement).
        for req, line in scenario.lines[: args.warmup]:
            for name in VARIANTS:
                calls[name](req, line)
        samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
        paired: list[float] = []
        rounds: list[dict[str, Any]] = []
        backend = session.scalar(text("SELECT pg_backend_pid()"))
        if args.gc_freeze:
            # As a server would after start-up: what exists now (modules, metadata, the
            # scenario) is never scanned again, so a full collection takes ~1 ms, not ~60 ms.
            gc.collect()
            gc.freeze()
        discarded: list[dict[str, Any]] = []
        for rnd in range(args.rounds):
            for attempt in range(1, args.max_attempts + 1):
                quiet = wait_for_quiet(args.quiet_pct, args.quiet_timeout)
                gc.collect()
                cal, load = calibration_ms(), load_average()
                this: dict[str, list[float]] = {v: [] for v in VARIANTS}
                pairs: list[float] = []
                order = list(range(len(scenario.lines)))
                rng.shuffle(order)
                with CpuSplit(backend) as cpu:
                    for i, idx in enumerate(order):
                        req, line = scenario.lines[idx]
                        k = i % len(VARIANTS)
                        variants = VARIANTS[k:] + VARIANTS[:k]  # rotate the order
                        took: dict[str, float] = {}
                        for name in variants:
                            started = time.perf_counter()
                            calls[name](req, line)
                            took[name] = (time.perf_counter() - started) * 1000
                        for name, ms in took.items():
                            this[name].append(ms)
                        pairs.append(took["rank_line"] / took["baseline"])
                record = {
                    "round": rnd + 1,
                    "attempt": attempt,
                    "calibration_ms": round(cal, 1),
                    "busy_before_pct": round(quiet),
                    "foreign_pct": round(cpu.foreign_pct, 1),
                    "load_before": load,
                    "load_after": load_average(),
                    **{
                        f"{v}_{k}": round(f(this[v]), 2)
                        for v in VARIANTS
                        for k, f in (
                            ("median", statistics.median),
                            ("p95", lambda x: percentile(x, 0.95)),
                        )
                    },
                }
                print(f"# round {rnd + 1}.{attempt}: {record}", file=sys.stderr)
                if cpu.foreign_pct > args.max_foreign and attempt < args.max_attempts:
                    discarded.append(record)
                    print("# other work took the CPU: round run again", file=sys.stderr)
                    continue
                rounds.append(record)
                for v in VARIANTS:
                    samples[v].extend(this[v])
                paired.extend(pairs)
                break
        session.rollback()
    engine.dispose()
    summary = {
        v: {
            "median": statistics.median(samples[v]),
            "p95": percentile(samples[v], 0.95),
            "p99": percentile(samples[v], 0.99),
            "n": len(samples[v]),
        }
        for v in VARIANTS
    }
    return {
        "machine": info,
        "summary": summary,
        "paired_ratio_median": statistics.median(paired),
        "paired_ratio_p95": percentile(paired, 0.95),
        "rounds": rounds,
        "discarded": discarded,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    m, s = result["machine"], result["summary"]
    out = [
        f"Command: `{command}`",
        "",
        f'Machine: `nproc` {m["nproc"]}; CPU "{m["cpu_model"]}"; {m["ram_gib"]} GiB RAM; '
        f"Python {m['python']}; PostgreSQL {m['postgresql']}; kernel {m['kernel']}; {m['date']}.",
        f"Data: {m['units']:,} units, {m['entries']:,} capability entries; "
        f"{m['lines']} lines x {m['rounds']} rounds per variant; "
        f"gc.freeze() after the warm-up: {'yes' if m.get('gc_freeze') else 'no'}.",
        "Columns built from nothing before the warm-up: units "
        f"{m['columns_build']['units_ms']} ms, then each of {m['columns_build']['types']} "
        f"capability types median {m['columns_build']['type_median_ms']} ms (max "
        f"{m['columns_build']['type_max_ms']} ms).",
        "",
        "| variant | median ms | p95 ms | p99 ms | samples |",
        "|---|---:|---:|---:|---:|",
    ]
    for v in VARIANTS:
        out.append(
            f"| {v} | {s[v]['median']:.1f} | {s[v]['p95']:.1f} | {s[v]['p99']:.1f} | {s[v]['n']} |"
        )
    b, r = s["baseline"], s["rank_line"]
    out += [
        "",
        f"rank_line / baseline: medians {r['median'] / b['median']:.2f}, p95 "
        f"{r['p95'] / b['p95']:.2f}; per line (paired), median {result['paired_ratio_median']:.2f},"
        f" p95 {result['paired_ratio_p95']:.2f}. Target p95 <= 20 ms: "
        f"{'met' if r['p95'] <= 20 else 'not met'}. rank_line / rank_line_sql: medians "
        f"{r['median'] / s['rank_line_sql']['median']:.2f}, p95 "
        f"{r['p95'] / s['rank_line_sql']['p95']:.2f}.",
        "",
        "| round | busy before % | foreign CPU % | calibration ms | load before | load after | "
        + " | ".join(f"{v} median / p95" for v in VARIANTS)
        + " |",
        "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(VARIANTS),
    ]
    header = out[-2:]
    for title, rows in (("", result["rounds"]), ("discarded", result["discarded"])):
        if title:
            if not rows:
                break
            out += ["", "Rounds run again (other work took more than the limit):", "", *header]
        for rd in rows:
            cells = " | ".join(f"{rd[f'{v}_median']:.1f} / {rd[f'{v}_p95']:.1f}" for v in VARIANTS)
            out.append(
                f"| {rd['round']} | {rd['busy_before_pct']} | {rd['foreign_pct']} | "
                f"{rd['calibration_ms']} | {rd['load_before']} | {rd['load_after']} | {cells} |"
            )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DB_NAME, help=f"database ({DB_NAME})")
    parser.add_argument("--lines", type=int, default=240, help="request lines (240)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--warmup", type=int, default=20, help="lines run before measuring (20)")
    parser.add_argument(
        "--wait-minutes", type=float, default=20, help="longest wait for another benchmark (20)"
    )
    parser.add_argument("--expected-seconds", type=float, default=600, help="for the lock file")
    parser.add_argument(
        "--quiet-pct", type=float, default=15, help="before a round, wait for <= this %% busy"
    )
    parser.add_argument("--quiet-timeout", type=float, default=120, help="longest such wait, s")
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=10,
        help="run a round again when other work took more than this %% of the CPU (10)",
    )
    parser.add_argument("--max-attempts", type=int, default=3, help="attempts per round (3)")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="do not gc.freeze() after the warm-up (full collections then take ~60 ms and land "
        "in whichever call triggers them, mostly after the baseline's 7,000 rows)",
    )
    args = parser.parse_args(argv)
    if args.lines < 1 or args.rounds < 1:
        parser.error("--lines and --rounds must be positive")
    command = " ".join(["bench/bench_rank_line.py", *(argv or sys.argv[1:])])
    # A terminated run must still give the lock file back (finally blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with benchmark_lock("bench_rank_line.py", args.expected_seconds, args.wait_minutes):
        result = run(args)
    text_md = markdown(result, f".venv/bin/python {command}")
    print(text_md)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"rank_line-{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"rank_line-{stamp}.md").write_text(text_md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
