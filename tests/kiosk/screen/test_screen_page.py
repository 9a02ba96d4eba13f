"""The touchscreen page as the kiosk serves it: the locker wall from the labels, the site's
language, every message its script can say, and nothing from outside the kiosk."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from openlocker.kiosk.screen import screen
from openlocker.kiosk.screen.screen import Cell, ScreenSite, wall
from tests.kiosk.helpers import Kiosk, compartment, courier, expected, page, run_kiosk

STATIC = Path(screen.__file__).parent / "static"
GRID = [f"{column}{row}" for column in "ABC" for row in range(1, 5)]


def _client(site: ScreenSite) -> TestClient:
    app = FastAPI()
    app.include_router(screen.router(lambda: site))
    return TestClient(app)


def test_the_wall_lays_labels_out_by_column_letter_and_row_number() -> None:
    drawn = wall(["A1", "B2", "A2", "D1"])
    assert drawn is not None
    assert drawn.columns == ("A", "B", "C", "D")  # C has no compartment: the screen, say
    assert drawn.rows == (
        (Cell("A1", "A", 1), None, None, Cell("D1", "D", 1)),
        (Cell("A2", "A", 2), Cell("B2", "B", 2), None, None),
    )
    past_z = wall(["Z1", "AA1", "AB01"])
    assert past_z is not None and past_z.columns == ("Z", "AA", "AB")
    assert past_z.rows[0][2] == Cell("AB01", "AB", 1)


def test_labels_that_are_no_grid_draw_no_wall() -> None:
    assert wall([]) is None
    assert wall(["A1", "12"]) is None
    assert wall(["A1", "a1"]) is None  # two names for one place
    assert wall(["A0"]) is None
    assert wall(["A1", "AZ1"]) is None  # 52 columns: too wide to draw
    assert wall(["A1", "A31"]) is None


def test_the_page_speaks_the_sites_language_and_another_on_request() -> None:
    polish = _client(ScreenSite("Mokotów Galeria", "pl-PL", GRID))
    html = polish.get("/").text
    assert '<html lang="pl">' in html and "Odbierz paczkę" in html and "Mokotów Galeria" in html
    assert 'href="/?lang=en"' in html and 'lang="pl" aria-current="true">Polski<' in html
    english = polish.get("/?lang=en").text
    assert '<html lang="en">' in english and "Collect your parcel" in english
    assert 'data-home-lang="pl"' in english  # the idle reset goes back to Polish
    assert '<html lang="pl">' in polish.get("/?lang=xx").text
    assert '<html lang="en">' in _client(ScreenSite("", None, [])).get("/").text


def test_the_page_draws_the_wall_of_the_sites_labels() -> None:
    html = _client(ScreenSite("S", "en", GRID)).get("/").text
    # The pickup's, the courier's, the open deposit's, the order loading's and collection's.
    assert html.count('class="cell" data-label=') == 5 * len(GRID)
    assert 'data-label="C4" data-column="C" data-row="4"' in html
    assert 'class="wall"' not in _client(ScreenSite("S", "en", ["1", "2"])).get("/").text


def test_the_page_holds_every_message_its_script_says() -> None:
    script = (STATIC / "screen.js").read_text() + (STATIC / "fulfil.js").read_text()
    said = set(re.findall(r"\bT\.(\w+)", script))
    said |= set(re.findall(r"\bfmt\(\s*\"(\w+)\"", script))
    said |= set(re.findall(r"sayCountdown\([^,]+,\s*\"(\w+)\"", script))
    # Refusals by the kiosk's codes (docs/kiosk.md), some with the screen's prefix.
    said |= {
        "invalid_code", "code_used", "code_expired", "wrong_site", "door_not_opened",
        "board_fault", "invalid_input", "unreachable", "failed",
        "courier_invalid_code", "courier_required", "parcel_not_expected", "wrong_carrier",
        "already_deposited", "site_full", "deposit_door_not_opened",
        "deposit_open", "deposit_done", "deposit_empty", "offline", "kiosk_down",
        # fulfil.js: refusals (some with the return_ prefix) and item states by name.
        "needs_network", "return_invalid_code", "return_code_used", "return_code_expired",
        "return_site_full", "order_not_expected", "order_loaded", "loading_in_progress",
        "load_waiting", "load_open", "load_empty", "load_loaded", "collect_waiting", "collect_open",
        "collect_collected", "collect_missing", "collect_not_opened", "not_in_manifest",
        "door_closed", "already_scanned", "not_at_site", "load_done", "load_done_offline",
    }  # fmt: skip
    assert sorted(said - set(screen.MESSAGES)) == []
    assert sorted(set(screen.MESSAGES) - said) == []  # none left unsaid
    html = _client(ScreenSite("S", "pl", GRID)).get("/").text
    catalog = re.search(r'<script type="application/json" id="messages">(.*?)</script>', html, re.S)
    assert catalog is not None
    assert json.loads(catalog[1])["code_used"] == "Ten kod został już użyty."


def test_nothing_comes_from_outside_the_kiosk() -> None:
    client = _client(ScreenSite("S", "en", GRID))
    answer = client.get("/")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and answer.headers["cache-control"] == "no-store"
    for name, kind in [
        ("screen.css", "text/css"),
        ("screen.js", "text/javascript"),
        ("open-deposit.css", "text/css"),
        ("open-deposit.js", "text/javascript"),
        ("fulfil.css", "text/css"),
        ("fulfil.js", "text/javascript"),
    ]:
        served = client.get(f"/screen/static/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert not re.search(r"https?:|url\(|@import|\bimport\(", served.text)
    assert not re.search(r"https?:", answer.text)
    assert re.findall(r'(?:src|href)="([^"]+)"', answer.text) == [
        "/screen/static/icon.svg", "/screen/static/screen.css", "/screen/static/screen.js",
        "/screen/static/open-deposit.css", "/screen/static/open-deposit.js",
        "/screen/static/fulfil.css", "/screen/static/fulfil.js",
        "/?lang=en", "/?lang=pl",
    ]  # fmt: skip
    for name in ("screen.py", "..%2Fscreen.py", "missing.js"):
        assert client.get(f"/screen/static/{name}").status_code == 404


def test_deposits_say_whether_a_closed_door_confirmed_its_parcel(tmp_path: Path) -> None:
    sync = page(
        compartments=[compartment(n) for n in range(4)],
        couriers=[courier("cou_1", "org_1", "4817265093")],
        expected=[expected("prc_1", "PX-1", "org_1"), expected("prc_2", "PX-2", "org_1")],
    )

    async def scenario(k: Kiosk) -> None:
        refused = await k.api.get("/api/courier/deposits", params={"compartment_id": "cmp_000"})
        assert refused.status_code == 401 and refused.json()["code"] == "courier_required"
        signed_in = await k.api.post("/api/courier/login", json={"code": "4817265093"})
        assert signed_in.status_code == 200
        deposit = "/api/courier/deposit"
        first = (await k.api.post(deposit, json={"tracking_number": "PX-1"})).json()
        second = (await k.api.post(deposit, json={"tracking_number": "PX-2"})).json()
        ids = [first["compartment"]["id"], second["compartment"]["id"], "cmp_nope"]
        await k.settle()
        asked = await k.api.get("/api/courier/deposits", params={"compartment_id": ids})
        assert asked.json()["deposits"] == [
            {"compartment_id": ids[0], "door": "open", "confirmed": False},
            {"compartment_id": ids[1], "door": "open", "confirmed": False},
        ]
        k.bank.load(_address(ids[0]))
        k.bank.close_door(_address(ids[0]))
        k.bank.close_door(_address(ids[1]))  # shut on an empty compartment
        await k.settle()
        asked = await k.api.get("/api/courier/deposits", params={"compartment_id": ids})
        assert asked.json()["deposits"] == [
            {"compartment_id": ids[0], "door": "closed", "confirmed": True},
            {"compartment_id": ids[1], "door": "closed", "confirmed": False},
        ]

    run_kiosk(tmp_path, scenario, pages=[sync])


def _address(compartment_id: str) -> tuple[int, int]:
    n = int(compartment_id.removeprefix("cmp_"))
    return n // 16, n % 16
