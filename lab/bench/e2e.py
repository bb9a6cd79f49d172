"""``reintegration bench e2e``: generated cases through intake, relay, deadlines and benefits over a real nats-server,
against a raw JetStream 3-hop baseline and a raw store read measured in the same run.

The system runs as ``reintegration up`` runs it (:class:`~reintegration.runtime.Runtime`): a nats-server with the
accounts of ``deploy/parties.dev.toml`` and fsync on every write, and each service as its own process
(``python -m reintegration serve intake``, ``relay``, ``serve deadlines``, ``serve benefits``), each with its own
credentials, SQLite stores under one data folder. The load is N seeded generator scripts
(:mod:`lab.generator`): each case's reports in order, each sent when the previous one was answered, with
C cases in flight, through the real intake request-reply subjects (as the runtime user, which may report for every
party in the development parties file).

Figures:

* **accepted reports/s**: accepted reports over the time from the first request to the last reply.
* **latency report -> deadline event** (p50/p99): over the accepted reports whose events opened a deadline, from
  the moment the report was first sent until the server stored the first ``reintegration.deadlines.<case>.opened``
  message whose ``caused_by`` is one of the report's event ids (its JetStream timestamp; server and bench share the
  machine's clock). The messages are read from the DEADLINES stream after the run, so no observer competes with
  the services for the cores while they work. Report -> TRAJECTORY (intake + relay) is given the same way.
* **events/s per service**: the intake store's events over the load time; for the relay, deadlines and benefits,
  the same events over the time from the first request until the service had handled the last of them (TRAJECTORY
  holds them all; the service's store holds one step per event). They run concurrently, so a service downstream
  can go no faster than the one before it: each service's own CPU seconds and events per CPU second say what it
  costs by itself.
* **peak memory per process**: ``VmHWM`` of each service process and of the nats-server.
* **raw 3-hop baseline**: on a fresh nats-server of the same kind (fsync on every write, no accounts), the bench
  publishes as many messages as reports were accepted, of the reports' mean size, C at a time, each awaited (a
  JetStream publish acknowledgement, as a party awaits its reply); a separate process consumes them and republishes
  each into a second stream (pulled in batches, pipelined); the bench consumes the second stream. Messages/s and the
  publish -> final consume latency (p50/p99).
* **rebuild**: after the services stopped, both derived stores rebuilt from the intake store
  (``operate.rebuild``, what ``reintegration deadlines|benefits rebuild --fresh`` runs), events/s, against reading
  the same intake store raw (``select_notifications`` and the mapper's decode).

Exactly once: every accepted report's event ids are in the intake store, once each; TRAJECTORY holds each once;
each derived store holds one step per intake event (before and after the rebuild).

Profiling: ``REINTEGRATION_BENCH_PYSPY=intake,deadlines`` attaches ``py-spy record`` (all threads, ``--idle`` off)
to those service processes for the whole run; the flame data (collapsed stacks) lands in ``<data dir>/profiles``.
py-spy is an optional dependency: ``make profile-setup`` (``pip install -e '.[profile]'``) installs it.

``REINTEGRATION_BENCH_JSON=<file>`` also writes the figures (the dict :func:`measure_e2e` returns) as JSON.

The NATS server(s) are started by one function (a :data:`ServerStart`): :func:`start_single_server`, or with
``--cluster`` :func:`start_cluster`, a 3-node cluster on loopback (fsync on every write) whose streams have 3
replicas, with two replicas of deadlines and benefits, each consuming half of the TRAJECTORY partitions
(``REINTEGRATION_PARTITION``) and sharing the service's SQLite store (kept so that the figures compare with the
single-server run). The raw baseline then runs on a cluster too, its streams R3.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import nats
import nats.errors
import nats.js.errors
import typer
from eventsourcing.utils import get_topic
from rich.console import Console
from rich.table import Table

from lab.bench.derived import (
    StoreProbe,
    _base_dir,
    _consumer_exists,
    _cores,
    _progress,
    _ratio,
    _raw_read,
    _rebuild,
    _timers_held,
    data_note,
)
from lab.client import request
from lab.generator import Generator, Script, encode_report
from reintegration.runtime import Runtime
from services.registry import DERIVED
from shared.embedded.natsserver import EmbeddedNatsCluster, EmbeddedNatsServer, NatsServerConfig
from shared.embedded.supervisor import Child, Supervisor
from shared.embedded.waiting import until
from shared.events.replies import Accepted, Rejected
from shared.events.subjects import (
    BENEFITS_STREAM,
    DEADLINES_PREFIX,
    DEADLINES_STREAM,
    TIMERS_STREAM,
    TRAJECTORY_STREAM,
    consumer_name,
    intake_subject,
)
from shared.infra.parties import JS_API, generate, load_parties
from shared.infra.settings import ENV_PREFIX, Settings, parse_partition
from shared.infra.store import logged_events
from shared.infra.streams import ensure_stream

console = Console()

#: The services the benchmark runs, in start order (what ``up`` runs, without disclosures and feeds).
SERVICES = ("intake", "relay", *DERIVED)
QUICK_CASES = 300
CONCURRENCY = 32
SEED = 2026
#: Seconds without any progress in any store or stream before the run is declared stuck.
STALL_SECONDS = 120.0
PYSPY_ENV = "REINTEGRATION_BENCH_PYSPY"

HOP1_STREAM, HOP1_PREFIX = "BENCH_HOP1", "bench.hop1"
HOP2_STREAM, HOP2_PREFIX = "BENCH_HOP2", "bench.hop2"
HOP_CONSUMER = "bench-hop"


# --- the NATS server: one replaceable function --------------------------------------------------------------------


@dataclass
class NatsHandle:
    """What the benchmark needs of the NATS server(s) it runs on."""

    url: str
    #: process name -> pid (``nats-server``, or one per node)
    pids: Callable[[], dict[str, int]]
    stop: Callable[[], None]
    #: Replicas of the streams created on it (3 on a 3-node cluster).
    replicas: int = 1


#: ``(folder, accounts configuration text) -> running server(s)``; ``accounts`` is empty for the raw baseline.
ServerStart = Callable[[Path, str], NatsHandle]


def start_single_server(folder: Path, accounts: str) -> NatsHandle:
    """One nats-server from the wheel, JetStream under ``folder/nats``, fsync on every write, a free port."""
    server = EmbeddedNatsServer(
        NatsServerConfig(store_dir=folder / "nats", http_port=None, sync_always=True, extra=accounts),
        run_dir=folder / "nats-run",
    )
    server.start()
    return NatsHandle(url=server.url, pids=lambda: {"nats-server": server.pid} if server.pid else {},
                      stop=server.stop)


def start_cluster(folder: Path, accounts: str) -> NatsHandle:
    """Three nats-servers from the wheel clustered on loopback, each its own store under ``folder/nats-cluster``,
    fsync on every write; streams get 3 replicas."""
    cluster = EmbeddedNatsCluster(folder / "nats-cluster", size=3, sync_always=True, extra=accounts)
    cluster.start()
    return NatsHandle(url=cluster.url, replicas=3, stop=cluster.stop,
                      pids=lambda: {f"nats-server-{i}": n.pid for i, n in enumerate(cluster.nodes) if n.pid})


# --- the system: the embedded runtime on a given server start ------------------------------------------------------


@dataclass
class BenchRuntime(Runtime):
    """The embedded runtime with its server started by ``start_server``; its services can be stopped while the
    server keeps running (to read the streams and purge them for the rebuild)."""

    start_server: ServerStart = start_single_server
    nats_handle: NatsHandle | None = None
    #: Service names to attach ``py-spy record`` to.
    pyspy: frozenset[str] = frozenset()
    #: The ``py-spy record`` processes, stopped after the services (py-spy writes its file when its target exited).
    profilers: Supervisor = field(default_factory=lambda: Supervisor(stop_timeout=10))

    @property
    def profiles_dir(self) -> Path:
        return self.settings.data_dir / "profiles"

    def start(self) -> Settings:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        assert self.parties_file is not None, "the benchmark runs with the parties' accounts, as `up` does"
        accounts, self.credentials = generate(load_parties(self.parties_file), self.settings.data_dir / "parties")
        self.nats_handle = self.start_server(self.settings.data_dir, accounts)
        self.settings = replace(self.settings, nats_url=self.nats_handle.url,
                                nats_credentials=self.credentials.get("service:runtime"),
                                stream_replicas=self.nats_handle.replicas)
        asyncio.run(self._prepare_streams())
        self.start_services()
        for child in list(self.children.values()):
            if child.service in self.pyspy:
                self._attach_pyspy(child)
        return self.settings

    def _attach_pyspy(self, child: Child) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(binary).exists():
            raise typer.BadParameter(f"{PYSPY_ENV}: py-spy not found: `make profile-setup` installs it")
        assert child.pid is not None
        self.profiles_dir.mkdir(parents=True, exist_ok=True)
        out = self.profiles_dir / f"{child.name}.txt"
        name = f"py-spy-{child.name}"
        self.profilers.add(Child(name, [binary, "record", "--pid", str(child.pid), "--format", "raw", "--rate", "50",
                                        "--threads", "--output", str(out)],
                                 log_path=self.profiles_dir / f"{child.name}.py-spy.log"))
        self.profilers.start(name)

    def pids(self) -> dict[str, int]:
        out = {name: c.pid for name, c in self.children.items() if c.pid is not None}
        return {**out, **(self.nats_handle.pids() if self.nats_handle else {})}

    def check_alive(self) -> None:
        self.supervisor.check_alive()

    def stop_services(self) -> None:
        super().stop_services()  # the services in reverse order (the handle's server keeps running)
        self.profilers.stop(grace=30)  # py-spy writes its file when its target has exited

    def stop(self) -> None:
        self.stop_services()
        if self.nats_handle is not None:
            self.nats_handle.stop()
            self.nats_handle = None


# --- /proc: peak memory and CPU per process -----------------------------------------------------------------------


def _vm_hwm_mib(pid: int) -> float | None:
    """Peak resident memory (``VmHWM``) of a running process, MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a running process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the load -----------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """One report as the load sent it."""

    sent_ns: int  # wall clock (``time.time_ns``) when first sent: comparable with JetStream's timestamps
    reply_s: float  # request-reply time of the answered attempt
    event_ids: list[UUID]


