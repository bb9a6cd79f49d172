"""``reintegration bench derived`` and ``reintegration bench recompute``: the deadlines and benefits services, each
against a raw baseline measured in the same run.

Both start from N recorded case histories built quickly: a few hundred seeded generator scripts are recorded by
the real Case rules in an in-memory intake (as ``tests/integration/test_derived_property.py`` does), then
replicated under new case ids until there are N. Each copy gets a new national number, so its case id is the one
intake gives that opening report and the premium register (one premium per worker and employer) is not shared
between copies; event ids follow from the case id (``event_id_for``) and every later report carries the new case id.
The events of all cases are interleaved in the log by their effective dates (each case's events stay in version
order), as a real intake log would hold them.

* ``derived``: the histories are written into a real intake store (SQLite) and relayed into TRAJECTORY on an
  embedded nats-server (fsync on every write). The deadlines service, then the benefits service, each alone, run
  as real processes (``python -m reintegration serve ...``) and consume the whole stream: events/s from the moment
  its durable consumer exists until its store holds one step per event. Baseline: a nats-py pull consumer reading
  the same messages in batches and republishing each into another stream (pipelined, awaited per batch), then
  acknowledging them.
* ``recompute``: ``compute_deadlines`` and ``compute_ledger`` over every whole history, against msgspec-decoding the
  same stored JSON bytes; with ``--rebuild``, both services' stores rebuilt from an intake store
  (``operate.rebuild``, what ``reintegration deadlines rebuild --fresh`` runs), against reading that intake store
  raw (``select_notifications`` and the mapper's decode).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import math
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from eventsourcing.utils import get_topic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lab.generator import Generator, insz
from services.registry import DERIVED
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import until
from shared.events import reports as r
from shared.events.envelope import CASE_EVENT_DECODER, CASE_EVENT_ENCODER, CaseEvent, event_id_for
from shared.events.subjects import (
    BENEFITS_STREAM,
    DEADLINES_STREAM,
    TIMER_SCHEDULE_PREFIX,
    TIMERS_STREAM,
    TRAJECTORY_STREAM,
    TRAJECTORY_SUBJECTS,
)
from shared.infra.settings import Settings
from shared.infra.streams import ensure_stream, ensure_trajectory_stream

console = Console()

#: Distinct generated scripts recorded by the real rules; the N cases are copies of these.
BASE_SCRIPTS = 300
SEED = 2026
#: "Now" for the in-memory intake: after every generated date (as the property test).
NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)
#: Events per ``save`` into the intake store (one SQLite transaction each).
WRITE_BATCH = 2000
#: ``bench recompute --rebuild`` rebuilds both services over at most this many cases (the first ones of the N):
#: each rebuilt event is one SQLite transaction in the service's store, about 1,100-1,400 events/s on the 2-core
#: machine, so 100,000 cases (about 420,000 events) take some 12 minutes for the two services.
#: ``REINTEGRATION_BENCH_REBUILD_CASES`` overrides it.
REBUILD_MAX_CASES = 100_000
RAW_SUBJECT_PREFIX = "bench.republish"
RAW_STREAM = "BENCH_REPUBLISH"


def _progress(*extra: Any) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    *extra, console=console, transient=False)


# --- histories ---------------------------------------------------------------------------------------------------


def base_histories(count: int, seed: int = SEED) -> list[list[CaseEvent]]:
    """``count`` distinct case histories: generator scripts recorded by the real Case rules in memory."""
    from services.intake.application import IntakeApplication
    from services.intake.decide import Rejection
    from shared.events.codec import ContractError
    from shared.infra.store import MsgspecMapper, NullTranscoder

    memory = {"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MsgspecMapper),
              "TRANSCODER_TOPIC": get_topic(NullTranscoder)}
    generator = Generator(seed)
    intake = IntakeApplication(env=memory)
    histories: list[list[CaseEvent]] = []
    while len(histories) < count:
        script = generator.script()
        try:
            case_id = intake.submit(script.opener, script.opening, NOW).case_id
        except Rejection:
            continue  # an opening the rules refuse (a bad national number): no history
        for step in script.steps:
            report = step.build(case_id)
            if isinstance(report, bytes):
                continue  # malformed JSON never reaches the application
            with contextlib.suppress(Rejection, ContractError):
                intake.submit(step.party, report, NOW)
        histories.append(intake.case_events(case_id))
    return histories


def copy_history(base: list[CaseEvent], worker: str, used: set[Any]) -> list[CaseEvent] | None:
    """``base`` as the history of ``worker``'s case (same employer, same dates); ``None`` if that case id is taken."""
    from services.intake.application import IntakeApplication

    replace = msgspec.structs.replace
    opening = base[0].report
    assert isinstance(opening, r.IncapacityReported)
    opening = replace(opening, insz=worker)
    case_id = IntakeApplication._case_id(opening)  # the id intake gives this opening
    if case_id in used:
        return None
    used.add(case_id)
    out = []
    for event in base:
        report = opening if event.version == 1 else replace(event.report, case_id=case_id)
        out.append(replace(event, case_id=case_id, event_id=event_id_for(case_id, event.version), report=report))
    return out


