"""API benchmark: ranking one request line through ``GET …/lines/{n}/candidates`` (issue 3).

    .venv/bin/python bench/load_registry.py --database atlaslink_bench_ops --reuse
    .venv/bin/python bench/bench_rank_api.py                 # defaults: see --help

Target: p95 <= 100 ms through the API with 10,000 units x 20 entries, against a baseline
measured in the same run. ``bench.rank_app`` (the platform's app plus one benchmark-only
route) runs under uvicorn with the settings of ``atlaslink serve``; wrk (a separate process on
the same 2 cores) requests, interleaved round by round so that drift hits both alike:

* ranking: GET /api/v1/requests/{id}/lines/1/candidates            (limit 25, as the UI asks)
* plain:   GET /bench/requests/{id}/lines/1/candidates-plain  (same authentication, visibility
           check, line look-up, middleware and transaction; then the plain candidate query,
           every row fetched, no sharing and no ranking: the in-process benchmark's baseline)

{id} is drawn at random for every request from --lines requests, each with one line (random
capability, minimum level, quantity, incident location, nature, legal basis, needed-by), made
by the requesting side of the benchmark's duty officer (bench.duty, a German unit), with the
same country settings, bilateral agreements and 300 deployments elsewhere as
bench/bench_rank_line.py. They are written before the server starts and deleted at the end
(also after a failed run; leftovers of a killed run are deleted at the next start).

The machine is shared: before each round the script waits for it to be quiet, splits the CPU
time of every run into ours and foreign (bench/bench_list_units.py: CpuMeter) and runs a round
again when foreign work took more than --max-foreign %. Only one benchmark runs at a time: the
script waits while /tmp/atlaslink-benching exists, then holds it. Results: Markdown on stdout
and bench/results/rank_api-<time>.json and .md (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from atlaslink.db import make_engine
from atlaslink.models import (
    AssistanceRequest,
    BilateralAgreement,
    CountrySettings,
    Offer,
    RequestAddressee,
    RequestLine,
)

if __package__ in (None, ""):  # run as bench/bench_rank_api.py: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_list_units import (
    HOST,
    CpuMeter,
    Server,
    calibrate,
    machine,
    source_version,
    wait_for_quiet,
)
from bench.bench_rank_line import SEED, Scenario
from bench.load_registry import tokens_file
from bench.lock import benchmark_lock

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "rank_lines.lua"
DB_NAME = "atlaslink_bench_ops"
USER = "bench.duty"
VARIANTS: dict[str, str] = {
    "ranking": "/api/v1/requests/{id}/lines/1/candidates",
    "plain": "/bench/requests/{id}/lines/1/candidates-plain",
}
TARGET_P95_MS = 100.0


# --- the benchmark's requests --------------------------------------------------------------


def _ours(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(AssistanceRequest.id).where(AssistanceRequest.reference.like("BENCH-%"))
        )
    )


def remove_requests(session: Session) -> int:
    """Delete the benchmark's requests (reference BENCH-…) with their lines, addressees and
    offers, and the country settings and agreements it wrote."""
    ids = _ours(session)
    if ids:
        session.execute(delete(Offer).where(Offer.request_id.in_(ids)))
        session.execute(delete(RequestAddressee).where(RequestAddressee.request_id.in_(ids)))
        session.execute(delete(RequestLine).where(RequestLine.request_id.in_(ids)))
        session.execute(delete(AssistanceRequest).where(AssistanceRequest.id.in_(ids)))
        session.execute(delete(BilateralAgreement))
        session.execute(delete(CountrySettings))
    session.commit()
    return len(ids)


def create_requests(session: Session, lines: int, duty_unit_id: int) -> list[int]:
    """Committed: the scenario of bench_rank_line.py, every request by the duty officer's side."""
    if session.scalar(select(func.count()).select_from(CountrySettings)) or session.scalar(
        select(func.count()).select_from(BilateralAgreement)
    ):
        sys.exit("the benchmark database has country settings or agreements of its own: use a copy")
    scenario = Scenario(session, lines, random.Random(SEED), requesting={"DE": duty_unit_id})
    ids = [req.id for req, _ in scenario.lines]
    session.commit()
    return ids


# --- running ----------------------------------------------------------------------------------


class RankServer(Server):
    """uvicorn serving bench.rank_app instead of bench.baseline_app."""

    def __init__(self, url: str, port: int, workers: int, log_path: Path) -> None:
        super().__init__(url, port, workers, log_path)
        self.cmd[self.cmd.index("bench.baseline_app:create_bench_app")] = (
            "bench.rank_app:create_rank_bench_app"
        )


