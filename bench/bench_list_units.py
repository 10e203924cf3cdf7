"""Benchmark: listing a page of 100 units with sharing applied vs the same listing unfiltered.

    .venv/bin/python bench/load_registry.py --reuse     # once: the 10,000-unit database
    .venv/bin/python bench/bench_list_units.py          # defaults: see --help

For each server size (--workers, default 1 and 2) this starts ``bench.baseline_app`` (the
platform's app plus one benchmark-only route) under uvicorn with the settings of ``atlaslink
serve``, then runs wrk (a separate process on the same 2 cores) against, interleaved round by
round so that drift hits both alike:

* sharing:     GET /api/v1/units?page=K&per_page=100          (as the duty officer)
* unfiltered:  GET /bench/units-unfiltered?page=K&per_page=100 (same token, no sharing step)
* observer:    GET /api/v1/units?page=K&per_page=100 as an observer (with --variants; network-
               wide viewer whom no unit lists, so no read-audit event: isolates that cost)
* unfiltered+read: GET /bench/units-unfiltered-read?page=K&per_page=100 (with --variants; the
               unfiltered page plus the read event it owes, since it discloses restricted
               fields: sharing / this is the cost of the filter alone; the headline stays
               sharing / unfiltered)

K is random in 1..100 for every request. Each round is one wrk run of --duration seconds of
each variant at each concurrency in --connections. By default wrk opens a new connection per
request (``Connection: close``): with a few kept-alive connections, uvicorn's workers accept them
unevenly (seen here: 11/5, and rounds where 2 workers did no better than 1), which measures the
accept race rather than the server.

The machine is shared (the load generator, PostgreSQL and whatever else runs on the 2 cores).
Before each round the script waits for the machine to be quiet; during each run it splits the
machine's CPU time into ours (server, wrk, PostgreSQL backends of the benchmark database) and
foreign (everything else), and runs a round again when foreign work took more than
--max-foreign %. Medians over the kept rounds are printed as Markdown and saved with all raw
rounds under bench/results/ (git-ignored). Traffic goes to 127.0.0.1 only; every wait and
every loop is bounded (--max-minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lock import benchmark_lock

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOKENS_FILE = RESULTS / "tokens.json"
LUA = ROOT / "bench" / "list_pages.lua"
HOST = "127.0.0.1"

VARIANTS: dict[str, tuple[str, str]] = {
    # name: (path, user)
    "sharing": ("/api/v1/units", "bench.duty"),
    "unfiltered": ("/bench/units-unfiltered", "bench.duty"),
    "observer": ("/api/v1/units", "bench.observer"),
    "unfiltered+read": ("/bench/units-unfiltered-read", "bench.duty"),
}
TARGET_P95_MS = 50.0
TARGET_RPS = 200.0
TARGET_OVERHEAD = 0.25


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def _proc_jiffies(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime


def _ours(pgid: int, db_name: str) -> dict[int, int]:
    """CPU jiffies of the benchmark's processes: the server's process group and the PostgreSQL
    backends serving the benchmark database (their titles name it)."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getpgid(pid) == pgid:
                out[pid] = _proc_jiffies(pid)
                continue
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"postgres: ") and db_name.encode() in cmdline:
            out[pid] = _proc_jiffies(pid)
    return out