def build_histories(cases: int, progress: Progress | None = None, seed: int = SEED) -> list[list[CaseEvent]]:
    bases = base_histories(min(BASE_SCRIPTS, cases), seed)
    rng = random.Random(seed)
    used: set[Any] = set()
    task = progress.add_task(f"building {cases:,} case histories", total=cases) if progress else None
    out: list[list[CaseEvent]] = []
    while len(out) < cases:
        copy = copy_history(bases[len(out) % len(bases)], insz(rng), used)
        if copy is None:
            continue
        out.append(copy)
        if progress is not None and task is not None and len(out) % 1000 == 0:
            progress.update(task, completed=len(out))
    if progress is not None and task is not None:
        progress.update(task, completed=cases)
    return out


def _effective(event: CaseEvent) -> date:
    try:
        return event.report.effective_date
    except AttributeError:
        return event.recorded_at.date()


def interleave(histories: Sequence[list[CaseEvent]], seed: int = SEED) -> list[CaseEvent]:
    """All events in one log, ordered by effective date (a case's running maximum, so its versions stay in order),
    ties broken at random per case."""
    rng = random.Random(seed)
    keyed: list[tuple[date, float, int, CaseEvent]] = []
    for history in histories:
        tie = rng.random()
        latest = date.min
        for event in history:
            latest = max(latest, _effective(event))
            keyed.append((latest, tie, event.version, event))
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [k[3] for k in keyed]


def write_intake(settings: Settings, log: Sequence[CaseEvent], progress: Progress | None = None) -> None:
    """Write the log into the intake store.

    The events are valid histories recorded by the real rules (copied under new ids), so they are saved directly
    in batches rather than submitted one by one: ``submit`` would decide every report again and commit one
    transaction per report, which would measure intake, not the derived services.
    """
    from services.intake.application import build_intake

    intake = build_intake(settings)
    task = progress.add_task(f"writing {len(log):,} events into the intake store", total=len(log)) if progress else None
    try:
        for first in range(0, len(log), WRITE_BATCH):
            intake.save(*log[first:first + WRITE_BATCH])
            if progress is not None and task is not None:
                progress.update(task, completed=min(len(log), first + WRITE_BATCH))
    finally:
        intake.close()


# --- processes and measurements -----------------------------------------------------------------------------------


