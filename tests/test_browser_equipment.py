"""Borrowing equipment in two real Chromium contexts against the real server.

AT-ADLER's commander registers a counter-drone system through the form and shares it with
the network. Germany's duty officer finds it ("free next week within 800 km of Vienna"),
asks for it for next week, and sees the request held in the item's calendar. The Austrian
commander opens the request from the notifications and approves it; the German page of the
item's calendar then shows the days reserved, and Germany's unit calendar lists the borrowed
item. Screenshots of every step go to ``ATLASLINK_SCREENSHOTS``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.test_browser import (  # noqa: F401  # the fixtures are used by name
    Live,
    NewContext,
    browser,
    live,
    log_in,
    new_context,
)

pytestmark = pytest.mark.browser


def test_find_borrow_approve_and_see_the_calendar(live: Live, new_context: NewContext) -> None:  # noqa: F811
    at = log_in(live, new_context(), "commander.at")
    de = log_in(live, new_context(), "duty.de")

    # Austria registers the item through the form.
    at.get_by_role("navigation", name="Main").get_by_role("link", name="Equipment").click()
    at.get_by_role("link", name="Register equipment").click()
    at.get_by_label("Reference (inventory number)").fill("CD-BROWSER-1")
    at.get_by_label("Category").select_option("counter_drone")
    at.get_by_label("Model").fill("SkyFence Mobile CD-9")
    at.get_by_label("Weight (kg)").fill("160")
    at.get_by_label("Air-transportable").check()
    at.get_by_label("Operators' training required").fill("SkyFence operator course")
    at.get_by_label("Audience").select_option("network")
    live.shot(at, "eq-01-register")
    at.get_by_role("button", name="Register").click()
    at.wait_for_url(re.compile(r"/equipment/\d+\?saved=Registered"))
    item_url = at.url.split("?")[0]
    live.shot(at, "eq-02-item-owner")

    # Germany searches: counter-drone, free next week, within 800 km of Vienna.
    de.get_by_role("navigation", name="Main").get_by_role("link", name="Equipment").click()
    de.get_by_label("Category").select_option("counter_drone")
    de.get_by_label("Free all next week").check()
    de.get_by_label("Near").select_option("vienna")
    de.get_by_label("Within (km)").fill("800")
    de.get_by_role("button", name="Search").click()
    results = de.locator("table").first
    expect(results).to_contain_text("SkyFence Mobile CD-9")
    live.shot(de, "eq-03-search")
    de.get_by_role("link", name="SkyFence Mobile CD-9").click()
    de.wait_for_url(item_url)

    # Germany asks for next week (keyboard: the fields are plain inputs).
    now = datetime.now(UTC)
    monday = (now + timedelta(days=7 - now.weekday())).replace(hour=8, minute=0)
    friday = monday + timedelta(days=4, hours=10)
    de.get_by_label("From (UTC)").fill(monday.strftime("%Y-%m-%dT%H:%M"))
    de.get_by_label("Until (UTC)").fill(friday.strftime("%Y-%m-%dT%H:%M"))
    de.get_by_label("Purpose").select_option("exercise")
    de.get_by_label("What for (optional)").fill("Counter-drone exercise at Leipzig fair")
    live.shot(de, "eq-04-request")
    de.get_by_role("button", name="Request the loan").click()
    de.wait_for_url(re.compile(r"/equipment/loans/\d+\?saved="))
    expect(de.get_by_role("heading", level=1)).to_contain_text("Requested")
    loan_url = de.url.split("?")[0]
    de.goto(f"{item_url}?start={monday.date().isoformat()}")
    expect(de.locator("#item-calendar td.day.requested").first).to_be_visible()
    live.shot(de, "eq-05-calendar-requested")

    # Austria opens the request from its notifications and approves it.
    at.goto("/notifications")
    at.get_by_role("button", name=re.compile("Loan request: SkyFence Mobile CD-9")).first.click()
    at.wait_for_url(loan_url)
    live.shot(at, "eq-06-owner-sees-request")
    at.get_by_role("button", name="Approve the loan").click()
    at.wait_for_url(re.compile(r"saved=Reserved"))
    expect(at.get_by_role("heading", level=1)).to_contain_text("Reserved")

    # Germany's calendar now shows the days reserved, and its unit calendar the borrowed item.
    de.goto(f"{item_url}?start={monday.date().isoformat()}")
    reserved = de.locator("#item-calendar td.day.reserved")
    expect(reserved).to_have_count(5)
    expect(de.locator("#periods")).to_contain_text("Reserved")
    live.shot(de, "eq-07-calendar-reserved")
    de.goto(f"/equipment/calendar?start={monday.date().isoformat()}")
    expect(de.locator("#borrowed-calendar")).to_contain_text("SkyFence Mobile CD-9")
    expect(de.locator("#borrowed-calendar td.day.reserved").first).to_be_visible()
    live.shot(de, "eq-08-unit-calendar")
    de.goto("/equipment/loans?side=borrower")
    live.shot(de, "eq-09-loans")
