"""Delivery fault scenarios R6-R8 of ../shared/FAULTS.md: duplicates everywhere, out-of-order redelivery, poison.

Each scenario starts its own nats-server (the wheel, JetStream with fsync on every write) on loopback ports and its
own SQLite stores under ``workdir``. The input is a set of generated case histories recorded by the real Case rules
(as ``reintegration bench derived`` builds them) and written into a real intake store; the TRAJECTORY stream then
holds them as the intake relay publishes them (subject, ``Nats-Msg-Id`` = event id, ``Reintegration-Position`` =
intake store position). The deadlines and benefits services consume them with their real consumer
(:class:`shared.infra.consumer.TrajectoryConsumer`) and their real applications:

* R6 runs both services as their own processes (``python -m lab.chaos.delivery serve <name>``: the
  service's own composition root, ``build_service``, with a short ``ack_wait`` so that a pause can outlast it),
  pauses them with SIGSTOP past ``ack_wait`` while they hold messages, republishes every event under a new
  message id, and shrinks the stream's duplicate window to republish events under their own ids once it passed.
* R7 runs both consumers in this process beside a second client bound to the same durable consumers, which pulls
  event k of chosen cases and ``nak``-s it with a delay while k+1 is delivered to the service; some cases also have
  k+1 stored before k. The consumers pull batches of up to 200.
* R8 runs both services as processes (``python -m reintegration serve deadlines|benefits``, nothing changed) over a
  stream in which 10 messages are poison: 5 undecodable, 5 rule-breaking (a case whose first event is not its
  incapacity), each the last of its case so that nothing waits behind it. Then ``reintegration dead-letters
  list`` and ``replay`` run as processes: the intake store holds the true events, so after the fix (here: the
  stream's bad copies are what was wrong) every case catches up.

"Lost" and "doubled" compare each service's store with the intake store: every case's derived steps must carry
exactly the case's events 1..n, once each, in order; then ``audit verify`` (services/audit/verify.py) recomputes
every case and must find no difference.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from lab.chaos.report import Row, scenario
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.events.envelope import CaseEvent
from shared.events.subjects import (
    DEAD_LETTER_STREAM,
    POSITION_HEADER,
    TRAJECTORY_STREAM,
    trajectory_subject,
)
from shared.infra.relay import ensure_trajectory_stream
from shared.infra.settings import Settings

SERVICES = ("deadlines", "benefits")
_ENCODER = msgspec.json.Encoder()


# --- the lab: a server, an intake store, the input ----------------------------------------------------------------


@dataclass
class Lab:
    workdir: Path
    server: EmbeddedNatsServer
    settings: Settings
    log: list[CaseEvent] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path) -> Lab:
        workdir.mkdir(parents=True, exist_ok=True)
        server = EmbeddedNatsServer(NatsServerConfig(store_dir=workdir / "nats", http_port=None, sync_always=True),
                                    run_dir=workdir / "nats-run")
        server.start()
        return cls(workdir, server, Settings(data_dir=workdir / "data", nats_url=server.url))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        self.server.stop()

    def write_input(self, cases: int, seed: int, events: int | None = None) -> list[CaseEvent]:
        """``cases`` generated histories, interleaved as an intake log (cut to ``events``), in the intake store."""
        from lab.bench.derived import build_histories, interleave, write_intake

        log = interleave(build_histories(cases, seed=seed), seed=seed)
        self.log = log[:events] if events else log
        write_intake(self.settings, self.log)
        return self.log

    def spawn(self, args: Sequence[str], name: str) -> subprocess.Popen[bytes]:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        out = (logs / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", *args], env={**os.environ, **self.settings.to_env()},
                                stdout=out, stderr=out)
        out.close()
        self.procs.append(proc)
        return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child we started, by its pid: continue it if paused, SIGTERM, SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def relay_message(event: CaseEvent, position: int, *, msg_id: str | None = None, data: bytes | None = None
                  ) -> tuple[str, bytes, dict[str, str]]:
    """What the intake relay publishes for ``event`` at ``position`` (``data`` replaces the body)."""
    return (trajectory_subject(event.case_id, event.type), _ENCODER.encode(event) if data is None else data,
            {"Nats-Msg-Id": msg_id or str(event.event_id), POSITION_HEADER: str(position)})


async def publish_all(js: JetStreamContext, messages: Sequence[tuple[str, bytes, dict[str, str]]],
                      window: int = 500) -> int:
    """Publish into TRAJECTORY, pipelined; the number the stream stored (duplicates inside the window are not)."""
    await ensure_trajectory_stream(js)
    stored = 0
    for first in range(0, len(messages), window):
        acks = [await js.publish_async(subject, data, headers=headers)
                for subject, data, headers in messages[first:first + window]]
        for ack in await asyncio.gather(*acks):
            stored += 0 if ack.duplicate else 1
    return stored


# --- what the stores hold ------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    events: int
    applied: int = 0
    lost: int = 0
    doubled: int = 0
    out_of_order: int = 0
    examples: list[str] = field(default_factory=list)


def compare(settings: Settings, log: Sequence[CaseEvent], service: str) -> Comparison:
    """Each case's derived steps against the case's events in the input: lost, doubled, out of order."""
    from reintegration.dead_letters import open_service

    expected: dict[uuid.UUID, list[CaseEvent]] = {}
    for event in log:
        expected.setdefault(event.case_id, []).append(event)
    app = open_service(settings, service)
    result = Comparison(events=len(log))
    try:
        for case, events in expected.items():
            stored = [e for e in app.repository.event_store.get(app.derived_id(case)) if hasattr(e, "source")]
            versions = [e.source.version for e in stored]
            result.applied += len(set(versions))
            result.doubled += len(versions) - len(set(versions))
            result.lost += len({e.version for e in events} - set(versions))
            if versions != sorted(versions) or [e.source for e in stored] != events[:len(stored)]:
                result.out_of_order += 1
                if len(result.examples) < 3:
                    result.examples.append(f"{service} case {case}: versions {versions}")
    finally:
        app.close()
    return result


def audit_verify(settings: Settings) -> tuple[dict[str, int], bool]:
    """``audit verify`` over every case: its counts (verified, behind, different, broken) and whether it passed."""
    from services.audit.auditor import Auditor

    with Auditor(settings) as auditor:
        report = auditor.verify_all()
    return report.counts, report.ok and report.counts["behind"] == 0


async def consumer_figures(js: JetStreamContext, name: str) -> tuple[int, int, int, int]:
    """``(deliveries, distinct stream messages delivered, pending, unacknowledged)`` of a durable consumer."""
    info = await js.consumer_info(TRAJECTORY_STREAM, name)
    return info.delivered.consumer_seq, info.delivered.stream_seq, info.num_pending, info.num_ack_pending


async def wait_until(check: Callable[[], Any], timeout: float, what: str, alive: Callable[[], None] = lambda: None
                     ) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        await asyncio.sleep(0.2)


def step_count(settings: Settings, service: str) -> int:
    """Derived steps in the service's store (read-only, while the service writes it)."""
    import sqlite3

    from eventsourcing.utils import get_topic

    from services.benefits.ledger import LedgerStep
    from services.deadlines.schedule import ScheduleStep

    path = Path(settings.data_dir) / f"{service}.sqlite"
    if not path.exists():
        return 0
    topic = get_topic(ScheduleStep if service == "deadlines" else LedgerStep)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM stored_events WHERE topic = ?", (topic,)).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _alive(procs: Sequence[subprocess.Popen[bytes]], workdir: Path) -> Callable[[], None]:
    def check() -> None:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, proc.args))} exited with {proc.returncode}; see "  # type: ignore[arg-type]
                                   f"{workdir / 'logs'}")
    return check