def _vm_rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class StoreProbe:
    """Reads a derived service's SQLite store while the service writes it (WAL: readers never block the writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
        return self._conn

    def _one(self, sql: str, *params: Any) -> int:
        conn = self._connection()
        if conn is None:
            return 0
        try:
            row = conn.execute(sql, params).fetchone()
        except sqlite3.OperationalError:  # table not created yet
            return 0
        return int(row[0] or 0) if row else 0

    def count(self, topic: str) -> int:
        return self._one("SELECT COUNT(*) FROM stored_events WHERE topic = ?", topic)

    def last_position(self) -> int:
        return self._one("SELECT MAX(rowid) FROM stored_events")

    def tracking(self, name: str) -> int:
        return self._one("SELECT MAX(notification_id) FROM tracking WHERE application_name = ?", name)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class ServiceRun:
    name: str
    events: int
    startup: float  # process start until its durable consumer exists
    applied: float  # consumer exists until one step per event is stored
    settled: float  # consumer exists until everything it derived is published (relay, timers)
    published: int  # messages in its output stream
    timers_fired: int = 0
    timers_held: int | None = None
    server_rss_mib: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.applied


async def _consumer_exists(js: Any, stream: str, name: str) -> bool:
    try:
        await js.consumer_info(stream, name)
    except nats.js.errors.NotFoundError:
        return False
    except nats.errors.TimeoutError:  # a cluster still electing its JetStream leader answers nothing yet
        return False
    return True


async def _idle(js: Any, stream: str, name: str) -> bool:
    try:
        info = await js.consumer_info(stream, name)
    except nats.js.errors.NotFoundError:
        return True
    return not info.num_pending and not info.num_ack_pending


async def _timers_held(js: Any) -> int:
    info = await js.stream_info(TIMERS_STREAM, subjects_filter=f"{TIMER_SCHEDULE_PREFIX}.>")
    return sum((info.state.subjects or {}).values())


async def run_service(settings: Settings, name: str, events: int, logs_dir: Path, pid_of_server: int | None,
                      progress: Progress) -> ServiceRun:
    """Start ``serve <name>``, time it through the whole TRAJECTORY stream, wait until it has published everything
    it derived, stop it."""
    from services.benefits.ledger import LedgerStep
    from services.deadlines.schedule import ScheduleStep, TimerFired

    step_topic = get_topic(ScheduleStep if name == "deadlines" else LedgerStep)
    fired_topic = get_topic(TimerFired)
    output = DEADLINES_STREAM if name == "deadlines" else BENEFITS_STREAM
    trackers = [f"relay:{name}->{output}"] + (["timers:deadlines->TIMERS"] if name == "deadlines" else [])
    probe = StoreProbe(settings.data_dir / f"{name}.sqlite")
    nc = await nats.connect(settings.nats_servers)
    js = nc.jetstream()
    supervisor = Supervisor()
    supervisor.add(Child(name, python_module("reintegration", "serve", name), env=settings.to_env(),
                         log_path=logs_dir / f"{name}.log"))
    task = progress.add_task(f"{name}: starting", total=events)
    try:
        started = time.perf_counter()
        supervisor.start(name)
        alive = supervisor.check_alive

        async def consumer_exists() -> bool:
            alive()
            return await _consumer_exists(js, TRAJECTORY_STREAM, name)

        await until(consumer_exists, timeout=math.inf, interval=0.01, what=f"the {name} consumer")
        ready = time.perf_counter()
        progress.update(task, description=f"{name}: applying")

        async def steps() -> int:
            alive()
            done = await asyncio.to_thread(probe.count, step_topic)
            progress.update(task, completed=done)
            return done

        await until(steps, timeout=math.inf, interval=0.1, what=f"{name}: one step per event",
                    ready=lambda done: done >= events)
        applied = time.perf_counter()
        progress.update(task, completed=events, description=f"{name}: publishing what it derived")

        # Settled: the relay (and the timer writer) have followed the store to its end, no fired timer is waiting,
        # and that held over two looks in a row (a fired timer adds an event to the store, which is published too).
        async def published() -> bool:
            alive()
            last = await asyncio.to_thread(probe.last_position)
            tracked = [await asyncio.to_thread(probe.tracking, t) for t in trackers]
            timers_idle = name != "deadlines" or await _idle(js, TIMERS_STREAM, "deadlines-timers")
            return all(t >= last for t in tracked) and timers_idle

        await until(published, timeout=math.inf, interval=0.25, what=f"{name}: everything published", times=2)
        settled = time.perf_counter()
        progress.update(task, description=f"{name}: done")
        run = ServiceRun(
            name=name, events=events, startup=ready - started, applied=applied - ready, settled=settled - ready,
            published=(await js.stream_info(output)).state.messages,
        )
        if name == "deadlines":
            run.timers_fired = await asyncio.to_thread(probe.count, fired_topic)
            run.timers_held = await _timers_held(js)
            run.server_rss_mib = _vm_rss_mib(pid_of_server)
        return run
    finally:
        supervisor.stop()
        probe.close()
        await nc.close()


async def relay_all(settings: Settings, total: int, progress: Progress) -> float:
    from services.intake.outbox import run_relay

    nc = await nats.connect(settings.nats_servers)
    js = nc.jetstream()
    await ensure_trajectory_stream(js)
    task = progress.add_task(f"relaying {total:,} events into {TRAJECTORY_STREAM}", total=total)
    stop = asyncio.Event()
    started = time.perf_counter()
    relay = asyncio.create_task(run_relay(settings, stop))
    try:
        async def held() -> int:
            if relay.done():
                relay.result()
                raise RuntimeError("the relay stopped early")
            count = int((await js.stream_info(TRAJECTORY_STREAM)).state.messages)
            progress.update(task, completed=count)
            return count

        await until(held, timeout=math.inf, interval=0.05, what=f"{total:,} events in {TRAJECTORY_STREAM}",
                    ready=lambda count: count >= total)
        progress.update(task, completed=total)
        return time.perf_counter() - started
    finally:
        stop.set()
        await relay
        await nc.close()


async def raw_republish(url: str, total: int, progress: Progress, batch: int = 200) -> float:
    """Raw baseline: pull the TRAJECTORY messages in batches, republish each into another stream (pipelined,
    awaited per batch, fsync on every write), then acknowledge them.

    Each copy keeps the original's headers, ``Nats-Expected-Last-Sequence`` included: copied in order into an
    empty stream, every copy passes the same sequence check the relays' publishes pass."""
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    await ensure_stream(js, RAW_STREAM, [f"{RAW_SUBJECT_PREFIX}.>"])
    sub = await js.pull_subscribe(TRAJECTORY_SUBJECTS, durable="bench-raw", stream=TRAJECTORY_STREAM)
    task = progress.add_task("raw consume + republish", total=total)
    done = 0
    started = time.perf_counter()
    try:
        while done < total:
            try:
                messages = await sub.fetch(batch, timeout=1)
            except TimeoutError:  # nats-py raises its own and, from fetch, a bare asyncio one
                continue
            acks = [await js.publish_async(f"{RAW_SUBJECT_PREFIX}.{m.subject}", m.data, headers=m.headers)
                    for m in messages]
            await asyncio.gather(*acks)
            for m in messages:
                await m.ack()
            done += len(messages)
            progress.update(task, completed=done)
        await nc.flush()
        elapsed = time.perf_counter() - started
        copied = (await js.stream_info(RAW_STREAM)).state.messages
        if copied != total:
            raise RuntimeError(f"the raw baseline copied {copied} of {total} messages")
        return elapsed
    finally:
        await nc.close()


