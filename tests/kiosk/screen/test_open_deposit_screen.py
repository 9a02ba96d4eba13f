"""Open deposit on the touchscreen in headless Chromium, on a kiosk that syncs with a real
``openlocker serve`` and drives sim boards: a courier with no tracking number finds a
resident by name or unit, picks a size, and the door's closing deposits the parcel; at the
kiosk's portrait size and the 800x480 panel."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from openlocker.core.context import Context
from tests.factories import Factory
from tests.kiosk.e2e import clock  # noqa: F401 (the real clock, for the server and the kiosk)
from tests.kiosk.screen.rig import KIOSK, PANEL, locker, needs_chromium, wait_for

pytestmark = needs_chromium


def _parcel_status(ctx: Context, site_id: str) -> list[str]:
    with ctx.db.engine.connect() as conn:
        return [
            str(s)
            for (s,) in conn.execute(
                text("SELECT status FROM parcels WHERE site_id = :s ORDER BY id"), {"s": site_id}
            )
        ]


@pytest.mark.parametrize("size", ["kiosk", "panel"])
def test_a_courier_delivers_to_a_resident_found_by_name_or_unit(
    ctx: Context, factory: Factory, tmp_path: Path, size: str
) -> None:
    from playwright.sync_api import expect

    viewport = KIOSK if size == "kiosk" else PANEL
    with locker(ctx, factory, tmp_path) as rig:
        keeper = factory.org("operator", (f"directory:{rig.site_id}",))
        for name, unit, email in [
            ("Łucja Żółć", "12A", "lucja@example.com"),
            ("Jan Nowak", "3", "jan@example.com"),
            ("Janina Nowak", "3", "janina@example.com"),
        ]:
            made = factory.client.post(
                f"/v1/sites/{rig.site_id}/directory/entries",
                json={"display_name": name, "unit": unit, "email": email},
                headers=keeper.headers,
            )
            assert made.status_code == 201, made.text
        code = rig.courier_code("Jan Kowalski")
        wait_for(lambda: rig.health()["online"], "the kiosk online")
        screen = rig.page(viewport)
        screen.get_by_role("button", name="Courier").click()
        keypad = screen.get_by_role("group", name="Keypad for the courier code")
        for digit in code:
            keypad.get_by_role("button", name=digit, exact=True).click()
        screen.get_by_role("button", name="Sign in").click()
        expect(screen.get_by_text("Signed in as Jan Kowalski")).to_be_attached()
        rig.shot(screen, f"{size}-courier")

        screen.get_by_role("button", name="No tracking number — deliver to a resident").click()
        expect(screen.get_by_role("heading", name="Deliver to a resident")).to_be_attached()
        keyboard = screen.get_by_role("group", name="Keyboard for the name or unit")
        for key in "NOWAK":
            keyboard.get_by_role("button", name=key, exact=True).click()
        found = screen.get_by_role("list", name="People found").get_by_role("button")
        expect(found).to_have_count(2)
        expect(found.first).to_have_text("Jan Nowak unit 3")
        rig.shot(screen, f"{size}-open-deposit-search")

        for _ in "NOWAK":
            keyboard.get_by_role("button", name="Delete the last character").click()
        for key in "XYZ":
            keyboard.get_by_role("button", name=key, exact=True).click()
        expect(screen.get_by_role("alert").first).to_have_text(
            "Nobody here matches “XYZ”. Check the spelling, or type the unit."
        )
        keyboard.get_by_role("button", name="Clear").click()
        for key in "12A":
            keyboard.get_by_role("button", name=key, exact=True).click()
        expect(found).to_have_count(1)
        found.first.click()

        expect(screen.get_by_role("heading", name="Which size is the parcel?")).to_be_attached()
        expect(screen.get_by_text("For Łucja Żółć, unit 12A")).to_be_visible()
        sizes = screen.locator(".od-size")
        expect(sizes).to_have_count(1)  # every compartment here is an S
        rig.shot(screen, f"{size}-open-deposit-size")
        sizes.first.dblclick()  # a double tap opens one door

        title = screen.get_by_role("heading", name="Door A1 is open")
        expect(title).to_be_focused()
        expect(screen.locator("#open-deposit-put")).to_have_text(
            "Put the parcel in and close the door."
        )
        expect(screen.locator("#open-deposit-wall .cell.open")).to_have_text("A1")
        assert [label for label in rig.addresses if rig.door(label)] == ["A1"]
        rig.shot(screen, f"{size}-open-deposit-opened")

        rig.bank.load(rig.addresses["A1"])
        rig.bank.close_door(rig.addresses["A1"])
        expect(screen.get_by_role("alert").first).to_have_text(
            "Deposited. Łucja Żółć gets their pickup code now."
        )
        wait_for(lambda: _parcel_status(ctx, rig.site_id) == ["deposited"], "the deposit")
        rig.shot(screen, f"{size}-open-deposit-done")

        screen.get_by_role("button", name="Another parcel for a resident").click()
        expect(screen.get_by_label("Name or unit", exact=True)).to_have_value("")
        screen.get_by_role("button", name="Back to scanning").click()
        expect(screen.get_by_role("heading", name="Deposit parcels")).to_be_attached()
        assert rig.script_errors == []
