"""Registry API: listing, pagination, writes and who may make them, errors as problem details."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.models import CapabilityEntry, Unit, User, utcnow
from atlaslink.sharing.policy import (
    FieldGroup,
    can_see,
    load_agreements,
    sql_can_see,
    visible_groups,
)
from tests.conftest import unit_id


def test_health_readiness_and_openapi(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json() == {"status": "ready"}
    spec = client.get("/openapi.json").json()
    assert "/api/v1/units" in spec["paths"] and "/api/v1/units/{unit_id}/sharing" in spec["paths"]


def test_every_list_in_the_api_is_paginated(client) -> None:  # type: ignore[no-untyped-def]
    """No GET answers a bare JSON array: lists are pages (items, total, page, per_page), except
    a request's timeline, read by cursor (`after`, `after_seq`) and `limit`."""
    by_cursor = {"/api/v1/requests/{request_id}/events"}
    spec = client.get("/openapi.json").json()
    bare = []
    for path, ops in spec["paths"].items():
        get = ops.get("get")
        if get is None:
            continue
        schema = (
            get.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {})
        ).get("schema", {})
        if schema.get("type") == "array" and path not in by_cursor:
            bare.append(path)
        if path in by_cursor:
            names = {p["name"] for p in get.get("parameters", [])}
            assert {"after", "after_seq", "limit"} <= names, path
    assert bare == [], bare


def test_api_docs_are_served_offline(client) -> None:  # type: ignore[no-untyped-def]
    import re

    page = client.get("/api/docs")
    assert page.status_code == 200 and 'id="swagger-ui"' in page.text
    # Every script and style it loads comes from this server.
    for url in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url
    assert "/api/docs/openapi.json" in client.get("/static/api-docs.js").text
    viewer, exact = client.get("/api/docs/openapi.json").json(), client.get("/openapi.json").json()
    assert viewer["openapi"].startswith("3.0") and exact["openapi"].startswith("3.1")
    assert viewer["paths"] == exact["paths"]


def test_readiness_says_plainly_when_the_database_does_not_answer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from atlaslink.app import create_app
    from atlaslink.db import make_engine

    gone = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    with TestClient(create_app(gone), raise_server_exceptions=False) as c:
        assert c.get("/healthz").status_code == 200  # the process itself is alive
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 503 and "database" in r.json()["detail"]
    assert "Traceback" not in r.text