def _ratio(ours: float, raw: float) -> str:
    return f"{ours / raw:.3f}" if raw else "n/a"


#: Set (to anything) to keep a benchmark's temporary folder after it ends.
KEEP_ENV = "REINTEGRATION_BENCH_KEEP"
#: Temporary folders this process made, removed when it exits (unless kept).
_TEMPORARY: set[Path] = set()


def temporary_base() -> Path:
    """A new temporary folder for a benchmark, removed at exit unless :data:`KEEP_ENV` is set or py-spy profiles
    were asked for (they are written into it)."""
    base = Path(tempfile.mkdtemp(prefix="reintegration-bench-")).resolve()
    if not os.environ.get(KEEP_ENV) and not os.environ.get("REINTEGRATION_BENCH_PYSPY"):
        if not _TEMPORARY:
            atexit.register(_remove_temporary)
        _TEMPORARY.add(base)
    return base


def keep(base: Path) -> None:
    """Keep ``base`` after all (a run that found a problem keeps its evidence)."""
    _TEMPORARY.discard(base)


def _remove_temporary() -> None:
    for base in _TEMPORARY:
        shutil.rmtree(base, ignore_errors=True)


def data_note(base: Path) -> str:
    """Where the run's data is, for the closing line of a benchmark's output."""
    if base in _TEMPORARY:
        return f"data in {base}, removed at exit (--data-dir or {KEEP_ENV}=1 keeps it)"
    return f"data in {base}"


def _base_dir(data_dir: Path | None) -> Path:
    """The benchmark's folder: a new temporary one, or ``data_dir``, which must not hold an earlier run."""
    base = Path(data_dir) if data_dir else temporary_base()
    if (base / "data").exists() or (base / "nats").exists():
        raise SystemExit(f"{base} holds an earlier run (data/, nats/): give an empty or new folder")
    base.mkdir(parents=True, exist_ok=True)
    return base.resolve()


def _cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{os.cpu_count()} cores ({usable} usable)"


# --- bench derived ------------------------------------------------------------------------------------------------