@dataclass
class Load:
    accepted: list[Report] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    retries: int = 0
    payload_bytes: int = 0
    sent: int = 0
    started: float = 0.0
    seconds: float = 0.0


class Pacer:
    """Releases at most ``rate`` sends per second in all (``None``: no limit): the fixed-rate mode, below
    saturation, in which latency means the system's own delay rather than its backlog."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.perf_counter()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.perf_counter()
        slot = max(self._next, now)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


async def _send(nc: Any, subject: str, payload: bytes, load: Load) -> Accepted | Rejected:
    """Request-reply with the party's retry rule: the same bytes again on a timeout or a retryable rejection."""
    sent_ns = time.time_ns()
    load.sent += 1
    load.payload_bytes += len(payload)

    def retried(_: Rejected | None) -> None:
        load.retries += 1

    answer = await request(nc, subject, payload, timeout=30, retried=retried)
    reply = answer.reply
    if isinstance(reply, Accepted):
        if reply.duplicate:
            load.duplicates += 1
        if not reply.duplicate or answer.attempts > 1:  # a duplicate of a retry: the lost first answer was this one
            load.accepted.append(Report(sent_ns, answer.seconds, list(reply.event_ids)))
    else:
        load.rejected[reply.code.value] += 1
    return reply


async def run_load(settings: Settings, scripts: Sequence[Script], concurrency: int, progress: Any,
                   load: Load | None = None, rate: float | None = None) -> Load:
    """Each case's reports in order, ``concurrency`` cases in flight, through the real intake subjects; at most
    ``rate`` reports per second when given."""
    load = load or Load()
    pacer = Pacer(rate)
    nc = await nats.connect(settings.nats_servers, pending_size=64 * 1024 * 1024, name="reintegration-bench",
                            **settings.nats_options())
    gate = asyncio.Semaphore(concurrency)
    task = progress.add_task(f"load: {len(scripts):,} cases, {concurrency} in flight", total=len(scripts))

    async def play(script: Script) -> None:
        async with gate:
            await pacer.wait()
            reply = await _send(nc, intake_subject(script.opener), encode_report(script.opening), load)
            if isinstance(reply, Accepted):
                for step in script.steps:
                    await pacer.wait()
                    await _send(nc, intake_subject(step.party), encode_report(step.build(reply.case_id)), load)
            progress.advance(task)

    load.started = time.perf_counter()
    try:
        await asyncio.gather(*(play(s) for s in scripts))
    finally:
        load.seconds = time.perf_counter() - load.started
        await nc.close()
    return load


