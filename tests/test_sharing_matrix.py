"""Authorization matrix: role x audience x every way data leaves (API detail, API list, page,
CSV export, XLSX export, search filters, matrix). The expectations are written out by hand
from DOMAIN.md §4, not derived from the code under test."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import MATCHING_ENGINE, SYSTEM, Principal
from atlaslink.models import AuditEvent, Unit
from atlaslink.registry import repository as repo
from atlaslink.registry import schemas, service
from atlaslink.registry import version as registry_version
from atlaslink.registry.repository import UnitFilters
from atlaslink.sharing import redact
from atlaslink.sharing.policy import Audience, FieldGroup, load_agreements
from tests.conftest import unit_id

TARGET = "NL-REIGER"
# Viewers and how they relate to the target's "listed" audience (countries AT, units DE-FALKE).
VIEWERS = [
    "commander.nl",  # own unit
    "duty.at",  # unit in a listed country
    "ncp.at",  # contact point of a listed country
    "duty.de",  # member of a listed unit
    "ncp.de",  # contact point of a country that is not listed (only one DE unit is)
    "duty.fr",  # unit in a country that is not listed
    "support",  # support office
    "observer",  # observer
]
SEES: dict[Audience, set[str]] = {
    Audience.NETWORK: set(VIEWERS),
    Audience.LISTED: {"commander.nl", "duty.at", "ncp.at", "duty.de", "support"},
    Audience.SUPPORT_OFFICE: {"commander.nl", "support"},
    Audience.MATCHING: {"commander.nl"},
    Audience.OWN_UNIT: {"commander.nl"},
}
PACKAGE, NOTICE, SELF = 977, 313, 271
CONTACT, HELI = "+00 555 SECRET 0001", "SECRET-HELI-TYPE"


def share_all(
    db: Session, audience: Audience, per_group: dict[FieldGroup, Audience] | None = None
) -> int:
    uid = unit_id(db, TARGET)
    rules = {
        g: schemas.SharingRuleIO(
            audience=(per_group or {}).get(g, audience),
            countries=["AT"] if (per_group or {}).get(g, audience) is Audience.LISTED else [],
            units=["DE-FALKE"] if (per_group or {}).get(g, audience) is Audience.LISTED else [],
        )
        for g in FieldGroup
    }
    service.set_sharing(db, SYSTEM, uid, schemas.SharingAgreementIO(rules=rules))
    service.update_unit(
        db,
        SYSTEM,
        uid,
        schemas.UnitUpdate(
            contacts=[schemas.Contact(kind="phone", label="24/7 desk", value=CONTACT)],
            transport=[schemas.Transport(kind="helicopter", description=HELI, quantity=2)],
        ),
    )
    service.put_capability(
        db,
        SYSTEM,
        uid,
        "building",
        schemas.CapabilityWrite(
            level=3,
            package_size=PACKAGE,
            notice_to_move_hours=NOTICE,
            self_sufficiency_hours=SELF,
            may_deploy_abroad=True,
        ),
    )
    db.commit()
    return uid


@pytest.fixture
def setup(db: Session) -> Session:
    return db


def _reiger_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r["unit_code"] == TARGET]


@pytest.mark.parametrize("audience", list(Audience))
@pytest.mark.parametrize("viewer", VIEWERS)
def test_every_way_out_respects_the_audience(setup, api_as, pages_as, audience, viewer):  # type: ignore[no-untyped-def]
    db = setup
    uid = share_all(db, audience)
    sees = viewer in SEES[audience]
    api = api_as(viewer)

    # 1. API: the unit's profile
    d = api.get(f"/api/v1/units/{uid}").json()
    building = [c for c in d["capabilities"] if c["type_code"] == "building"]
    assert bool(building) == sees, "API detail: existence"
    assert (d["contacts"] is not None) == sees, "API detail: contacts"
    assert (d["transport"] is not None) == sees, "API detail: transport"
    if sees:
        assert building[0]["level"] == 3
        assert building[0]["package_size"] == PACKAGE
        assert building[0]["notice_to_move_hours"] == NOTICE
        assert d["contacts"][0]["value"] == CONTACT
    assert (CONTACT in str(d)) == sees and (str(PACKAGE) in str(d)) == sees

    # 2. API: the directory listing
    listing = api.get("/api/v1/units", params={"q": TARGET}).json()
    (item,) = listing["items"]
    assert (item["capability_count"] is not None) == sees, "API list: capability count"
    assert (item["contacts"] is not None) == sees, "API list: contacts"

    # 3. Page: the unit profile
    html = pages_as(viewer).get(f"/units/{uid}").text
    assert (CONTACT in html) == sees, "page: contacts"
    assert (HELI in html) == sees, "page: transport"
    assert (f">{PACKAGE}<" in html) == sees, "page: package size"
    assert (f">{NOTICE}<" in html) == sees, "page: notice-to-move"

    # 4. CSV export
    body = api.get("/api/v1/export", params={"format": "csv"}).text
    rows = _reiger_rows(list(csv.DictReader(io.StringIO(body))))
    assert any(r["capability"] == "building" for r in rows) == sees, "CSV: existence"
    assert any(r["package_size"] == str(PACKAGE) for r in rows) == sees, "CSV: package"
    assert any(r["notice_to_move_hours"] == str(NOTICE) for r in rows) == sees, "CSV: notice"

    # 5. XLSX export
    wb = load_workbook(io.BytesIO(api.get("/api/v1/export", params={"format": "xlsx"}).content))
    sheet = list(wb["capabilities"].iter_rows(values_only=True))
    head = list(sheet[0])
    xrows = [dict(zip(head, r, strict=True)) for r in sheet[1:] if r[0] == TARGET]
    assert any(r["capability"] == "building" for r in xrows) == sees, "XLSX: existence"
    assert any(r["package_size"] == PACKAGE for r in xrows) == sees, "XLSX: package"
    assert any(r["level"] == 3 and r["capability"] == "building" for r in xrows) == sees

    # 6. Search: filtering on a value must not reveal it
    found = api.get(
        "/api/v1/units", params={"q": TARGET, "capability": "building", "min_level": 3}
    ).json()
    assert (found["total"] == 1) == sees, "search by level"
    found = api.get("/api/v1/units", params={"q": TARGET, "capability": "building"}).json()
    assert (found["total"] == 1) == sees, "search by existence"
    page_search = (
        pages_as(viewer)
        .get("/units", params={"q": TARGET, "capability": "building", "min_level": 3})
        .text
    )
    assert (f'/units/{uid}"' in page_search) == sees, "page search"

    # 7. Matrix
    m = api.get("/api/v1/matrix", params={"q": TARGET}).json()
    cells = m["rows"]["items"][0]["cells"]
    assert (cells.get("building") == 3) == sees, "matrix"
    mhtml = pages_as(viewer).get("/matrix", params={"q": TARGET}).text
    assert ('title="Building: 3 ·' in mhtml) == sees, "matrix page"


@pytest.mark.parametrize("audience", [Audience.LISTED, Audience.SUPPORT_OFFICE])
def test_reads_beyond_network_are_audited(setup, api_as, audience):  # type: ignore[no-untyped-def]
    db = setup
    uid = share_all(db, audience)
    before = db.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    viewer = "support"
    assert api_as(viewer).get(f"/api/v1/units/{uid}").status_code == 200
    events = db.scalars(
        select(AuditEvent).where(AuditEvent.seq > before, AuditEvent.action == "read")
    ).all()
    assert len(events) == 1
    (ev,) = events
    assert ev.actor_label == viewer
    objects = ev.after["objects"]  # type: ignore[index]
    assert {
        "type": "unit",
        "id": str(uid),
        "groups": sorted(["contacts", "existence", "level", "notice", "package", "transport"]),
    } in objects


def test_network_wide_reads_are_not_audited(setup, api_as):  # type: ignore[no-untyped-def]
    db = setup
    uid = share_all(db, Audience.NETWORK)
    before = db.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    assert api_as("observer").get(f"/api/v1/units/{uid}").status_code == 200
    assert (
        db.scalars(
            select(AuditEvent).where(AuditEvent.seq > before, AuditEvent.action == "read")
        ).all()
        == []
    )


def test_groups_are_independent_and_existence_gates_entry_fields(setup, api_as):  # type: ignore[no-untyped-def]
    db = setup
    A = Audience
    uid = share_all(
        db,
        A.NETWORK,
        {
            FieldGroup.LEVEL: A.MATCHING,
            FieldGroup.PACKAGE: A.LISTED,
            FieldGroup.NOTICE: A.SUPPORT_OFFICE,
            FieldGroup.TRANSPORT: A.OWN_UNIT,
        },
    )
    d = api_as("duty.at").get(f"/api/v1/units/{uid}").json()
    (b,) = [c for c in d["capabilities"] if c["type_code"] == "building"]
    assert b["level"] is None and b["package_size"] == PACKAGE and b["notice_to_move_hours"] is None
    assert d["transport"] is None and d["contacts"][0]["value"] == CONTACT
    assert d["visible_groups"] == ["existence", "package", "contacts"]
    # Matching-engine-only is never shown, not even to the support office.
    s = api_as("support").get(f"/api/v1/units/{uid}").json()
    (b,) = [c for c in s["capabilities"] if c["type_code"] == "building"]
    assert b["level"] is None and b["notice_to_move_hours"] == NOTICE

    # A level shared network-wide is still hidden when the entry's existence is not.
    uid = share_all(db, A.NETWORK, {FieldGroup.EXISTENCE: A.OWN_UNIT})
    d = api_as("duty.at").get(f"/api/v1/units/{uid}").json()
    assert d["capabilities"] == [] and d["capability_count"] is None
    assert (
        api_as("duty.at").get("/api/v1/units", params={"q": TARGET, "min_level": 3}).json()["total"]
        == 0
    )


def test_platform_admin_sees_no_unit_data(client, api_as, pages_as, db):  # type: ignore[no-untyped-def]
    api = api_as("admin")
    uid = unit_id(db, TARGET)
    for path in (f"/api/v1/units/{uid}", "/api/v1/units", "/api/v1/matrix", "/api/v1/export"):
        r = api.get(path)
        assert r.status_code == 403, path
        assert r.headers["content-type"].startswith("application/problem+json")
    pages = pages_as("admin")
    for path in (f"/units/{uid}", "/units", "/matrix", "/map", "/registry/export.csv"):
        assert pages.get(path).status_code == 403, path


def test_viewers_listing_at_one_registry_version_each_see_their_own(setup, api_as):  # type: ignore[no-untyped-def]
    """Listing items are kept per process for each class of viewer and registry version
    (redact.unit_summaries): viewers who differ only in their country, unit or role list the same
    unit at one version, in turn and twice over, and each sees what the agreement gives them; every
    request that shows restricted groups appends its own read event, cached or not."""
    db = setup
    uid = share_all(db, Audience.LISTED)
    clients = {v: api_as(v) for v in VIEWERS}
    version = registry_version.current(db)
    for _ in range(2):
        for viewer, api in clients.items():
            sees = viewer in SEES[Audience.LISTED]
            before = db.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
            (item,) = api.get("/api/v1/units", params={"q": TARGET}).json()["items"]
            assert (item["contacts"] is not None) == sees, viewer
            assert (item["capability_count"] is not None) == sees, viewer
            assert ("existence" in item["visible_groups"]) == sees, viewer
            reads = db.scalars(
                select(AuditEvent).where(AuditEvent.seq > before, AuditEvent.action == "read")
            ).all()
            named = [
                o
                for ev in reads
                for o in ev.after["objects"]  # type: ignore[index]
                if o["id"] == str(uid)
            ]
            assert [ev.actor_label for ev in reads] == ([viewer] if sees else []), viewer
            assert named == (
                [{"type": "unit", "id": str(uid), "groups": ["contacts", "existence"]}]
                if sees
                else []
            ), viewer
    assert registry_version.current(db) == version, "the listings ran at one version"


def _listed_as(db: Session, viewer: Principal) -> dict:  # type: ignore[type-arg]
    version = registry_version.current(db)
    rows, _ = repo.directory_page(db, viewer, UnitFilters(q=TARGET), 0, 10, version=version)
    agreements = load_agreements(db, [r.id for r in rows], version=version)
    (item,) = redact.unit_summaries(viewer, rows, agreements, version=version)
    return item  # type: ignore[no-any-return]


def test_viewers_differing_only_in_unit_or_kind_get_their_own_listing_items(db: Session) -> None:
    """The listing items kept per class of viewer part viewers who differ in nothing but their
    unit (two duty officers of one country, one unit listed by name) or their kind (the
    matching engine and the system, neither with a role, unit or country)."""
    share_all(db, Audience.LISTED)  # lists the country AT and the unit DE-FALKE
    falke = unit_id(db, "DE-FALKE")
    other_de = db.scalar(
        select(Unit.id).where(Unit.country_iso2 == "DE", Unit.id != falke).order_by(Unit.id)
    )
    assert other_de is not None

    def duty(unit: int) -> Principal:
        return Principal.for_user(
            user_id=1, username="duty", role=Role.DUTY_OFFICER, unit_id=unit, country="DE"
        )

    assert _listed_as(db, duty(falke))["contacts"] is not None  # listed by unit
    assert _listed_as(db, duty(other_de))["contacts"] is None  # same role and country
    assert _listed_as(db, duty(falke))["contacts"] is not None  # and back, at one version

    share_all(db, Audience.MATCHING)  # usable by the matching engine only, never shown
    assert "existence" in _listed_as(db, MATCHING_ENGINE)["visible_groups"]
    assert _listed_as(db, SYSTEM)["visible_groups"] == []
    assert "existence" in _listed_as(db, MATCHING_ENGINE)["visible_groups"]


# Mixed agreements: every group gets another audience, in five rotations, so that each group is
# seen under each audience by each viewer; every way out is checked group by group.
_GROUPS = list(FieldGroup)
_AUDIENCES = list(Audience)
ROTATIONS = [
    {g: _AUDIENCES[(i + shift) % len(_AUDIENCES)] for i, g in enumerate(_GROUPS)}
    for shift in range(len(_AUDIENCES))
]


@pytest.mark.parametrize("rotation", range(len(ROTATIONS)))
@pytest.mark.parametrize("viewer", VIEWERS)
def test_mixed_agreements_leak_no_group_anywhere(setup, api_as, pages_as, rotation, viewer):  # type: ignore[no-untyped-def]
    db = setup
    per_group = ROTATIONS[rotation]
    uid = share_all(db, Audience.OWN_UNIT, per_group)
    G = FieldGroup
    sees = {g: viewer in SEES[a] for g, a in per_group.items()}
    entry = sees[G.EXISTENCE]  # entry fields are shown only with the entry itself
    want = {
        "level": entry and sees[G.LEVEL],
        "package": entry and sees[G.PACKAGE],
        "notice": entry and sees[G.NOTICE],
        "contacts": sees[G.CONTACTS],
        "transport": sees[G.TRANSPORT],
    }
    api, pages = api_as(viewer), pages_as(viewer)
    case = f"{viewer}, { ({g.value: a.value for g, a in per_group.items()}) }"

    # API detail and listing
    d = api.get(f"/api/v1/units/{uid}").json()
    building = [c for c in d["capabilities"] if c["type_code"] == "building"]
    assert bool(building) == entry, case
    if building:
        b = building[0]
        assert (b["level"] == 3) == want["level"], case
        assert (b["package_size"], b["self_sufficiency_hours"]) == (
            (PACKAGE, SELF) if want["package"] else (None, None)
        ), case
        assert (b["notice_to_move_hours"] == NOTICE) == want["notice"], case
    text = str(d)
    assert (CONTACT in text, HELI in text) == (want["contacts"], want["transport"]), case
    assert (str(PACKAGE) in text, str(SELF) in text) == (want["package"],) * 2, case
    assert (str(NOTICE) in text) == want["notice"], case
    (item,) = api.get("/api/v1/units", params={"q": TARGET}).json()["items"]
    assert (item["capability_count"] is not None) == entry, case
    assert (CONTACT in str(item)) == want["contacts"], case

    # Pages: profile and directory
    html = pages.get(f"/units/{uid}").text
    assert (CONTACT in html, HELI in html) == (want["contacts"], want["transport"]), case
    assert (f">{PACKAGE}<" in html, f">{SELF}<" in html) == (want["package"],) * 2, case
    assert (f">{NOTICE}<" in html) == want["notice"], case
    assert ('class="badge lv3"' in html) == want["level"], case
    directory = pages.get("/units", params={"q": TARGET}).text
    assert (CONTACT in directory) == want["contacts"], case

    # Exports: API CSV, the page's CSV, XLSX
    for body in (
        api.get("/api/v1/export", params={"format": "csv"}).text,
        pages.get("/registry/export.csv").text,
    ):
        rows = [r for r in _reiger_rows(list(csv.DictReader(io.StringIO(body))))]
        got = [r for r in rows if r["capability"] == "building"]
        assert bool(got) == entry, case
        for r in got:
            assert (r["level"] == "3") == want["level"], case
            assert (r["package_size"], r["self_sufficiency_hours"]) == (
                (str(PACKAGE), str(SELF)) if want["package"] else ("", "")
            ), case
            assert (r["notice_to_move_hours"] == str(NOTICE)) == want["notice"], case
    for table, sentinel, shared in (
        ("contacts", CONTACT, want["contacts"]),
        ("transport", HELI, want["transport"]),
    ):
        for body in (
            api.get("/api/v1/export", params={"format": "csv", "table": table}).text,
            pages.get("/registry/export.csv", params={"table": table}).text,
        ):
            rows = _reiger_rows(list(csv.DictReader(io.StringIO(body))))
            assert (sentinel in str(rows)) == shared and bool(rows) == shared, (table, case)
    wb = load_workbook(io.BytesIO(api.get("/api/v1/export", params={"format": "xlsx"}).content))
    for table, sentinel, shared in (
        ("contacts", CONTACT, want["contacts"]),
        ("transport", HELI, want["transport"]),
    ):
        values = [r for r in wb[table].iter_rows(values_only=True) if r[0] == TARGET]
        assert (sentinel in str(values)) == shared, (table, case)
    sheet = list(wb["capabilities"].iter_rows(values_only=True))
    xrows = [dict(zip(sheet[0], r, strict=True)) for r in sheet[1:] if r[0] == TARGET]
    xb = [r for r in xrows if r["capability"] == "building"]
    assert bool(xb) == entry, case
    for r in xb:
        assert (
            r["level"] == 3,
            r["package_size"] == PACKAGE,
            r["notice_to_move_hours"] == NOTICE,
        ) == (
            want["level"],
            want["package"],
            want["notice"],
        ), case

    # Search and matrix: filtering on a level must not reveal it
    found = api.get("/api/v1/units", params={"q": TARGET, "capability": "building", "min_level": 3})
    assert (found.json()["total"] == 1) == want["level"], case
    cells = api.get("/api/v1/matrix", params={"q": TARGET}).json()["rows"]["items"][0]["cells"]
    assert (cells.get("building") == 3) == want["level"], case

    # The audit trail of the set-up (the support office's only): a change's before/after is
    # shown whole or not at all, and only if every group it holds is shared with the viewer.
    if viewer == "support":
        changes = api.get(
            "/api/v1/audit", params={"object_type": "capability", "unit_id": uid}
        ).json()["items"]
        shown = all(sees[g] for g in (G.EXISTENCE, G.LEVEL, G.PACKAGE, G.NOTICE))
        assert changes and all((c["after"] is not None) == shown for c in changes), case
        assert (str(PACKAGE) in str(changes)) == shown, case