def run_derived_bench(*, cases: int, data_dir: Path | None) -> None:
    base = _base_dir(data_dir)
    logs_dir = base / "logs"
    logs_dir.mkdir(exist_ok=True)
    server = EmbeddedNatsServer(NatsServerConfig(store_dir=base / "nats", http_port=None, sync_always=True),
                                run_dir=base / "nats-run")
    runs: list[ServiceRun] = []
    server.start()
    try:
        settings = Settings(data_dir=base / "data", nats_url=server.url)
        with _progress() as progress:
            histories = build_histories(cases, progress)
            log = interleave(histories)
            del histories
            write_intake(settings, log, progress)
            total = len(log)
            del log
            relay_seconds = asyncio.run(relay_all(settings, total, progress))
            for name in DERIVED:
                runs.append(asyncio.run(run_service(settings, name, total, logs_dir, server.pid, progress)))
            raw_seconds = asyncio.run(raw_republish(server.url, total, progress))
        rss_end = _vm_rss_mib(server.pid)
    finally:
        server.stop()
    raw_rate = total / raw_seconds
    table = Table("measure", "reintegration", "raw baseline", "ratio", title="reintegration bench derived")
    for run in runs:
        table.add_row(f"{run.name}: trajectory events/s applied", f"{run.rate:,.0f}",
                      f"{raw_rate:,.0f} (consume + republish)", _ratio(run.rate, raw_rate))
        table.add_row(f"{run.name}: seconds to apply {total:,} events", f"{run.applied:,.1f}", f"{raw_seconds:,.1f}",
                      f"{run.applied / raw_seconds:.1f}x")
        table.add_row(f"{run.name}: seconds until all it derived is published", f"{run.settled:,.1f}", "", "")
        output = DEADLINES_STREAM if run.name == "deadlines" else BENEFITS_STREAM
        table.add_row(f"{run.name}: messages published ({output})",
                      f"{run.published:,}", "", "")
        table.add_row(f"{run.name}: process start until consuming (s)", f"{run.startup:.1f}", "", "")
    deadlines = next(run for run in runs if run.name == "deadlines")
    table.add_row("timers held in TIMERS after deadlines (pending schedules)", f"{deadlines.timers_held:,}", "", "")
    table.add_row("deadline outcomes recorded by fired timers (due before today)", f"{deadlines.timers_fired:,}",
                  "", "")
    table.add_row("nats-server VmRSS after deadlines (MiB)", f"{deadlines.server_rss_mib or float('nan'):,.1f}", "", "")
    table.add_row("nats-server VmRSS at the end (MiB)", f"{rss_end or float('nan'):,.1f}", "", "")
    table.add_row("relay events/s into TRAJECTORY (setup)", f"{total / relay_seconds:,.0f}", "", "")
    console.print(table)
    console.print(
        f"{cases:,} cases ({total:,} events, copies of {min(BASE_SCRIPTS, cases)} generated histories); each service "
        f"alone as a process, timed from its durable consumer's creation until its store holds one step per event; "
        f"nats-server with fsync on every write; {_cores()}; {data_note(base)} (service logs in {logs_dir})."
    )


# --- bench recompute ----------------------------------------------------------------------------------------------


#: Passes of each in-memory measure (the raw decode and each pure function alike); the fastest counts, as with
#: ``timeit``: on a shared 2-core machine one pass can lose a third of its time to other work.
PASSES = 3