# --- watching the pipeline until everything is derived and published ----------------------------------------------


@dataclass
class Watch:
    """When each stage had handled every event (seconds since the load started)."""

    done: dict[str, float] = field(default_factory=dict)
    settled: float = 0.0


async def watch(runtime: BenchRuntime, load_task: asyncio.Task[Load], load_started: Callable[[], float],
                progress: Any) -> tuple[Watch, int]:
    """Poll the stores and TRAJECTORY while the load runs and after, until every stage has handled every recorded
    event and the derived services' relays and the timer writer are at their stores' ends (twice in a row).

    Fired timers are not waited for: a timer that fires before its case's later reports are applied is handed back
    with a growing delay (up to a minute), which says nothing about throughput; how many still wait is reported."""
    from services.benefits.ledger import LedgerStep
    from services.deadlines.schedule import ScheduleStep

    settings = runtime.settings
    data = settings.data_dir
    intake, deadlines, benefits = (StoreProbe(data / f"{n}.sqlite") for n in ("intake", "deadlines", "benefits"))
    topics = {"deadlines": get_topic(ScheduleStep), "benefits": get_topic(LedgerStep)}
    trackers = {"deadlines": [f"relay:deadlines->{DEADLINES_STREAM}", f"timers:deadlines->{TIMERS_STREAM}"],
                "benefits": [f"relay:benefits->{BENEFITS_STREAM}"]}
    nc = await nats.connect(settings.nats_servers, **settings.nats_options())
    js = nc.jetstream()
    result = Watch()
    tasks = {name: progress.add_task(f"{name}: events handled", total=None) for name in SERVICES}
    progress_seen: dict[str, Any] = {"values": None, "at": time.perf_counter()}

    async def look() -> tuple[bool, float, int]:
        """(settled, seconds since the load started, events recorded)."""
        runtime.check_alive()
        if load_task.done() and (failure := load_task.exception()) is not None:
            raise failure
        now = time.perf_counter() - load_started()
        counts = {
            "intake": await asyncio.to_thread(intake.last_position),
            "relay": (await js.stream_info(TRAJECTORY_STREAM)).state.messages,
            "deadlines": await asyncio.to_thread(deadlines.count, topics["deadlines"]),
            "benefits": await asyncio.to_thread(benefits.count, topics["benefits"]),
        }
        for name, n in counts.items():
            progress.update(tasks[name], completed=n, total=counts["intake"] or None)
        tracked_now = [await asyncio.to_thread(probe.tracking, t) for name, probe in
                       (("deadlines", deadlines), ("benefits", benefits)) for t in trackers[name]]
        if (seen := (*counts.values(), *tracked_now)) != progress_seen["values"]:  # the timer writer's work too
            progress_seen.update(values=seen, at=time.perf_counter())
        elif time.perf_counter() - progress_seen["at"] > STALL_SECONDS:
            raise RuntimeError(f"no progress for {STALL_SECONDS:.0f} s ({counts}); logs in {runtime.logs_dir}")
        if not load_task.done():
            return False, now, 0
        total = counts["intake"]
        for name in ("relay", *DERIVED):
            if counts[name] >= total and name not in result.done:
                result.done[name] = now
        if len(result.done) < 3:
            return False, now, total
        quiet = True
        for name, probe in (("deadlines", deadlines), ("benefits", benefits)):
            last = await asyncio.to_thread(probe.last_position)
            tracked = [await asyncio.to_thread(probe.tracking, t) for t in trackers[name]]
            quiet = quiet and all(t >= last for t in tracked)
        return quiet, now, total

    try:
        _, result.settled, total = await until(look, timeout=math.inf, interval=0.1, times=2,
                                               what="every stage through every event", ready=lambda seen: seen[0])
        return result, total
    finally:
        for probe in (intake, deadlines, benefits):
            probe.close()
        await nc.close()


