"""Fixtures: every database test runs on SQLite and, when
``OPENLOCKER_TEST_DATABASE_URL`` points at PostgreSQL, on PostgreSQL too."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.api.app import create_app
from openlocker.core.clock import FrozenClock
from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.db import Base, Database
from openlocker.core.keys import Keyring
from openlocker.core.migrate import upgrade
from openlocker.migrations import all_models  # noqa: F401
from tests.factories import Factory

PG_URL = os.environ.get("OPENLOCKER_TEST_DATABASE_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
SEEDED = {"size_classes", "alembic_version"}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> str:
    if not PG_URL:
        pytest.skip("OPENLOCKER_TEST_DATABASE_URL is not set")
    db = Database(PG_URL)
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(db)
    db.dispose()
    return PG_URL


def _truncate(db: Database) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables if t.name not in SEEDED]
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(
            text("INSERT INTO audit_head (id, hash, count) VALUES (1, :h, 0)"), {"h": "0" * 64}
        )


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "openlocker.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_migrated")
    db = Database(url)
    _truncate(db)
    db.dispose()
    return url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def ctx(database_url: str, clock: FrozenClock, tmp_path: Path) -> Iterator[Context]:
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret",
        base_url="https://lockers.test",
        data_dir=tmp_path / "data",
    )
    context = Context(Database(database_url), Keyring(settings.secret_key), settings, clock)
    yield context
    context.db.dispose()


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, run_jobs=False), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def factory(ctx: Context, client: TestClient) -> Factory:
    return Factory(ctx, client)
