"""Scale-out: a 3-node NATS cluster with R3 streams, PostgreSQL as the store and two replicas of each derived service
sharing the cases by TRAJECTORY partition. One NATS node and one replica of each derived service are killed
(SIGKILL) during the load and restarted: nothing accepted is lost or doubled anywhere, each case's events are
applied in order, and both replicas of each service did work."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import nats
import pytest
from rich.progress import Progress

from lab.bench.e2e import Load, _stored_messages, run_load, store_counts
from lab.generator import Generator
from reintegration.operate import intake_log
from reintegration.runtime import Runtime
from services.audit.auditor import Auditor
from services.benefits.application import build_benefits
from services.deadlines.application import build_deadlines
from services.deadlines.schedule import TimerFired
from shared.embedded.waiting import wait_until
from shared.events.subjects import (
    BENEFITS_STREAM,
    DEADLINES_STREAM,
    PARTITIONS,
    TRAJECTORY_PREFIX,
    TRAJECTORY_STREAM,
    consumer_name,
    partition_filters,
    trajectory_case,
    trajectory_partition,
)
from shared.infra.derived import DerivedStep
from shared.infra.settings import Settings
from shared.infra.store import logged_events

# --- partitions: pure ---------------------------------------------------------------------------------------------


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more at the end."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)


CASE = UUID("7d8b3c1e-1111-4111-8111-111111111111")


@pytest.mark.parametrize("count", range(1, PARTITIONS + 1))
def test_the_filters_of_k_replicas_cover_every_partition_exactly_once(count: int) -> None:
    stored = [f"{TRAJECTORY_PREFIX}.{CASE}.incapacity_reported.{p}" for p in range(PARTITIONS)]
    legacy = f"{TRAJECTORY_PREFIX}.{CASE}.incapacity_reported"  # stored before the partition token existed
    filters = [partition_filters(index, count) for index in range(count)]
    for subject in [*stored, legacy]:
        owners = [i for i, own in enumerate(filters) if any(matches(f, subject) for f in own)]
        assert len(owners) == 1, f"{subject}: consumed by replicas {owners} of {count}"
    assert any(matches(f, legacy) for f in filters[0]), "replica 0 takes what was stored without a partition"
    names = {consumer_name("deadlines", index, count) for index in range(count)}
    assert len(names) == count and (count > 1 or names == {"deadlines"})


def test_a_replica_count_beyond_the_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="1 to 8 replicas"):
        partition_filters(0, PARTITIONS + 1)
    with pytest.raises(ValueError, match="index"):
        partition_filters(2, 2)


# --- the cluster shape under load ---------------------------------------------------------------------------------

SERVICES = ("intake", "relay", "deadlines", "benefits")
CASES = 120


async def consumer_work(settings: Settings) -> dict[str, int]:
    """Messages each replica's TRAJECTORY consumer has had acknowledged (its ack floor)."""
    nc = await nats.connect(settings.nats_servers, **settings.nats_options())
    js = nc.jetstream()
    try:
        out = {}
        for service in ("deadlines", "benefits"):
            for index in range(2):
                name = consumer_name(service, index, 2)
                out[name] = (await js.consumer_info(TRAJECTORY_STREAM, name)).ack_floor.stream_seq
        return out
    finally:
        await nc.close()


def derived_steps(settings: Settings) -> dict[str, dict[UUID, list[int]]]:
    """Per derived store, per case: the source versions of its steps, in store order."""
    out: dict[str, dict[UUID, list[int]]] = {}
    for name, build in (("deadlines", build_deadlines), ("benefits", build_benefits)):
        app = build(settings)
        steps: dict[UUID, list[int]] = defaultdict(list)
        fired: Counter[UUID] = Counter()
        try:
            for _, event in logged_events(app):
                if isinstance(event, DerivedStep):
                    steps[event.source.case_id].append(event.source.version)
                elif isinstance(event, TimerFired):
                    fired[event.deadline.id] += 1
        finally:
            app.close()
        assert [d for d, n in fired.items() if n > 1] == [], f"{name}: a deadline's timer recorded twice"
        out[name] = steps
    return out