async def _wait_consumers(runtime: BenchRuntime, timeout: float = 60) -> None:
    nc = await nats.connect(runtime.settings.nats_servers, **runtime.settings.nats_options())
    js = nc.jetstream()
    names = [consumer_name(child.service, *parse_partition(child.env.get(f"{ENV_PREFIX}PARTITION", "0/1")))
             for child in runtime.children.values() if child.service in DERIVED]

    async def every_consumer() -> bool:
        runtime.check_alive()
        return all([await _consumer_exists(js, TRAJECTORY_STREAM, name) for name in names])

    try:
        await until(every_consumer, timeout=timeout, interval=0.05, what=f"the consumers {', '.join(names)}")
    finally:
        await nc.close()


async def _drive(runtime: BenchRuntime, scripts: Sequence[Script], concurrency: int,
                 progress: Any, rate: float | None = None) -> tuple[Load, Watch, int]:
    load = Load()
    load_task = asyncio.create_task(run_load(runtime.settings, scripts, concurrency, progress, load, rate))
    watched, total = await watch(runtime, load_task, lambda: load.started or time.perf_counter(), progress)
    await load_task
    return load, watched, total


# --- reading the streams after the run: when each message was stored ----------------------------------------------


class _DeadlineMessage(msgspec.Struct):
    caused_by: UUID | None = None


def _stamp_ns(stamp: str) -> int:
    """``Nats-Time-Stamp`` (RFC 3339, nanoseconds, UTC) as nanoseconds since the epoch."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


async def _stored_messages(settings: Settings, stream: str, progress: Any, subjects: str | None = None,
                           batch: int = 1000) -> list[tuple[str, int, bytes, dict[str, str]]]:
    """Every message of ``stream`` (on ``subjects`` only, if given): (subject, stored time in ns since the epoch,
    payload, headers). Batched direct gets (``allow_direct`` streams), ``batch`` messages per request."""
    nc = await nats.connect(settings.nats_servers, pending_size=64 * 1024 * 1024, **settings.nats_options())
    js = nc.jetstream()
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        state = (await js.stream_info(stream, subjects_filter=subjects) if subjects
                 else await js.stream_info(stream)).state
        expected = sum((state.subjects or {}).values()) if subjects else state.messages
        task = progress.add_task(f"reading {stream}{' ' + subjects if subjects else ''} ({expected:,} messages)",
                                 total=expected)
        out: list[tuple[str, int, bytes, dict[str, str]]] = []
        seq = state.first_seq
        request: dict[str, Any] = {"batch": batch, **({"next_by_subj": subjects} if subjects else {})}
        while True:
            await nc.publish(f"{JS_API}.DIRECT.GET.{stream}", json.dumps({**request, "seq": seq}).encode(),
                             reply=inbox)
            got = 0
            while True:
                msg = await sub.next_msg(timeout=30)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status == "404" or (status == "204" and got == 0):
                    return out  # nothing at or after ``seq``
                if status == "204":  # end of this batch
                    break
                if status:
                    raise RuntimeError(f"direct get on {stream} answered {status} {headers.get('Description')}")
                got += 1
                seq = int(headers["Nats-Sequence"]) + 1
                out.append((headers["Nats-Subject"], _stamp_ns(headers["Nats-Time-Stamp"]), msg.data, headers))
            progress.update(task, completed=len(out))
    finally:
        await sub.unsubscribe()
        await nc.close()


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _summary(values_ms: Sequence[float]) -> dict[str, float]:
    return {"count": len(values_ms), "p50": _pct(values_ms, 0.5), "p99": _pct(values_ms, 0.99),
            "max": max(values_ms) if values_ms else float("nan")}


def latencies(settings: Settings, load: Load, progress: Any) -> dict[str, dict[str, float]]:
    """Report -> TRAJECTORY and report -> first deadline it opened, from the streams' stored timestamps."""
    sent_of: dict[UUID, int] = {}
    for index, report in enumerate(load.accepted):
        for event_id in report.event_ids:
            sent_of[event_id] = index
    trajectory = asyncio.run(_stored_messages(settings, TRAJECTORY_STREAM, progress))
    first_stored: dict[int, int] = {}
    for _subject, stored, _data, headers in trajectory:
        index = sent_of.get(UUID(headers["Nats-Msg-Id"])) if "Nats-Msg-Id" in headers else None
        if index is not None:
            first_stored[index] = min(stored, first_stored.get(index, stored))
    deadlines = asyncio.run(_stored_messages(settings, DEADLINES_STREAM, progress, f"{DEADLINES_PREFIX}.*.opened"))
    decode = msgspec.json.Decoder(_DeadlineMessage).decode
    opened: dict[int, int] = {}
    cause: dict[int, UUID] = {}
    for _subject, stored, data, _headers in deadlines:
        caused_by = decode(data).caused_by
        index = sent_of.get(caused_by) if caused_by else None
        if index is not None and stored < opened.get(index, stored + 1):
            opened[index], cause[index] = stored, caused_by
    stepped = _step_times(settings, set(cause.values()))
    accepted = load.accepted
    return {
        "reply": _summary([r.reply_s * 1000 for r in accepted]),
        "report_to_trajectory": _summary([(t - accepted[i].sent_ns) / 1e6 for i, t in first_stored.items()]),
        "report_to_step": _summary([(stepped[e] - accepted[i].sent_ns) / 1e6 for i, e in cause.items()
                                    if e in stepped]),
        "report_to_deadline": _summary([(t - accepted[i].sent_ns) / 1e6 for i, t in opened.items()]),
    }