def check(port: int, path: str, token: str) -> None:
    req = urllib.request.Request(
        f"http://{HOST}:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.loads(r.read())
    if not body.get("candidates"):
        raise RuntimeError(f"{path}: no candidates in {str(body)[:200]}")


def run_wrk(
    port: int,
    path: str,
    token: str,
    ids: Sequence[int],
    *,
    connections: int,
    duration: int,
    seed: int,
    close: bool,
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://{HOST}:{port}",
    ]
    env = {
        **os.environ,
        "BENCH_TOKEN": token,
        "BENCH_PATH": path,
        "BENCH_IDS": ",".join(str(i) for i in ids),
        "BENCH_SEED": str(seed),
        "BENCH_CLOSE": "1" if close else "0",
    }
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=duration + 60, check=True
    ).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    raw = json.loads(line[len("BENCH_JSON ") :])
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "errors": sum(v for k, v in raw.items() if k.startswith("errors_")),
        "wrk_cmd": " ".join(cmd),
    }


def summarise(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for conns in sorted({r["connections"] for r in rounds}):
        group = [r for r in rounds if r["connections"] == conns]
        row: dict[str, Any] = {"connections": conns}
        for v in VARIANTS:
            vr = [r for r in group if r["variant"] == v]
            row[v] = {
                k: statistics.median(r[k] for r in vr)
                for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "foreign_pct")
            }
            row[v]["errors"] = sum(r["errors"] for r in vr)
        paired = []
        for n in sorted({r["round"] for r in group}):
            rk = next(r for r in group if r["round"] == n and r["variant"] == "ranking")
            pl = next(r for r in group if r["round"] == n and r["variant"] == "plain")
            paired.append({"p50": rk["p50_ms"] / pl["p50_ms"], "p95": rk["p95_ms"] / pl["p95_ms"]})
        row["ratio"] = {k: statistics.median(p[k] for p in paired) for k in ("p50", "p95")}
        out.append(row)
    return out


