"""The rapid-response flow in three real Chromium contexts against the real server.

Germany's duty officer raises an EXERCISE request and asks Austria's AT-ADLER and a French unit.
Both units have pages open and see the request arrive without reloading; Austria acknowledges
and offers; Germany's open operation page shows the offer live; Germany accepts; both sides
confirm the arrangements; Austria reports its team on site, which Germany's and France's open
pages show without reloading; the after-action report opens. Screenshots of every step go to
``ATLASLINK_SCREENSHOTS`` (default: a pytest temporary directory).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.test_browser import (  # noqa: F401  # the fixtures are used by name
    Live,
    NewContext,
    browser,
    live,
    log_in,
    new_context,
)

pytestmark = pytest.mark.browser

LIVE_WAIT = 8_000  # ms: generous on a loaded machine; latency is measured in bench/, not here


def mark(page: Page) -> None:
    """Remember this document: if the page reloads or navigates, the mark is gone."""
    page.evaluate("window.__atlaslinkMark = 'unchanged'")


def still_same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__atlaslinkMark === 'unchanged'"))


def test_three_users_run_an_operation_live(live: Live, new_context: NewContext) -> None:  # noqa: F811
    de = log_in(live, new_context(), "duty.de")
    at = log_in(live, new_context(), "duty.at")
    fr = log_in(live, new_context(), "duty.fr")
    for page in (at, fr):
        page.goto("/requests")
        expect(page.get_by_role("heading", level=1)).to_have_text("Assistance requests")
        mark(page)

    # Germany raises the request through the form.
    de.get_by_role("navigation", name="Main").get_by_role("link", name="Requests").click()
    de.get_by_role("link", name="New request for assistance").click()
    de.get_by_label("EXERCISE — a training or exercise request").check()
    de.get_by_label("Title").fill("Hostages on a regional train near Aachen")
    de.get_by_label("Crisis category").select_option("hijack_train")
    de.get_by_label("Location").fill("Aachen Hbf")
    de.get_by_label("Latitude").fill("50.7677")
    de.get_by_label("Longitude").fill("6.0912")
    de.get_by_label("Intervention action on the requesting state's territory").check()
    de.get_by_label("Operational necessity (required)").fill("Two trains at once.")
    de.get_by_label("Legal basis").select_option("2008/617-art3")
    de.get_by_label("Line 1 capability").select_option("building")
    de.get_by_label("Line 1 quantity").fill("2")
    live.shot(de, "ops-01-new-request")
    de.get_by_role("button", name="Submit the request").click()
    de.wait_for_url(re.compile(r"/requests/\d+\?saved="))
    expect(de.locator(".banner.exercise")).to_be_visible()
    request_url = de.url.split("?")[0]
    rid = int(request_url.rsplit("/", 1)[1])

    # Ask AT-ADLER and the French unit (duty.fr's: the first French unit) from the ranking.
    fr_code = min((uid, code) for code, uid in live.unit_ids.items() if code.startswith("FR-"))[1]
    de.goto(f"/requests/{rid}/lines/1/candidates?limit=100")
    for code in ("AT-ADLER", fr_code):
        de.get_by_label(f"Ask {code}").check()
    live.shot(de, "ops-02-candidates")
    de.get_by_role("button", name="Ask the chosen units").click()
    de.wait_for_url(re.compile(r"#addressees"))
    mark(de)

    # Both units learn of it on the pages they have open.
    for page in (at, fr):
        expect(page.locator("#notif-count")).not_to_have_text("0", timeout=LIVE_WAIT)
        assert still_same_document(page)
    live.shot(at, "ops-03-at-notified")

    # Austria opens it from its notifications, acknowledges and offers.
    at.goto("/notifications")
    at.get_by_role("button", name=re.compile("Request for assistance")).first.click()
    at.wait_for_url(re.compile(rf"/requests/{rid}$"))
    fr.goto(f"/requests/{rid}")
    mark(fr)
    # By keyboard: Tab from the status line reaches the button, Enter presses it.
    at.locator("#answer p").first.click()
    for _ in range(5):
        at.keyboard.press("Tab")
        if at.evaluate("document.activeElement.textContent.trim()") == "Acknowledge receipt":
            break
    expect(at.get_by_role("button", name="Acknowledge receipt")).to_be_focused()
    at.keyboard.press("Enter")
    at.wait_for_url(re.compile("#answer"))
    at.get_by_label("Quantity offered for line 1").fill("2")
    at.get_by_label("Package (team, equipment, vehicles)").fill("Two assault teams, breaching kit")
    live.shot(at, "ops-04-at-offers")
    at.get_by_role("button", name="Send the answer").click()
    at.wait_for_url(re.compile("#offers"))

    # Germany's open page shows the offer without a reload; France sees that Adler offered.
    offers = de.locator("#offers")
    expect(offers).to_contain_text("AT-ADLER", timeout=LIVE_WAIT)
    expect(offers.get_by_role("button", name="Accept the offer")).to_be_visible()
    assert still_same_document(de)
    expect(fr.locator("#offers")).to_contain_text("AT-ADLER", timeout=LIVE_WAIT)
    expect(fr.locator("#offers")).not_to_contain_text("Two assault teams")
    live.shot(de, "ops-05-de-sees-offer-live")

    # Germany accepts; both sides confirm the arrangements record.
    offers.get_by_role("button", name="Accept the offer").click()
    de.wait_for_url(re.compile("#offer-"))
    de.get_by_role("button", name="Confirm revision 1").click()
    de.wait_for_url(re.compile("saved=Arrangements"))
    at.goto(f"/requests/{rid}")
    at.get_by_role("button", name="Confirm revision 1").click()
    at.wait_for_url(re.compile("saved=Arrangements"))
    expect(at.locator("#offers")).to_contain_text("agreed")
    mark(de)

    # Austria's team moves; Germany and France follow it without reloading.
    for step in ("Mobilising", "En route", "On site"):
        at.get_by_role("button", name=step, exact=True).click()
        at.wait_for_url(re.compile("saved=Team"))
    expect(de.locator("#lines")).to_contain_text("on site", timeout=LIVE_WAIT)
    expect(de.locator("#top")).to_contain_text("active", timeout=LIVE_WAIT)
    expect(fr.locator("#timeline")).to_contain_text("AT-ADLER: on site", timeout=LIVE_WAIT)
    assert still_same_document(de) and still_same_document(fr)
    live.shot(de, "ops-06-de-on-site-live")
    live.shot(fr, "ops-07-fr-same-picture")

    # The after-action report, from the operation page.
    de.get_by_role("link", name="After-action report").click()
    expect(de.get_by_role("heading", level=1)).to_contain_text("After-action report")
    metrics = de.locator("table.metrics")
    expect(metrics).to_contain_text("First team on site")
    expect(metrics.locator("tr", has_text="First team on site")).to_contain_text("min")
    expect(de.locator(".banner.exercise").first).to_be_visible()
    live.shot(de, "ops-08-report")
    pdf = de.request.get(f"/requests/{rid}/report.pdf")
    assert pdf.ok and pdf.body().startswith(b"%PDF")