def _step_times(settings: Settings, event_ids: set[UUID]) -> dict[UUID, int]:
    """When the deadlines service recorded its step of each of ``event_ids`` (its clock, ns since the epoch): the
    point between consuming TRAJECTORY and its relay's publishing into DEADLINES."""
    from services.deadlines.application import build_deadlines
    from shared.infra.derived import DerivedStep

    app = build_deadlines(settings)
    out: dict[UUID, int] = {}
    try:
        for _, event in logged_events(app):
            if isinstance(event, DerivedStep) and event.source.event_id in event_ids:
                out[event.source.event_id] = int(event.timestamp.timestamp() * 1e9)
    finally:
        app.close()
    return out


# --- exactly once -------------------------------------------------------------------------------------------------


def store_counts(settings: Settings, load: Load, prefix: str = "") -> dict[str, int]:
    """Accepted event ids against the intake store and each derived store's steps (by their source event)."""
    from reintegration.operate import intake_log
    from services.benefits.application import build_benefits
    from services.deadlines.application import build_deadlines
    from shared.infra.derived import DerivedStep

    accepted_ids = {e for report in load.accepted for e in report.event_ids}
    intake_ids = Counter(event.event_id for _position, event in intake_log(settings))
    out = {
        "accepted_event_ids": len(accepted_ids),
        "intake_events": sum(intake_ids.values()),
        "intake_events_once": sum(1 for n in intake_ids.values() if n == 1),
        "accepted_in_intake_once": sum(1 for e in accepted_ids if intake_ids.get(e) == 1),
    } if not prefix else {}
    for name, build in (("deadlines", build_deadlines), ("benefits", build_benefits)):
        app = build(settings)
        sources: Counter[UUID] = Counter()
        try:
            for _, event in logged_events(app):
                if isinstance(event, DerivedStep):
                    sources[event.source.event_id] += 1
        finally:
            app.close()
        out[f"{prefix}{name}_steps"] = sum(sources.values())
        out[f"{prefix}{name}_intake_events_once"] = sum(1 for e, n in intake_ids.items() if sources.get(e) == 1)
    return out


async def _stream_counts(settings: Settings) -> dict[str, int]:
    nc = await nats.connect(settings.nats_servers, **settings.nats_options())
    js = nc.jetstream()
    try:
        return {
            "trajectory_messages": (await js.stream_info(TRAJECTORY_STREAM)).state.messages,
            "deadlines_messages": (await js.stream_info(DEADLINES_STREAM)).state.messages,
            "benefits_messages": (await js.stream_info(BENEFITS_STREAM)).state.messages,
            "timers_held": await _timers_held(js),
            "fired_timers_waiting": await _fired_waiting(js),
        }
    finally:
        await nc.close()


async def _fired_waiting(js: Any) -> int:
    try:
        info = await js.consumer_info(TIMERS_STREAM, "deadlines-timers")
    except nats.js.errors.NotFoundError:
        return 0
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


# --- the raw 3-hop baseline ---------------------------------------------------------------------------------------


async def raw_hop(url: str, batch: int = 100) -> None:
    """The baseline's middle hop (run as its own process): pull from the first stream, republish each message into
    the second (pipelined, awaited per batch, fsync on every write), then acknowledge them."""
    nc = await nats.connect(url.split(","), pending_size=64 * 1024 * 1024, max_reconnect_attempts=-1)
    js = nc.jetstream()
    while True:
        try:
            sub = await js.pull_subscribe(f"{HOP1_PREFIX}.>", durable=HOP_CONSUMER, stream=HOP1_STREAM)
            break
        except (nats.errors.Error, TimeoutError):  # a cluster just started may still be electing its leaders
            await asyncio.sleep(0.2)
    while True:
        try:
            messages = await sub.fetch(batch, timeout=5)
        except TimeoutError:  # nats-py raises its own and, from fetch, a bare asyncio one
            continue
        except nats.errors.Error:  # a leader change on a cluster: fetch again
            await asyncio.sleep(0.1)
            continue
        try:
            acks = [await js.publish_async(f"{HOP2_PREFIX}.{m.subject.rsplit('.', 1)[1]}", m.data)
                    for m in messages]
            await asyncio.gather(*acks)
        except (nats.errors.Error, TimeoutError):
            # Not acknowledged: delivered and republished again (the final consumer keeps each first arrival)
            await asyncio.sleep(0.1)
            continue
        for m in messages:
            await m.ack()


