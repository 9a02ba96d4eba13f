"""The recipient's pickup page ``/p/{token}`` (HTML), and the kiosk's presence code (JSON).

Pages answer errors as pages, never as problem+json: a recipient opened a link, not an
API. Every page is sent with a strict Content-Security-Policy, no caching, and no
``Referer`` (the map link must not hand the token to the map's site).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import OperationalError
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from openlocker.access.presence import DIGITS
from openlocker.access.qr_image import qr_svg
from openlocker.api.deps import CtxDep, PrincipalDep
from openlocker.core.config import get_settings
from openlocker.core.errors import DomainError, InvalidInput
from openlocker.core.green import run_in_greenlet
from openlocker.web import i18n, service
from openlocker.web.schemas import PresenceCodeOut

pages = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/v1", tags=["kiosk"])
#: The stylesheet, mounted at ``/static`` by the app.
static_files = StaticFiles(directory=Path(__file__).parent / "static")

_env = Environment(
    loader=PackageLoader("openlocker.web", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
}
#: Messages a page shows after a redirect (``?done=``).
_DONE = {"extended", "opened"}
_MAX_FORM = 1024
_PRESENCE = re.compile(rf"[0-9]{{{DIGITS}}}")


def _client(request: Request) -> str:
    # Behind a proxy, uvicorn puts the forwarded address here (FORWARDED_ALLOW_IPS).
    return request.client.host if request.client else "unknown"


def _render(
    template: str,
    language: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(_=i18n.gettext(language), lang=language, **values)
    return HTMLResponse(html, status, headers={**_HEADERS, **(headers or {})})


def _pickup(
    request: Request,
    token: str,
    page: service.PickupPage,
    *,
    done: str | None = None,
    error: DomainError | None = None,
) -> HTMLResponse:
    language = i18n.choose_language(
        page.recipient_language, page.site.language, request.headers.get("accept-language")
    )
    _ = i18n.gettext(language)
    site = page.site
    zone = site.timezone or get_settings().default_timezone
    return _render(
        "pickup.html",
        language,
        error.status if error else 200,
        error.headers if error else None,
        page=page,
        page_token=token,
        done=done if done in _DONE else None,
        error=error.code if error else None,
        retry_after=error.extra.get("retry_after") if error else None,
        deadline=i18n.format_moment(page.deadline, zone, language) if page.deadline else None,
        picked_up_at=i18n.format_moment(page.picked_up_at, zone, language)
        if page.picked_up_at
        else None,
        pin=" ".join(page.pin[i : i + 4] for i in range(0, len(page.pin), 4)) if page.pin else None,
        # qr_svg escapes the title; the rest of the SVG is its own drawing.
        qr=Markup(qr_svg(page.qr, _("QR code to show at the locker"))) if page.qr else None,
        map_url=(
            f"https://www.openstreetmap.org/?mlat={site.lat:.5f}&mlon={site.lon:.5f}"
            f"#map=18/{site.lat:.5f}/{site.lon:.5f}"
        ),
        digits=DIGITS,
    )


def _failure(request: Request, error: Exception) -> HTMLResponse:
    """A page for a link the server will not show: unknown, over the limit, or no database."""
    language = i18n.choose_language(None, None, request.headers.get("accept-language"))
    if isinstance(error, DomainError) and error.code == "link_not_found":
        return _render("failure.html", language, 404, reason="not_found")
    if isinstance(error, DomainError):
        return _render(
            "failure.html",
            language,
            error.status,
            error.headers,
            reason="limited",
            retry_after=error.extra.get("retry_after"),
        )
    return _render("failure.html", language, 503, {"Retry-After": "1"}, reason="unavailable")


async def _page_or_failure(
    request: Request, token: str, *, done: str | None = None, error: DomainError | None = None
) -> HTMLResponse:
    ctx = request.app.state.ctx
    try:
        page = await run_in_greenlet(service.pickup_page, ctx, token, _client(request))
    except (DomainError, OperationalError) as failure:
        return _failure(request, failure)
    return _pickup(request, token, page, done=done, error=error)


#: Errors of the page's forms that the page itself explains (the others leave it as it was).
_LINK_FAILURES = ("link_not_found", "too_many_unknown_links")


async def _after(request: Request, token: str, call: Any, *args: Any, done: str) -> Response:
    """Run a form's use case: to the page with ``done`` (a redirect, so reloading repeats
    nothing), or the page with the error explained."""
    ctx = request.app.state.ctx
    try:
        await run_in_greenlet(call, ctx, token, *args, _client(request))
    except DomainError as error:
        if error.code in _LINK_FAILURES:
            return _failure(request, error)
        return await _page_or_failure(request, token, error=error)
    except OperationalError as error:
        return _failure(request, error)
    return RedirectResponse(f"/p/{token}?done={done}", status_code=303, headers=_HEADERS)


@pages.get("/p/{token}")
async def pickup_page(request: Request, token: str, done: str | None = None) -> Response:
    """The parcel of this link: PIN, QR code, where, until when; or what became of it."""
    return await _page_or_failure(request, token, done=done)


@pages.post("/p/{token}/extend")
async def extend_deadline(request: Request, token: str) -> Response:
    """Extend the deadline once by the site's policy."""
    return await _after(request, token, service.extend, done="extended")


async def _form_field(request: Request, name: str) -> str | None:
    """A field of a small urlencoded form; None when absent or the form is too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return None
    try:
        values = parse_qs(body.decode("latin-1"), max_num_fields=4).get(name)
    except ValueError:  # more fields than any form of the page has
        return None
    return values[0] if values else None


@pages.post("/p/{token}/open")
async def open_compartment(request: Request, token: str) -> Response:
    """Open the compartment, given the presence code the locker's screen shows."""
    code = "".join((await _form_field(request, "code") or "").split())
    if not _PRESENCE.fullmatch(code):
        error = InvalidInput("Type the code the locker shows.", code="presence_code_format")
        return await _page_or_failure(request, token, error=error)
    return await _after(request, token, service.open_compartment, code, done="opened")


@router.get("/sites/{site_id}/presence-code")
async def presence_code(site_id: str, ctx: CtxDep, principal: PrincipalDep) -> PresenceCodeOut:
    """The code the site's kiosk screen shows now; a pickup page opens a door only with it.
    Fetch again at ``rotates_at``."""
    return await run_in_greenlet(service.kiosk_presence_code, ctx, principal, site_id)
