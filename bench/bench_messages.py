"""Benchmark of standard messages (issue 4), in process, on a fresh SQLite database:

    .venv/bin/python bench/bench_messages.py                  # 5 rounds, 10,000 deliveries
    .venv/bin/python bench/bench_messages.py --rounds 3 --deliveries 2000   # quicker

1. Build and validate: a typical RequestResource (two lines, markings, location) for a partner,
   shaped by ``operations.views`` for that partner, in its EDXL-DE 2.0 envelope, serialised,
   read back safely and checked (schemas, two passes, and the prose rules). Baseline in the
   same run: bare ``xmlschema`` validation of the same document (envelope schema on the
   envelope, RM schema on the payload), nothing else.
2. Import: ``messages.inbound.import_message`` of distinct RequestResource messages (each
   creates and submits a request through the services, with audit and timeline), one
   transaction each. Baseline: bare ``xmlschema`` validation of the same document.
3. Delivery: 10,000 queued messages to a local HTTP receiver (threaded ``http.server``,
   HMAC-checked) by ``messages.tasks.deliver_messages``; no loss, and no duplicate after
   de-duplication by MessageID.

Every figure is the median of the rounds; rounds interleave the variants. The official
schemas are read from ../shared/standards (or --schemas). Only one benchmark runs at a time
on this machine: the script waits while /tmp/atlaslink-benching exists, then holds it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from atlaslink.auth import service as auth  # noqa: E402
from atlaslink.config import get_settings  # noqa: E402
from atlaslink.db import make_engine  # noqa: E402
from atlaslink.demo import seed  # noqa: E402
from atlaslink.messages import de, inbound, outbox, rm, schemas, service, validation, xmlsafe  # noqa: E402
from atlaslink.messages import policy as mpolicy  # noqa: E402
from atlaslink.messages import tasks as delivery  # noqa: E402
from atlaslink.migrate import upgrade  # noqa: E402
from atlaslink.models import (  # noqa: E402
    AssistanceRequest,
    OperationEvent,
    OutboxMessage,
    Partner,
    PartnerEndpoint,
    Unit,
    User,
    utcnow,
)
from atlaslink.operations import answers, views  # noqa: E402
from atlaslink.operations import schemas as ops  # noqa: E402
from atlaslink.operations import service as ops_service  # noqa: E402
from atlaslink.operations.policy import involvement  # noqa: E402
from bench.bench_rank_line import calibration_ms, load_average  # noqa: E402
from bench.lock import benchmark_lock  # noqa: E402
from bench.receiver import Receiver  # noqa: E402

SECRET = "bench-secret"
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import os
    import platform
    import re

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    import xmlschema

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu_model": model[1] if model else "unknown",
        "ram_gib": round(int(mem[1]) / 1024 / 1024, 1) if mem else None,
        "python": platform.python_version(),
        "xmlschema": xmlschema.__version__,
        "database": "SQLite (temporary file)",
    }


def body(n: int) -> dict[str, Any]:
    return {
        "exercise": True,
        "title": f"Hostages held on a regional train near Aachen ({n})",
        "crisis_category": "hijack_train",
        "location_name": "Aachen Hbf",
        "latitude": 50.7677,
        "longitude": 6.0912,
        "nature": ["intervention", "expertise"],
        "operational_necessity": "Two trains at once; our own unit is committed to the first.",
        "legal_basis": "2008/617-art3",
        "classification": "RESTREINT_UE",
        "distribution_marking": "LIMITE",
        "handling_code": "H2",
        "submit": True,
        "lines": [
            {
                "capability": "building",
                "min_level": 2,
                "quantity": 6,
                "needed_by": "2030-11-23T16:00:00+00:00",
                "note": "Rail breaching kit",
            },
            {"capability": "crisis_negotiation", "min_level": 1, "quantity": 2},
        ],
    }


def principal(s: Session, username: str) -> Any:
    return auth.principal_of(s.scalars(select(User).where(User.username == username)).one())


@contextmanager
def uow_of(factory: sessionmaker[Session]) -> Iterator[Callable[[], Any]]:
    @contextmanager
    def uow() -> Iterator[Session]:
        with factory() as s, s.begin():
            yield s

    yield uow


def timed(fn: Callable[[], Any], n: int) -> float:
    """Seconds per call over n calls."""
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--builds", type=int, default=200, help="per round")
    ap.add_argument("--imports", type=int, default=100, help="per round")
    ap.add_argument("--deliveries", type=int, default=10_000)
    ap.add_argument("--schemas", type=Path, default=REPO.parent / "shared" / "standards")
    ap.add_argument("--wait-minutes", type=float, default=60)
    args = ap.parse_args()
    if not args.schemas.is_dir():
        sys.exit(f"no official schemas at {args.schemas} (give --schemas)")
    get_settings().schema_dir = args.schemas
    # Deliveries in batches of 200, no back-off (every message succeeds at once).
    get_settings().delivery_batch = 200
    with benchmark_lock("bench_messages.py", 600, args.wait_minutes):
        run(args)


def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="atlaslink-bench-msg-"))
    engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as s:
        seed.ensure_reference_data(s)
        seed.load_units(s)
        seed.create_demo_accounts(s, password="bench-password-1")
        support = principal(s, "support")
        service.create_partner(
            s,
            support,
            schemas.PartnerCreate(
                code="at-adler",
                name="ADLER command",
                sender_id="at.adler.command",
                unit_code="AT-ADLER",
            ),
        )
        service.add_endpoint(
            s,
            support,
            "at-adler",
            schemas.EndpointCreate(kind="http", target="http://127.0.0.1:9/unused", secret=SECRET),
        )
        s.commit()
    schemas_ = validation.configured()
    assert schemas_ is not None
    de2, rr = schemas_.get("de2"), schemas_.get("rm:RequestResource")
    assert de2 is not None and rr is not None

    # One realistic request, sent to AT-ADLER: the document of parts 1 and 2.
    with factory() as s:
        duty = principal(s, "duty.de")
        req = ops_service.create_request(s, duty, ops.RequestCreate(**body(0)))
        at = s.scalars(select(Unit.id).where(Unit.code == "AT-ADLER")).one()
        answers.address(s, duty, req.id, ops.AddressBody(unit_ids=[at]))
        s.commit()
        rid = req.id
        document = s.scalars(select(OutboxMessage.body)).first()
    assert document is not None
    doc_bytes = document.encode()
    payload_bytes = ET.tostring(
        de.open_envelope(xmlsafe.parse(doc_bytes), "2.0").payloads[0][1], encoding="utf-8"
    )
    print(
        f"# document: {len(doc_bytes)} bytes envelope, {len(payload_bytes)} bytes payload",
        file=sys.stderr,
    )

    def bare() -> None:
        # Bare xmlschema on the same document: the envelope, then the payload.
        assert de2.is_valid(doc_bytes.decode())
        assert rr.is_valid(payload_bytes.decode())

    with factory() as s:
        req_row = s.get(AssistanceRequest, rid)
        partner = s.scalars(select(Partner)).one()
        event = s.scalars(
            select(OperationEvent)
            .where(OperationEvent.request_id == rid)
            .order_by(OperationEvent.id.desc())
        ).first()
        assert req_row is not None and event is not None
        route = outbox.route("request.addressed", req_row)
        assert route is not None
        p_partner = mpolicy.partner_principal(s, partner)

        def build_and_validate() -> None:
            inv = involvement(s, p_partner, req_row)
            view = views.request_out(s, p_partner, req_row, inv)
            thread = rm.Thread("bench:rr:1", event.occurred_at, "bench:rr:1")
            payload = rm.request_resource(view, thread, outbox.vocabulary(s))
            env = outbox._envelope(req_row, event, route, "bench:rr:1", partner, view)
            out = rm.serialize(de.wrap(env, payload, "2.0"))
            result = validation.check(xmlsafe.parse(out), schemas_)
            assert result.ok, result.errors

        build_and_validate()
        rounds: list[dict[str, float]] = []
        serial = 0
        for rnd in range(args.rounds):
            cal = calibration_ms()
            row: dict[str, float] = {"calibration_ms": cal, "load": load_average()}
            order = ["bare", "build"] if rnd % 2 == 0 else ["build", "bare"]
            for name in order:
                fn = bare if name == "bare" else build_and_validate
                row[f"{name}_ms"] = timed(fn, args.builds) * 1000
            # SQLite: every transaction holds the write lock (BEGIN IMMEDIATE); the builds'
            # session lets go of it before the imports commit their own.
            s.rollback()
            # Imports: distinct messages, one transaction each (committed).
            docs = []
            for _ in range(args.imports):
                serial += 1
                docs.append(payload_bytes.replace(b">atlaslink:", f">peer{serial}:".encode()))
            bare_import = timed(lambda d=docs[0]: rr.is_valid(d.decode()), args.imports)

            def one_import(d: bytes) -> None:
                with factory() as s2, s2.begin():
                    res = inbound.import_message(s2, principal(s2, "duty.de"), d)
                    assert not res.duplicate

            started = time.perf_counter()
            for d in docs:
                one_import(d)
            row["import_ms"] = (time.perf_counter() - started) / len(docs) * 1000
            row["bare_import_ms"] = bare_import * 1000
            rounds.append(row)
            print(
                f"# round {rnd + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()),
                file=sys.stderr,
            )

    # Part 3: delivery of N queued messages.
    with factory() as s:
        p = s.scalars(select(Partner)).one()
        e = s.scalars(select(PartnerEndpoint)).one()
        s.query(OutboxMessage).delete()
        now = utcnow()
        s.add_all(
            OutboxMessage(
                message_id=f"bench:delivery:{i}",
                message_type="RequestResource",
                partner_id=p.id,
                endpoint_id=e.id,
                body=document,
                next_attempt_at=now,
            )
            for i in range(args.deliveries)
        )
        s.commit()
    with Receiver(SECRET) as rx:
        with factory() as s, s.begin():
            s.get(PartnerEndpoint, e.id).target = rx.url  # type: ignore[union-attr]
        started = time.perf_counter()
        with uow_of(factory) as uow:
            sent = delivery.deliver_messages(uow, max_batches=10_000)
        seconds = time.perf_counter() - started
        with factory() as s:
            left = s.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state != "sent")
            )
        unique = len(rx.received)
        dupes = sum(rx.received.values()) - unique
        missing = args.deliveries - unique
        bad = rx.bad_signatures

    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    result = {
        "machine": machine(),
        "command": " ".join(["bench/bench_messages.py", *sys.argv[1:]]),
        "document_bytes": len(doc_bytes),
        "median": med,
        "build_per_s": 1000 / med["build_ms"],
        "bare_per_s": 1000 / med["bare_ms"],
        "build_ratio": med["build_ms"] / med["bare_ms"],
        "import_per_s": 1000 / med["import_ms"],
        "bare_import_per_s": 1000 / med["bare_import_ms"],
        "import_ratio": med["import_ms"] / med["bare_import_ms"],
        "delivery": {
            "queued": args.deliveries,
            "delivered": sent,
            "seconds": seconds,
            "per_s": sent / seconds,
            "unique_received": unique,
            "duplicates": dupes,
            "missing": missing,
            "bad_signatures": bad,
            "left_in_outbox": left,
        },
        "rounds": rounds,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"messages-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    m = result["machine"]
    print(
        f"\nMachine: {m['nproc']} cores, {m['cpu_model']}, {m['ram_gib']} GiB RAM, "
        f"Python {m['python']}, xmlschema {m['xmlschema']}, {m['date']}"
    )
    print(f"Document: RequestResource in EDXL-DE 2.0, {len(doc_bytes)} bytes\n")
    print("| measure (median of rounds) | ours | bare xmlschema | ratio |")
    print("|---|---|---|---|")
    print(
        f"| build + validate, messages/s | {result['build_per_s']:.1f} | "
        f"{result['bare_per_s']:.1f} | {result['build_ratio']:.2f}x |"
    )
    print(
        f"| import, messages/s | {result['import_per_s']:.1f} | "
        f"{result['bare_import_per_s']:.1f} | {result['import_ratio']:.2f}x |"
    )
    d = result["delivery"]
    print(
        f"\nDelivery: {d['delivered']} of {d['queued']} in {d['seconds']:.1f} s "
        f"({d['per_s']:.0f}/s); received {d['unique_received']} distinct MessageIDs, "
        f"{d['duplicates']} duplicates, {d['missing']} missing, {d['bad_signatures']} bad "
        f"signatures, {d['left_in_outbox']} left in the outbox"
    )
    print(f"\nraw: {out}")
    assert d["missing"] == 0 and d["left_in_outbox"] == 0


if __name__ == "__main__":
    main()
