"""Live updates with 500 connected clients (issue 3): commit-to-arrival delay, against a bare
broadcast measured in the same run.

    .venv/bin/python bench/bench_live_fanout.py                  # 500 clients, 5 rounds x 50 events

Target: with 500 connected live clients, an event reaches all of them within 1 s p99 after the
commit.

* **atlaslink**: the platform as `atlaslink serve` runs it (one process, background job on),
  on a fresh PostgreSQL database with the demo network and one submitted request addressed to
  two units. 500 clients hold `GET /api/v1/requests/{id}/live` open with API tokens of seven
  people who may see the request (requesting side and both addressed units). Each event is
  written the way every change is: `timeline.record` (operation event, audit event,
  `pg_notify`) in a transaction, committed by this script.
* **bare** (the baseline): `bench/live_baseline_app.py` under uvicorn, 500 clients on
  `GET /sse`; each event is a transaction with only `pg_notify` in it, committed by this script.
  Same transport (PostgreSQL NOTIFY, one LISTEN connection, uvicorn, SSE), nothing else.

The clients run in two separate processes (one per server), with asyncio and plain sockets
(uvloop), and note the arrival time of every event on every connection. The delay of one
delivery is its arrival time minus the moment the script began the COMMIT (one machine, one
monotonic clock). Events alternate between the two servers (which goes first rotates), spaced
`--spacing` seconds apart, so both see the same machine. Each round reports p50, p99 and max
over all deliveries (clients x events) and the p99 of the time until the last client of an
event had it; the summary gives the median over the rounds. A delivery that never arrives
counts as missing.

Only one benchmark runs at a time on this machine: the script waits while
/tmp/atlaslink-benching exists, then holds that file until it is done. Results are printed as
Markdown and written to bench/results/live_fanout-<time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lock import benchmark_lock

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "atlaslink_bench_live"
BARE_CHANNEL = "atlaslink_bench_bare"
VIEWERS = ("duty.de", "commander.de", "ncp.de", "duty.at", "commander.at", "commander.nl")
EVENT = re.compile(rb'"event_id": (\d+)')


def clock() -> float:
    """One clock for every process of the benchmark (CLOCK_MONOTONIC is system-wide)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the client process ------------------------------------------------------------------