def wait_for(condition: Any, runtime: Runtime, what: str, timeout: float = 240) -> None:
    def supervised() -> bool:
        if condition():
            return True
        runtime.supervise_once()
        return False

    wait_until(supervised, timeout=timeout, interval=0.5, what=what)


@pytest.mark.postgres
def test_a_node_and_a_replica_of_each_service_killed_during_load_lose_and_double_nothing(
    tmp_path: Path, postgres: Any
) -> None:
    url = postgres.new_database()
    runtime = Runtime(Settings(data_dir=tmp_path / "data", store="postgres", postgres_url=url), nats_port=0,
                      services=SERVICES, cluster=3, replicas=2)
    settings = runtime.start()
    try:
        assert settings.stream_replicas == 3 and len(settings.nats_servers) == 3
        assert sorted(runtime.children) == ["benefits-0", "benefits-1", "deadlines-0", "deadlines-1", "intake",
                                            "relay"]
        runtime.wait_ready(timeout=60)
        generator = Generator(23)
        scripts = [generator.script() for _ in range(CASES)]
        load = Load()
        failure: list[BaseException] = []

        def drive() -> None:
            try:
                with Progress(disable=True) as progress:
                    asyncio.run(run_load(settings, scripts, 8, progress, load))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test
                failure.append(exc)

        feeding = threading.Thread(target=drive)
        feeding.start()
        wait_for(lambda: len(load.accepted) >= 60, runtime, "the load did not start")
        assert runtime.nats_cluster is not None
        runtime.nats_cluster.kill(1)  # a node crash: the streams keep their quorum on the two others
        killed = {}
        for name in ("deadlines-1", "benefits-0"):  # one replica of each service, mid-batch
            child = runtime.children[name]
            assert child.process is not None
            killed[name] = child.process.pid
            child.process.send_signal(signal.SIGKILL)
            child.process.wait()
        runtime.supervise_once()
        wait_for(lambda: len(load.accepted) >= 200 or not feeding.is_alive(), runtime, "the load stalled")
        assert all(runtime.children[n].restarts >= 1 for n in killed)
        runtime.nats_cluster.restart(1)
        feeding.join()
        assert failure == []

        accepted = {e for report in load.accepted for e in report.event_ids}
        intake_ids = Counter(event.event_id for _position, event in intake_log(settings))
        assert len(load.accepted) > 200 and accepted <= set(intake_ids)
        assert all(n == 1 for n in intake_ids.values()), "an event was recorded twice"

        def settled() -> bool:
            counts = store_counts(settings, load)
            return all(counts[f"{s}_intake_events_once"] == counts["intake_events"] == counts[f"{s}_steps"]
                       for s in ("deadlines", "benefits"))

        wait_for(settled, runtime, "the derived stores did not catch up", timeout=300)

        trajectory = asyncio.run(_stored_messages(settings, TRAJECTORY_STREAM, Progress(disable=True)))
        in_stream = Counter(UUID(headers["Nats-Msg-Id"]) for _s, _t, _d, headers in trajectory)
        assert in_stream == intake_ids, "TRAJECTORY does not hold every recorded event exactly once"
        assert all(trajectory_partition(subject) in range(PARTITIONS) and trajectory_case(subject) is not None
                   for subject, *_ in trajectory)

        history: dict[UUID, int] = Counter(event.case_id for _position, event in intake_log(settings))
        for service, steps in derived_steps(settings).items():
            assert dict(steps) == {
                case: list(range(1, n + 1)) for case, n in history.items()
            }, f"{service}: a case's events were not applied once each, in order"

        for stream in (DEADLINES_STREAM, BENEFITS_STREAM):  # both replicas relay the shared store: no copy twice
            ids = [headers["Nats-Msg-Id"] for *_rest, headers in
                   asyncio.run(_stored_messages(settings, stream, Progress(disable=True)))]
            assert ids and len(ids) == len(set(ids)), f"{stream} holds a message twice"

        work = asyncio.run(consumer_work(settings))
        assert all(floor > 0 for floor in work.values()), f"a replica did no work: {work}"

        with Auditor(settings) as auditor:
            report = auditor.verify_all()
        assert report.ok and report.cases == len(history), report.counts
    finally:
        runtime.stop()