async def _baseline(url: str, count: int, payload: bytes, concurrency: int, progress: Any,
                    replicas: int = 1, rate: float | None = None) -> dict[str, Any]:
    nc = await nats.connect(url.split(","), pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    await ensure_stream(js, HOP1_STREAM, [f"{HOP1_PREFIX}.>"], replicas=replicas)
    await ensure_stream(js, HOP2_STREAM, [f"{HOP2_PREFIX}.>"], replicas=replicas)
    hop = Supervisor(stop_timeout=10)
    hop.add(Child("the baseline's middle hop", [sys.executable, "-c", "import asyncio, lab.bench.e2e as b; "
                                                 f"asyncio.run(b.raw_hop({url!r}))"]))
    hop.start_all()
    task = progress.add_task(f"raw 3-hop baseline: {count:,} messages, {concurrency} in flight", total=count)
    try:
        async def hop_consumer() -> bool:
            hop.check_alive()
            return await _consumer_exists(js, HOP1_STREAM, HOP_CONSUMER)

        await until(hop_consumer, timeout=math.inf, interval=0.05, what="the baseline's middle hop consuming")
        final = await js.pull_subscribe(f"{HOP2_PREFIX}.>", durable="bench-final", stream=HOP2_STREAM)
        sent: dict[int, int] = {}
        arrived: dict[int, int] = {}

        async def consume() -> None:
            while len(arrived) < count:
                try:
                    messages = await final.fetch(100, timeout=1)
                except TimeoutError:  # nats-py raises its own and, from fetch, a bare asyncio one
                    hop.check_alive()
                    continue
                now = time.perf_counter_ns()
                for m in messages:
                    arrived.setdefault(int(m.subject.rsplit(".", 1)[1]), now)
                    await m.ack()
                progress.update(task, completed=len(arrived))

        queue = iter(range(count))
        pacer = Pacer(rate)

        async def publisher() -> None:
            for i in queue:
                await pacer.wait()
                sent[i] = time.perf_counter_ns()
                await js.publish(f"{HOP1_PREFIX}.{i}", payload)

        consumer = asyncio.create_task(consume())
        started = time.perf_counter_ns()
        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        await consumer
        seconds = (max(arrived.values()) - started) / 1e9
    finally:
        hop.stop()
        await nc.close()
    return {"messages": count, "payload_bytes": len(payload), "seconds": seconds, "messages_per_s": count / seconds,
            "latency_ms": _summary([(arrived[i] - sent[i]) / 1e6 for i in range(count)])}


def raw_baseline(base: Path, count: int, payload: bytes, concurrency: int, start_server: ServerStart,
                 progress: Any, rate: float | None = None) -> dict[str, Any]:
    handle = start_server(base / "baseline", "")
    try:
        before = {n: _cpu_seconds(p) or 0.0 for n, p in handle.pids().items()}
        result = asyncio.run(_baseline(handle.url, count, payload, concurrency, progress, handle.replicas, rate))
        result["nats_server_peak_rss_mib"] = {n: _vm_hwm_mib(p) for n, p in handle.pids().items()}
        result["nats_server_cpu_seconds"] = sum((_cpu_seconds(p) or 0.0) - before.get(n, 0.0)
                                                for n, p in handle.pids().items())
        result["messages"] = count
        return result
    finally:
        handle.stop()


# --- the whole run ------------------------------------------------------------------------------------------------


def measure_e2e(*, cases: int, concurrency: int = CONCURRENCY, seed: int = SEED, data_dir: Path | None = None,
                start_server: ServerStart = start_single_server, replicas: int = 1,
                rate: float | None = None) -> dict[str, Any]:
    """Run the benchmark; return every figure as a JSON-serialisable dict (printed by :func:`print_result`)."""
    if cases < 1:
        raise typer.BadParameter("--cases: at least 1")
    if rate is not None and rate <= 0:
        raise typer.BadParameter("--rate: reports per second, more than 0")
    base = _base_dir(data_dir)
    generator = Generator(seed)
    scripts = [generator.script() for _ in range(cases)]
    pyspy = frozenset(s.strip() for s in os.environ.get(PYSPY_ENV, "").split(",") if s.strip())
    unknown = pyspy - set(SERVICES)
    if unknown:
        raise typer.BadParameter(f"{PYSPY_ENV}: unknown service(s) {', '.join(sorted(unknown))} "
                                 f"(one of {', '.join(SERVICES)})")
    runtime = BenchRuntime(Settings(data_dir=base / "data"), services=SERVICES, start_server=start_server,
                           pyspy=pyspy, replicas=replicas)
    phases: dict[str, float] = {}
    result: dict[str, Any] = {"cases": cases, "concurrency": concurrency, "seed": seed, "machine": _cores(),
                              "rate": rate, "data_dir": str(base), "phases_seconds": phases, "replicas": replicas}
    try:
        with _progress() as progress:
            starting = progress.add_task("starting nats-server and the services", total=None)
            t0 = time.perf_counter()
            settings = runtime.start()
            runtime.wait_ready()
            asyncio.run(_wait_consumers(runtime))
            phases["startup"] = time.perf_counter() - t0
            progress.update(starting, total=1, completed=1)
            pids = runtime.pids()
            cpu_before = {name: _cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
            load_avg_before = os.getloadavg()
            load, watched, total = asyncio.run(_drive(runtime, scripts, concurrency, progress, rate))
            phases["load"], phases["settle after the load"] = load.seconds, watched.settled - load.seconds
            processes = {}
            for name, pid in runtime.pids().items():
                cpu = (_cpu_seconds(pid) or 0.0) - cpu_before.get(name, 0.0)
                processes[name] = {"pid": pid, "peak_rss_mib": _vm_hwm_mib(pid), "cpu_seconds": cpu}
            result["streams_replicas"] = settings.stream_replicas
            owners = {name: child.service for name, child in runtime.children.items()}
            result["load_average"] = {"before": load_avg_before, "after": os.getloadavg()}
            runtime.stop_services()
            t0 = time.perf_counter()
            result["streams"] = asyncio.run(_stream_counts(settings))
            result["latency_ms"] = latencies(settings, load, progress)
            phases["read streams"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            result["stores"] = {**store_counts(settings, load),
                                "trajectory_messages": result["streams"]["trajectory_messages"]}
            phases["count stores"] = time.perf_counter() - t0
            raw_s = _raw_read(settings, progress, total)
        rebuild = {"events": total, "raw_read_seconds": raw_s, "raw_read_events_per_s": total / raw_s}
        phases["raw store read"] = raw_s
        for service in DERIVED:
            seconds = _rebuild(settings, service)
            rebuild[f"{service}_seconds"] = phases[f"rebuild {service}"] = seconds
            rebuild[f"{service}_events_per_s"] = total / seconds
        t0 = time.perf_counter()
        result["stores"].update(store_counts(settings, load, prefix="rebuilt_"))
        phases["count rebuilt stores"] = time.perf_counter() - t0
    finally:
        runtime.stop()
    if runtime.pyspy:
        result["profiles"] = str(runtime.profiles_dir)
    payload = b"x" * max(1, load.payload_bytes // max(1, load.sent))
    t0 = time.perf_counter()
    with _progress() as progress:
        baseline = raw_baseline(base, len(load.accepted), payload, concurrency, start_server, progress, rate)
    phases["raw baseline"] = time.perf_counter() - t0

    accepted = len(load.accepted)
    result["reports"] = {"sent": load.sent, "accepted": accepted, "rejected": dict(load.rejected),
                         "duplicates": load.duplicates, "retries": load.retries,
                         "mean_payload_bytes": len(payload), "load_seconds": load.seconds,
                         "accepted_per_s": accepted / load.seconds}
    result["events"] = total
    services: dict[str, Any] = {
        "intake": {"events_per_s": total / load.seconds, "seconds": load.seconds},
    }
    for name in ("relay", *DERIVED):
        services[name] = {"events_per_s": total / watched.done[name], "seconds": watched.done[name]}
    for name, figures in processes.items():
        entry = services.setdefault(name, {})
        entry.update(figures)
        if name in SERVICES and figures["cpu_seconds"]:
            entry["events_per_cpu_s"] = total / figures["cpu_seconds"]
    for service in SERVICES:  # replicas: the service's CPU is theirs together
        parts = [processes[n] for n, owner in owners.items() if owner == service and n != service and n in processes]
        if parts:
            cpu = sum(p["cpu_seconds"] for p in parts)
            services[service].update(cpu_seconds=cpu, replicas=len(parts),
                                     peak_rss_mib=max(p["peak_rss_mib"] or 0.0 for p in parts))
            if cpu:
                services[service]["events_per_cpu_s"] = total / cpu
    services["deadlines"]["published"] = result["streams"]["deadlines_messages"]
    services["benefits"]["published"] = result["streams"]["benefits_messages"]
    result["services"] = services
    result["settled_seconds"] = watched.settled
    result["baseline"] = baseline
    deadline_latency = result["latency_ms"]["report_to_deadline"]
    result["ratios"] = {
        "accepted_reports_per_s": result["reports"]["accepted_per_s"] / baseline["messages_per_s"],
        "latency_p50": deadline_latency["p50"] / baseline["latency_ms"]["p50"],
        "latency_p99": deadline_latency["p99"] / baseline["latency_ms"]["p99"],
        "deadlines_rebuild": rebuild["deadlines_events_per_s"] / rebuild["raw_read_events_per_s"],
        "benefits_rebuild": rebuild["benefits_events_per_s"] / rebuild["raw_read_events_per_s"],
    }
    server_cpu = sum(entry.get("cpu_seconds", 0.0) for name, entry in services.items() if name.startswith("nats"))
    result["nats_server_cpu_ms"] = {  # per accepted report, and per message of the raw 3-hop
        "per_report": server_cpu / max(1, result["reports"]["accepted"]) * 1000,
        "raw_per_message": baseline["nats_server_cpu_seconds"] / max(1, baseline["messages"]) * 1000,
    }
    result["rebuild"] = rebuild
    return result


def print_result(result: dict[str, Any]) -> None:
    """The figures as tables, then one line per figure with its baseline and ratio."""
    reports, services, baseline, lat = result["reports"], result["services"], result["baseline"], result["latency_ms"]
    rebuild, ratios, stores = result["rebuild"], result["ratios"], result["stores"]
    main = Table("measure", "reintegration", "raw baseline, same run", "ratio", title="reintegration bench e2e")
    main.add_row("accepted reports/s (intake -> relay -> deadlines, benefits)", f"{reports['accepted_per_s']:,.0f}",
                 f"{baseline['messages_per_s']:,.0f} msgs/s (3 hops)", _ratio(reports["accepted_per_s"],
                                                                          baseline["messages_per_s"]))
    for q in ("p50", "p99"):
        ours, raw = lat["report_to_deadline"][q], baseline["latency_ms"][q]
        main.add_row(f"latency report -> deadline event {q} (ms)", f"{ours:,.1f}", f"{raw:,.1f} (3 hops)",
                     f"{ours / raw:,.1f}x")
    for key, label in (("report_to_trajectory", "latency report -> TRAJECTORY"),
                       ("report_to_step", "latency report -> deadlines step recorded"),
                       ("reply", "intake request-reply")):
        for q in ("p50", "p99"):
            main.add_row(f"{label} {q} (ms)", f"{lat[key][q]:,.1f}", "", "")
    for service in DERIVED:
        ours = rebuild[f"{service}_events_per_s"]
        main.add_row(f"{service} rebuild from the intake store: events/s", f"{ours:,.0f}",
                     f"{rebuild['raw_read_events_per_s']:,.0f} (raw store read)",
                     _ratio(ours, rebuild["raw_read_events_per_s"]))
    console.print(main)

    per = Table("process", "events/s (whole run)", "until done (s)", "CPU s", "events per CPU s", "peak RSS MiB",
                title="per process (all concurrent, sharing the cores)")
    for name, entry in services.items():
        rate = entry.get("events_per_s")
        per.add_row(name, f"{rate:,.0f}" if rate else "", f"{entry['seconds']:,.1f}" if "seconds" in entry else "",
                    f"{entry.get('cpu_seconds', 0):,.1f}",
                    f"{entry['events_per_cpu_s']:,.0f}" if entry.get("events_per_cpu_s") else "",
                    f"{entry['peak_rss_mib']:,.1f}" if entry.get("peak_rss_mib") else "")
    console.print(per)

    counts = Table("exactly once", "count", title="stores and streams")
    for key, value in {**stores, **{k: v for k, v in result["streams"].items() if k != "trajectory_messages"}}.items():
        counts.add_row(key, f"{value:,}")
    console.print(counts)

    rejected = sum(reports["rejected"].values())
    lines = [
        f"accepted reports/s: {reports['accepted_per_s']:,.0f} ({reports['accepted']:,} accepted of "
        f"{reports['sent']:,} sent, {rejected:,} rejected by the rules, in {reports['load_seconds']:,.1f} s) vs raw "
        f"3-hop {baseline['messages_per_s']:,.0f} msgs/s: ratio {ratios['accepted_reports_per_s']:.3f}",
        f"latency report -> deadline event p50: {lat['report_to_deadline']['p50']:,.1f} ms vs raw 3-hop "
        f"{baseline['latency_ms']['p50']:,.1f} ms: {ratios['latency_p50']:,.1f}x "
        f"(over {lat['report_to_deadline']['count']:,} reports that opened a deadline)",
        f"latency report -> deadline event p99: {lat['report_to_deadline']['p99']:,.1f} ms vs raw 3-hop "
        f"{baseline['latency_ms']['p99']:,.1f} ms: {ratios['latency_p99']:,.1f}x",
    ]
    for name in SERVICES:
        entry = services[name]
        lines.append(
            f"{name}: {entry['events_per_s']:,.0f} events/s over the run, {entry.get('events_per_cpu_s', 0):,.0f} "
            f"events per CPU second, peak RSS {entry.get('peak_rss_mib') or 0:,.1f} MiB"
        )
    for name, entry in services.items():
        if name not in SERVICES:
            lines.append(f"{name}: peak RSS {entry.get('peak_rss_mib') or 0:,.1f} MiB, "
                         f"{entry.get('cpu_seconds', 0):,.1f} CPU s during the run")
    server = result["nats_server_cpu_ms"]
    times = server["per_report"] / max(1e-9, server["raw_per_message"])
    lines.append(f"nats-server CPU per accepted report: {server['per_report']:,.2f} ms vs raw 3-hop "
                 f"{server['raw_per_message']:,.2f} ms per message: {times:,.1f}x")
    for service in DERIVED:
        lines.append(
            f"{service} rebuild: {rebuild[f'{service}_events_per_s']:,.0f} events/s vs raw store read "
            f"{rebuild['raw_read_events_per_s']:,.0f} events/s: ratio {ratios[f'{service}_rebuild']:.3f}"
        )
    for line in lines:
        console.print(line)
    console.print("phases (s): " + ", ".join(f"{k} {v:,.1f}" for k, v in result["phases_seconds"].items()))
    load_avg = result["load_average"]["before"]
    console.print(
        f"{result['cases']:,} cases ({result['events']:,} events), {result['concurrency']} cases in flight"
        + (f", at most {result['rate']:,.0f} reports/s (the raw baseline at the same rate)"
           if result.get("rate") else "")
        + f", seed {result['seed']}; dev parties' accounts, fsync on every write, SQLite stores"
        + (f"; 3-node NATS cluster, R{result['streams_replicas']} streams, {result['replicas']} replicas of deadlines "
           "and benefits" if result.get("replicas", 1) > 1 else "")
        + f"; {result['machine']}, load "
        f"average {load_avg[0]:.2f} at the start (shared machine); all settled {result['settled_seconds']:,.1f} s "
        f"after the first report; {data_note(Path(result['data_dir']))}"
        + (f"; py-spy profiles in {result['profiles']}" if "profiles" in result else "")
    )


def run_e2e_bench(*, cases: int, quick: bool, cluster: bool, data_dir: Path | None,
                  rate: float | None = None) -> dict[str, Any]:
    """``reintegration bench e2e``: measure, print, and return the figures (``json.dumps``-able)."""
    shape: dict[str, Any] = {"start_server": start_cluster, "replicas": 2} if cluster else {}
    result = measure_e2e(cases=min(cases, QUICK_CASES) if quick else cases, data_dir=data_dir, rate=rate, **shape)
    print_result(result)
    if path := os.environ.get("REINTEGRATION_BENCH_JSON"):
        Path(path).write_text(json.dumps(result, indent=2, default=str))
    return result


__all__ = ["NatsHandle", "ServerStart", "measure_e2e", "print_result", "run_e2e_bench", "start_cluster",
           "start_single_server"]
