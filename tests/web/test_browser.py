"""The pickup page in a real headless Chromium against a real ``openlocker serve``, on a
phone-sized screen: see the codes, extend once, open with the kiosk's presence code."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from openlocker.core.context import Context
from tests.factories import Factory
from tests.servers import serving
from tests.web.helpers import deposit_through, link_token, served_code, server_log

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# CI installs Debian's chromium (.ci/run): there a missing browser fails the test instead.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed at /usr/bin/chromium (.ci/run installs it)",
)


def test_a_recipient_extends_once_and_opens_at_the_locker(
    factory: Factory, ctx: Context, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    site = factory.site("SSS", name="Mokotów Galeria")
    carrier = factory.org()
    kiosk = factory.kiosk(site)
    with serving(ctx, workers=1, log_level="INFO") as base, sync_playwright() as playwright:
        parcel = deposit_through(base, carrier.headers, site)
        link = f"{base}/p/{link_token(parcel)}"
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
        page = phone.new_page()
        page.goto(link)
        pin = parcel["pickup"]["pin"]
        expect(page.locator(".pin")).to_have_text(f"{pin[:4]} {pin[4:]}")
        qr = page.get_by_role("img", name="QR code to show at the locker")
        box = qr.bounding_box()
        assert box is not None and box["width"] >= 300  # most of a 390 px wide screen
        # What the screen shows is the token, for a camera to read.
        shown = zxingcpp.read_barcode(Image.open(io.BytesIO(qr.screenshot())))
        assert shown is not None and shown.text == parcel["pickup"]["qr"]
        expect(page.get_by_text("Mokotów Galeria")).to_be_visible()
        page.screenshot(path=str(tmp_path / "phone-waiting.png"), full_page=True)

        # A second tab still shows the button after the first one used it.
        stale = phone.new_page()
        stale.goto(link)
        page.get_by_role("button", name="Give me 24 more hours").click()
        expect(page.get_by_role("status")).to_contain_text("you have more time")
        expect(page.get_by_role("button", name="Give me 24 more hours")).to_have_count(0)
        stale.get_by_role("button", name="Give me 24 more hours").click()
        expect(stale.get_by_role("alert")).to_have_text(
            "The deadline has already been extended once."
        )

        code = served_code(base, kiosk.headers, site)
        field = page.get_by_label("Code shown on the locker's screen")
        field.fill(f"{(int(code) + 1) % 10**6:06d}")
        page.get_by_role("button", name="Open my compartment").click()
        expect(page.get_by_role("alert")).to_contain_text("not the code on the locker's screen")
        page.screenshot(path=str(tmp_path / "phone-wrong-code.png"), full_page=True)
        page.get_by_label("Code shown on the locker's screen").fill(
            served_code(base, kiosk.headers, site)
        )
        page.get_by_role("button", name="Open my compartment").click()
        expect(page.get_by_role("status")).to_contain_text("is open. Take your parcel")
        expect(page.get_by_role("heading", name="Picked up")).to_be_visible()
        page.screenshot(path=str(tmp_path / "phone-opened.png"), full_page=True)
        page.reload()
        assert pin[:4] not in page.content() and page.locator("svg").count() == 0

        desktop = browser.new_context(viewport=DESKTOP).new_page()
        desktop.goto(f"{base}/p/{link_token(deposit_through(base, carrier.headers, site))}")
        expect(desktop.locator(".pin")).to_be_visible()
        desktop.screenshot(path=str(tmp_path / "desktop-waiting.png"), full_page=True)
        browser.close()

    log = server_log(ctx)
    assert '"route":"/p/{token}"' in log and link_token(parcel) not in log
