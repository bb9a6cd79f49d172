"""eventsourcing's own recorder test cases, run against the recorders this project configures.

``shared.infra.store.store_env`` chooses the recorder (a SQLite file with a lock timeout, or a PostgreSQL schema
per service, with the services' pool and timeouts). The library's test cases (``eventsourcing.tests.persistence``:
insert and select, optimistic concurrency per aggregate, notification ids, concurrent writers without conflicts,
non-interleaving notification ids, tracking and process recorders) run here on exactly that configuration, each
test on a fresh file or database. The performance cases only print timings and are left out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from shared.infra.settings import Settings
from shared.infra.store import prepare_store


class ConfiguredStore:
    """Mixin: ``factory()`` builds the project's infrastructure factory for the intake store of this test."""

    store = "sqlite"
    settings: Settings
    factories: list[InfrastructureFactory[Any]]

    @pytest.fixture(autouse=True)
    def _configured(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
        if self.store == "sqlite":
            self.settings = Settings(data_dir=tmp_path / "data")
        else:
            url = request.getfixturevalue("postgres").new_database()
            self.settings = Settings(data_dir=tmp_path / "data", store="postgres", postgres_url=url)
        self.factories = []
        before = set(threading.enumerate())
        yield
        # Some library cases stop their reader threads without joining them: a reader still inside SQLite when its
        # connection is closed crashes the interpreter. Let them finish before the stores close.
        for thread in set(threading.enumerate()) - before:
            if not thread.daemon:  # the readers; the connection pools' workers are daemons that live on
                thread.join(timeout=10)
        for factory in self.factories:
            factory.close()

    def factory(self) -> InfrastructureFactory[Any]:
        env = Environment("intake", prepare_store(self.settings, "intake"))
        factory = InfrastructureFactory.construct(env)
        self.factories.append(factory)
        return factory

    def test_the_configured_module_is_in_use(self) -> None:
        expected = {"sqlite": "eventsourcing.sqlite", "postgres": "eventsourcing.postgres"}[self.store]
        assert type(self.factory()).__module__ == expected


def _no_timings(cls: type) -> type:
    """Leave out the cases that only print timings (no assertion to make)."""
    for name in ("test_performance", "test_concurrent_throughput"):
        if hasattr(cls, name):
            setattr(cls, name, pytest.mark.skip(reason="prints timings only")(getattr(cls, name)))
    return cls


# --------------------------------------------------------------------------------------------------- SQLite


@_no_timings
class TestSQLiteAggregateRecorder(ConfiguredStore, AggregateRecorderTestCase):
    def create_recorder(self) -> Any:
        return self.factory().aggregate_recorder()


@_no_timings
class TestSQLiteApplicationRecorder(ConfiguredStore, ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> Any:
        return self.factory().application_recorder()


class TestSQLiteTrackingRecorder(ConfiguredStore, TrackingRecorderTestCase):
    def create_recorder(self) -> Any:
        return self.factory().tracking_recorder()


@_no_timings
class TestSQLiteProcessRecorder(ConfiguredStore, ProcessRecorderTestCase):
    def create_recorder(self) -> Any:
        return self.factory().process_recorder()


class TestSQLiteNonInterleavingNotificationIDs(ConfiguredStore, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> Any:
        return self.factory().application_recorder()


# ----------------------------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
@_no_timings
class TestPostgresAggregateRecorder(ConfiguredStore, AggregateRecorderTestCase):
    store = "postgres"

    def create_recorder(self) -> Any:
        return self.factory().aggregate_recorder()


@pytest.mark.postgres
@_no_timings
class TestPostgresApplicationRecorder(ConfiguredStore, ApplicationRecorderTestCase[Any]):
    store = "postgres"

    def create_recorder(self) -> Any:
        return self.factory().application_recorder()


@pytest.mark.postgres
class TestPostgresTrackingRecorder(ConfiguredStore, TrackingRecorderTestCase):
    store = "postgres"

    def create_recorder(self) -> Any:
        return self.factory().tracking_recorder()


@pytest.mark.postgres
@_no_timings
class TestPostgresProcessRecorder(ConfiguredStore, ProcessRecorderTestCase):
    store = "postgres"

    def create_recorder(self) -> Any:
        return self.factory().process_recorder()


@pytest.mark.postgres
class TestPostgresNonInterleavingNotificationIDs(ConfiguredStore, NonInterleavingNotificationIDsBaseCase):
    store = "postgres"

    def create_recorder(self) -> Any:
        return self.factory().application_recorder()
