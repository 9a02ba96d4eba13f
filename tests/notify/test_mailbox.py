"""The demo's mailbox: messages stored as the recipient sees them, and pages to read them."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from openlocker.api.app import create_app
from openlocker.core.context import Context
from openlocker.notify.messages import QR_CID
from tests.factories import Factory
from tests.notify.conftest import configure, deposit_for_recipient, dispatch, outbox_row


def test_the_mailbox_shows_each_email_and_sms_with_its_qr_and_link(ctx: Context) -> None:
    configure(ctx, mailbox=True)
    with TestClient(create_app(ctx, run_jobs=False)) as client:
        factory = Factory(ctx, client)
        site = factory.site("S", name="Mokotów Galeria")
        parcel = deposit_for_recipient(factory, factory.org(), site, language="pl")
        assert dispatch(ctx) == 1
        assert outbox_row(ctx, parcel["id"])[1] == "sent"
        # The mailbox knows what it holds: a dispatcher that stopped mid-send is answered.
        with ctx.db.sql.transaction() as tx:
            tx.execute(
                "UPDATE outbox SET state = 'sending', claimed_until = :t", {"t": ctx.clock()}
            )
            tx.execute("DELETE FROM delivery_attempts")
        assert dispatch(ctx) == 1
        assert outbox_row(ctx, parcel["id"])[1] == "sent"

        inbox = client.get("/demo/mailbox")
        assert inbox.status_code == 200
        pages = re.findall(r'href="(/demo/mailbox/\d+)"', inbox.text)
        assert len(pages) == 2  # one email, one SMS: not stored twice
        assert "Mokotów Galeria" in inbox.text
        html_pages = [client.get(page).text for page in pages]
        email_page = next(p for p in html_pages if "<iframe" in p)
        sms_page = next(p for p in html_pages if "bubble" in p)
        frame = re.search(r'<iframe src="([^"]+)"', email_page)
        assert frame is not None
        email_html = client.get(frame.group(1))
        assert "default-src 'none'" in email_html.headers["content-security-policy"]
        image = re.search(rf'src="(/demo/mailbox/\d+/cid/{re.escape(QR_CID)})"', email_html.text)
        assert image is not None
        png = client.get(image.group(1))
        assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
        link = re.search(r'href="(https://lockers\.test/p/[^"]+)"', email_html.text)
        assert link is not None and link.group(1) in sms_page
        assert client.get("/demo/mailbox/999").status_code == 404


def test_without_the_mailbox_there_are_no_mailbox_pages(client: TestClient) -> None:
    assert client.get("/demo/mailbox").status_code == 404