class CpuMeter:
    """Splits the machine's CPU time over a run into ours (server, wrk, our PostgreSQL backends)
    and foreign (anything else on the machine: other people's tests, services)."""

    def __init__(self, pgid: int, db_name: str) -> None:
        self.pgid, self.db_name = pgid, db_name

    def __enter__(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.sys0 = _busy_jiffies()
        self.ours0 = _ours(self.pgid, self.db_name)
        self.kids0 = os.times()
        return self

    def __exit__(self, *exc: object) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        busy1, total1 = _busy_jiffies()
        ours1 = _ours(self.pgid, self.db_name)
        kids1 = os.times()
        wrk = (kids1.children_user + kids1.children_system) - (
            self.kids0.children_user + self.kids0.children_system
        )
        server = sum(j - self.ours0.get(pid, 0) for pid, j in ours1.items()) / hz
        elapsed_cores = (total1 - self.sys0[1]) / hz
        busy = (busy1 - self.sys0[0]) / hz
        self.ours_cpu = server + wrk
        self.wrk_cpu = wrk
        self.busy_pct = 100 * busy / elapsed_cores if elapsed_cores else 0.0
        self.foreign_pct = 100 * max(0.0, busy - server - wrk) / elapsed_cores
        self.wall = time.monotonic() - self.t0


def wait_for_quiet(limit_pct: float, timeout: float) -> float:
    """Wait (at most ``timeout`` s) until the machine is below ``limit_pct`` % busy over 2 s,
    with the server idle; returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        b0, t0 = _busy_jiffies()
        time.sleep(2)
        b1, t1 = _busy_jiffies()
        pct = 100 * (b1 - b0) / max(1, t1 - t0)
        if pct <= limit_pct or time.monotonic() >= deadline:
            return pct
        print(f"  machine {pct:.0f}% busy with other work; waiting", flush=True)


def calibrate() -> float:
    """Milliseconds for a fixed piece of pure-Python work (median of 3): how fast the machine
    is right now. Shared virtual machines have slow and fast spells; this makes them visible."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i % 7
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def sh(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def source_version() -> str:
    """The commit the server runs, with "+dirty" if src/ differs from it (the server imports the
    editable install when it starts; others may be changing src/ between runs)."""
    commit = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "src", "pyproject.toml"])
    return commit + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text()
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model[1] if model else "unknown",
        "ram_gib": round(int(mem[1]) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": sh(["psql", "-h", HOST, "-U", "postgres", "-Atc", "SHOW server_version"]),
        "wrk": sh(["wrk", "-v"]).splitlines()[0] if sh(["wrk", "-v"]) else "",
        "git_commit": sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(sh(["git", "-C", str(ROOT), "status", "--porcelain", "src"])),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


class Server:
    """uvicorn with the settings of ``atlaslink serve``, in its own process group."""

    def __init__(self, url: str, port: int, workers: int, log_path: Path) -> None:
        self.cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:create_bench_app",
            "--factory",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "info",
            "--no-proxy-headers",
        ]
        self.env = {**os.environ, "ATLASLINK_DATABASE_URL": url}
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not answer within 60 s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def check(port: int, path: str, token: str, per_page: int) -> int:
    """One request, to make sure the variant answers 200 with a full page before timing it."""
    req = urllib.request.Request(
        f"http://{HOST}:{port}{path}?page=1&per_page={per_page}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        body = json.loads(r.read())
    items = body["items"] if isinstance(body, dict) else body
    if len(items) != per_page:
        raise RuntimeError(f"{path}: expected {per_page} items, got {len(items)}")
    return len(items)


def run_wrk(
    port: int,
    path: str,
    token: str,
    *,
    connections: int,
    threads: int,
    duration: int,
    pages: int,
    per_page: int,
    seed: int,
    close: bool = True,
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
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
        "BENCH_PAGES": str(pages),
        "BENCH_PER_PAGE": str(per_page),
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
    errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "errors": errors,
        "wrk_cmd": " ".join(cmd),
    }


def median(rounds: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


def summarise(rounds: list[dict[str, Any]], variants: list[str]) -> list[dict[str, Any]]:
    """Medians per (workers, connections, variant), and the paired sharing/unfiltered ratios."""
    out = []
    keys = sorted({(r["workers"], r["connections"]) for r in rounds})
    for workers, conns in keys:
        group = [r for r in rounds if r["workers"] == workers and r["connections"] == conns]
        row: dict[str, Any] = {"workers": workers, "connections": conns}
        for v in variants:
            vr = [r for r in group if r["variant"] == v]
            row[v] = {k: median(vr, k) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")}
            row[v]["errors"] = sum(r["errors"] for r in vr)
            row[v]["foreign_pct"] = median(vr, "foreign_pct")
        if "sharing" in variants and "unfiltered" in variants:
            # Per round: time per request with sharing / without (from throughput), then median.
            paired = []
            for n in sorted({r["round"] for r in group}):
                s = next(r for r in group if r["round"] == n and r["variant"] == "sharing")
                u = next(r for r in group if r["round"] == n and r["variant"] == "unfiltered")
                pair = {
                    "cost": u["rps"] / s["rps"],
                    "p50": s["p50_ms"] / u["p50_ms"],
                    "p95": s["p95_ms"] / u["p95_ms"],
                }
                if "unfiltered+read" in variants:
                    # The filter alone: the same read event on both sides.
                    a = next(
                        r for r in group if r["round"] == n and r["variant"] == "unfiltered+read"
                    )
                    pair["filter_cost"] = a["rps"] / s["rps"]
                    pair["read_cost"] = u["rps"] / a["rps"]
                paired.append(pair)
            row["ratio"] = {k: statistics.median(p[k] for p in paired) for k in paired[0]}
        out.append(row)
    return out


def markdown(summary: list[dict[str, Any]], variants: list[str]) -> str:
    lines = [
        "| workers | conns | variant | req/s | p50 ms | p95 ms | p99 ms | errors | foreign CPU % |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        for v in variants:
            m = row[v]
            lines.append(
                f"| {row['workers']} | {row['connections']} | {v} | {m['rps']:.0f} | "
                f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} | {m['p99_ms']:.1f} | {m['errors']} | "
                f"{m['foreign_pct']:.0f} |"
            )
    if all("ratio" in row for row in summary):
        lines += [
            "",
            "| workers | conns | sharing cost (unfiltered req/s / sharing req/s) | p50 ratio "
            "| p95 ratio | p95 ≤ 50 ms | ≥ 200 req/s | cost ≤ 1.25 |",
            "|---:|---:|---:|---:|---:|---|---|---|",
        ]
        for row in summary:
            r, s = row["ratio"], row["sharing"]
            ok = ("yes" if s["p95_ms"] <= TARGET_P95_MS else "**no**",
                  "yes" if s["rps"] >= TARGET_RPS else "**no**",
                  "yes" if r["cost"] <= 1 + TARGET_OVERHEAD else "**no**")  # fmt: skip
            lines.append(
                f"| {row['workers']} | {row['connections']} | {r['cost']:.2f} | {r['p50']:.2f} "
                f"| {r['p95']:.2f} | {ok[0]} | {ok[1]} | {ok[2]} |"
            )
        if all("filter_cost" in row["ratio"] for row in summary):
            lines += [
                "",
                "Beside the headline (not instead of it): the same read event on both sides.",
                "",
                "| workers | conns | sharing cost (headline) | filter alone (unfiltered+read "
                "req/s / sharing req/s) | read event alone (unfiltered req/s / unfiltered+read "
                "req/s) |",
                "|---:|---:|---:|---:|---:|",
            ]
            for row in summary:
                r = row["ratio"]
                lines.append(
                    f"| {row['workers']} | {row['connections']} | {r['cost']:.2f} | "
                    f"{r['filter_cost']:.2f} | {r['read_cost']:.2f} |"
                )
    return "\n".join(lines)


def raw_markdown(rounds: list[dict[str, Any]]) -> str:
    lines = [
        "| workers | conns | round | variant | req/s | p50 ms | p95 ms | p99 ms | requests "
        "| errors | foreign CPU % | calibration ms |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        lines.append(
            f"| {r['workers']} | {r['connections']} | {r['round']} | {r['variant']} | "
            f"{r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['requests']} | {r['errors']} | {r['foreign_pct']:.0f} | "
            f"{r['calibration_ms']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int_list, default=[1, 2], help="server sizes (1,2)")
    p.add_argument("--connections", type=int_list, default=[16], help="wrk -c values (16)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (2)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per measurement (5)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up seconds per variant (5)")
    p.add_argument("--pages", type=int, default=100, help="pages drawn from, 1..N (100)")
    p.add_argument("--per-page", type=int, default=100, help="units per page (100)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--quiet-pct",
        type=float,
        default=10.0,
        help="before each round, wait until the machine is at most this %% busy (10)",
    )
    p.add_argument("--quiet-timeout", type=float, default=600.0, help="longest such wait, s (600)")
    p.add_argument(
        "--max-foreign",
        type=float,
        default=10.0,
        help="run a round again if other work took more than this %% of the CPU (10)",
    )
    p.add_argument("--max-attempts", type=int, default=3, help="attempts per round at most (3)")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=45.0,
        help="after this long, no more waiting for quiet and no re-runs (45)",
    )
    p.add_argument(
        "--keepalive",
        dest="close",
        action="store_false",
        help="keep wrk's connections open (default: a new connection per request, so that "
        "the connections spread over the server's workers)",
    )
    p.add_argument(
        "--wait-minutes",
        type=float,
        default=30.0,
        help="longest wait while another benchmark holds /tmp/atlaslink-benching (30)",
    )
    p.add_argument(
        "--variants",
        default="sharing,unfiltered",
        help="comma-separated, from: " + ", ".join(VARIANTS),
    )
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := [v for v in variants if v not in VARIANTS]:
        p.error(f"unknown variants: {unknown}")
    if not (1 <= args.rounds <= 50 and 1 <= args.duration <= 120 and 0 <= args.warmup <= 60):
        p.error("rounds 1..50, duration 1..120 s, warmup 0..60 s")
    if not 1 <= args.max_attempts <= 10:
        p.error("max-attempts 1..10")
    if any(not 1 <= c <= 256 for c in args.connections) or any(
        not 1 <= w <= 8 for w in args.workers
    ):
        p.error("connections 1..256, workers 1..8")
    if not TOKENS_FILE.exists():
        sys.exit(f"{TOKENS_FILE} is missing: run bench/load_registry.py first")
    tokens = json.loads(TOKENS_FILE.read_text())
    url = tokens["database_url"]
    RESULTS.mkdir(exist_ok=True)
    info = machine()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    planned = (
        len(args.workers)
        * (len(variants) * args.warmup + args.rounds * len(args.connections) * len(variants)
           * args.duration)
    )  # fmt: skip
    print(f"# {info['date']}  nproc={info['nproc']}  {info['cpu_model']}  {info['ram_gib']} GiB")
    print(f"# about {planned / 60:.1f} min of load", flush=True)
    with benchmark_lock("bench_list_units.py", planned * 1.5 + 60, args.wait_minutes):
        rounds, discarded = run_rounds(args, variants, tokens, url, stamp)
    return report(args, variants, info, stamp, rounds, discarded)


def vacuum_audit_head(url: str) -> None:
    """VACUUM the one-row chain head before each run, outside the measured window. Every read
    event updates that row; autovacuum, on by default in PostgreSQL, keeps it to a page or
    two, but it is off on this machine's server (`SHOW autovacuum`), where the row's dead
    versions grew it to 112 pages and made each append read ~44 pages instead of 2."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM audit_head")


def run_rounds(
    args: argparse.Namespace,
    variants: list[str],
    tokens: dict[str, Any],
    url: str,
    stamp: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    deadline = time.monotonic() + 60 * args.max_minutes
    rounds: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    for workers in args.workers:
        log_path = RESULTS / f"server-w{workers}-{stamp}.log"
        db_name = url.rsplit("/", 1)[1]
        code = source_version()
        with Server(url, args.port, workers, log_path) as server:
            for v in variants:
                path, user = VARIANTS[v]
                token = tokens["users"][user]["token"]
                check(args.port, path, token, args.per_page)
                if args.warmup:
                    run_wrk(
                        args.port,
                        path,
                        token,
                        connections=max(args.connections),
                        threads=args.threads,
                        duration=args.warmup,
                        pages=args.pages,
                        per_page=args.per_page,
                        seed=999,
                        close=args.close,
                    )
            for n in range(1, args.rounds + 1):
                for conns in args.connections:
                    # A round is one run of each variant, back to back, in an order that
                    # rotates every round. A round during which other work on the machine took
                    # more than --max-foreign % of the CPU is kept as "discarded" and run again.
                    shift = (n - 1) % len(variants)
                    order = variants[shift:] + variants[:shift]
                    for attempt in range(1, args.max_attempts + 1):
                        wait = max(0.0, min(args.quiet_timeout, deadline - time.monotonic()))
                        quiet = wait_for_quiet(args.quiet_pct, wait)
                        calib = calibrate()
                        block = []
                        for v in order:
                            path, user = VARIANTS[v]
                            vacuum_audit_head(url)
                            with CpuMeter(server.pgid, db_name) as cpu:
                                res = run_wrk(
                                    args.port,
                                    path,
                                    tokens["users"][user]["token"],
                                    connections=conns,
                                    threads=args.threads,
                                    duration=args.duration,
                                    pages=args.pages,
                                    per_page=args.per_page,
                                    seed=n,
                                    close=args.close,
                                )
                            res.update(
                                workers=workers,
                                connections=conns,
                                round=n,
                                attempt=attempt,
                                variant=v,
                                busy_pct=cpu.busy_pct,
                                foreign_pct=cpu.foreign_pct,
                                wrk_cpu_s=cpu.wrk_cpu,
                                quiet_before_pct=quiet,
                                calibration_ms=calib,
                                code=code,
                                discarded=False,
                            )
                            block.append(res)
                            print(
                                f"workers={workers} c={conns} round={n}.{attempt} {v:<10} "
                                f"{res['rps']:7.1f} req/s  p50 {res['p50_ms']:6.1f}  "
                                f"p95 {res['p95_ms']:6.1f}  p99 {res['p99_ms']:6.1f} ms  "
                                f"errors {res['errors']}  machine busy {cpu.busy_pct:.0f}% "
                                f"(foreign {cpu.foreign_pct:.0f}%)  calibration {calib:.0f} ms",
                                flush=True,
                            )
                        noisy = max(r["foreign_pct"] for r in block) > args.max_foreign
                        late = time.monotonic() > deadline
                        if noisy and attempt < args.max_attempts and not late:
                            for r in block:
                                r["discarded"] = True
                            discarded.extend(block)
                            print("  other work took the CPU: round run again", flush=True)
                            continue
                        rounds.extend(block)
                        break
    return rounds, discarded


def report(
    args: argparse.Namespace,
    variants: list[str],
    info: dict[str, Any],
    stamp: str,
    rounds: list[dict[str, Any]],
    discarded: list[dict[str, Any]],
) -> int:
    summary = summarise(rounds, variants)
    codes = sorted({r["code"] for r in rounds})
    if len(codes) > 1:
        print(f"WARNING: src/ changed during the run: {codes}")
    text = (
        f"Medians of {args.rounds} rounds ({args.duration} s wrk runs, -t{args.threads}, "
        f"random page 1..{args.pages}, per_page={args.per_page}; code {', '.join(codes)}; "
        f"{'new connection per request' if args.close else 'kept-alive connections'}):\n\n"
        + markdown(summary, variants)
        + "\n\nRaw rounds (kept):\n\n"
        + raw_markdown(rounds)
        + "\n"
        + (
            "\nDiscarded rounds (other work took more than "
            f"{args.max_foreign:.0f} % of the CPU):\n\n" + raw_markdown(discarded) + "\n"
            if discarded
            else ""
        )
    )
    print()
    print(text)
    out = RESULTS / f"list_units-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": info,
                "summary": summary,
                "rounds": rounds,
                "discarded": discarded,
            },
            indent=2,
        )
        + "\n"
    )
    (RESULTS / f"list_units-{stamp}.md").write_text(text)
    print(f"saved {out} and its .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
