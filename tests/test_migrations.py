"""Migrations carry data across schema changes, both ways, on both databases."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.core.migrate import alembic_config
from tests.factories import Factory


def _migrate(ctx: Context, revision: str, *, down: bool = False) -> None:
    with ctx.db.engine.begin() as connection:
        config = alembic_config(ctx.db.url)
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


#: The columns of a credential set that 0002 carries across (later ones have no place in 0001).
_SET_0002 = (
    "id, parcel_id, site_id, pin_digest, qr_digest, link_digest, active, expires_at, created_at,"
    " used_at, used_kind"
)


def test_credentials_survive_0002_down_and_up(factory: Factory, ctx: Context) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    waiting = factory.deposited(carrier, site)
    collected = factory.deposited(carrier, site)
    assert factory.pick_up(site, collected, by="pin").status_code == 200
    with ctx.db.engine.connect() as conn:
        before = conn.execute(text(f"SELECT {_SET_0002} FROM credential_sets ORDER BY id")).all()

    _migrate(ctx, "0001", down=True)
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT parcel_id, kind, active, used_at IS NOT NULL FROM credentials")
        ).all()
    assert sorted((p, k, bool(a), bool(u)) for p, k, a, u in rows) == sorted(
        [(waiting["id"], kind, True, False) for kind in ("pin", "qr", "link")]
        + [(collected["id"], "pin", False, True)]
        + [(collected["id"], kind, False, False) for kind in ("qr", "link")]
    )

    _migrate(ctx, "head")
    ctx.cache.clear()
    with ctx.db.engine.connect() as conn:
        after = conn.execute(text(f"SELECT {_SET_0002} FROM credential_sets ORDER BY id")).all()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert factory.pick_up(site, waiting, by="pin").status_code == 200
    assert factory.pick_up(site, collected, by="pin").json()["code"] == "code_used"


def test_no_table_holds_a_pickup_code_in_plain_text(factory: Factory, ctx: Context) -> None:
    carrier = factory.org()
    site = factory.site("S")
    pickup = factory.deposited(carrier, site)["pickup"]
    codes = [pickup["pin"], pickup["qr"], pickup["link"].rsplit("/", 1)[1]]
    with ctx.db.engine.connect() as conn:
        tables = [
            name
            for (name,) in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if ctx.db.engine.dialect.name == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            )
        ]
        dump = "\n".join(
            repr(tuple(row))
            for table in tables
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
    assert "credential_sets" in tables
    for code in codes:
        assert code not in dump