def test_listing_is_paginated_and_filtered(api_as) -> None:  # type: ignore[no-untyped-def]
    api = api_as("observer")
    first = api.get("/api/v1/units", params={"per_page": 10}).json()
    assert (
        first["total"] >= 40
        and len(first["items"]) == 10
        and first["pages"] == -(-first["total"] // 10)
    )
    second = api.get("/api/v1/units", params={"per_page": 10, "page": 2}).json()
    assert {u["id"] for u in first["items"]}.isdisjoint({u["id"] for u in second["items"]})
    de = api.get("/api/v1/units", params={"country": "DE"}).json()
    assert de["total"] >= 2 and all(u["country"] == "DE" for u in de["items"])
    gr = api.get("/api/v1/units", params={"country": "GR"}).json()
    assert gr["items"] and gr["items"][0]["country_display"] == "EL"
    r = api.get("/api/v1/units", params={"per_page": 100000})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "per_page"


def test_unknown_unit_is_404_problem(api_as) -> None:  # type: ignore[no-untyped-def]
    r = api_as("observer").get("/api/v1/units/999999")
    assert r.status_code == 404 and r.json()["title"] == "Not found"


def test_commander_edits_only_own_unit(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    own, other = unit_id(db, "AT-ADLER"), unit_id(db, "DE-FALKE")
    api = api_as("commander.at")
    r = api.patch(
        f"/api/v1/units/{own}",
        json={
            "languages": ["de", "en", "it"],
            "contacts": [{"kind": "phone", "label": "Desk", "value": "+43 555 0000"}],
        },
    )
    assert r.status_code == 200 and r.json()["languages"] == ["de", "en", "it"]
    assert api.patch(f"/api/v1/units/{other}", json={"name": "Hijacked"}).status_code == 403
    r = api.patch(f"/api/v1/units/{own}", json={"languages": ["german"]})
    assert r.status_code == 422 and "ISO 639-1" in r.text
    assert api.patch(f"/api/v1/units/{own}", json={"colour": "red"}).status_code == 422


def test_duty_officer_updates_readiness_but_not_sharing(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    own = unit_id(db, "AT-ADLER")
    api = api_as("duty.at")
    r = api.put(
        f"/api/v1/units/{own}/capabilities/building", json={"level": 3, "notice_to_move_hours": 2}
    )
    assert r.status_code == 200 and r.json()["notice_to_move_hours"] == 2
    assert r.json()["confirmed_on"] == utcnow().date().isoformat()
    assert (
        api.put(f"/api/v1/units/{own}/capabilities/building", json={"level": 7}).status_code == 422
    )
    assert (
        api.put(f"/api/v1/units/{own}/capabilities/no_such", json={"level": 1}).status_code == 422
    )
    assert api.get(f"/api/v1/units/{own}/sharing").status_code == 200
    rules = {g.value: {"audience": "network"} for g in FieldGroup}
    assert api.put(f"/api/v1/units/{own}/sharing", json={"rules": rules}).status_code == 403
    other = unit_id(db, "DE-FALKE")
    assert (
        api.put(f"/api/v1/units/{other}/capabilities/building", json={"level": 1}).status_code
        == 403
    )


def test_sharing_agreement_is_validated_as_a_whole(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    own = unit_id(db, "AT-ADLER")
    api = api_as("commander.at")
    before = api.get(f"/api/v1/units/{own}/sharing").json()
    rules = {g.value: {"audience": "network"} for g in FieldGroup}
    rules["contacts"] = {"audience": "listed", "countries": ["ZZ"], "units": ["NOPE-UNIT"]}
    rules["transport"] = {"audience": "listed"}
    r = api.put(f"/api/v1/units/{own}/sharing", json={"rules": rules})
    assert r.status_code == 422
    messages = [e["message"] for e in r.json()["errors"]]
    assert "unknown country 'ZZ'" in messages and "unknown unit 'NOPE-UNIT'" in messages
    assert "list at least one country or unit" in messages
    assert api.get(f"/api/v1/units/{own}/sharing").json() == before
    # Another unit's agreement is not even visible to it.
    assert api.get(f"/api/v1/units/{unit_id(db, 'DE-FALKE')}/sharing").status_code == 404


def test_stale_entries_are_flagged_to_the_unit(api_as, pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    own = unit_id(db, "AT-ADLER")
    entries = list(db.scalars(select(CapabilityEntry).where(CapabilityEntry.unit_id == own)))
    for e in entries:
        e.confirmed_on = utcnow().date() - timedelta(days=91)
    db.commit()
    d = api_as("duty.at").get(f"/api/v1/units/{own}").json()
    assert d["stale_count"] == len(entries) and all(c["stale"] for c in d["capabilities"])
    assert "not confirmed for more than 90 days" in pages_as("duty.at").get("/").text
    assert api_as("duty.at").post(f"/api/v1/units/{own}/capabilities/confirm").json()[
        "confirmed"
    ] == len(entries)
    assert api_as("duty.at").get(f"/api/v1/units/{own}").json()["stale_count"] == 0


def test_every_entry_has_an_owner_shown_to_its_own_unit_only(api_as, pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    own = unit_id(db, "AT-ADLER")
    for who in ("commander.at", "duty.at"):
        caps = api_as(who).get(f"/api/v1/units/{own}").json()["capabilities"]
        assert caps and {c["owner"] for c in caps} == {"Col. Lena Moser"}  # the demo's owner
    page = pages_as("commander.at").get(f"/units/{own}").text
    assert '<th scope="col">Owner</th>' in page and "Col. Lena Moser" in page
    # Whoever saves an entry becomes its owner.
    r = api_as("duty.at").put(f"/api/v1/units/{own}/capabilities/building", json={"level": 2})
    assert r.status_code == 200 and r.json()["owner"] == "Insp. Jakob Huber"
    # Everyone else sees the entries as shared, never who keeps them.
    for who in ("commander.de", "duty.de", "support", "ncp.de", "observer"):
        d = api_as(who).get(f"/api/v1/units/{own}").json()
        assert all(c["owner"] is None for c in d.get("capabilities") or []), who
        assert "Lena Moser" not in str(d) and "Jakob Huber" not in str(d), who
    other = pages_as("commander.de").get(f"/units/{own}").text
    assert "Owner</th>" not in other and "Lena Moser" not in other


def test_support_office_edits_the_taxonomy_as_versioned_data(api_as) -> None:  # type: ignore[no-untyped-def]
    support = api_as("support")
    v0 = support.get("/api/v1/taxonomy").json()["version"]
    r = support.post(
        "/api/v1/taxonomy/types",
        json={"code": "k9_tracking", "kind": "skill", "name": "K9 tracking"},
    )
    assert r.status_code == 201 and r.json()["introduced_in"] == v0 + 1
    r = support.patch("/api/v1/taxonomy/types/k9_tracking", json={"retired": True})
    assert r.json()["retired_in"] == v0 + 2
    assert "k9_tracking" not in {t["code"] for t in support.get("/api/v1/taxonomy").json()["types"]}
    assert (
        api_as("commander.at")
        .post("/api/v1/taxonomy/types", json={"code": "x_y", "kind": "skill", "name": "X"})
        .status_code
        == 403
    )
    types = {t["code"]: t for t in support.get("/api/v1/taxonomy").json()["types"]}
    assert types["crisis_negotiation"]["rtlt_id"] == "6-508-1231"


def test_support_office_adds_a_unit_private_by_default(api_as) -> None:  # type: ignore[no-untyped-def]
    r = api_as("support").post(
        "/api/v1/units",
        json={
            "code": "LU-TEST",
            "name": "Test unit",
            "country": "LU",
            "base_location": "Luxembourg",
            "languages": ["fr", "de", "lb"],
        },
    )
    assert r.status_code == 201
    uid = r.json()["id"]
    seen = api_as("observer").get(f"/api/v1/units/{uid}").json()
    assert seen["name"] == "Test unit" and seen["visible_groups"] == []
    assert (
        api_as("commander.at")
        .post(
            "/api/v1/units",
            json={"code": "LU-TEST2", "name": "Another", "country": "LU", "base_location": "L"},
        )
        .status_code
        == 403
    )


def test_request_bodies_are_limited(api_as) -> None:  # type: ignore[no-untyped-def]
    r = api_as("support").post(
        "/api/v1/import", files={"file": ("big.csv", b"x" * (6 * 1024 * 1024), "text/csv")}
    )
    assert r.status_code == 413 and r.json()["title"] == "Request too large"


def test_sql_and_python_sharing_rules_agree(db: Session) -> None:
    """The filter form of the rule must decide exactly as the display form, for every demo unit,
    viewer and group (otherwise search could reveal or hide what the page shows)."""
    units = list(db.scalars(select(Unit.id)))
    agreements = load_agreements(db, units)
    users = list(db.scalars(select(User).where(User.role != "platform_admin")))
    for user in users:
        viewer = auth.principal_of(user)
        for group in FieldGroup:
            sql = set(db.scalars(select(Unit.id).where(sql_can_see(viewer, group, Unit.id))))
            py = {u for u in units if group in visible_groups(viewer, agreements[u])}
            assert sql == py, (user.username, group)
            if group is FieldGroup.EXISTENCE:
                assert py == {u for u in units if can_see(viewer, agreements[u], group)}


def test_support_office_manages_networks_and_members(api_as) -> None:  # type: ignore[no-untyped-def]
    support = api_as("support")
    nets = support.get("/api/v1/networks").json()
    assert nets["items"][0]["code"] == "ATLAS" and "AT" in nets["items"][0]["countries"]
    r = support.post("/api/v1/networks", json={"code": "EEODN", "name": "European EOD network"})
    assert r.status_code == 201
    assert (
        support.post("/api/v1/networks", json={"code": "EEODN", "name": "Again"}).status_code == 409
    )
    r = support.put("/api/v1/networks/EEODN/members/BE", json={"voting": True})
    assert r.json()["countries"] == ["BE"]
    assert (
        support.put("/api/v1/networks/EEODN/members/ZZ", json={"voting": True}).status_code == 422
    )
    assert support.delete("/api/v1/networks/EEODN/members/BE").json()["countries"] == []
    r = support.post("/api/v1/countries", json={"iso2": "XK", "name": "Kosovo", "status": "other"})
    assert r.status_code == 201 and r.json()["unit_count"] == 0
    countries = support.get("/api/v1/countries", params={"per_page": 10}).json()
    assert countries["total"] >= 33 and len(countries["items"]) == 10
    assert (
        api_as("commander.at")
        .post("/api/v1/networks", json={"code": "X1", "name": "Nope"})
        .status_code
        == 403
    )


def test_network_page(pages_as) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import csrf_of

    c = pages_as("support")
    page = c.get("/network")
    assert page.status_code == 200 and "ATLAS" in page.text and ">EL<" in page.text
    r = c.post(
        "/network",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "network",
            "code": "bad code!",
            "name": "x",
        },
    )
    assert r.status_code == 422
    r = c.post(
        "/network",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "network",
            "code": "EEODN",
            "name": "EOD network",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and "EOD network" in c.get("/network").text
    assert "Add a network" not in pages_as("duty.at").get("/network").text


def test_unexpected_errors_show_no_stack_trace(app) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/api/v1/boom", boom)
    app.add_api_route("/boom-page", boom)
    c = TestClient(app, raise_server_exceptions=False)
    r = c.get("/api/v1/boom")
    assert r.status_code == 500 and r.json()["title"] == "Internal error"
    assert "secret internals" not in r.text and r.json()["request_id"] in r.json()["detail"]
    r = c.get("/boom-page", headers={"accept": "text/html"})
    assert r.status_code == 500 and "<html" in r.text and "secret internals" not in r.text
