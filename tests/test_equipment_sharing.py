"""Authorization matrix of the equipment pool: viewer x audience x every way out (API search
and count, API item, unit calendar, pages, CSV and XLSX export, the iCalendar feed). The
expectations are written out by hand from DOMAIN.md §4, as in tests/test_sharing_matrix.py."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from atlaslink.auth.principal import SYSTEM
from atlaslink.equipment import loans, schemas, service
from atlaslink.sharing.policy import Audience
from tests.conftest import unit_id

OWNER = "NL-REIGER"
VIEWERS = [
    "commander.nl",  # own unit
    "duty.at",  # unit in a listed country
    "ncp.at",  # contact point of a listed country
    "duty.de",  # member of a listed unit
    "ncp.de",  # contact point of a country that is not listed
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


def model_of(a: Audience) -> str:
    return f"SHARETEST-{a.value.upper()}"


@pytest.fixture
def items(db: Session) -> dict[Audience, int]:
    ids = {}
    for a in Audience:
        item = service.register_item(
            db,
            SYSTEM,
            schemas.ItemCreate(
                ref=f"ST-{a.value}",
                category="boat",
                model=model_of(a),
                unit=OWNER,
                sharing=schemas.Sharing(
                    audience=a,
                    countries=["AT"] if a is Audience.LISTED else [],
                    units=["DE-FALKE"] if a is Audience.LISTED else [],
                ),
            ),
        )
        ids[a] = item.id
    # DE-FALKE borrows the listed boat next month; its period is in every calendar.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    duty_de = service.repo.units_by_ids(db, [unit_id(db, "DE-FALKE")])
    assert duty_de
    from atlaslink.auth import service as auth
    from atlaslink.models import User

    user = db.query(User).filter(User.username == "duty.de").one()
    loans.request_loan(
        db,
        auth.principal_of(user),
        ids[Audience.LISTED],
        schemas.LoanCreate(starts_at=start, ends_at=start + timedelta(days=2), purpose="training"),
    )
    db.commit()
    return ids


def expected(viewer: str) -> set[str]:
    return {model_of(a) for a, who in SEES.items() if viewer in who}


def models_in(text: str) -> set[str]:
    return set(re.findall(r"SHARETEST-[A-Z_]+", text))


@pytest.mark.parametrize("viewer", VIEWERS)
def test_every_way_out_shows_exactly_what_is_shared(items, viewer, api_as, pages_as, db) -> None:  # type: ignore[no-untyped-def]
    want = expected(viewer)
    api = api_as(viewer)
    # Search: the items and the count.
    r = api.get("/api/v1/equipment", params={"q": "sharetest", "per_page": 100})
    assert r.status_code == 200, r.text
    assert {i["model"] for i in r.json()["items"]} == want
    assert r.json()["total"] == len(want)
    # Filters never reveal: a category filter counts only what is visible too.
    r = api.get("/api/v1/equipment", params={"q": "sharetest", "category": "boat"})
    assert r.json()["total"] == len(want)
    # One item: 200 or 404 (never 403).
    for a, iid in items.items():
        code = api.get(f"/api/v1/equipment/{iid}").status_code
        assert code == (200 if model_of(a) in want else 404), (a, code)
        code = api.get(f"/api/v1/equipment/{iid}/calendar").status_code
        assert code == (200 if model_of(a) in want else 404), (a, code)
    # The owner's calendar lists only visible items; the borrower is named to the two units.
    cal = api.get(f"/api/v1/equipment/units/{unit_id(db, OWNER)}/calendar").json()
    assert {r["model"] for r in cal["rows"]["items"]} == want
    for row in cal["rows"]["items"]:
        for p in row["periods"]:
            party = viewer in ("commander.nl", "duty.de")
            assert (p["borrower"] is not None) == party, (viewer, p)
    # Exports.
    body = api.get("/api/v1/equipment/export", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {r["model"] for r in rows if r["model"].startswith("SHARETEST")} == want
    if viewer != "commander.nl":
        assert all(not r["audience"] for r in rows if r["unit_code"] == OWNER)
    xlsx = api.get("/api/v1/equipment/export", params={"format": "xlsx"}).content
    sheet = load_workbook(io.BytesIO(xlsx))["equipment"]
    assert {c.value for c in sheet["D"] if str(c.value).startswith("SHARETEST")} == want
    # Pages.
    page = pages_as(viewer)
    html = page.get("/equipment", params={"q": "sharetest"}).text
    assert models_in(html) == want
    for a, iid in items.items():
        code = page.get(f"/equipment/{iid}").status_code
        assert code == (200 if model_of(a) in want else 404), (a, code)
    html = page.get("/equipment/calendar", params={"unit": unit_id(db, OWNER)}).text
    assert models_in(html) == want


def test_the_ical_feed_shows_what_the_unit_may_see_and_can_be_revoked(items, api_as, db) -> None:  # type: ignore[no-untyped-def]
    de_cmd, nl_cmd, at_cmd = api_as("commander.de"), api_as("commander.nl"), api_as("commander.at")

    def feed_of(client, code):  # type: ignore[no-untyped-def]
        r = client.post(f"/api/v1/equipment/units/{unit_id(db, code)}/feeds", json={"label": "x"})
        assert r.status_code == 201, r.text
        return r.json()

    def summaries(url: str) -> list[str]:
        path = url.split("8000", 1)[-1] if "8000" in url else url
        r = de_cmd.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
        cal = Calendar.from_ical(r.content)
        return [str(e["summary"]) for e in cal.walk("VEVENT")]

    de_feed = feed_of(de_cmd, "DE-FALKE")
    assert any(
        s.startswith("Borrowed: SHARETEST-LISTED") and "NL-REIGER" in s
        for s in summaries(de_feed["url"])
    )
    nl_feed = feed_of(nl_cmd, OWNER)
    assert any(
        s.startswith("Lent: SHARETEST-LISTED") and "DE-FALKE" in s
        for s in summaries(nl_feed["url"])
    )
    at_feed = feed_of(at_cmd, "AT-ADLER")
    assert not [s for s in summaries(at_feed["url"]) if "SHARETEST" in s]
    # Only the unit itself manages its feeds.
    assert (
        de_cmd.post(f"/api/v1/equipment/units/{unit_id(db, OWNER)}/feeds", json={}).status_code
        == 403
    )
    r = de_cmd.post(f"/api/v1/equipment/feeds/{de_feed['id']}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"]
    path = de_feed["url"].split("8000", 1)[-1]
    assert de_cmd.get(path).status_code == 404
