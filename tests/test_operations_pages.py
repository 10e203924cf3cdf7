"""Operation pages: the whole flow through the forms, readable refusals that change nothing, one
action per form however often it is sent, and who sees what on pages and reports."""

from __future__ import annotations

import html as htmllib
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.models import (
    AssistanceRequest,
    CapabilityEntry,
    CapabilityType,
    Notification,
    Offer,
    RequestAddressee,
    Unit,
    User,
)
from tests.conftest import unit_id


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields (CSRF token, one-time key, versions) of the form posting to ``action``."""
    for m in re.finditer(r"<form\b([^>]*)>(.*?)</form>", page, re.S):
        if f'action="{action}"' in m[1]:
            return {
                f[1]: htmllib.unescape(f[2])
                for f in re.finditer(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)"', m[2], re.S
                )
            }
    raise AssertionError(f"no form posting to {action}")


def post_form(
    c: TestClient, page_path: str, action: str, data: dict[str, Any] | None = None
) -> Any:
    page = c.get(page_path)
    assert page.status_code == 200, page.text[:300]
    fields = hidden_fields(page.text, action) | (data or {})
    return c.post(action, data=fields, follow_redirects=False)


def text_of(html: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", html))


REQUEST_FORM = {
    "exercise": "exercise",
    "title": "Armed men hold passengers on a train near Aachen",
    "crisis_category": "hijack_train",
    "location_name": "Aachen Hbf",
    "latitude": "50.7677",
    "longitude": "6.0912",
    "nature": ["intervention"],
    "operational_necessity": "Our unit is committed at the first train.",
    "legal_basis": "2008/617-art3",
    "classification": "RESTREINT_UE",
    "handling_code": "H2",
    "line1.capability": "land_transport",
    "line1.min_level": "2",
    "line1.quantity": "2",
    "line2.capability": "crisis_negotiation",
    "line2.min_level": "1",
    "line2.quantity": "1",
    "action": "submit",
}


def create_by_form(c: TestClient, **over: Any) -> int:
    r = post_form(c, "/requests/new", "/requests/new", REQUEST_FORM | over)
    assert r.status_code == 303, text_of(r.text)[:800]
    m = re.match(r"/requests/(\d+)\?", r.headers["location"])
    assert m, r.headers["location"]
    return int(m[1])


def request_count(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(AssistanceRequest)) or 0


def test_whole_operation_through_the_pages(pages_as: Any, db: Session) -> None:
    de, at = pages_as("duty.de"), pages_as("duty.at")
    rid = create_by_form(de)
    page = de.get(f"/requests/{rid}").text
    assert "EXERCISE · EXERCISE · EXERCISE" in page and "submitted" in page
    assert "RESTREINT UE/EU RESTRICTED" in page

    # Address AT-ADLER from the ranking of line 1.
    path = f"/requests/{rid}/lines/1/candidates"
    ranking = de.get(path)
    assert ranking.status_code == 200 and "Units for line 1" in ranking.text
    assert 'name="unit_id"' in ranking.text
    adler = unit_id(db, "AT-ADLER")
    r = post_form(de, path, f"/requests/{rid}/address", {"unit_id": str(adler)})
    assert r.status_code == 303 and "#addressees" in r.headers["location"]

    # Austria sees it now, acknowledges and offers.
    seen = at.get(f"/requests/{rid}")
    assert seen.status_code == 200 and "Acknowledge receipt" in seen.text
    here = f"/requests/{rid}"
    assert post_form(at, here, f"/requests/{rid}/acknowledge").status_code == 303
    r = post_form(
        at,
        here,
        f"/requests/{rid}/answer",
        {
            "answer": "accept",
            "qty1": "2",
            "qty2": "1",
            "package": "Two assault teams with breaching kit",
            "costs": "Borne by Austria",
        },
    )
    assert r.status_code == 303, text_of(r.text)[:600]
    offer_id = db.scalar(select(Offer.id).where(Offer.request_id == rid))
    assert offer_id is not None
    offer = f"/requests/{rid}/offers/{offer_id}"

    # Germany accepts; both sides confirm the arrangements record.
    assert "Two assault teams with breaching kit" in de.get(here).text
    assert post_form(de, here, f"{offer}/accept").status_code == 303
    assert post_form(de, here, f"{offer}/confirm").status_code == 303
    assert post_form(at, here, f"{offer}/confirm").status_code == 303
    assert "Deployment of AT-ADLER agreed by both sides" in de.get(here).text

    # Austria declares its weapons; the host approves; the team moves to the incident.
    r = post_form(
        at,
        here,
        f"{offer}/manifest",
        {"category": "weapon", "description": "Assault rifles", "quantity": "16"},
    )
    assert r.status_code == 303
    item = re.search(r'name="item_id" value="(\d+)"', de.get(here).text)
    assert item
    r = post_form(de, here, f"{offer}/decide", {"item_id": item[1], "decision": "approved"})
    assert r.status_code == 303
    for step in ("MOBILISING", "EN_ROUTE", "ON_SITE"):
        r = post_form(at, here, f"{offer}/status", {"status": step})
        assert r.status_code == 303, (step, text_of(r.text)[:500])
    page = de.get(here).text
    assert "active" in page and "2/2 committed, 2 on site" in page

    # Stand down, the team returns, the request is closed with a debrief.
    assert post_form(de, here, f"/requests/{rid}/stand-down", {"reason": "Over"}).status_code == 303
    for step in ("RETURNING", "HOME"):
        assert post_form(at, here, f"{offer}/status", {"status": step}).status_code == 303
    r = post_form(
        de, here, f"/requests/{rid}/close", {"debrief": "Train freed at 14:10; no casualties."}
    )
    assert r.status_code == 303, text_of(r.text)[:500]
    report = de.get(f"/requests/{rid}/report").text
    assert "Provisional" not in report and "Train freed at 14:10" in report
    assert "First team on site" in report and "not reached" not in report.split("Lines")[0]
    assert report.count("EXERCISE · EXERCISE · EXERCISE") == 2


def test_create_form_refusals_are_readable_and_save_nothing(pages_as: Any, db: Session) -> None:
    de = pages_as("duty.de")
    before = request_count(db)
    form = REQUEST_FORM | {
        "exercise": "",
        "crisis_category": "mass_gathering",
        "operational_necessity": "",
        "line1.quantity": "many",
    }
    r = post_form(de, "/requests/new", "/requests/new", form)
    assert r.status_code == 422
    shown = text_of(r.text)
    assert "choose EXERCISE or ACTUAL" in shown
    assert "line1.quantity" in shown and "write a number" in shown
    assert "Traceback" not in r.text
    # What the person typed is still there.
    assert 'value="Armed men hold passengers on a train near Aachen"' in r.text
    assert request_count(db) == before

    # Rules of the domain, stated in the service, reach the form too.
    r = post_form(
        de, "/requests/new", "/requests/new", form | {"exercise": "actual", "line1.quantity": "2"}
    )
    assert r.status_code == 422
    shown = text_of(r.text)
    assert "outside Decision 2008/617" in shown and "a request must state its necessity" in shown
    assert request_count(db) == before


def test_a_form_sent_twice_acts_once(pages_as: Any, db: Session) -> None:
    de = pages_as("duty.de")
    before = request_count(db)
    fields = hidden_fields(de.get("/requests/new").text, "/requests/new") | REQUEST_FORM
    first = de.post("/requests/new", data=fields, follow_redirects=False)
    again = de.post("/requests/new", data=fields, follow_redirects=False)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert request_count(db) == before + 1


def _addressed(de: TestClient, db: Session, *codes: str) -> int:
    rid = create_by_form(de)
    ids = [str(unit_id(db, c)) for c in codes]
    r = post_form(
        de, f"/requests/{rid}/lines/1/candidates", f"/requests/{rid}/address", {"unit_id": ids}
    )
    assert r.status_code == 303, text_of(r.text)[:500]
    return rid


def test_a_refused_action_explains_and_changes_nothing(pages_as: Any, db: Session) -> None:
    de, at = pages_as("duty.de"), pages_as("duty.at")
    rid = _addressed(de, db, "AT-ADLER")
    here = f"/requests/{rid}"
    r = post_form(at, here, f"/requests/{rid}/answer", {"answer": "refuse", "reason": ""})
    assert r.status_code == 422 and "Say why the unit refuses." in text_of(r.text)
    assert "Your unit's answer" in r.text  # the operation page again, with the reason
    db.expire_all()
    status = db.scalar(select(RequestAddressee.status).where(RequestAddressee.request_id == rid))
    assert status == "AWAITING_ACK"
    # A move the lifecycle does not allow: a conflict, named.
    assert post_form(at, here, f"/requests/{rid}/acknowledge").status_code == 303
    r = at.post(
        f"/requests/{rid}/acknowledge",
        data=hidden_fields(at.get(here).text, f"/requests/{rid}/answer"),
        follow_redirects=False,
    )
    assert r.status_code == 409 and "Already acknowledged" in text_of(r.text)
    # An unknown action and a missing CSRF token.
    assert at.post(f"/requests/{rid}/explode", data={}).status_code == 404
    assert at.post(f"/requests/{rid}/acknowledge", data={}).status_code == 403


def test_pages_show_a_request_only_to_those_involved(pages_as: Any, db: Session) -> None:
    de, nl, observer = pages_as("duty.de"), pages_as("commander.nl"), pages_as("observer")
    rid = _addressed(de, db, "AT-ADLER")
    reference = db.scalar(select(AssistanceRequest.reference).where(AssistanceRequest.id == rid))
    assert reference
    for c in (nl, observer):
        for path in (f"/requests/{rid}", f"/requests/{rid}/report", f"/requests/{rid}/edit"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert reference not in r.text
        for path in ("/requests?status=all", "/dashboard"):
            listed = c.get(path)
            assert listed.status_code == 200 and reference not in listed.text
    # Ranking is for the requesting side: an addressed unit may not rank.
    assert pages_as("duty.at").get(f"/requests/{rid}/lines/1/candidates").status_code == 403
    # Acting on it as an outsider: the same 404, nothing changes.
    page = de.get(f"/requests/{rid}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', nl.get("/requests").text)
    assert token and "Cancel the request" in page
    r = nl.post(f"/requests/{rid}/cancel", data={"csrf_token": token[1], "reason": "x"})
    assert r.status_code == 404


def test_offer_terms_only_for_the_two_parties(pages_as: Any, db: Session) -> None:
    de, at, fr = pages_as("duty.de"), pages_as("duty.at"), pages_as("duty.fr")
    fr_code = db.scalar(select(User.unit_id).where(User.username == "duty.fr"))

    fr_unit = db.get(Unit, fr_code)
    assert fr_unit is not None
    rid = _addressed(de, db, "AT-ADLER", fr_unit.code)
    here = f"/requests/{rid}"
    secret = "Package-of-Adler-7f3c"
    r = post_form(
        at,
        here,
        f"/requests/{rid}/answer",
        {"answer": "accept", "qty1": "1", "package": secret, "costs": "Costs-of-Adler-91"},
    )
    assert r.status_code == 303
    for path in (here, f"{here}/report"):
        other = fr.get(path).text
        assert "AT-ADLER" in other  # the same picture: who offered, and the status
        assert secret not in other and "Costs-of-Adler-91" not in other
        assert secret in de.get(path).text and secret in at.get(path).text


def test_candidates_page_never_shows_values_shared_with_the_matching_engine_only(
    pages_as: Any, api_as: Any, db: Session
) -> None:
    adler = unit_id(db, "AT-ADLER")
    rules = {
        "existence": {"audience": "network"},
        "level": {"audience": "matching"},
        "package": {"audience": "matching"},
        "notice": {"audience": "matching"},
        "transport": {"audience": "own_unit"},
        "contacts": {"audience": "own_unit"},
    }
    r = api_as("commander.at").put(f"/api/v1/units/{adler}/sharing", json={"rules": rules})
    assert r.status_code == 200, r.text
    # A capability Adler records at level 2 or more, so that it is a candidate.
    code = db.scalar(
        select(CapabilityType.code)
        .join(CapabilityEntry, CapabilityEntry.capability_type_id == CapabilityType.id)
        .where(CapabilityEntry.unit_id == adler, CapabilityEntry.level >= 2)
        .order_by(CapabilityType.code)
    )
    assert code
    de = pages_as("duty.de")
    rid = create_by_form(de, **{"line1.capability": code, "line1.min_level": "1"})
    page = de.get(f"/requests/{rid}/lines/1/candidates?limit=100").text
    row = next(m[0] for m in re.finditer(r"<tr>.*?</tr>", page, re.S) if f'/units/{adler}"' in m[0])
    shown = text_of(row.split("<ul", 1)[0] + row.rsplit("</ul>", 1)[-1])
    assert "level not shared" in shown
    assert not re.search(r"level \d|operators|notice \d|self-sufficient", shown), shown


def test_a_long_timeline_shows_its_newest_events_and_the_report_all(
    pages_as: Any, db: Session
) -> None:
    """A request with more events than the page shows: the page has the newest ones (and
    every pinned one), the after-action report every one."""
    from atlaslink.auth import service as auth
    from atlaslink.models import AssistanceRequest
    from atlaslink.operations import timeline
    from atlaslink.web.operations_pages import PAGE_EVENTS

    de = pages_as("duty.de")
    rid = _addressed(de, db, "AT-ADLER")
    req = db.get(AssistanceRequest, rid)
    user = db.scalar(select(User).where(User.username == "duty.de"))
    assert req is not None and user is not None
    who = auth.principal_of(user)
    timeline.record(db, who, req, "note", "Pinned at the start: the command post", pinned=True)
    for k in range(PAGE_EVENTS + 20):
        timeline.record(db, who, req, "note", f"Situation report no. {k:04d}")
    db.commit()
    page = de.get(f"/requests/{rid}").text
    assert f"Situation report no. {PAGE_EVENTS + 19:04d}" in page  # the newest
    assert "Situation report no. 0000" not in page  # beyond the newest ones
    assert f"The newest {PAGE_EVENTS} events" in page and "/report" in page
    assert "Pinned at the start: the command post" in page  # pinned, however old
    report = de.get(f"/requests/{rid}/report").text
    assert "Situation report no. 0000" in report
    assert f"Situation report no. {PAGE_EVENTS + 19:04d}" in report


def test_notifications_page_badge_and_reading(pages_as: Any, db: Session) -> None:
    de, at = pages_as("duty.de"), pages_as("duty.at")
    rid = _addressed(de, db, "AT-ADLER")
    home = at.get("/").text
    badge = re.search(r'id="notif-count"[^>]*>(\d+)<', home)
    assert badge and int(badge[1]) >= 1
    page = at.get("/notifications?unread=true")
    assert page.status_code == 200 and "urgent" in page.text
    assert '<span class="flag exercise">EXERCISE</span>' in page.text
    note_id = db.scalar(
        select(Notification.id)
        .join(User, User.id == Notification.user_id)
        .where(User.username == "duty.at", Notification.request_id == rid)
    )
    r = post_form(at, "/notifications", f"/notifications/{note_id}/read")
    assert r.status_code == 303 and r.headers["location"] == f"/requests/{rid}"
    db.expire_all()
    assert db.get(Notification, note_id).read_at is not None  # type: ignore[union-attr]
    # Someone else's notification is not there for you.
    r = post_form(de, "/notifications", "/notifications/read-all")
    assert r.status_code == 303
    token = re.search(r'name="csrf_token" value="([^"]+)"', de.get("/notifications").text)
    assert token
    assert (
        de.post(f"/notifications/{note_id}/read", data={"csrf_token": token[1]}).status_code == 404
    )


@pytest.mark.parametrize(
    ("start", "end", "ok", "message"),
    [
        ("22:00", "06:30", True, ""),
        ("", "", True, ""),
        ("22:00", "", False, "give both the start and the end"),
        ("25:00", "06:00", False, "write the time as HH:MM"),
        ("07:00", "07:00", False, "the end must differ from the start"),
    ],
)
def test_quiet_hours(pages_as: Any, start: str, end: str, ok: bool, message: str) -> None:
    c = pages_as("duty.at")
    data = {"quiet_start": start, "quiet_end": end, "email_enabled": "1"}
    r = post_form(c, "/account/preferences", "/account/preferences", data)
    if ok:
        assert r.status_code == 303
        page = c.get("/account/preferences").text
        assert f'value="{start}"' in page
    else:
        assert r.status_code == 422 and message in text_of(r.text)


def test_dashboard_counts_the_network_for_the_support_office_only(
    pages_as: Any, api_as: Any, db: Session
) -> None:
    de = pages_as("duty.de")
    rid = _addressed(de, db, "AT-ADLER")
    reference = db.scalar(select(AssistanceRequest.reference).where(AssistanceRequest.id == rid))
    assert reference
    support = api_as("support").get("/api/v1/dashboard").json()
    nl = api_as("commander.nl").get("/api/v1/dashboard").json()
    assert support["scope"] == "network" and support["requests"] >= 1
    assert nl["scope"] == "involved" and nl["requests"] == 0
    # The support office counts it but is not shown what it was not given.
    assert reference not in pages_as("support").get("/dashboard").text
    assert reference in de.get("/dashboard").text
    assert "network" not in nl["scope"]


def test_amending_through_the_form_makes_a_new_version(pages_as: Any, db: Session) -> None:
    de, at = pages_as("duty.de"), pages_as("duty.at")
    rid = _addressed(de, db, "AT-ADLER")
    here = f"/requests/{rid}"
    r = post_form(at, here, f"/requests/{rid}/answer", {"answer": "accept", "qty1": "1"})
    assert r.status_code == 303
    edit = f"/requests/{rid}/edit"
    form = de.get(edit)
    assert form.status_code == 200 and "Saving makes version 2" in form.text
    stale = hidden_fields(form.text, edit)
    changed = REQUEST_FORM | {"line1.quantity": "4", "reason": "Second train found"}
    r = de.post(edit, data=stale | changed, follow_redirects=False)
    assert r.status_code == 303 and "version%202" in r.headers["location"]
    page = at.get(here).text
    assert "version 2" in page and "Acknowledge receipt" in page  # asked again
    assert "expired" in page  # the pending offer was made against version 1
    # The same (now stale) form again: refused, with the reason, and nothing changes.
    r = de.post(edit, data=stale | changed | {"line1.quantity": "9"}, follow_redirects=False)
    assert r.status_code == 409 and "based on version 1" in text_of(r.text)
    db.expire_all()
    assert db.scalar(select(AssistanceRequest.version).where(AssistanceRequest.id == rid)) == 2
    # An exercise stays an exercise.
    fresh = hidden_fields(de.get(edit).text, edit)
    r = de.post(edit, data=fresh | changed | {"exercise": "actual"}, follow_redirects=False)
    assert r.status_code == 422 and "cannot change after submission" in text_of(r.text)