# --- R6: duplicates everywhere ------------------------------------------------------------------------------------


@scenario("R6", "duplicates everywhere: acks held past ack_wait, republished with new ids, dedup window shrunk")
def r6_duplicates(workdir: Path, quick: bool) -> Row:
    # Two pauses even when quick: a replica stopped just as its pull request had expired holds nothing, and the
    # scenario needs at least one redelivery per service to show that it changes nothing.
    cases, pauses, ack_wait = (60, 2, 1.0) if quick else (2400, 3, 2.0)
    lab = Lab.start(workdir)
    try:
        log = lab.write_input(cases, seed=606)
        return asyncio.run(_r6(lab, log, pauses, ack_wait, quick))
    finally:
        lab.stop()


async def _r6(lab: Lab, log: list[CaseEvent], pauses: int, ack_wait: float, quick: bool) -> Row:
    nc = await nats.connect(lab.settings.nats_url)
    js = nc.jetstream()
    procs: dict[str, list[subprocess.Popen[bytes]]] = {}
    try:
        await ensure_trajectory_stream(js)
        originals = [relay_message(event, position) for position, event in enumerate(log, start=1)]
        # Two replicas of each service on its one durable consumer: what one holds past ack_wait goes to the other.
        procs = {name: [lab.spawn(["lab.chaos.delivery", "serve", name, "--ack-wait", str(ack_wait)],
                                  f"{name}-{replica}") for replica in "ab"] for name in SERVICES}
        alive = _alive([p for pair in procs.values() for p in pair], lab.workdir)
        await wait_until(lambda: _pulling(js, 2), 120, "both replicas of each service pulling", alive)
        faults = 0
        chunk = -(-len(originals) // pauses)
        for first in range(0, len(originals), chunk):
            # Replica a stops with its pull request open: the server fills it, then redelivers it to replica b after
            # ack_wait, while a still holds every message; a applies and acknowledges them once continued.
            for name in SERVICES:
                os.kill(procs[name][0].pid, signal.SIGSTOP)
            await publish_all(js, originals[first:first + chunk])
            await asyncio.sleep(ack_wait * 2.5)
            for name in SERVICES:
                os.kill(procs[name][0].pid, signal.SIGCONT)
            faults += len(SERVICES)
            await wait_until(lambda: _pulling(js, 1), 120, "the services pulling again", alive)
        # Republish every event under a new message id while the services consume: the stream stores each twice.
        copies = [relay_message(event, position, msg_id=str(uuid.uuid4()))
                  for position, event in enumerate(log, start=1)]
        stored_copies = await publish_all(js, copies)
        faults += 1
        # Shrink the duplicate window, let it pass, and republish events under their own ids: stored again.
        info = await js.stream_info(TRAJECTORY_STREAM)
        info.config.duplicate_window = 0.5
        await js.update_stream(info.config)
        again = [originals[i] for i in range(0, len(originals), 10)]
        stored_again = 0
        for _ in range(40):  # the server forgets the old ids on its own timer: wait until the first is stored again
            await asyncio.sleep(0.5)
            stored_again = await publish_all(js, again[:1])
            if stored_again:
                break
        stored_again += await publish_all(js, again[1:])
        faults += 1
        total = len(originals) + stored_copies + stored_again
        last_fault = time.monotonic()

        async def settled() -> bool:
            for name in SERVICES:
                _deliveries, stream_seq, pending, unacked = await consumer_figures(js, name)
                if stream_seq < total or pending or unacked:
                    return False
            return all(step_count(lab.settings, name) >= len(log) for name in SERVICES)

        await wait_until(settled, 300 if quick else 1200, "both services through the stream", alive)
        recover = time.monotonic() - last_fault
        figures = {name: await consumer_figures(js, name) for name in SERVICES}
    finally:
        await nc.close()
        for pair in procs.values():
            for proc in pair:
                stop_process(proc)
    comparisons = {name: compare(lab.settings, log, name) for name in SERVICES}
    counts, verified = audit_verify(lab.settings)
    # Every delivery beyond the first of each event is a duplicate the services had to recognise: the republished
    # copies, the copies stored again past the window, and the server's redeliveries of what a paused replica held.
    seen = {name: figures[name][0] - len(log) for name in SERVICES}
    redelivered = {name: figures[name][0] - figures[name][1] for name in SERVICES}
    lost = sum(c.lost for c in comparisons.values())
    doubled = sum(c.doubled for c in comparisons.values())
    disorder = sum(c.out_of_order for c in comparisons.values())
    need = 100 if quick else 10_000
    passed = (sum(seen.values()) >= need and lost == 0 and doubled == 0 and disorder == 0 and verified
              and all(redelivered[n] > 0 for n in SERVICES))
    return Row(
        id="R6", title="duplicates everywhere", faults=faults, sent=total, lost=lost, doubled=doubled,
        recover_s=round(recover, 1), pass_figure=f">= {need:,} redeliveries seen, 0 doubled effects",
        passed=passed,
        detail=(f"{sum(seen.values()):,} duplicate deliveries seen ({', '.join(f'{n} {seen[n]:,}' for n in SERVICES)}"
                f"; of which server redeliveries of messages a paused replica held past ack_wait ({pauses} pause(s) "
                f"of {ack_wait * 2.5:.1f} s): {', '.join(f'{n} {redelivered[n]:,}' for n in SERVICES)}); "
                f"{stored_copies:,} copies under new ids, {stored_again:,} under their own ids past a 0.5 s window; "
                f"{len(log):,} events, 2 replicas per service, both stores "
                f"{'equal to' if not (lost or doubled or disorder) else 'DIFFERENT from'} the input; "
                f"audit verify {counts}"),
        extra={"seen": seen, "redelivered": redelivered, "events": len(log), "verify": counts,
               "copies": stored_copies, "again": stored_again,
               "comparisons": {n: c.__dict__ for n, c in comparisons.items()}},
    )


async def _pulling(js: JetStreamContext, replicas: int) -> bool:
    """Each service's durable consumer exists and has a pull request waiting from ``replicas`` clients."""
    for name in SERVICES:
        try:
            info = await js.consumer_info(TRAJECTORY_STREAM, name)
        except nats.js.errors.NotFoundError:
            return False
        if (info.num_waiting or 0) < replicas:
            return False
    return True


# --- R7: out-of-order redelivery ----------------------------------------------------------------------------------


@scenario("R7", "out-of-order redelivery: nak with delay on event k while k+1 arrives, pull batches > 1")
def r7_out_of_order(workdir: Path, quick: bool) -> Row:
    cases = 60 if quick else 2400
    lab = Lab.start(workdir)
    try:
        log = lab.write_input(cases, seed=707)
        return asyncio.run(_r7(lab, log, quick))
    finally:
        lab.stop()


async def _r7(lab: Lab, log: list[CaseEvent], quick: bool) -> Row:
    from reintegration.dead_letters import open_service
    from shared.infra.consumer import TrajectoryConsumer

    rng = random.Random(707)
    by_case: dict[uuid.UUID, list[CaseEvent]] = {}
    for event in log:
        by_case.setdefault(event.case_id, []).append(event)
    multi = [case for case, events in by_case.items() if len(events) >= 2]
    # Event k of every third case with two events or more is nak-ed with a delay by a second client on the same
    # durable consumer while k+1 goes to the service; in every fifth of those cases k+1 is also stored before k.
    targets = {case: rng.randrange(1, len(by_case[case])) for case in multi[::3]}
    swapped = {case: k for case, k in list(targets.items())[::5]}
    positions = {(e.case_id, e.version): p for p, e in enumerate(log, start=1)}
    order = list(log)
    index = {(e.case_id, e.version): i for i, e in enumerate(order)}
    for case, k in swapped.items():
        i, j = index[(case, k)], index[(case, k + 1)]
        order[i], order[j] = order[j], order[i]
    messages = [relay_message(e, positions[(e.case_id, e.version)]) for e in order]

    nc = await nats.connect(lab.settings.nats_url)
    js = nc.jetstream()
    apps = {name: open_service(lab.settings, name) for name in SERVICES}
    executors = {name: ThreadPoolExecutor(max_workers=1) for name in SERVICES}
    hit: dict[str, set[uuid.UUID]] = {name: set() for name in SERVICES}
    consumers = {name: TrajectoryConsumer(name=name, process=apps[name].process, park=apps[name].park,
                                          executor=executors[name]) for name in SERVICES}
    bounced = dict.fromkeys(SERVICES, 0)
    stop = asyncio.Event()
    try:
        await ensure_trajectory_stream(js)
        for consumer in consumers.values():
            await consumer.start(js)
        saboteurs = [asyncio.create_task(_saboteur(js, name, targets, hit[name], bounced, stop))
                     for name in SERVICES]
        started = time.monotonic()
        await publish_all(js, messages)

        async def settled() -> bool:
            for name in SERVICES:
                _d, stream_seq, pending, unacked = await consumer_figures(js, name)
                if stream_seq < len(log) or pending or unacked:
                    return False
            return all(consumers[n].counts["applied"] >= len(log) for n in SERVICES)

        await wait_until(settled, 300 if quick else 1800, "both consumers through the stream")
        elapsed = time.monotonic() - started
        stop.set()
        await asyncio.gather(*saboteurs)
    finally:
        stop.set()
        for consumer in consumers.values():
            await consumer.stop()
        await nc.close()
        for executor in executors.values():
            executor.shutdown()
        for app in apps.values():
            app.close()
    comparisons = {name: compare(lab.settings, log, name) for name in SERVICES}
    counts, verified = audit_verify(lab.settings)
    lost = sum(c.lost for c in comparisons.values())
    doubled = sum(c.doubled for c in comparisons.values())
    disorder = sum(c.out_of_order for c in comparisons.values())
    gaps = {n: consumers[n].counts["gap"] for n in SERVICES}
    largest = {n: consumers[n].counts["largest_batch"] for n in SERVICES}
    batches = {n: consumers[n].counts["batches"] for n in SERVICES}
    parked = sum(consumers[n].counts["dead_lettered"] for n in SERVICES)
    naks = {n: len(hit[n]) for n in SERVICES}
    passed = (lost == 0 and doubled == 0 and disorder == 0 and parked == 0 and verified
              and all(naks[n] > 0 and gaps[n] > 0 and largest[n] > 1 for n in SERVICES))
    return Row(
        id="R7", title="out-of-order redelivery", faults=sum(naks.values()) + len(swapped),
        sent=len(messages), lost=lost, doubled=doubled, recover_s=None,
        pass_figure="0 events skipped; per-case order kept (or the case parked)", passed=passed,
        detail=(f"event k nak-ed with a 1 s delay by a second client on the same consumer while k+1 went on: "
                f"{', '.join(f'{n} {naks[n]:,}' for n in SERVICES)} of {len(targets):,} target cases "
                f"({len(swapped)} with k+1 stored before k); {sum(bounced.values()):,} other deliveries handed back "
                f"by it; gaps seen (k+1 before k) "
                f"{', '.join(f'{n} {gaps[n]:,}' for n in SERVICES)}; batches "
                f"{', '.join(f'{n} {batches[n]:,} (largest {largest[n]})' for n in SERVICES)}; {len(log):,} events "
                f"applied in {elapsed:.0f} s, 0 parked; skipped {lost}, doubled {doubled}, cases out of order "
                f"{disorder}; audit verify {counts}"
                + ("; " + "; ".join(e for c in comparisons.values() for e in c.examples) if disorder else "")),
        extra={"gaps": gaps, "largest_batch": largest, "batches": batches, "naks": naks, "bounced": bounced,
               "swapped": len(swapped), "targets": len(targets), "verify": counts, "events": len(log),
               "comparisons": {n: c.__dict__ for n, c in comparisons.items()}},
    )


async def _saboteur(js: JetStreamContext, name: str, targets: dict[uuid.UUID, int], hit: set[uuid.UUID],
                    bounced: dict[str, int], stop: asyncio.Event) -> None:
    """A second client on the service's durable consumer. Event k of a target case is ``nak``-ed with a 1 s delay
    (once), so that k+1 reaches the service first; anything else it pulls goes straight back (``nak``): those are
    redelivered after later messages, out of stream order. It stops once it has held back every target."""
    from shared.events.envelope import CASE_EVENT_DECODER

    sub = await js.pull_subscribe_bind(durable=name, stream=TRAJECTORY_STREAM)
    try:
        while not stop.is_set() and len(hit) < len(targets):
            try:
                messages = await sub.fetch(50, timeout=0.2)
            except TimeoutError:
                continue
            for msg in messages:
                event = CASE_EVENT_DECODER.decode(msg.data)
                if targets.get(event.case_id) == event.version and event.case_id not in hit:
                    hit.add(event.case_id)
                    await msg.nak(delay=1.0)
                else:
                    bounced[name] += 1
                    await msg.nak()
            await asyncio.sleep(0.01)  # a competitor, not a flood
    finally:
        await sub.unsubscribe()


# --- R8: poison messages ------------------------------------------------------------------------------------------


@scenario("R8", "poison messages: 5 undecodable + 5 rule-breaking among the events, dead-lettered, replayed")
def r8_poison(workdir: Path, quick: bool) -> Row:
    cases, events = (40, 120) if quick else (2400, 10_000)
    lab = Lab.start(workdir)
    try:
        log = lab.write_input(cases, seed=808, events=events)
        return asyncio.run(_r8(lab, log, quick))
    finally:
        lab.stop()


def _poison(log: list[CaseEvent]) -> dict[int, tuple[str, bytes]]:
    """Ten of the log's indexes and their bad bytes: 5 undecodable (the last event of a case with several), 5
    rule-breaking (the only event of a case, rewritten into a later report: a case must open with its incapacity)."""
    last: dict[uuid.UUID, int] = {}
    count: dict[uuid.UUID, int] = {}
    for index, event in enumerate(log):
        last[event.case_id] = index
        count[event.case_id] = count.get(event.case_id, 0) + 1
    several = [last[c] for c in last if count[c] >= 2]
    single = [last[c] for c in last if count[c] == 1]
    later = next(e for e in log if e.version >= 2)
    rng = random.Random(808)
    out: dict[int, tuple[str, bytes]] = {}
    for index in rng.sample(several, 5):
        out[index] = ("undecodable", _ENCODER.encode(log[index])[:-7] + b"\x00\xff")
    for index in rng.sample(single, 5):
        event = log[index]
        bad = msgspec.structs.replace(event, report=msgspec.structs.replace(later.report, case_id=event.case_id))
        out[index] = ("rule-breaking", _ENCODER.encode(bad))
    return out


async def _r8(lab: Lab, log: list[CaseEvent], quick: bool) -> Row:
    from reintegration.dead_letters import list_dead_letters

    poison = _poison(log)
    messages = [relay_message(e, p, data=poison[p - 1][1] if (p - 1) in poison else None)
                for p, e in enumerate(log, start=1)]
    nc = await nats.connect(lab.settings.nats_url)
    js = nc.jetstream()
    try:
        await publish_all(js, messages)
        procs = [lab.spawn(["reintegration", "serve", name], name) for name in SERVICES]
        alive = _alive(procs, lab.workdir)
        started = time.monotonic()

        async def dead_lettered() -> bool:
            try:
                held = (await js.stream_info(DEAD_LETTER_STREAM)).state.messages
            except nats.js.errors.NotFoundError:
                return False
            if held < 2 * len(poison):
                return False
            for name in SERVICES:
                _d, stream_seq, pending, unacked = await consumer_figures(js, name)
                if stream_seq < len(log) or pending or unacked:
                    return False
            return all(step_count(lab.settings, n) >= len(log) - len(poison) for n in SERVICES)

        await wait_until(dead_lettered, 300 if quick else 1800, "poison dead-lettered, the rest applied", alive)
        consume_s = time.monotonic() - started
        figures = {name: await consumer_figures(js, name) for name in SERVICES}
        processed = {name: step_count(lab.settings, name) for name in SERVICES}
        listed = _cli(lab, ["dead-letters", "list", "--json"])
        letters = json.loads(listed.stdout)
        # The fix: the intake store holds the true events; replay re-drives the ten cases from it.
        replayed = _cli(lab, ["dead-letters", "replay"])
        after_replay = {name: step_count(lab.settings, name) for name in SERVICES}
        again = _cli(lab, ["dead-letters", "replay"])
        unresolved = await asyncio.to_thread(list_dead_letters, lab.settings)
    finally:
        await nc.close()
    for proc in procs:
        stop_process(proc)
    comparisons = {name: compare(lab.settings, log, name) for name in SERVICES}
    counts, verified = audit_verify(lab.settings)
    poison_cases = {str(log[i].case_id) for i in poison}
    per_service = {n: [letter for letter in letters if letter["service"] == n] for n in SERVICES}
    listed_ok = {n: {letter["case_id"] for letter in per_service[n]} == poison_cases and len(per_service[n]) == 10
                 for n in SERVICES}
    exact = {n: sorted({letter["deliveries"] for letter in per_service[n]}) for n in SERVICES}
    # The server counts each delivery: every event once, each poison message max_deliver (5) times, nothing more.
    extra_deliveries = {n: figures[n][0] - len(log) for n in SERVICES}
    lost = sum(c.lost for c in comparisons.values())
    doubled = sum(c.doubled for c in comparisons.values())
    passed = (all(listed_ok.values()) and all(exact[n] == [5] for n in SERVICES)
              and all(extra_deliveries[n] == 4 * len(poison) for n in SERVICES)
              and all(processed[n] == len(log) - len(poison) for n in SERVICES)
              and replayed.returncode == 0 and all(after_replay[n] == len(log) for n in SERVICES)
              and unresolved == [] and "nothing to replay" in again.stdout
              and lost == 0 and doubled == 0 and verified)
    return Row(
        id="R8", title="poison messages", faults=len(poison), sent=len(messages), lost=lost, doubled=doubled,
        recover_s=None,
        pass_figure=("each delivered exactly max_deliver times, then dead-lettered (10/10 listed), "
                     f"{len(log) - len(poison):,} processed, replayable after a fix"),
        passed=passed,
        detail=(f"listed {', '.join(f'{n} {len(per_service[n])}/10' for n in SERVICES)} (deliveries "
                f"{', '.join(f'{n} {exact[n]}' for n in SERVICES)}; server deliveries beyond one per event: "
                f"{', '.join(f'{n} {extra_deliveries[n]}' for n in SERVICES)} = 10 x 4); processed "
                f"{', '.join(f'{n} {processed[n]:,}' for n in SERVICES)} of {len(log):,} in {consume_s:.0f} s; "
                f"after `dead-letters replay`: {', '.join(f'{n} {after_replay[n]:,}' for n in SERVICES)}, "
                f"{len(unresolved)} unresolved, a second replay: "
                f"{'nothing to do' if 'nothing to replay' in again.stdout else 'DID SOMETHING'}; "
                f"audit verify {counts}"),
        extra={"letters": len(letters), "deliveries": exact, "extra_deliveries": extra_deliveries,
               "processed": processed, "after_replay": after_replay, "unresolved": len(unresolved),
               "verify": counts, "events": len(log), "replay_output": replayed.stdout[-2000:]},
    )


def _cli(lab: Lab, args: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "reintegration", *args, "--data-dir", str(lab.settings.data_dir)],
                            env={**os.environ, **lab.settings.to_env(), "COLUMNS": "200"}, capture_output=True,
                            text=True, timeout=600)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"reintegration {' '.join(args)} exited with {result.returncode}: {result.stderr[-2000:]}")
    return result


# --- a service with a short ack wait (R6) ------------------------------------------------------------------------


def serve(name: str, ack_wait: float) -> None:
    """Run the service ``name`` from its own composition root, its consumer's ``ack_wait`` set to ``ack_wait``."""
    import importlib

    from reintegration import logs

    logs.configure("WARNING")
    service = importlib.import_module(f"services.{name}.main").build_service(Settings.from_env())
    service.consumer.ack_wait = ack_wait
    asyncio.run(service.stream_app.run())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve" and sys.argv[3] == "--ack-wait":
        serve(sys.argv[2], float(sys.argv[4]))
    else:
        raise SystemExit("usage: python -m lab.chaos.delivery serve deadlines|benefits --ack-wait SECONDS")
