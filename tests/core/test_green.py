"""Use cases in a greenlet wait on the event loop; a database they cannot reach is a 503."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from openlocker.core.db import Database
from openlocker.core.green import run_in_greenlet


def _select_one_in_a_transaction(db: Database) -> int:
    with db.sql.transaction(write=False) as tx:
        return int(tx.scalar("SELECT 1"))


def test_an_unreachable_database_raises_what_the_api_maps_to_503() -> None:
    db = Database("postgresql://openlocker@127.0.0.1:1/nowhere")
    with pytest.raises(OperationalError):
        asyncio.run(run_in_greenlet(_select_one_in_a_transaction, db))
    db.dispose()