def _timed(label: str, items: Sequence[Any], fn: Callable[[Any], Any], progress: Progress,
           passes: int = PASSES) -> float:
    """The fastest of ``passes`` passes of ``fn`` over ``items`` (seconds)."""
    task = progress.add_task(label, total=len(items) * passes)
    step = max(1, len(items) // 200)
    best = float("inf")
    for done in range(passes):
        started = time.perf_counter()
        for index, item in enumerate(items):
            fn(item)
            if index % step == 0:
                progress.update(task, completed=done * len(items) + index)
        best = min(best, time.perf_counter() - started)
    progress.update(task, completed=len(items) * passes)
    return best


def _raw_read(settings: Settings, progress: Progress, total: int, batch: int = 1000) -> float:
    """Every event of the intake store through ``select_notifications`` and the mapper's decode."""
    from services.intake.application import build_intake

    intake = build_intake(settings)
    task = progress.add_task("reading the intake store raw", total=total)
    started = time.perf_counter()
    try:
        position, read = 1, 0
        while notifications := intake.recorder.select_notifications(position, batch):
            for notification in notifications:
                intake.mapper.to_domain_event(notification)
            read += len(notifications)
            position = notifications[-1].id + 1
            progress.update(task, completed=read)
    finally:
        intake.close()
    assert read == total, f"read {read} of {total} events"
    return time.perf_counter() - started


def rebuild_cases(cases: int) -> int:
    limit = int(os.environ.get("REINTEGRATION_BENCH_REBUILD_CASES", REBUILD_MAX_CASES))
    return min(cases, limit)


def run_recompute_bench(*, cases: int, rebuild: bool, data_dir: Path | None) -> None:
    from shared.rulebook import default_rulebook
    from shared.rulebook.benefits import compute_ledger
    from shared.rulebook.deadlines import compute_deadlines

    rulebook = default_rulebook()
    with _progress() as progress:
        histories = build_histories(cases, progress)
        events = sum(len(h) for h in histories)
        stored = [[CASE_EVENT_ENCODER.encode(e) for e in h] for h in histories]
        decode = CASE_EVENT_DECODER.decode
        decode_s = _timed("raw: msgspec decode of every history", stored, lambda h: [decode(b) for b in h], progress)
        deadlines_s = _timed("compute_deadlines over every history", histories,
                             lambda h: compute_deadlines(h, rulebook), progress)
        ledger_s = _timed("compute_ledger over every history", histories, lambda h: compute_ledger(h, rulebook),
                          progress)
    del stored
    table = Table("measure", "reintegration", "raw baseline", "ratio", title="reintegration bench recompute")
    for label, seconds in (("compute_deadlines", deadlines_s), ("compute_ledger", ledger_s)):
        table.add_row(f"{label}: cases/s", f"{cases / seconds:,.0f}", f"{cases / decode_s:,.0f} (msgspec decode)",
                      _ratio(cases / seconds, cases / decode_s))
        table.add_row(f"{label}: seconds for {cases:,} cases", f"{seconds:,.2f}", f"{decode_s:,.2f}",
                      f"{seconds / decode_s:.1f}x")
    where = "in memory (no store)"
    rebuilt = 0
    if rebuild:
        rebuilt = rebuild_cases(cases)
        base = _base_dir(data_dir)
        # A rebuild --fresh also purges the service's output streams: give it our own server, never the default
        # URL (whatever listens on 4222 on this machine). The rebuild itself reads and writes SQLite only.
        server = EmbeddedNatsServer(NatsServerConfig(store_dir=base / "nats", http_port=None, sync_always=True),
                                    run_dir=base / "nats-run")
        server.start()
        try:
            settings = Settings(data_dir=base / "data", nats_url=server.url)
            where = f"in memory; rebuild stores: {data_note(settings.data_dir.parent)}"
            log = interleave(histories[:rebuilt])
            del histories
            total = len(log)
            with _progress() as progress:
                write_intake(settings, log, progress)
                del log
                raw_s = _raw_read(settings, progress, total)
            seconds = {}
            for service in DERIVED:
                seconds[service] = _rebuild(settings, service)
        finally:
            server.stop()
        for service in DERIVED:
            rate, raw_rate = total / seconds[service], total / raw_s
            table.add_row(f"{service} rebuild --fresh: events/s", f"{rate:,.0f}",
                          f"{raw_rate:,.0f} (read intake store)", _ratio(rate, raw_rate))
            table.add_row(f"{service} rebuild --fresh: seconds for {rebuilt:,} cases ({total:,} events)",
                          f"{seconds[service]:,.1f}", f"{raw_s:,.2f}", f"{seconds[service] / raw_s:.0f}x")
    console.print(table)
    rebuild_note = (
        f"rebuild over the first {rebuilt:,} of the {cases:,} cases (at most {rebuild_cases(10**12):,}: "
        f"REBUILD_MAX_CASES, or REINTEGRATION_BENCH_REBUILD_CASES), SQLite store per service"
        if rebuild else "no rebuild (--no-rebuild)"
    )
    console.print(
        f"N = {cases:,} cases ({events:,} events, copies of {min(BASE_SCRIPTS, cases)} generated histories); "
        f"each in-memory figure the fastest of {PASSES} passes (the raw decode too); {rebuild_note}; {_cores()}; "
        f"data {where}."
    )


def _rebuild(settings: Settings, service: str) -> float:
    """What ``reintegration <service> rebuild --fresh`` runs, timed."""
    from reintegration import operate

    module = __import__(f"services.{service}.application", fromlist=["x"])
    started = time.perf_counter()
    operate.rebuild(getattr(module, f"build_{service}"), settings, service, fresh=True, start=1)
    return time.perf_counter() - started


__all__ = ["run_derived_bench", "run_recompute_bench"]