async def _client(
    n: int, host: str, port: int, path: str, tokens: list[str], out: Path, connects: int
) -> None:
    arrivals: list[tuple[int, int, float]] = []
    ready = 0
    failed = 0
    all_ready = asyncio.Event()
    gate = asyncio.Semaphore(connects)

    def settled() -> None:
        if ready + failed == n:
            all_ready.set()

    async def one(i: int) -> None:
        nonlocal ready, failed
        try:
            async with gate:
                reader, writer = await asyncio.open_connection(host, port)
                auth = f"Authorization: Bearer {tokens[i % len(tokens)]}\r\n" if tokens else ""
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
                    f"{auth}\r\n".encode()
                )
                await writer.drain()
                status = await asyncio.wait_for(reader.readline(), 60)
                if b" 200 " not in status:
                    raise RuntimeError(status.decode(errors="replace").strip())
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                buf = b""
                while b"retry:" not in buf:
                    chunk = await reader.read(65536)
                    if not chunk:
                        raise RuntimeError("closed before the first frame")
                    buf += chunk
            ready += 1
            settled()
            buf = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                now = clock()
                buf += chunk
                end = buf.rfind(b"\n\n")
                if end < 0:
                    continue
                for m in EVENT.finditer(buf, 0, end):
                    arrivals.append((i, int(m[1]), now))
                buf = buf[end + 2 :]
        except Exception as exc:
            failed += 1
            print(f"client {i}: {exc}", file=sys.stderr, flush=True)
            settled()

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await all_ready.wait()
    print(f"READY {ready} {failed}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # the orchestrator says stop
    for t in tasks:
        t.cancel()
    out.write_text(json.dumps({"ready": ready, "failed": failed, "arrivals": arrivals}))
    print("DONE", flush=True)


def client_main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    tokens = Path(args.tokens).read_text().split() if args.tokens else []
    coro = _client(args.n, args.host, args.port, args.path, tokens, Path(args.out), args.connects)
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


# --- the orchestrator --------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)

    def sh(cmd: Sequence[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model[1] if model else "unknown",
        "ram_gib": round(int(mem[1]) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": sh(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version"]
        ),
        "git_commit": sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(sh(["git", "-C", str(ROOT), "status", "--porcelain", "src", "bench"])),
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_database(url: str) -> dict[str, Any]:
    """A fresh database: migrations, the demo network, one request addressed to two units,
    and one API token per viewer."""
    import psycopg
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from atlaslink.auth import service as auth
    from atlaslink.db import make_engine
    from atlaslink.demo import seed
    from atlaslink.migrate import upgrade
    from atlaslink.models import Unit, User
    from atlaslink.operations import answers, schemas, service

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as s:
        seed.ensure_reference_data(s)
        seed.load_units(s)
        seed.create_demo_accounts(s, password="bench-password-123")
        s.commit()

        def user(name: str) -> User:
            u = s.scalar(select(User).where(User.username == name))
            assert u is not None, name
            return u

        requester = auth.principal_of(user("duty.de"))
        body = schemas.RequestCreate.model_validate(
            {
                "exercise": True,
                "title": "Benchmark: hostages on a regional train",
                "crisis_category": "hijack_train",
                "location_name": "Aachen Hbf",
                "latitude": 50.7677,
                "longitude": 6.0912,
                "nature": ["intervention"],
                "operational_necessity": "Benchmark of live updates.",
                "legal_basis": "2008/617-art3",
                "classification": "RESTREINT_UE",
                "handling_code": "H2",
                "submit": True,
                "lines": [{"capability": "land_transport", "min_level": 2, "quantity": 6}],
            }
        )
        req = service.create_request(s, requester, body)
        units = [
            s.scalar(select(Unit.id).where(Unit.code == code)) for code in ("AT-ADLER", "NL-REIGER")
        ]
        answers.address(s, requester, req.id, schemas.AddressBody(unit_ids=[u for u in units if u]))
        tokens = [auth.create_token(s, user(v), "bench").token for v in VIEWERS]
        s.commit()
        request_id = req.id
    engine.dispose()
    return {"request_id": request_id, "tokens": tokens}


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server at {url} did not start")
        time.sleep(0.2)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_fd_limit,  # before any thread starts in the child
        )


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summarise(
    sent: dict[int, float], arrivals: list[list[float]], clients: int
) -> dict[str, float | int]:
    """Delays in ms of every delivery of the events in ``sent`` (key -> commit start)."""
    by_event: dict[int, list[float]] = {k: [] for k in sent}
    for _i, key, at in arrivals:
        k = int(key)
        if k in by_event:
            by_event[k].append((at - sent[k]) * 1000)
    delays = [d for ds in by_event.values() for d in ds]
    last = [max(ds) for ds in by_event.values() if ds]
    first = [min(ds) for ds in by_event.values() if ds]
    return {
        "slow_events": sum(1 for x in last if x > 100),  # last client later than 100 ms
        "first_client_p50_ms": round(percentile(first, 50), 1),
        "events": len(sent),
        "deliveries": len(delays),
        "missing": len(sent) * clients - len(delays),
        "p50_ms": round(percentile(delays, 50), 1),
        "p99_ms": round(percentile(delays, 99), 1),
        "max_ms": round(max(delays), 1) if delays else float("nan"),
        "last_client_p99_ms": round(percentile(last, 99), 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from atlaslink.auth import service as auth
    from atlaslink.db import make_engine
    from atlaslink.models import AssistanceRequest, User
    from atlaslink.operations import timeline

    url = f"{SERVER}/{DB_NAME}"
    tmp = RESULTS / "live_fanout-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    print("# preparing the database", file=sys.stderr, flush=True)
    prepared = prepare_database(url)
    rid = prepared["request_id"]
    (tmp / "tokens").write_text("\n".join(prepared["tokens"]))

    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.server_env)}
    env["ATLASLINK_DATABASE_URL"] = url
    port_a, port_b = free_port(), free_port()
    servers = {
        "atlaslink": start(
            [str(ROOT / ".venv/bin/atlaslink"), "serve", "--port", str(port_a)],
            env,
            tmp / "atlaslink.log",
        ),
        "bare": start(
            [
                sys.executable,
                *("-m", "uvicorn", "bench.live_baseline_app:app"),
                *("--port", str(port_b), "--log-level", "warning"),
            ],
            env,
            tmp / "bare.log",
        ),
    }
    clients: dict[str, subprocess.Popen[str]] = {}
    engine = make_engine(url)
    try:
        wait_ready(f"http://127.0.0.1:{port_a}/readyz", servers["atlaslink"])
        wait_ready(f"http://127.0.0.1:{port_b}/ping", servers["bare"])
        targets = {
            "atlaslink": (port_a, f"/api/v1/requests/{rid}/live", str(tmp / "tokens")),
            "bare": (port_b, "/sse", ""),
        }
        for name, (port, path, tokens) in targets.items():
            t0 = time.monotonic()
            proc = subprocess.Popen(
                [
                    *(sys.executable, __file__, "client", "--n", str(args.clients)),
                    *("--host", "127.0.0.1", "--port", str(port), "--path", path),
                    *("--tokens", tokens, "--out", str(tmp / f"{name}.json")),
                    *("--connects", str(args.connects)),
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            clients[name] = proc
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            if not line or line[0] != "READY" or int(line[1]) != args.clients:
                raise RuntimeError(f"{name}: clients not connected: {line}")
            print(
                f"# {name}: {args.clients} clients connected in {time.monotonic() - t0:.1f} s",
                file=sys.stderr,
                flush=True,
            )

        with Session(engine) as s:
            req = s.get(AssistanceRequest, rid)
            writer = s.scalar(select(User).where(User.username == "duty.de"))
            assert req is not None and writer is not None
            actor = auth.principal_of(writer)

            def commit_atlaslink(k: int) -> tuple[int, float]:
                ev = timeline.record(s, actor, req, "note", f"benchmark event {k}")
                t = clock()
                s.commit()
                return ev.id, t

            bare_seq = 1_000_000

            def commit_bare(_k: int) -> tuple[int, float]:
                nonlocal bare_seq
                bare_seq += 1
                s.execute(text("SELECT pg_notify(:c, :p)"), {"c": BARE_CHANNEL, "p": str(bare_seq)})
                t = clock()
                s.commit()
                return bare_seq, t

            commit = {"atlaslink": commit_atlaslink, "bare": commit_bare}
            # Warm-up: a few events each, not measured.
            for k in range(3):
                for name in commit:
                    commit[name](k)
                    time.sleep(args.spacing)
            time.sleep(2)
            rounds: list[dict[str, Any]] = []
            sent: dict[str, list[dict[int, float]]] = {"atlaslink": [], "bare": []}
            for r in range(args.rounds):
                cal, load = calibration_ms(), load_average()
                this = {"atlaslink": {}, "bare": {}}  # type: dict[str, dict[int, float]]
                for k in range(args.events):
                    order = ["atlaslink", "bare"] if (k + r) % 2 == 0 else ["bare", "atlaslink"]
                    for name in order:
                        key, t = commit[name](k)
                        this[name][key] = t
                        time.sleep(args.spacing)
                for name in this:
                    sent[name].append(this[name])
                rounds.append({"round": r + 1, "calibration_ms": round(cal, 1), "load": load})
                print(f"# round {r + 1} sent", file=sys.stderr, flush=True)
        time.sleep(3)  # stragglers
        arrivals: dict[str, list[Any]] = {}
        for name, proc in clients.items():
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.stdout.readline()
            proc.wait(30)
            data = json.loads((tmp / f"{name}.json").read_text())
            arrivals[name] = data["arrivals"]
        for r, row in enumerate(rounds):
            for name in ("atlaslink", "bare"):
                row[name] = summarise(sent[name][r], arrivals[name], args.clients)
        return {"rounds": rounds}
    finally:
        for proc in clients.values():
            if proc.poll() is None:
                proc.kill()
        for proc in servers.values():
            stop(proc)
        engine.dispose()


def median(rows: list[dict[str, Any]], name: str, key: str) -> float:
    return round(float(statistics.median(row[name][key] for row in rows)), 1)


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    m = result["machine"]
    rows = result["rounds"]
    out = [
        f"Live fan-out, {args.clients} clients, {args.rounds} rounds x {args.events} events per "
        f"server, spacing {args.spacing} s; {m['date']}; {m['nproc']} x {m['cpu_model']}, "
        f"{m['ram_gib']} GiB; PostgreSQL {m['postgres']}; commit {m['git_commit']}"
        + (" (dirty)" if m["git_dirty"] else "")
        + (f"; server env {' '.join(args.server_env)}" if args.server_env else ""),
        "",
        "| round | calib. ms | load | variant | p50 ms | p99 ms | max ms | last client p99 ms "
        "| missing |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for name in ("atlaslink", "bare"):
            v = row[name]
            out.append(
                f"| {row['round']} | {row['calibration_ms']} | {row['load']} | {name} "
                f"| {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} | {v['last_client_p99_ms']} "
                f"| {v['missing']} |"
            )
    out.append("")
    out.append("| medians over rounds | p50 ms | p99 ms | max ms | last client p99 ms |")
    out.append("|---|---|---|---|---|")
    for name in ("atlaslink", "bare"):
        out.append(
            f"| {name} | {median(rows, name, 'p50_ms')} | {median(rows, name, 'p99_ms')} "
            f"| {median(rows, name, 'max_ms')} | {median(rows, name, 'last_client_p99_ms')} |"
        )
    p99, base = median(rows, "atlaslink", "p99_ms"), median(rows, "bare", "p99_ms")
    missing = sum(row["atlaslink"]["missing"] for row in rows)
    out.append("")
    out.append(
        f"p99 {p99} ms vs bare {base} ms: {p99 / base:.1f}x; "
        f"target p99 <= 1000 ms: {'met' if p99 <= 1000 and missing == 0 else 'NOT met'}"
        f" (missing deliveries: {missing})"
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    c = sub.add_parser("client", help="(internal) the client process")
    c.add_argument("--n", type=int, required=True)
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--path", required=True)
    c.add_argument("--tokens", default="")
    c.add_argument("--out", required=True)
    c.add_argument("--connects", type=int, default=25)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--events", type=int, default=50, help="events per server and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spacing", type=float, default=0.25, help="seconds between commits")
    parser.add_argument("--connects", type=int, default=25, help="clients connecting at once")
    parser.add_argument("--wait-minutes", type=float, default=60)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the servers, e.g. ATLASLINK_LIVE_RECHECK_SECONDS=3600 (diagnosis)",
    )
    args = parser.parse_args()
    if args.mode == "client":
        client_main(args)
        return
    expected = 60 + args.rounds * args.events * 2 * args.spacing
    with benchmark_lock("bench_live_fanout.py", expected, args.wait_minutes):
        info = machine()
        result = run(args)
    result["machine"] = info
    result["args"] = vars(args)
    text = report(result, args)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"live_fanout-{stamp}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"live_fanout-{stamp}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
