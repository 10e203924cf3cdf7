"""Where the time of one unit listing goes, step by step, in-process (no HTTP, no wrk).

    .venv/bin/python bench/profile_list_units.py [--iterations 50] [--cprofile]

Times each step of ``service.list_units_page`` (with sharing, as the benchmark's duty officer)
and of ``bench.unfiltered.list_units_unfiltered`` on the benchmark database, plus what the API
does around them: serialising the response and the read-audit append + commit. Medians over
--iterations requests, pages drawn at random from 1..100 (seeded). Single-threaded, so this is
service time, not queueing. With --cprofile, also prints the top functions of the sharing path.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pydantic_core import to_json
from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from atlaslink.audit.service import commit_with_reads, flush_reads, read_ledger
from atlaslink.auth import service as auth
from atlaslink.auth.principal import Principal
from atlaslink.db import make_engine
from atlaslink.models import Network, SharingRule, SharingTarget, Unit, User
from atlaslink.registry import repository as repo
from atlaslink.registry import service
from atlaslink.registry import version as registry_version
from atlaslink.registry.repository import UnitFilters
from atlaslink.sharing import redact
from atlaslink.sharing.policy import (
    Agreement,
    Audience,
    FieldGroup,
    Rule,
    beyond_network,
    load_agreements,
    sql_can_see,
    visible_groups,
)
from bench.unfiltered import list_units_unfiltered

TOKENS_FILE = Path(__file__).resolve().parent / "results" / "tokens.json"
PER_PAGE = 100


class Steps:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def time(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.times.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        return out

    def table(self, title: str) -> str:
        lines = [f"{title}", f"  {'step':<44} {'median ms':>9} {'p90 ms':>8}"]
        total = 0.0
        for name, values in self.times.items():
            med = statistics.median(values)
            total += med
            p90 = sorted(values)[int(0.9 * (len(values) - 1))]
            lines.append(f"  {name:<44} {med:9.2f} {p90:8.2f}")
        lines.append(f"  {'sum of medians':<44} {total:9.2f}")
        return "\n".join(lines)


def sharing_request(db: Session, token: str, page: int, st: Steps) -> None:
    """The steps of GET /api/v1/units (registry/endpoints.list_units ->
    service.list_units_page), one by one; keep in step with src/ (the whole-call timing below
    shows any drift)."""
    with read_ledger() as ledger:
        user = st.time("auth: token -> user", lambda: auth.authenticate_token(db, token))
        who = auth.principal_of(user)
        ledger.actor = who
        offset, limit = (page - 1) * PER_PAGE, PER_PAGE
        version = st.time("registry version", lambda: registry_version.current(db))
        rows, total = st.time(
            "directory page (cached by version)",
            lambda: repo.directory_page(db, who, UnitFilters(), offset, limit, version=version),
        )
        ids = [r.id for r in rows]
        agreements = st.time(
            "load_agreements (cached by version) [sharing]",
            lambda: load_agreements(db, ids, version=version),
        )
        items = st.time(
            "redact.unit_summaries x100 (memoised by version) [sharing]",
            lambda: redact.unit_summaries(who, rows, agreements, version=version),
        )
        body = service.page_dict(items, total, page, PER_PAGE)
        st.time("response JSON", lambda: to_json(body))
        noted = len(ledger.objects)
        st.time("read audit append (flush_reads) [sharing]", lambda: flush_reads(db, ledger))
        st.time("commit", db.commit)
        st.times.setdefault("(units noted for the read audit)", []).append(float(noted))


def sharing_whole(db: Session, token: str, page: int, st: Steps) -> None:
    """The real service call, as the endpoint and the middleware make it."""
    with read_ledger() as ledger:
        user = auth.authenticate_token(db, token)
        assert user is not None
        who = auth.principal_of(user)
        ledger.actor = who
        st.time(
            "service.list_units_page + JSON + audit + commit",
            lambda: (
                to_json(service.list_units_page(db, who, UnitFilters(), page, PER_PAGE)),
                commit_with_reads(db, ledger),  # as the middleware ends the request
            ),
        )


def unfiltered_whole(db: Session, token: str, page: int, st: Steps) -> None:
    user = auth.authenticate_token(db, token)
    assert user is not None
    st.time(
        "list_units_unfiltered + JSON + commit",
        lambda: (to_json(list_units_unfiltered(db, UnitFilters(), page, PER_PAGE)), db.commit()),
    )


def unfiltered_request(db: Session, token: str, page: int, st: Steps) -> None:
    user = st.time("auth: token -> user", lambda: auth.authenticate_token(db, token))
    assert user is not None
    body = st.time(
        "list_units_unfiltered (version + cached page)",
        lambda: list_units_unfiltered(db, UnitFilters(), page, PER_PAGE),
    )
    st.time("response JSON", lambda: to_json(body))
    st.time("commit", db.commit)


# --- what-if: a leaner load_agreements (a prototype for the report; src/ is not changed) -------

_GROUP_OF = {g.value: g for g in FieldGroup}
_PLAIN_RULE = {a.value: Rule(audience=a) for a in Audience}


def load_agreements_prototype(session: Session, unit_ids: Sequence[int]) -> dict[int, Agreement]:
    """Same result as policy.load_agreements, same two indexed queries, but: positional tuples
    instead of Row attribute access, dict look-ups instead of Enum calls, and one shared Rule
    object per audience for the rules that list nobody (most of them)."""
    ids = sorted(set(unit_ids))
    if not ids:
        return {}
    rules = (
        session.execute(
            select(
                SharingRule.id, SharingRule.unit_id, SharingRule.field_group, SharingRule.audience
            ).where(SharingRule.unit_id.in_(ids))
        )
        .tuples()
        .all()
    )
    by_unit: dict[int, dict[FieldGroup, Rule]] = {i: {} for i in ids}
    listed: dict[int, tuple[int, str]] = {}
    for rule_id, unit_id, group, audience in rules:
        if audience == "listed":
            listed[rule_id] = (unit_id, group)
        else:
            by_unit[unit_id][_GROUP_OF[group]] = _PLAIN_RULE[audience]
    if listed:
        targets: dict[int, tuple[set[str], set[int]]] = {r: (set(), set()) for r in listed}
        for rule_id, country, target_unit in session.execute(
            select(SharingTarget.rule_id, SharingTarget.country_iso2, SharingTarget.unit_id).where(
                SharingTarget.rule_id.in_(list(listed))
            )
        ).tuples():
            if country:
                targets[rule_id][0].add(country)
            if target_unit:
                targets[rule_id][1].add(target_unit)
        for rule_id, (unit_id, group) in listed.items():
            countries, units = targets[rule_id]
            by_unit[unit_id][_GROUP_OF[group]] = Rule(
                audience=Audience.LISTED, countries=frozenset(countries), units=frozenset(units)
            )
    return {i: Agreement(unit_id=i, rules=by_unit[i]) for i in ids}


def page_with_visibility_in_sql(
    session: Session, viewer: Principal, offset: int, limit: int
) -> list[tuple[Unit, str, frozenset[FieldGroup], frozenset[FieldGroup]]]:
    """What-if: the page query itself says, per unit, which groups the viewer sees
    (``policy.sql_can_see``, the SQL form of the same rule) and which are not network-wide (for
    the read audit), so no agreement is loaded into Python at all."""
    see = [sql_can_see(viewer, g, Unit.id).label(f"see_{g.value}") for g in FieldGroup]
    network_wide = [
        exists(
            select(SharingRule.id).where(
                SharingRule.unit_id == Unit.id,
                SharingRule.field_group == g.value,
                SharingRule.audience == Audience.NETWORK.value,
            )
        ).label(f"net_{g.value}")
        for g in (FieldGroup.EXISTENCE, FieldGroup.CONTACTS)
    ]
    # The page's ids first, so that the conditions are evaluated for its 100 rows only.
    page = (
        select(Unit.id)
        .order_by(Unit.country_iso2, Unit.name, Unit.id)
        .offset(offset)
        .limit(limit)
        .subquery()
    )
    stmt = (
        select(Unit, Network.code, *see, *network_wide)
        .join(page, page.c.id == Unit.id)
        .join(Network, Network.id == Unit.network_id)
        .order_by(Unit.country_iso2, Unit.name, Unit.id)
    )
    groups = list(FieldGroup)
    out = []
    for row in session.execute(stmt).tuples():
        unit, code, flags = row[0], row[1], row[2 : 2 + len(groups)]
        net = row[2 + len(groups) :]
        visible = frozenset(g for g, ok in zip(groups, flags, strict=True) if ok)
        beyond = frozenset(
            g
            for g, ok in zip((FieldGroup.EXISTENCE, FieldGroup.CONTACTS), net, strict=True)
            if not ok
        )
        out.append((unit, code, visible, beyond))
    return out


def page_as_is(
    session: Session, viewer: Principal, offset: int, limit: int
) -> list[tuple[Unit, str, frozenset[FieldGroup], frozenset[FieldGroup]]]:
    rows, _ = repo.units_page(session, viewer, UnitFilters(), offset, limit)
    agreements = load_agreements(session, [u.id for u, _ in rows])
    out = []
    for u, code in rows:
        a = agreements[u.id]
        beyond = frozenset(beyond_network(a, [FieldGroup.EXISTENCE, FieldGroup.CONTACTS]))
        out.append((u, code, visible_groups(viewer, a), beyond))
    return out


def what_if(factory: sessionmaker[Session], viewer: Principal, iterations: int) -> None:
    with factory() as db:
        order = list(db.scalars(select(Unit.id).order_by(Unit.country_iso2, Unit.name, Unit.id)))
    pages = [order[i : i + PER_PAGE] for i in range(0, len(order), PER_PAGE)]
    rng = random.Random(3)
    picks = [rng.randrange(len(pages)) for _ in range(iterations)]
    st = Steps()
    proto = load_agreements_prototype
    with factory() as db:
        for k in picks[:5]:
            ids = pages[k]
            assert load_agreements(db, ids) == load_agreements_prototype(db, ids)
        for k in range(len(pages)):  # the SQL form decides exactly as the Python form
            a = page_as_is(db, viewer, k * PER_PAGE, PER_PAGE)
            b = page_with_visibility_in_sql(db, viewer, k * PER_PAGE, PER_PAGE)
            assert [(u.id, v, n) for u, _, v, n in a] == [(u.id, v, n) for u, _, v, n in b]
        for k in picks:
            ids, offset = pages[k], k * PER_PAGE
            st.time("policy.load_agreements (as is)", partial(load_agreements, db, ids))
            st.time("  prototype: same queries, lean loop", partial(proto, db, ids))
            st.time("page query + load_agreements + visible_groups", partial(
                page_as_is, db, viewer, offset, PER_PAGE))  # fmt: skip
            st.time("  what-if: visibility inside the page query", partial(
                page_with_visibility_in_sql, db, viewer, offset, PER_PAGE))  # fmt: skip
        db.rollback()
    print(st.table(f"what-ifs, pages of {PER_PAGE} units ('sum' is meaningless here)"))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--user", default="bench.duty")
    p.add_argument("--cprofile", action="store_true")
    p.add_argument(
        "--what-if", action="store_true", help="also time prototypes of the recommended changes"
    )
    args = p.parse_args(argv)
    if not 1 <= args.iterations <= 1000:
        p.error("--iterations 1..1000")
    tokens = json.loads(TOKENS_FILE.read_text())
    token = tokens["users"][args.user]["token"]
    engine = make_engine(tokens["database_url"])
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as db:
        assert db.scalar(select(User.id).where(User.username == args.user)) is not None
    rng = random.Random(1)
    pages = [rng.randint(1, 100) for _ in range(args.iterations)]
    for page in pages[:5]:  # warm up caches and the statement cache
        with factory() as db:
            sharing_request(db, token, page, Steps())
        with factory() as db:
            unfiltered_request(db, token, page, Steps())
    shared, plain = Steps(), Steps()
    whole_s: list[float] = []
    whole_u: list[float] = []
    for page in pages:
        t0 = time.perf_counter()
        with factory() as db:
            sharing_request(db, token, page, shared)
        whole_s.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        with factory() as db:
            unfiltered_request(db, token, page, plain)
        whole_u.append((time.perf_counter() - t0) * 1000)
    whole = Steps()
    for page in pages:
        with factory() as db:
            sharing_whole(db, token, page, whole)
        with factory() as db:
            unfiltered_whole(db, token, page, whole)
    print(shared.table(f"sharing, as {args.user} ({args.iterations} pages)"))
    print(f"  {'whole request (median)':<44} {statistics.median(whole_s):9.2f}")
    print()
    print(plain.table("unfiltered"))
    print(f"  {'whole request (median)':<44} {statistics.median(whole_u):9.2f}")
    ratio = statistics.median(whole_s) / statistics.median(whole_u)
    print(f"\nratio sharing/unfiltered (steps above): {ratio:.2f}")
    print()
    print(whole.table("the real service calls (check on the steps above)"))
    if args.what_if:
        print()
        with factory() as db:
            user = auth.authenticate_token(db, token)
            assert user is not None
            viewer = auth.principal_of(user)
            db.rollback()
        what_if(factory, viewer, args.iterations)
    if args.cprofile:
        prof = cProfile.Profile()
        prof.enable()
        for page in pages:
            with factory() as db:
                sharing_request(db, token, page, Steps())
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
