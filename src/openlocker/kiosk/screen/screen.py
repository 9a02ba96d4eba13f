"""The touchscreen page: ``GET /`` renders it in the site's language (``?lang=`` for another
one the screen speaks), ``GET /screen/static/{name}`` serves its stylesheet and script.

The page holds every word it may show, translated here, so its script only fills in values
from the kiosk's JSON API (``/api/...``) and never needs the network beyond the kiosk. Labels
of the form column letter + row number (``A1`` … ``F8``) draw the locker wall, so the screen
can show where an opened door is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from openlocker.access.credentials import PHONE_SUFFIX_DIGITS, PIN_LENGTH
from openlocker.core.errors import Unauthorized
from openlocker.core.i18n import DEFAULT, Catalogs
from openlocker.kiosk.screen import fulfil_messages

if TYPE_CHECKING:
    from openlocker.kiosk.agent import Agent

CATALOGS = Catalogs("openlocker.kiosk.screen")
#: A screen left alone this long (seconds) goes back to the start.
IDLE_S = 60
#: The result of a pickup stays this long (seconds) unless the doors close first.
OPENED_S = 45
#: A courier's screen signs an idle courier out after this long (seconds; the kiosk itself
#: does after its own ``courier_idle_s``).
COURIER_IDLE_S = 120
#: A courier's screen warns this long (seconds) before it signs an idle courier out.
COURIER_WARN_S = 20

_STATIC = Path(__file__).parent / "static"
_FILES = {
    "screen.css": "text/css",
    "screen.js": "text/javascript",
    "fulfil.css": "text/css",
    "fulfil.js": "text/javascript",
    "icon.svg": "image/svg+xml",
    "open-deposit.css": "text/css",
    "open-deposit.js": "text/javascript",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_env = Environment(
    loader=PackageLoader("openlocker.kiosk.screen", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_LABEL = re.compile(r"([A-Z]{1,2})0*([1-9][0-9]?)")
#: The most doors one deposits poll asks about.
_MAX_DEPOSITS = 50
#: The largest wall drawn; a bigger one shows labels only.
_MAX_COLUMNS, _MAX_ROWS = 30, 30


def N_(message: str) -> str:
    """Marks a message for the catalogs; translated when the page is rendered."""
    return message


#: What the script may say, by key; ``%(name)s`` is filled in by the script.
MESSAGES = {
    "opened_one": N_("Compartment %(label)s is open"),
    "opened_many": N_("Compartments %(labels)s are open"),
    "take_one": N_("Take your parcel and close the door."),
    "take_many": N_("Take your items and close every door."),
    "not_opened": N_("These doors did not open: %(labels)s. Please call the number on the locker."),
    "position": N_("Column %(column)s, row %(row)s from the top"),
    "closed": N_("Thank you! The door is closed."),
    "and": N_("%(first)s and %(last)s"),
    "pin_short": N_("Type all %(count)s digits of your PIN."),
    "phone_short": N_("Type the last %(count)s digits of your phone number."),
    "invalid_code": N_("This code does not open any compartment here. Check it and try again."),
    "invalid_code_phone": N_("No parcel here has this PIN and this phone number."),
    "code_used": N_("This code has already been used."),
    "code_expired": N_("This code has expired. Please contact the sender."),
    "wrong_site": N_("This code is for another locker. Check the address in your message."),
    "too_many_attempts": N_(
        "Too many wrong PINs have been typed here. Try again in %(time)s, or scan your QR code."
    ),
    "door_not_opened": N_(
        "The door did not open and is out of service now. Please call the number on the locker."
    ),
    "board_fault": N_("The locker cannot open doors right now. Please try again in a moment."),
    "invalid_input": N_("Check what you typed and try again."),
    "unreachable": N_("The locker is not answering. Please try again in a moment."),
    "failed": N_("Something went wrong. Please try again."),
    "offline": N_("Offline: PINs and QR codes still work"),
    "kiosk_down": N_("The locker is not responding"),
    "courier_invalid_code": N_("This courier code is not valid here."),
    "courier_too_many_attempts": N_("Too many wrong courier codes. Try again in %(time)s."),
    "courier_required": N_("You have been signed out. Please sign in again."),
    "signed_in": N_("Signed in as %(name)s"),
    "signed_out": N_("You have been signed out."),
    "parcel_not_expected": N_("No parcel with this tracking number is announced for this locker."),
    "wrong_carrier": N_("This parcel belongs to another carrier."),
    "already_deposited": N_("This parcel is in the locker already."),
    "site_full": N_("No free compartment here takes this parcel."),
    "deposit_door_not_opened": N_(
        "No door opened for this parcel; the compartments tried are out of service."
    ),
    "deposit_opened": N_("Put parcel %(tracking)s in compartment %(label)s and close the door."),
    "deposit_open": N_("door open"),
    "deposit_done": N_("deposited"),
    "deposit_empty": N_("closed empty: scan the parcel again"),
    "wait": N_("Just a moment…"),
} | fulfil_messages.MESSAGES


@dataclass(frozen=True, slots=True)
class ScreenSite:
    """What the page needs of the kiosk: the site's name, its language (a BCP 47 tag, or None
    for English) and its compartments' labels."""

    name: str
    language: str | None
    labels: Sequence[str]


@dataclass(frozen=True, slots=True)
class Cell:
    label: str
    column: str
    row: int


