"""The harness of the delivery fault scenarios R6-R8 (../shared/FAULTS.md): a server, an intake store, its events in
TRAJECTORY, and what the derived stores made of them.

Each scenario starts its own nats-server (the wheel, JetStream with fsync on every write) on loopback ports and its
own SQLite stores under ``workdir``. The input is a set of generated case histories recorded by the real Case rules
(as ``reintegration bench derived`` builds them) and written into a real intake store; the TRAJECTORY stream then
holds them as the intake relay publishes them (subject, ``Nats-Msg-Id`` = event id, ``Reintegration-Position`` =
intake store position). The deadlines and benefits services consume them with their real consumer
(:class:`shared.infra.consumer.TrajectoryConsumer`) and their real applications (R6
:mod:`lab.chaos.r6_duplicates`, R7 :mod:`lab.chaos.r7_out_of_order`, R8 :mod:`lab.chaos.r8_poison`).

"Lost" and "doubled" compare each service's store with the intake store: every case's derived steps must carry
exactly the case's events 1..n, once each, in order; then ``audit verify`` (services/audit/verify.py) recomputes
every case and must find no difference.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from nats.js import JetStreamContext

from services.registry import DERIVED
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.events.envelope import CaseEvent
from shared.events.subjects import (
    POSITION_HEADER,
    TRAJECTORY_STREAM,
    trajectory_subject,
)
from shared.infra.settings import Settings
from shared.infra.streams import ensure_trajectory_stream

#: The services whose stores the scenarios compare with the input (:mod:`services.registry`).
SERVICES = DERIVED
ENCODER = msgspec.json.Encoder()


# --- the lab: a server, an intake store, the input ----------------------------------------------------------------


@dataclass
class Lab:
    workdir: Path
    server: EmbeddedNatsServer
    settings: Settings
    log: list[CaseEvent] = field(default_factory=list)
    #: The processes the scenario runs (stopped, continued if paused, SIGKILL-ed after 20 s).
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(stop_timeout=20))

    @classmethod
    def start(cls, workdir: Path) -> Lab:
        workdir.mkdir(parents=True, exist_ok=True)
        server = EmbeddedNatsServer(NatsServerConfig(store_dir=workdir / "nats", http_port=None, sync_always=True),
                                    run_dir=workdir / "nats-run")
        server.start()
        return cls(workdir, server, Settings(data_dir=workdir / "data", nats_url=server.url))

    def stop(self) -> None:
        self.supervisor.stop()
        self.server.stop()

    def write_input(self, cases: int, seed: int, events: int | None = None) -> list[CaseEvent]:
        """``cases`` generated histories, interleaved as an intake log (cut to ``events``), in the intake store."""
        from lab.bench.derived import build_histories, interleave, write_intake

        log = interleave(build_histories(cases, seed=seed), seed=seed)
        self.log = log[:events] if events else log
        write_intake(self.settings, self.log)
        return self.log

    def spawn(self, args: Sequence[str], name: str) -> str:
        """Start ``python -m <args>`` as the child ``name`` (its log in ``<workdir>/logs``); its name."""
        child = Child(name, python_module(*args), env=self.settings.to_env(),
                      log_path=self.workdir / "logs" / f"{name}.log")
        self.supervisor.add(child)
        self.supervisor.start(name)
        return name

    def alive(self, names: Sequence[str]) -> Callable[[], None]:
        """A check that raises :class:`~shared.embedded.supervisor.ChildExitedError` once one of ``names`` exited."""
        return lambda: self.supervisor.check_alive(names)


def relay_message(event: CaseEvent, position: int, *, msg_id: str | None = None, data: bytes | None = None
                  ) -> tuple[str, bytes, dict[str, str]]:
    """What the intake relay publishes for ``event`` at ``position`` (``data`` replaces the body)."""
    return (trajectory_subject(event.case_id, event.type), ENCODER.encode(event) if data is None else data,
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


