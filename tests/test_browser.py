"""The acceptance scenario in a real Chromium against the real server.

A duty officer of AT-ADLER logs in through the forms (password, then TOTP), finds NL-REIGER in
the unit directory and sees its capabilities exist but no levels and no contacts; DE-FALKE, which
shares levels network-wide, shows numbers. Screenshots of the main pages go to
``ATLASLINK_SCREENSHOTS`` (default: a pytest temporary directory) for a human to look at.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install chromium``); no browser is ever
downloaded. The server only ever talks to 127.0.0.1: any other request fails the test.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    expect,
    sync_playwright,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.db import make_engine
from atlaslink.models import Unit, UnitContact
from tests.conftest import PASSWORD, create_database, load_demo, totp_secret
from tests.live_server import live_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WITHHELD = "Not shared with you"
# The demo's phone numbers: "+43 555 0123 456".
PHONE = re.compile(r"\+\d{1,3}(?: \d{2,4}){2,}")
REIGER_NAME = "National Special Interventions Team Reiger"

NewContext = Callable[[], BrowserContext]


@dataclass
class Live:
    base: str
    unit_ids: dict[str, int]
    phones: dict[str, list[str]]
    shots: Path

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("browser")
    shots = Path(os.environ.get("ATLASLINK_SCREENSHOTS") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    url, drop = create_database(tmp, "browser")
    try:
        engine = make_engine(url)
        try:
            load_demo(engine)
            with Session(engine) as s:
                unit_ids = {code: uid for code, uid in s.execute(select(Unit.code, Unit.id))}
                phones: dict[str, list[str]] = {}
                rows = s.execute(
                    select(Unit.code, UnitContact.value)
                    .join(UnitContact, UnitContact.unit_id == Unit.id)
                    .where(UnitContact.kind == "phone")
                )
                for code, value in rows:
                    phones.setdefault(code, []).append(value)
        finally:
            engine.dispose()
        with live_server(url, tmp / "server.log") as base:
            yield Live(base, unit_ids, phones, shots)
    finally:
        drop()  # type: ignore[operator]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium). "
            "The browser tests never download a browser.",
            pytrace=False,
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_context(browser: Browser, live: Live) -> Iterator[NewContext]:
    """Fresh browser contexts (one per user) that may only talk to the test server.

    Requests to any other host, script errors and console errors (a Content-Security-Policy
    violation among them) fail the test at teardown.
    """
    made: list[BrowserContext] = []
    problems: list[str] = []
    host = urlsplit(live.base).netloc

    def guard(route: Route) -> None:
        if urlsplit(route.request.url).netloc == host:
            route.continue_()
        else:
            problems.append(f"request off the server: {route.request.url}")
            route.abort()

    def watch(page: Page) -> None:
        page.on("pageerror", lambda e: problems.append(f"{page.url}: script error {e}"))
        page.on("console", lambda m: console(page, m))

    def console(page: Page, message: ConsoleMessage) -> None:
        # HTTP error statuses are asserted where they matter; anything else is a defect.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"{page.url}: console {message.text}")

    def make() -> BrowserContext:
        ctx = browser.new_context(
            base_url=live.base, viewport={"width": 1280, "height": 900}, locale="en-GB"
        )
        ctx.set_default_timeout(10_000)
        ctx.route("**/*", guard)
        ctx.on("page", watch)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()
    assert not problems, "\n".join(problems)


def password_step(page: Page, username: str, password: str = PASSWORD) -> None:
    """Type the credentials by keyboard: the username field has focus on arrival."""
    page.goto("/login")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/login/totp"))
    expect(page.get_by_label("Six-digit code")).to_be_focused()


def log_in(live: Live, ctx: BrowserContext, username: str) -> Page:
    page = ctx.new_page()
    password_step(page, username)
    page.keyboard.type(pyotp.TOTP(totp_secret(username)).now())
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live.base}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    return page


def column(page: Page, section: str, header: str) -> list[str]:
    """The texts of one column of the table in a section, found by its header."""
    table = page.locator(f"section[aria-labelledby='{section}'] table")
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    assert header in headers, headers
    index = headers.index(header) + 1
    return [t.strip() for t in table.locator(f"tbody tr td:nth-child({index})").all_inner_texts()]


def test_duty_officer_sees_what_units_share(live: Live, new_context: NewContext) -> None:
    started = time.monotonic()
    ctx = new_context()
    page = ctx.new_page()

    # Log in by keyboard: password, then the authenticator code.
    page.goto("/login")
    live.shot(page, "01-login")
    password_step(page, "duty.at")
    live.shot(page, "02-totp")
    page.keyboard.type(pyotp.TOTP(totp_secret("duty.at")).now())
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live.base}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    live.shot(page, "03-start")

    # The first Tab from the top of a page reaches the skip link, which then moves focus to main.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    # The directory, searched with its search box.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Units").click()
    page.wait_for_url(re.compile(r"/units$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Unit directory")
    live.shot(page, "04-directory")
    search = page.get_by_role("search").get_by_label("Search")
    search.fill("REIGER")
    search.press("Enter")
    page.wait_for_url(re.compile(r"q=REIGER"))
    # The form also sends its empty fields (country=&min_level=...): they must mean "any".
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading == "Unit directory", page.locator("main").inner_text()
    live.shot(page, "04b-directory-search")
    page.get_by_role("link", name=REIGER_NAME).click()

    # NL-REIGER: existence network-wide, everything else to itself or the matching engine.
    page.wait_for_url(f"{live.base}/units/{live.unit_ids['NL-REIGER']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("NL-REIGER")
    caps = page.locator("section[aria-labelledby='h-caps'] table")
    expect(caps).to_be_visible()
    levels = column(page, "h-caps", "Level")
    assert levels, "NL-REIGER shows no capability rows"
    assert all(t == "not shared" for t in levels), levels
    expect(page.locator("section[aria-labelledby='h-contacts']")).to_contain_text(WITHHELD)
    text = page.locator("body").inner_text()
    assert not PHONE.search(text), PHONE.search(text)
    for phone in live.phones["NL-REIGER"]:
        assert phone not in page.content()
    live.shot(page, "05-unit-nl-reiger")

    # DE-FALKE shares levels with the whole network, and contacts with listed countries (AT).
    page.goto("/units?q=FALKE")
    page.get_by_role("link", name="Federal Tactical Intervention Group Falke").click()
    page.wait_for_url(f"{live.base}/units/{live.unit_ids['DE-FALKE']}")
    levels = column(page, "h-caps", "Level")
    assert levels
    assert all(re.fullmatch(r"[0-3]", t) for t in levels), levels
    contacts = page.locator("section[aria-labelledby='h-contacts']")
    for phone in live.phones["DE-FALKE"]:
        expect(contacts).to_contain_text(phone)
    live.shot(page, "06-unit-de-falke")

    for path, name in (("/matrix", "07-matrix"), ("/map", "08-map")):
        response = page.goto(path)
        assert response is not None and response.ok, path
        live.shot(page, name)

    assert time.monotonic() - started < 30


def test_wrong_totp_code_is_refused_readably(live: Live, new_context: NewContext) -> None:
    page = new_context().new_page()
    password_step(page, "duty.de")
    totp = pyotp.TOTP(totp_secret("duty.de"))
    now = time.time()
    valid = {totp.at(now + drift) for drift in (-30, 0, 30)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    page.keyboard.type(wrong)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/login/totp")
    ) as answer:
        page.keyboard.press("Enter")
    assert 400 <= answer.value.status < 500, answer.value.status
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("not valid")
    body = page.locator("body").inner_text()
    for leak in ("Traceback", 'File "', "Internal Server Error", "Exception"):
        assert leak not in body
    expect(page.get_by_label("Six-digit code")).to_be_visible()
    live.shot(page, "02b-totp-wrong-code")

    # Still not logged in: the start page sends the visitor back to the log-in.
    page.goto("/")
    assert urlsplit(page.url).path.startswith("/login"), page.url
    expect(page.get_by_text("Welcome")).to_have_count(0)


def test_role_pages_render(live: Live, new_context: NewContext) -> None:
    adler = live.unit_ids["AT-ADLER"]
    visits = {
        "commander.at": (
            (f"/units/{adler}/sharing", "09-sharing-at-adler"),
            (f"/units/{adler}/capabilities", "10-capabilities-at-adler"),
        ),
        "support": (
            ("/audit", "11-audit"),
            ("/taxonomy", "12-taxonomy"),
            ("/registry/transfer", "13-transfer"),
        ),
        "admin": (("/admin/users", "14-admin-users"),),
    }
    for username, pages in visits.items():
        page = log_in(live, new_context(), username)
        for path, name in pages:
            response = page.goto(path)
            assert response is not None and response.status == 200, (username, path)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            live.shot(page, name)
