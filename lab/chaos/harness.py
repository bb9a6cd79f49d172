"""The process harness of fault scenarios R1-R4, R10 and R11 (../shared/FAULTS.md): real processes, a load, waits.

Each scenario starts its own system under ``workdir``: a nats-server from the wheel with the dev parties file's
accounts, the intake SQLite store (or an embedded PostgreSQL), and intake, relay, deadlines and benefits as their
own processes (``python -m reintegration serve ...`` / ``relay``), each connecting with its own credentials. The
:class:`Cluster` here can kill, pause, restart or re-clock any one of them, and the nats-server, by pid.

The load is generated case scripts (``lab.generator``) sent through the real intake subjects with the
runtime's credentials, a few cases in flight. A party's retry rule applies: on a timeout, no responders or a
retryable rejection (``RETRYABLE``), the SAME bytes are sent again until a final reply comes.

After the load and the faults, the scenario waits until every store has caught up, stops the services and checks
(:mod:`lab.chaos.checks`):

* intake store: every accepted report is there exactly once (a report id recorded twice is *doubled*, an accepted
  one that is missing is *lost*), each case's versions are 1..n without gaps;
* TRAJECTORY: every recorded event exactly once (by its ``Nats-Msg-Id``), nothing else, each case's versions in
  stream order;
* deadlines and benefits stores: exactly one step per recorded event, per case;
* ``audit verify`` over every case: 0 differences.

Figures: faults injected, reports sent, lost, doubled, and the time to recover: from the last fault until every
store held every event recorded up to then (``recover_s``); the largest "flow back" after a single fault (the
restarted process making progress again) is in the detail.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import nats
import nats.errors
import nats.js.errors
import structlog

from lab.generator import Generator, Script, encode_report
from services.registry import DERIVED, service
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import WaitTimeoutError, until
from shared.events.replies import REPLY_DECODER, Accepted, Rejected
from shared.events.subjects import (
    TRAJECTORY_STREAM,
    intake_subject,
)
from shared.infra.clock import CLOCK_FILE_ENV
from shared.infra.parties import DEV_PARTIES_FILE, generate, load_parties
from shared.infra.retry import Backoff
from shared.infra.settings import Settings
from shared.infra.streams import ensure_trajectory_stream

log = structlog.get_logger("chaos")

#: The processes a scenario runs, each as ``python -m reintegration <args>`` (:mod:`services.registry`).
SERVICES: tuple[str, ...] = ("intake", "relay", *DERIVED)
STEP_TOPICS = {
    "deadlines": "services.deadlines.schedule:ScheduleStep",
    "benefits": "services.benefits.ledger:LedgerStep",
}
CASE_EVENT_TOPIC = "shared.events.envelope:CaseEvent"
# --- the system ---------------------------------------------------------------------------------------------------


class Cluster:
    """A nats-server and the services, each its own process, each killable, pausable and restartable by pid."""

    def __init__(self, workdir: Path, *, services: Iterable[str] = SERVICES, settings: Settings | None = None,
                 env: dict[str, dict[str, str]] | None = None, clock_skew: bool = False) -> None:
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.settings = settings or Settings(data_dir=self.workdir / "data")
        self.services = list(services)
        self.extra_env = env or {}
        self.clock_skew = clock_skew
        self.supervisor = Supervisor()
        self.server: EmbeddedNatsServer | None = None
        self.credentials: dict[str, Path] = {}

    @property
    def children(self) -> dict[str, Child]:
        return self.supervisor.children

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> Cluster:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        accounts, self.credentials = generate(load_parties(DEV_PARTIES_FILE), self.settings.data_dir / "parties")
        self.server = EmbeddedNatsServer(
            NatsServerConfig(store_dir=self.nats_store, http_port=None, extra=accounts),
            run_dir=self.workdir / "nats-run",
        )
        self.server.start()
        self.settings = replace(self.settings, nats_url=self.server.url,
                                nats_credentials=self.credentials["service:runtime"])
        asyncio.run(self.prepare_streams())
        for name in self.services:
            self.supervisor.add(self._child(name))
            self.spawn(name)
        return self

    @property
    def nats_store(self) -> Path:
        return self.settings.data_dir / "nats"

    async def prepare_streams(self) -> None:
        nc = await self.connect()
        try:
            await ensure_trajectory_stream(nc.jetstream())
        finally:
            await nc.close()

    async def connect(self, **options: Any) -> nats.NATS:
        async def quiet(exc: Exception) -> None:  # disconnects are what the scenarios cause
            log.debug("nats client error", error=repr(exc))

        return await nats.connect(self.settings.nats_url, name="reintegration-chaos", max_reconnect_attempts=-1,
                                  reconnect_time_wait=0.2, error_cb=quiet,
                                  **{**self.settings.nats_options(), **options})

    def _child(self, name: str) -> Child:
        env = {**self.settings.to_env(),
               "REINTEGRATION_NATS_CREDENTIALS": str(self.credentials[f"service:{name}"]),
               **self.extra_env.get(name, {})}
        if self.clock_skew:  # the services read the time through ``clock_from_env``: this file shifts it (R11)
            env[CLOCK_FILE_ENV] = str(self.clock_file(name))
        # Output through a pipe that this process copies into the log: a file-size limit on the child (R10) must
        # not also stop it writing its log.
        return Child(name=name, command=python_module("reintegration", *service(name).args), env=env,
                     log_path=self.logs / f"{name}.log", pipe_output=True)

    def clock_file(self, name: str) -> Path:
        return self.workdir / f"clock-{name}"

    def set_clock(self, name: str, offset_s: float) -> None:
        """Shift ``name``'s clock by ``offset_s`` seconds from now on (read by the running process)."""
        path = self.clock_file(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{offset_s}\n")
        os.replace(tmp, path)

    def spawn(self, name: str) -> None:
        """Start ``name`` (again), no longer held down."""
        self.supervisor.start(name)

    def limit_file_size(self, name: str, limit: int | None) -> None:
        """Set (or lift, with ``None``) the file-size limit of ``name``'s running process."""
        self.supervisor.limit_file_size(name, limit)

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` and reap it; it stays down until :meth:`spawn`."""
        self.supervisor.kill(name)

    def restart(self, name: str) -> None:
        self.supervisor.restart(name)

    def signal(self, name: str, sig: signal.Signals) -> None:
        if name == "nats-server":
            if self.server is not None and self.server.pid is not None:
                os.kill(self.server.pid, sig)
        else:
            self.supervisor.signal(name, sig)

    def alive(self) -> dict[str, bool]:
        return self.supervisor.alive()

    def revive(self) -> list[str]:
        """Restart services that exited by themselves (what ``up`` does); their names."""
        return self.supervisor.supervise_once()

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.kill()

    def start_server(self) -> None:
        assert self.server is not None
        self.server.start()

    def stop_services(self) -> None:
        """Stop every service, in reverse order (the server keeps running)."""
        self.supervisor.stop()

    def stop(self) -> None:
        """Stop every process this cluster started, by pid: the services, then the server (continued if paused)."""
        self.stop_services()
        if self.server is not None:
            if self.server.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.server.pid, signal.SIGCONT)
            self.server.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the load -----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    report_id: UUID | None
    reply: Accepted | Rejected | None
    attempts: int
    expect: str


@dataclass
class Load:
    """Generated case scripts through the real intake subjects, with the parties' retry rule."""

    scripts: list[Script]
    concurrency: int = 16
    timeout: float = 5.0
    #: A report gets no final reply within this many seconds: the sender gives up (counted as unanswered).
    give_up: float = 240.0
    outcomes: list[Outcome] = field(default_factory=list)
    sent: int = 0
    retries: int = 0
    #: Explicit retry-later replies (``retry: true``) by code.
    retry_replies: Counter[str] = field(default_factory=Counter)
    accept_times: list[float] = field(default_factory=list)
    planned: int = 0

    @classmethod
    def generate(cls, reports: int, seed: int, **options: Any) -> Load:
        generator = Generator(seed)
        scripts: list[Script] = []
        planned = 0
        while planned < reports:
            script = generator.script()
            scripts.append(script)
            planned += 1 + len(script.steps)
        return cls(scripts=scripts, planned=planned, **options)

    @property
    def progress(self) -> float:
        return self.sent / self.planned if self.planned else 1.0

    async def run(self, cluster: Cluster) -> None:
        nc = await cluster.connect()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(script: Script) -> None:
            async with gate:
                await self.play(nc, script)

        try:
            await asyncio.gather(*(one(s) for s in self.scripts))
        finally:
            await nc.close()

    async def play(self, nc: nats.NATS, script: Script) -> None:
        reply = await self.send(nc, intake_subject(script.opener), encode_report(script.opening), script.open_expect)
        if not isinstance(reply, Accepted):
            return
        for step in script.steps:
            await self.send(nc, intake_subject(step.party), encode_report(step.build(reply.case_id)), step.expect)

    async def send(self, nc: nats.NATS, subject: str, payload: bytes, expect: str) -> Accepted | Rejected | None:
        self.sent += 1
        started = time.monotonic()
        attempts = 0
        reply: Accepted | Rejected | None = None
        backoff = Backoff(first=0.1, cap=1.0)
        while time.monotonic() - started < self.give_up:
            attempts += 1
            try:
                msg = await nc.request(subject, payload, timeout=self.timeout)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
                    nats.errors.ConnectionReconnectingError, nats.errors.StaleConnectionError, OSError):
                self.retries += 1
                await asyncio.sleep(backoff.next())
                continue
            reply = REPLY_DECODER.decode(msg.data)
            if isinstance(reply, Rejected) and reply.retry:
                self.retries += 1
                self.retry_replies[reply.code.value] += 1
                await asyncio.sleep(backoff.next())
                continue
            break
        if isinstance(reply, Accepted):
            self.accept_times.append(time.monotonic())
        report_id = reply.report_id if reply is not None else None
        self.outcomes.append(Outcome(report_id, reply if (reply is None or not reply_retryable(reply)) else None,
                                     attempts, expect))
        return reply

    @property
    def accepted(self) -> list[Accepted]:
        return [o.reply for o in self.outcomes if isinstance(o.reply, Accepted)]

    @property
    def unanswered(self) -> int:
        return sum(1 for o in self.outcomes if o.reply is None)

    @property
    def surprises(self) -> list[str]:
        out = []
        for o in self.outcomes:
            got = "accepted" if isinstance(o.reply, Accepted) else o.reply.code.value if o.reply else "no reply"
            if got != o.expect:
                out.append(f"{o.report_id}: expected {o.expect}, got {got}")
        return out


def reply_retryable(reply: Accepted | Rejected) -> bool:
    return isinstance(reply, Rejected) and reply.retry


# --- watching the stores ------------------------------------------------------------------------------------------


class Probe:
    """Counts what each store holds, read-only, while the services write (SQLite WAL; or PostgreSQL)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conns: dict[str, Any] = {}

    def _query(self, store: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.settings.store == "postgres":  # eventsourcing's tables there: <schema>.<name>_events / _tracking
            sql = sql.replace("stored_events", f"{store}_events").replace("FROM tracking", f"FROM {store}_tracking")
            return self._pg_query(store, sql.replace("?", "%s"), *params)
        conn = self._conns.get(store)
        if conn is None:
            path = self.settings.data_dir / f"{store}.sqlite"
            if not path.exists():
                return []
            conn = self._conns[store] = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10,
                                                        check_same_thread=False)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # not created yet, or locked by a fault
            return []

    def _pg_query(self, store: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        conn = self._conns.get(store)
        try:
            if conn is None or conn.closed:
                conn = self._conns[store] = psycopg.connect(self.settings.postgres_url or "", autocommit=True,
                                                            connect_timeout=2)
                conn.execute(f'SET search_path TO "{store}"')
            return list(conn.execute(sql, params).fetchall())
        except psycopg.Error:
            self._conns.pop(store, None)
            return []

    def count(self, store: str, topic: str) -> int:
        rows = self._query(store, "SELECT COUNT(*) FROM stored_events WHERE topic = ?", topic)
        return int(rows[0][0]) if rows else 0

    def intake_events(self) -> int:
        return self.count("intake", CASE_EVENT_TOPIC)

    def steps(self, store: str) -> int:
        return self.count(store, STEP_TOPICS[store])

    def last_position(self, store: str) -> int:
        sql = ("SELECT MAX(notification_id) FROM stored_events" if self.settings.store == "postgres"
               else "SELECT MAX(rowid) FROM stored_events")
        rows = self._query(store, sql)
        return int(rows[0][0] or 0) if rows else 0

    def tracking(self, store: str, name: str) -> int:
        rows = self._query(store, "SELECT MAX(notification_id) FROM tracking WHERE application_name = ?", name)
        return int(rows[0][0] or 0) if rows else 0

    def followers_done(self) -> bool:
        """The derived services' relays and the timer writer have followed their stores to the end."""
        for store, followers in (("deadlines", ["relay:deadlines->DEADLINES", "timers:deadlines->TIMERS"]),
                                 ("benefits", ["relay:benefits->BENEFITS"])):
            last = self.last_position(store)
            if any(self.tracking(store, f) < last for f in followers):
                return False
        return True

    def per_originator(self, store: str, topic: str) -> dict[str, int]:
        rows = self._query(store, "SELECT originator_id, COUNT(*) FROM stored_events WHERE topic = ? "
                                  "GROUP BY originator_id", topic)
        return {UUID(str(o)).hex: int(n) for o, n in rows}

    def close(self) -> None:
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.close()
        self._conns.clear()


async def stream_count(js: Any, stream: str = TRAJECTORY_STREAM) -> int:
    try:
        return int((await js.stream_info(stream)).state.messages)
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError):
        return -1


@dataclass
class Levels:
    intake: int
    trajectory: int
    deadlines: int
    benefits: int

    def caught_up_to(self, target: int) -> bool:
        return min(self.trajectory, self.deadlines, self.benefits) >= target


async def levels(probe: Probe, js: Any) -> Levels:
    counts = await asyncio.to_thread(lambda: (probe.intake_events(), probe.steps("deadlines"),
                                              probe.steps("benefits")))
    return Levels(counts[0], await stream_count(js), counts[1], counts[2])


@dataclass
class Watch:
    """Flow back after each fault, and the catch-up after the last one."""

    cluster: Cluster
    flow_back: list[tuple[str, float]] = field(default_factory=list)
    pending: list[asyncio.Task[None]] = field(default_factory=list)
    last_fault: float = 0.0

    def after(self, target: str, at: float, load: Load, before: Levels | None, probe: Probe, js: Any) -> None:
        """Time from ``at`` (the restart, or the end of a pause) until ``target`` makes progress again."""
        self.last_fault = max(self.last_fault, at)
        self.pending.append(asyncio.create_task(self._flow(target, at, load, before, probe, js)))

    async def _flow(self, target: str, at: float, load: Load, before: Levels | None, probe: Probe, js: Any) -> None:
        nc = await self.cluster.connect()
        try:
            await self._flow_on(target, at, load, before, probe, nc.jetstream())
        finally:
            await nc.close()

    async def _flow_on(self, target: str, at: float, load: Load, before: Levels | None, probe: Probe,
                       js: Any) -> None:
        process = target.split(":")[-1]  # "lock:intake" -> intake
        everything = process in {"nats-server", "postgres", "clock"}
        if before is None:
            return

        def flowing(now: Levels) -> bool:
            if process == "intake":
                return any(t > at for t in load.accept_times) or load.progress >= 1
            mine = {"relay": now.trajectory, "deadlines": now.deadlines, "benefits": now.benefits}
            # every process must move past where the system stood at the fault (the server: all of them)
            keys = list(mine) if everything else [process]
            old = {"relay": before.trajectory, "deadlines": before.deadlines, "benefits": before.benefits}
            done = all(mine[k] > old[k] or mine[k] >= now.intake for k in keys)
            if everything:
                done = done and (any(t > at for t in load.accept_times) or load.progress >= 1)
            return done

        try:
            await until(lambda: levels(probe, js), timeout=max(0.0, at + 120 - time.monotonic()), interval=0.1,
                        what=f"{target} flowing again", ready=flowing)
        except WaitTimeoutError:
            self.flow_back.append((target, float("inf")))
            return
        self.flow_back.append((target, time.monotonic() - at))

    async def settle(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending)

    @property
    def worst(self) -> tuple[str, float]:
        return max(self.flow_back, key=lambda x: x[1]) if self.flow_back else ("-", 0.0)


async def _timers_idle(js: Any) -> bool:
    try:
        info = await js.consumer_info("TIMERS", "deadlines-timers")
    except nats.js.errors.NotFoundError:
        return True
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError):
        return False
    return not info.num_pending and not info.num_ack_pending


async def wait_caught_up(cluster: Cluster, probe: Probe, timeout: float, revive: bool = True) -> tuple[bool, Levels]:
    """Until TRAJECTORY and both derived stores hold every event the intake store holds (twice in a row); whether
    they did, and the levels last seen."""
    nc = await cluster.connect()
    js = nc.jetstream()

    async def look() -> tuple[Levels, bool]:
        if revive:
            await asyncio.to_thread(cluster.revive)
        now = await levels(probe, js)
        settled = (now.caught_up_to(now.intake) and now.intake > 0
                   and await asyncio.to_thread(probe.followers_done) and await _timers_idle(js))
        return now, settled

    try:
        now, _ = await until(look, timeout=timeout, interval=0.25, what="every store caught up", times=2,
                             ready=lambda seen: seen[1])
        return True, now
    except WaitTimeoutError as exc:
        return False, exc.last[0]
    finally:
        await nc.close()


# --- running a scenario -------------------------------------------------------------------------------------------


def spread(targets: list[str], per_target: int, rng: random.Random, lo: float = 0.05,
           hi: float = 0.85) -> list[tuple[float, str]]:
    """``per_target`` moments for each target, at random fractions of the load, never two at once."""
    moments = [(rng.uniform(lo, hi), t) for t in targets for _ in range(per_target)]
    return sorted(moments)


async def drive(cluster: Cluster, load: Load, moments: list[tuple[float, str]],
                inject: Callable[[Cluster, str], Awaitable[None]], watch: Watch) -> None:
    """Send the load while injecting a fault at each moment (a fraction of the reports sent)."""
    probe = Probe(cluster.settings)
    nc = await cluster.connect()
    js = nc.jetstream()
    sender = asyncio.create_task(load.run(cluster))

    # what ``up`` does: a service that exits by itself is restarted
    supervisor = asyncio.create_task(cluster.supervisor.watch())
    try:
        for fraction, target in moments:
            await until(lambda fraction=fraction: load.progress >= fraction or sender.done(), timeout=math.inf,
                        interval=0.02, what=f"{fraction:.0%} of the load sent")
            before = await levels(probe, js)
            await inject(cluster, target)
            watch.after(target, time.monotonic(), load, before, probe, js)
        await sender
        await watch.settle()
    finally:
        if not sender.done():
            sender.cancel()
        supervisor.cancel()
        await nc.close()
        probe.close()



def merged(*loads: Load) -> Load:
    out = Load(scripts=[s for load in loads for s in load.scripts], planned=sum(load.planned for load in loads))
    for load in loads:
        out.outcomes += load.outcomes
        out.sent += load.sent
        out.retries += load.retries
        out.accept_times += load.accept_times
        out.retry_replies += load.retry_replies
    return out

