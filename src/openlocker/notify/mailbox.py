"""The demo's mailbox pages: every email and SMS the demo sent, as the recipient sees it.

Mounted only when the mailbox transport is on (``openlocker demo`` without an SMTP URL). The
pages show pickup codes, as an inbox does; nothing here is logged.
"""

from __future__ import annotations

import re
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from openlocker.api.deps import CtxDep
from openlocker.core.context import Context
from openlocker.core.sql import Tx
from openlocker.notify.messages import HERE

router = APIRouter(prefix="/demo/mailbox", include_in_schema=False)
_pages = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates" / "mailbox"),
    autoescape=True,
)
_LINK = re.compile(r"https?://\S+")
#: The email's own HTML may show its inline images and styles, and nothing else.
_EMAIL_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"


def _messages(ctx: Context) -> list[dict[str, Any]]:
    with ctx.db.sql.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT seq, channel, recipient, subject, body, at FROM mailbox_messages"
            " ORDER BY seq DESC LIMIT 500"
        )
    return [
        {
            "seq": seq,
            "channel": channel,
            "recipient": recipient,
            "subject": subject or body[:80],
            "at": Tx.time(at),
        }
        for seq, channel, recipient, subject, body, at in rows
    ]


def _message(ctx: Context, seq: int) -> tuple[str, str, str | None, str]:
    with ctx.db.sql.transaction(write=False) as tx:
        row = tx.one(
            "SELECT channel, recipient, subject, body FROM mailbox_messages WHERE seq = :seq",
            {"seq": seq},
        )
    if row is None:
        raise HTTPException(404, "No such message in the mailbox.")
    return row[0], row[1], row[2], row[3]


def _email(body: str) -> EmailMessage:
    parsed = message_from_string(body, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@router.get("", response_class=HTMLResponse)
def inbox(ctx: CtxDep) -> HTMLResponse:
    """Every message, newest first."""
    page = _pages.get_template("inbox.html").render(messages=_messages(ctx))
    return HTMLResponse(page)


@router.get("/{seq}", response_class=HTMLResponse)
def message(seq: int, ctx: CtxDep, request: Request) -> HTMLResponse:
    """One message: an email in a frame as its client would show it, an SMS as a bubble."""
    channel, recipient, subject, body = _message(ctx, seq)
    context: dict[str, Any] = {"seq": seq, "channel": channel, "recipient": recipient}
    if channel == "email":
        parsed = _email(body)
        context.update(subject=subject, sender=parsed["From"], text=None)
    else:
        parts = _LINK.split(body)
        context.update(
            subject=None, sms=list(zip(parts, [*_LINK.findall(body), None], strict=True))
        )
    return HTMLResponse(_pages.get_template("message.html").render(context))


@router.get("/{seq}/html", response_class=HTMLResponse)
def email_html(seq: int, ctx: CtxDep) -> HTMLResponse:
    """The email's HTML part, its inline images served beside it."""
    channel, _, _, body = _message(ctx, seq)
    part = _email(body).get_body(("html",)) if channel == "email" else None
    if part is None:
        raise HTTPException(404, "This message has no HTML part.")
    html = str(part.get_content()).replace("cid:", f"/demo/mailbox/{seq}/cid/")
    # Links leave the frame: the pickup page opens as the recipient's browser would.
    html = html.replace("<head>", '<head><base target="_top">', 1)
    return HTMLResponse(html, headers={"Content-Security-Policy": _EMAIL_POLICY})


@router.get("/{seq}/cid/{content_id}")
def inline_part(seq: int, content_id: str, ctx: CtxDep) -> Response:
    """An inline part (the QR code) by its Content-ID."""
    channel, _, _, body = _message(ctx, seq)
    if channel == "email":
        for part in _email(body).walk():
            if (part.get("Content-ID") or "").strip("<>") == content_id:
                return Response(part.get_content(), media_type=part.get_content_type())
    raise HTTPException(404, "No such part.")
