"""A locker for the screen's browser tests: a real ``openlocker serve``, a kiosk on sim boards
that syncs with it, and headless Chromium showing the kiosk's page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from openlocker.core.context import Context
from openlocker.core.ids import new_id
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.run import KioskThread
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from tests.factories import TEST_ACTOR, Factory, Org
from tests.kiosk.e2e import wait_for
from tests.servers import _free_port, serving
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

KIOSK = {"width": 1080, "height": 1920}
PANEL = {"width": 800, "height": 480}
PHONE = {"width": 390, "height": 844}
#: Three columns of four: A1 … C4, compartment n on board 0, lock n.
GRID = [f"{column}{row}" for column in "ABC" for row in range(1, 5)]

# CI installs Debian's chromium (.ci/run): there a missing browser fails the test instead.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed at /usr/bin/chromium (.ci/run installs it)",
)


def grid_site(ctx: Context, *, language: str | None, name: str) -> str:
    spec = SiteIn(
        name=name,
        address="Test street 1",
        lat=52.2297,
        lon=21.0122,
        language=language,
        compartments=[CompartmentIn(label=label, size="S", floor_height_mm=300) for label in GRID],
    )
    with ctx.db.transaction() as session:
        return do_create_site(session, ctx, TEST_ACTOR, spec).id


_SMALL_TARGETS = """() => [...document.querySelectorAll("button, a, input")]
  .filter((e) => e.checkVisibility())
  .map((e) => [e.id || e.getAttribute("aria-label") || e.textContent.trim(),
               e.getBoundingClientRect()])
  .filter(([, box]) => box.width < 64 || box.height < 64)
  .map(([name, box]) => `${name}: ${Math.round(box.width)}x${Math.round(box.height)}`)"""


def small_targets(page: Page) -> list[str]:
    """The visible buttons, links and fields of ``page`` smaller than 64 px either way."""
    found: list[str] = page.evaluate(_SMALL_TARGETS)
    return found


@dataclass
class Locker:
    """The server, the site's kiosk and its bank of doors, and a browser."""

    base: str
    site_id: str
    carrier: Org
    kiosk: KioskThread
    bank: Bank
    browser: Browser
    shots: Path
    server: ExitStack
    addresses: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Errors the page's script raised: a test fails with any.
    script_errors: list[str] = field(default_factory=list)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=self.carrier.headers, timeout=30)

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.kiosk.url}/healthz", timeout=10).json()
        return body

    def announce(self, **fields: Any) -> dict[str, Any]:
        """A parcel announced for the site; returned once the kiosk expects it."""
        body = {"tracking_number": new_id("PX"), "site_id": self.site_id, "size": "S"}
        body |= {"notify": "sender"} | fields
        with self.api() as api:
            announced = api.post("/v1/parcels", json=body)
        assert announced.status_code == 201, announced.text
        number = body["tracking_number"]
        wait_for(
            lambda: self.kiosk.call(lambda agent: agent.store.expected_by_tracking(number)),
            f"the kiosk to expect {number}",
        )
        parcel: dict[str, Any] = announced.json()
        return parcel

    def deposit(self, **fields: Any) -> dict[str, Any]:
        """A parcel announced and deposited through the server, with its ``pickup`` codes;
        returned once the kiosk knows them and the courier shut the door the server's
        command opened."""
        known = self.health()["credentials"]
        with self.api() as api:
            announced = api.post(
                "/v1/parcels",
                json={"tracking_number": new_id("PX"), "site_id": self.site_id, "size": "S",
                      "notify": "sender"} | fields,
            )  # fmt: skip
            assert announced.status_code == 201, announced.text
            deposited = api.post(f"/v1/parcels/{announced.json()['id']}/deposit")
        assert deposited.status_code == 200, deposited.text
        parcel: dict[str, Any] = deposited.json()
        address = self.addresses[parcel["compartment"]["label"]]
        wait_for(
            lambda: self.health()["credentials"] > known and self.bank.snapshot(address).door_open,
            "the kiosk to sync the deposit and run its door command",
        )
        self.bank.load(address)
        self.bank.close_door(address)
        return parcel

    def courier_code(self, name: str) -> str:
        with self.api() as api:
            created = api.post("/v1/couriers", json={"name": name})
        assert created.status_code == 201, created.text
        code: str = created.json()["code"]
        return code

    def statuses(self, *parcels: dict[str, Any]) -> list[str]:
        """The parcels' statuses as the server has them now."""
        with self.api() as api:
            return [str(api.get(f"/v1/parcels/{p['id']}").json()["status"]) for p in parcels]

    def take_out(self, label: str) -> None:
        """The recipient takes the parcel out of ``label`` and shuts the door."""
        self.bank.load(self.addresses[label], False)
        self.bank.close_door(self.addresses[label])

    def door(self, label: str) -> bool:
        return self.bank.snapshot(self.addresses[label]).door_open

    def page(self, viewport: dict[str, int], *, clock: bool = False) -> Page:
        """The kiosk's screen at ``viewport``; ``clock``: time can be fast-forwarded."""
        screen = self.browser.new_context(viewport=viewport, has_touch=True).new_page()
        screen.on("pageerror", lambda error: self.script_errors.append(str(error)))
        if clock:
            screen.clock.install()
        screen.goto(f"{self.kiosk.url}/")
        return screen

    def shot(self, page: Page, name: str) -> None:
        """A screenshot of ``page``, whose every visible control must be 64 px or more."""
        page.screenshot(path=str(self.shots / f"{name}.png"))
        assert small_targets(page) == [], name

    def stop_server(self) -> None:
        self.server.close()


@contextmanager
def locker(
    ctx: Context, factory: Factory, tmp_path: Path, *, language: str | None = None
) -> Iterator[Locker]:
    from playwright.sync_api import sync_playwright

    site_id = grid_site(ctx, language=language, name="Mokotów Galeria")
    carrier = factory.org()
    key = factory.kiosk(site_id).key
    bank = Bank(1, 16)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ExitStack() as stack:
        server = stack.enter_context(ExitStack())
        base = server.enter_context(serving(ctx, workers=1))
        settings = KioskSettings(
            site_id=site_id,
            server=base,
            key=key,
            data_dir=tmp_path / "kiosk",
            ui_port=_free_port(),
            sync_interval_s=0.2,
            offline_retry_s=0.2,
            request_timeout_s=2.0,
        )
        kiosk = stack.enter_context(
            KioskThread(settings, drivers=[SimBoard(bank, poll_interval=0.02)])
        )
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
            listed = api.get(f"/v1/sites/{site_id}/compartments").json()["items"]
        rig = Locker(base, site_id, carrier, kiosk, bank, browser, shots, server)
        rig.addresses = {c["label"]: (c["board"], c["lock"]) for c in listed}
        wait_for(lambda: rig.health()["online"], "the kiosk's first sync")
        yield rig
        assert rig.script_errors == []
