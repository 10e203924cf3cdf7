"""Equipment offered with an answer, in a real Chromium: Austria ticks an item of its inventory
in the answer form by keyboard, Germany sees it on the offer card and accepts, and the item's
calendar names the operation. Screenshots: ``offer-eq-*`` (see tests/test_browser.py)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.service import principal_of
from atlaslink.db import make_engine
from atlaslink.equipment import schemas as eq_schemas
from atlaslink.equipment import service as equipment
from atlaslink.models import Unit, User
from atlaslink.operations import answers, service
from atlaslink.operations import schemas as ops
from tests.conftest import create_database, load_demo
from tests.live_server import live_server
from tests.test_browser import (  # noqa: F401  # the fixtures are used by name
    Live,
    NewContext,
    browser,
    log_in,
    new_context,
)

pytestmark = pytest.mark.browser

MODEL = "Telerob tEODor EVO"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The demo, plus two items of AT-ADLER and a request addressed to it and NL-REIGER."""
    tmp = tmp_path_factory.mktemp("browser-offer-eq")
    shots = Path(os.environ.get("ATLASLINK_SCREENSHOTS") or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    url, drop = create_database(tmp, "browser-offer-eq")
    try:
        engine = make_engine(url)
        try:
            load_demo(engine)
            with Session(engine) as s:

                def who(name: str) -> User:
                    user = s.scalar(select(User).where(User.username == name))
                    assert user is not None
                    return user

                at = principal_of(who("commander.at"))
                for ref, model, audience in (
                    ("EOD-1", MODEL, "own_unit"),
                    ("NV-4", "Night-vision set (8)", "network"),
                ):
                    equipment.register_item(
                        s,
                        at,
                        eq_schemas.ItemCreate(
                            ref=ref,
                            category="counter_drone",
                            model=model,
                            serial_numbers=[f"{ref}-SN"],
                            weight_kg=380,
                            length_cm=130,
                            width_cm=70,
                            height_cm=110,
                            needs_vehicle=True,
                            sharing=eq_schemas.Sharing(audience=audience),  # type: ignore[arg-type]
                        ),
                    )
                de = principal_of(who("duty.de"))
                req = service.create_request(
                    s,
                    de,
                    ops.RequestCreate(
                        exercise=True,
                        title="Suspected device at Munich central station",
                        crisis_category="cbrn_threat",
                        location_name="München Hbf",
                        latitude=48.14,
                        longitude=11.56,
                        nature=["intervention"],
                        operational_necessity="Our robots are deployed elsewhere.",
                        legal_basis="2008/617-art3",
                        lines=[ops.LineIn(capability="building", min_level=2, quantity=1)],
                        submit=True,
                    ),
                )
                ids = list(
                    s.scalars(select(Unit.id).where(Unit.code.in_(("AT-ADLER", "NL-REIGER"))))
                )
                answers.address(s, de, req.id, ops.AddressBody(unit_ids=ids))
                s.commit()
                unit_ids = {code: uid for code, uid in s.execute(select(Unit.code, Unit.id))}
        finally:
            engine.dispose()
        with live_server(url, tmp / "server.log") as base:
            yield Live(base, unit_ids, {}, shots)
    finally:
        drop()  # type: ignore[operator]


def test_offer_equipment_by_keyboard_and_accept(live: Live, new_context: NewContext) -> None:  # noqa: F811
    at = log_in(live, new_context(), "duty.at")
    at.goto("/requests")
    at.get_by_role("link", name=re.compile("Suspected device")).click()
    rid = int(at.url.rstrip("/").rsplit("/", 1)[1])
    form = at.locator("#answer")
    expect(form.get_by_text("even if the item is shared more narrowly")).to_be_visible()
    form.get_by_label("Quantity offered for line 1").fill("1")
    # Keyboard: from the last nature, Tab reaches the items (listed by model); Space ticks.
    form.locator('input[name="nature"]').last.focus()
    at.keyboard.press("Tab")
    expect(form.get_by_label(re.compile("Night-vision"))).to_be_focused()
    at.keyboard.press("Tab")
    item = form.get_by_label(re.compile(MODEL))
    expect(item).to_be_focused()
    at.keyboard.press("Space")
    expect(item).to_be_checked()
    expect(form.get_by_label(re.compile("Night-vision"))).not_to_be_checked()
    form.get_by_label("Package (team, equipment, vehicles)").fill("EOD team of 4 with robot")
    form.scroll_into_view_if_needed()
    form.screenshot(path=str(live.shots / "offer-eq-01-answer-form.png"))
    form.get_by_role("button", name="Send the answer").click()
    at.wait_for_url(re.compile(r"#offers"))

    de = log_in(live, new_context(), "duty.de")
    de.goto(f"/requests/{rid}")
    card = de.locator("article.offer").first
    table = card.locator("table.offer-equipment")
    expect(table).to_contain_text(MODEL)
    expect(table).to_contain_text("EOD-1-SN")
    expect(table).to_contain_text("needs a vehicle")
    expect(table).to_contain_text("offered until")
    card.screenshot(path=str(live.shots / "offer-eq-02-offer-card.png"))
    card.get_by_role("button", name="Accept the offer").click()
    de.wait_for_url(re.compile(r"#offer-\d+"))
    card = de.locator("article.offer").first
    expect(card.locator("table.offer-equipment")).to_contain_text(
        re.compile("reserved until", re.I)
    )
    card.screenshot(path=str(live.shots / "offer-eq-03-offer-card-accepted.png"))

    # The other addressed unit sees the offer, not the equipment.
    nl = log_in(live, new_context(), "commander.nl")
    nl.goto(f"/requests/{rid}")
    expect(nl.locator("article.offer").first).not_to_contain_text(MODEL)
    expect(nl.locator("table.offer-equipment")).to_have_count(0)

    # The item's page names the operation, with a link to the request.
    at.goto("/equipment/calendar")
    at.get_by_role("link", name=MODEL).click()
    link = at.locator("#periods").get_by_role("link", name=re.compile(r"AR-"))
    expect(link).to_have_attribute("href", f"/requests/{rid}")
    at.screenshot(path=str(live.shots / "offer-eq-04-item-page.png"), full_page=True)
