"""The registry version and the per-process caches keyed by it: a change committed anywhere
(another session, another process, plain SQL) is honoured by the very next request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from atlaslink.app import create_app
from atlaslink.auth import service as auth
from atlaslink.auth.principal import SYSTEM
from atlaslink.db import make_engine
from atlaslink.demo import seed
from atlaslink.models import VERSIONED_TABLES, Base, User
from atlaslink.registry import schemas, service
from atlaslink.registry import version as registry_version
from atlaslink.registry.version import VersionedCache
from atlaslink.sharing.policy import Audience, FieldGroup
from tests.conftest import create_database, load_demo, unit_id

TARGET = "NL-REIGER"
CONTACT = "+00 555 VERSION 0001"

# Run in a separate Python process: what another server worker (or `atlaslink import`) does.
OTHER_PROCESS = """
import sys
from sqlalchemy.orm import Session
from atlaslink.auth.principal import SYSTEM
from atlaslink.db import make_engine
from atlaslink.models import Unit
from atlaslink.registry import schemas, service
from atlaslink.sharing.policy import Audience, FieldGroup

url, code, audience = sys.argv[1:4]
engine = make_engine(url)
with Session(engine) as s:
    uid = s.query(Unit.id).filter(Unit.code == code).scalar()
    rules = {g: schemas.SharingRuleIO(audience=Audience(audience)) for g in FieldGroup}
    service.set_sharing(s, SYSTEM, uid, schemas.SharingAgreementIO(rules=rules))
    s.commit()
engine.dispose()
"""


def _share_in_other_process(url: str, audience: Audience) -> None:
    subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, url, TARGET, audience.value],
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _listed(client: TestClient) -> dict:  # type: ignore[type-arg]
    body = client.get("/api/v1/units", params={"q": TARGET}).json()
    (item,) = body["items"]
    return item  # type: ignore[no-any-return]


def test_sharing_changed_by_another_process_is_honoured_by_the_next_request(
    tmp_path: Path,
) -> None:
    url, drop = create_database(tmp_path, "version")
    engine = make_engine(url)
    try:
        load_demo(engine)
        with Session(engine) as s:
            uid = unit_id(s, TARGET)
            service.update_unit(
                s,
                SYSTEM,
                uid,
                schemas.UnitUpdate(
                    contacts=[schemas.Contact(kind="phone", label="Desk", value=CONTACT)]
                ),
            )
            user = s.scalar(select(User).where(User.username == "duty.fr"))
            assert user is not None
            token = auth.create_token(s, user, "test").token
            s.commit()
        # Commits for real, like the server: no test transaction around it.
        with TestClient(create_app(engine)) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            _share_in_other_process(url, Audience.NETWORK)
            for _ in range(2):  # the second request is served from the caches
                item = _listed(client)
                assert item["contacts"] == [{"kind": "phone", "label": "Desk", "value": CONTACT}]
                assert item["capability_count"] is not None

            _share_in_other_process(url, Audience.OWN_UNIT)
            item = _listed(client)
            assert item["contacts"] is None and item["capability_count"] is None
            assert item["visible_groups"] == []
            detail = client.get(f"/api/v1/units/{uid}").json()
            assert detail["contacts"] is None and detail["capabilities"] == []
            assert CONTACT not in client.get("/api/v1/units", params={"per_page": 500}).text

            _share_in_other_process(url, Audience.NETWORK)
            assert _listed(client)["contacts"] is not None
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def test_changes_made_in_another_session_or_by_plain_sql_are_seen(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    api = api_as("duty.fr")
    uid = unit_id(db, TARGET)
    own_only = {g: schemas.SharingRuleIO(audience=Audience.OWN_UNIT) for g in FieldGroup}
    service.set_sharing(db, SYSTEM, uid, schemas.SharingAgreementIO(rules=own_only))
    db.commit()
    assert _listed(api)["visible_groups"] == []
    assert _listed(api)["visible_groups"] == []  # now cached

    network = {g: schemas.SharingRuleIO(audience=Audience.NETWORK) for g in FieldGroup}
    service.set_sharing(db, SYSTEM, uid, schemas.SharingAgreementIO(rules=network))
    db.commit()
    assert "contacts" in _listed(api)["visible_groups"]

    # Writes that bypass the services entirely (an operator's SQL) change the version too.
    db.execute(
        text("UPDATE sharing_rules SET audience = 'own_unit' WHERE unit_id = :u"), {"u": uid}
    )
    db.execute(text("UPDATE units SET base_location = 'Elsewhere' WHERE id = :u"), {"u": uid})
    db.commit()
    item = _listed(api)
    assert item["visible_groups"] == [] and item["base_location"] == "Elsewhere"

    # The directory page (names, totals) follows a new unit at once.
    total = api.get("/api/v1/units").json()["total"]
    service.create_unit(
        db,
        SYSTEM,
        schemas.UnitCreate(code="NL-NIEUW", name="Nieuw", country="NL", base_location="Utrecht"),
    )
    db.commit()
    assert api.get("/api/v1/units").json()["total"] == total + 1


@pytest.mark.parametrize("table", VERSIONED_TABLES)
def test_every_write_to_a_listed_table_gives_a_new_version(db: Session, table: str) -> None:
    if not db.scalar(text(f"SELECT count(*) FROM {table}")):
        seed.load_rules(db)  # the country rules and agreements of the demo (SQLite: row triggers)
    before = registry_version.current(db)
    (key,) = Base.metadata.tables[table].primary_key.columns.keys()
    # A no-op update still runs the statement, which is what the triggers watch.
    db.execute(
        text(f"UPDATE {table} SET {key} = {key} WHERE {key} = (SELECT min({key}) FROM {table})")
    )
    after = registry_version.current(db)
    assert after != before


def test_a_country_rule_changed_in_the_transaction_is_ranked_with_at_once(db: Session) -> None:
    """The ranking keeps every country's rules per process under the registry version: a rule
    written a moment ago (here: the host now bars foreign arms) applies to the next ranking."""
    from atlaslink.models import AssistanceRequest
    from atlaslink.operations import matching, rules
    from atlaslink.operations import schemas as op_schemas

    req = AssistanceRequest(requesting_country="DE", legal_basis="prum_17", nature=["intervention"])
    assert not matching.load_legal_context(db, req).host_prohibits_arms
    rules.set_rules(db, SYSTEM, "DE", op_schemas.CountryRulesUpdate(prohibits_foreign_arms=True))
    assert matching.load_legal_context(db, req).host_prohibits_arms


def test_a_rolled_back_version_never_comes_back(db: Session) -> None:
    before = registry_version.current(db)
    savepoint = db.begin_nested()
    db.execute(text("UPDATE units SET name = name"))
    rolled_back = registry_version.current(db)
    savepoint.rollback()
    assert registry_version.current(db) == before
    db.execute(text("UPDATE units SET name = name"))
    assert registry_version.current(db) not in (before, rolled_back)


def test_versioned_cache_never_answers_for_another_version() -> None:
    cache: VersionedCache[int, str] = VersionedCache(maxsize=2)
    cache.put("a", 1, "one at a")
    assert cache.get("a", 1) == "one at a"
    assert cache.get("b", 1) is None
    assert cache.get("a", 1) is None  # asking for b dropped what was built at a
    cache.put_many("b", {1: "x", 2: "y", 3: "z"})
    found, missing = cache.get_many("b", [1, 2, 3])
    assert found == {2: "y", 3: "z"} and missing == [1]  # bounded: the oldest went first
