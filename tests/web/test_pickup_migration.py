"""Migration 0006 both ways: parcels keep working; a set issued before it has no box."""

from __future__ import annotations

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from openlocker.core.context import Context
from openlocker.core.migrate import alembic_config
from tests.factories import Factory
from tests.web.helpers import kiosk_code, link_token


def _migrate(ctx: Context, revision: str, *, down: bool = False) -> None:
    with ctx.db.engine.begin() as connection:
        config = alembic_config(ctx.db.url)
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_0006_down_and_up_keeps_parcels_and_links_working(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    site = factory.site("SSS")
    carrier = factory.org()
    waiting = factory.deposited(carrier, site)
    assert client.post(f"/p/{link_token(waiting)}/extend").status_code == 200

    _migrate(ctx, "0003", down=True)
    columns = {c["name"] for c in inspect(ctx.db.engine).get_columns("credential_sets")}
    assert "sealed" not in columns and "link_misses" not in inspect(ctx.db.engine).get_table_names()
    _migrate(ctx, "head")
    ctx.cache.clear()

    # The box went with the column: the page still knows the parcel, without its codes.
    html = client.get(f"/p/{link_token(waiting)}").text
    assert "Your PIN and QR code are in the message" in html and "<svg" not in html
    assert "Give me 24 more hours" in html  # the extension was forgotten with its column
    assert factory.pick_up(site, waiting, by="pin").status_code == 200
    fresh = factory.deposited(carrier, site)
    assert waiting["pickup"]["pin"] not in client.get(f"/p/{link_token(fresh)}").text
    opened = client.post(f"/p/{link_token(fresh)}/open", data={"code": kiosk_code(ctx, site)})
    assert "Compartment A" in opened.text and "is open" in opened.text