@dataclass(frozen=True, slots=True)
class Wall:
    """The locker wall as the labels lay it out: ``rows`` of cells (None where no
    compartment has that place), columns left to right, row 1 at the top."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell | None, ...], ...]


def _column_index(letters: str) -> int:
    """``A`` is 0, ``Z`` 25, ``AA`` 26."""
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _column_name(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def wall(labels: Iterable[str]) -> Wall | None:
    """The wall of compartments labelled column letter + row number (``B3``), or None when
    a label does not read so, two name one place, or the wall is too big to draw.

    Columns and rows run from the first to the last one used, so a column with no
    compartments (where the screen sits, say) is drawn empty.
    """
    places: dict[tuple[int, int], Cell] = {}
    for label in labels:
        match = _LABEL.fullmatch(label.strip().upper())
        if match is None:
            return None
        cell = Cell(label, match[1], int(match[2]))
        place = (_column_index(cell.column), cell.row)
        if place in places:
            return None
        places[place] = cell
    if not places:
        return None
    first = min(column for column, _ in places)
    last = max(column for column, _ in places)
    bottom = max(row for _, row in places)
    if last - first + 1 > _MAX_COLUMNS or bottom > _MAX_ROWS:
        return None
    columns = range(first, last + 1)
    return Wall(
        columns=tuple(_column_name(column) for column in columns),
        rows=tuple(
            tuple(places.get((column, row)) for column in columns) for row in range(1, bottom + 1)
        ),
    )


#: Each catalog translates this to its language's own name, for the language buttons
#: (babel's locale data would cost the kiosk 6 MiB for two words).
# Translators: the name of this catalog's language, written in it ("Polski").
LANGUAGE_NAME = N_("English")


def language_name(language: str) -> str:
    """A language as its own speakers write it (``Polski``)."""
    return CATALOGS.gettext(language)(LANGUAGE_NAME)


def render(site: ScreenSite, asked: str | None = None) -> str:
    """The page for ``site``, in ``asked`` if the screen speaks it, else in the site's
    language, else in English."""
    home = CATALOGS.language(site.language) or DEFAULT
    language = CATALOGS.language(asked) or home
    _ = CATALOGS.gettext(language)
    messages = {key: _(message) for key, message in MESSAGES.items()}
    languages = [
        {"code": code, "name": language_name(code), "current": code == language}
        for code in sorted(CATALOGS.supported)
    ]
    return _env.get_template("screen.html").render(
        _=_,
        lang=language,
        home_lang=home,
        site=site,
        wall=wall(site.labels),
        messages=messages,
        languages=languages,
        timings={
            "idle_s": IDLE_S,
            "opened_s": OPENED_S,
            "courier_idle_s": COURIER_IDLE_S,
            "courier_warn_s": COURIER_WARN_S,
        },
        pin_length=PIN_LENGTH,
        phone_digits=PHONE_SUFFIX_DIGITS,
    )


def router(site: Callable[[], ScreenSite]) -> APIRouter:
    """The page's routes; ``site()`` is asked at each view, so a sync that renames the site
    or changes its language shows at the next idle reset."""
    routes = APIRouter(include_in_schema=False)

    @routes.get("/")
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(render(site(), request.query_params.get("lang")), headers=_HEADERS)

    @routes.get("/screen/static/{name}")
    async def static(name: str) -> Response:
        media_type = _FILES.get(name)
        if media_type is None:
            return Response(status_code=404)
        return FileResponse(
            _STATIC / name,
            media_type=media_type,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    return routes


def site_of(site: Mapping[str, Any] | None, labels: Iterable[str]) -> ScreenSite:
    """A ``ScreenSite`` from the kiosk's copy of the sync's ``site`` (None before the first
    sync) and its compartments' labels."""
    site = site or {}
    return ScreenSite(str(site.get("name") or ""), site.get("language"), tuple(labels))


def deposits_router(agent: Agent) -> APIRouter:
    """``GET /api/courier/deposits?compartment_id=…``: for each door the signed-in courier
    opened, whether it is still open and whether its closing confirmed the parcel (the
    compartment is ``occupied``; a door shut on an empty compartment confirms nothing)."""
    routes = APIRouter(include_in_schema=False)

    @routes.get("/api/courier/deposits")
    async def deposits(
        compartment_id: Annotated[list[str], Query(max_length=_MAX_DEPOSITS)],
    ) -> Response:
        if agent.courier is None:
            raise Unauthorized("Sign in with your courier code first.", code="courier_required")
        open_now = {door["compartment"]["id"] for door in agent.state()["open_doors"]}
        answer = []
        for identifier in compartment_id:
            compartment = agent.store.compartment(identifier)
            if compartment is None:
                continue
            shut = identifier not in open_now
            answer.append(
                {
                    "compartment_id": identifier,
                    "door": "closed" if shut else "open",
                    "confirmed": shut and compartment.state == "occupied",
                }
            )
        return JSONResponse({"deposits": answer}, headers={"Cache-Control": "no-store"})

    return routes


def mount(app: FastAPI, agent: Agent) -> None:
    """Serve the page on ``app`` from what ``agent``'s store knows of its site, and the
    courier's deposit confirmations it polls."""

    def site() -> ScreenSite:
        return site_of(agent.store.meta("site"), (c.label for c in agent.store.compartments()))

    app.include_router(router(site))
    app.include_router(deposits_router(agent))