def markdown(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| conns | variant | req/s | p50 ms | p95 ms | p99 ms | errors | foreign CPU % |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        for v in VARIANTS:
            m = row[v]
            lines.append(
                f"| {row['connections']} | {v} | {m['rps']:.1f} | {m['p50_ms']:.1f} | "
                f"{m['p95_ms']:.1f} | {m['p99_ms']:.1f} | {m['errors']} | {m['foreign_pct']:.0f} |"
            )
    lines += [
        "",
        "| conns | ranking / plain p50 | ranking / plain p95 | ranking p95 <= 100 ms |",
        "|---:|---:|---:|---|",
    ]
    for row in summary:
        met = "yes" if row["ranking"]["p95_ms"] <= TARGET_P95_MS else "**no**"
        lines.append(
            f"| {row['connections']} | {row['ratio']['p50']:.2f} | {row['ratio']['p95']:.2f} | "
            f"{met} |"
        )
    return "\n".join(lines)


def raw_markdown(rounds: list[dict[str, Any]]) -> str:
    lines = [
        "| conns | round | variant | req/s | p50 ms | p95 ms | p99 ms | requests | errors "
        "| foreign CPU % | calibration ms |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        lines.append(
            f"| {r['connections']} | {r['round']} | {r['variant']} | {r['rps']:.1f} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['requests']} | "
            f"{r['errors']} | {r['foreign_pct']:.0f} | {r['calibration_ms']:.0f} |"
        )
    return "\n".join(lines)


def measure(args: argparse.Namespace, url: str, token: str, ids: list[int]) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    db_name = url.rsplit("/", 1)[1]
    code = source_version()
    deadline = time.monotonic() + 60 * args.max_minutes
    rounds: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    variants = list(VARIANTS)
    log_path = RESULTS / f"rank-server-w{args.workers}-{stamp}.log"
    with RankServer(url, args.port, args.workers, log_path) as server:
        for v in variants:
            check(args.port, VARIANTS[v].replace("{id}", str(ids[0])), token)
            if args.warmup:
                run_wrk(
                    args.port,
                    VARIANTS[v],
                    token,
                    ids,
                    connections=max(args.connections),
                    duration=args.warmup,
                    seed=999,
                    close=args.close,
                )
        for n in range(1, args.rounds + 1):
            for conns in args.connections:
                shift = (n - 1) % len(variants)
                order = variants[shift:] + variants[:shift]
                for attempt in range(1, args.max_attempts + 1):
                    wait = max(0.0, min(args.quiet_timeout, deadline - time.monotonic()))
                    quiet = wait_for_quiet(args.quiet_pct, wait)
                    calib = calibrate()
                    block = []
                    for v in order:
                        with CpuMeter(server.pgid, db_name) as cpu:
                            res = run_wrk(
                                args.port,
                                VARIANTS[v],
                                token,
                                ids,
                                connections=conns,
                                duration=args.duration,
                                seed=n,
                                close=args.close,
                            )
                        res.update(
                            connections=conns,
                            round=n,
                            attempt=attempt,
                            variant=v,
                            busy_pct=cpu.busy_pct,
                            foreign_pct=cpu.foreign_pct,
                            quiet_before_pct=quiet,
                            calibration_ms=calib,
                            load_average=os.getloadavg()[0],
                            code=code,
                        )
                        block.append(res)
                        print(
                            f"c={conns} round={n}.{attempt} {v:<8} {res['rps']:6.1f} req/s  "
                            f"p50 {res['p50_ms']:6.1f}  p95 {res['p95_ms']:6.1f}  "
                            f"p99 {res['p99_ms']:6.1f} ms  errors {res['errors']}  "
                            f"foreign {cpu.foreign_pct:.0f}%  calibration {calib:.0f} ms",
                            flush=True,
                        )
                    noisy = max(r["foreign_pct"] for r in block) > args.max_foreign
                    if noisy and attempt < args.max_attempts and time.monotonic() < deadline:
                        discarded.extend(block)
                        print("  other work took the CPU: round run again", flush=True)
                        continue
                    rounds.extend(block)
                    break
    return {"rounds": rounds, "discarded": discarded, "stamp": stamp}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", default=DB_NAME, help=f"database ({DB_NAME})")
    p.add_argument("--lines", type=int, default=240, help="requests of one line each (240)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers (1)")
    p.add_argument("--connections", default="1", help="wrk -c values, comma-separated (1)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up seconds per variant (5)")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--close", action="store_true", help="a new connection per request")
    p.add_argument("--quiet-pct", type=float, default=10.0, help="wait for <= this %% busy (10)")
    p.add_argument("--quiet-timeout", type=float, default=300.0, help="longest such wait (300)")
    p.add_argument("--max-foreign", type=float, default=10.0, help="re-run above this %% (10)")
    p.add_argument("--max-attempts", type=int, default=3, help="attempts per round (3)")
    p.add_argument("--max-minutes", type=float, default=30.0, help="then no more waiting (30)")
    p.add_argument("--wait-minutes", type=float, default=20, help="longest wait for the lock")
    p.add_argument("--expected-seconds", type=float, default=600, help="for the lock file")
    args = p.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    if not (1 <= args.rounds <= 50 and 1 <= args.duration <= 120 and 0 <= args.warmup <= 60):
        p.error("rounds 1..50, duration 1..120 s, warmup 0..60 s")
    if not 1 <= args.lines <= 2000 or any(not 1 <= c <= 64 for c in args.connections):
        p.error("lines 1..2000, connections 1..64")
    tokens_path = tokens_file(args.database)
    if not tokens_path.exists():
        sys.exit(f"{tokens_path} is missing: run bench/load_registry.py --database {args.database}")
    tokens = json.loads(tokens_path.read_text())
    url, user = tokens["database_url"], tokens["users"][USER]
    RESULTS.mkdir(exist_ok=True)
    command = " ".join([".venv/bin/python bench/bench_rank_api.py", *(argv or sys.argv[1:])])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    with benchmark_lock("bench_rank_api.py", args.expected_seconds, args.wait_minutes):
        engine = make_engine(url)
        try:
            with Session(engine) as s:
                if left := remove_requests(s):
                    print(f"# removed {left} requests left by an earlier run", flush=True)
                ids = create_requests(s, args.lines, user["unit_id"])
            print(f"# {len(ids)} requests written; {info['date']}", flush=True)
            result = measure(args, url, user["token"], ids)
        finally:
            with Session(engine) as s:
                removed = remove_requests(s)
            engine.dispose()
            print(f"# {removed} benchmark requests removed", flush=True)
    rounds, discarded = result["rounds"], result["discarded"]
    summary = summarise(rounds)
    codes = sorted({r["code"] for r in rounds})
    report = (
        f"Command: `{command}`\n\n"
        f'Machine: `nproc` {info["nproc"]}; CPU "{info["cpu_model"]}"; {info["ram_gib"]} GiB RAM; '
        f"Python {info['python']}; PostgreSQL {info['postgres']}; {info['wrk']}; "
        f"kernel {info['kernel']}; {info['date']}; code {', '.join(codes)}.\n\n"
        f"Medians of {args.rounds} rounds ({args.duration} s wrk runs, {args.workers} worker(s), "
        f"{args.lines} requests drawn at random; "
        f"{'new connection per request' if args.close else 'kept-alive connections'}):\n\n"
        + markdown(summary)
        + "\n\nRaw rounds (kept):\n\n"
        + raw_markdown(rounds)
        + "\n"
        + (
            f"\nRounds run again (other work took more than {args.max_foreign:.0f} % of the "
            "CPU):\n\n" + raw_markdown(discarded) + "\n"
            if discarded
            else ""
        )
    )
    print()
    print(report)
    out = RESULTS / f"rank_api-{result['stamp']}.json"
    out.write_text(
        json.dumps(
            {"args": vars(args), "machine": info, "summary": summary, **result},
            indent=2,
            default=str,
        )
        + "\n"
    )
    (RESULTS / f"rank_api-{result['stamp']}.md").write_text(report)
    print(f"saved {out} and its .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
