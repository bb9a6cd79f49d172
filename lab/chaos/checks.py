"""What the process scenarios check once the load and the faults are over: every store, stream and the auditor
against what was sent and accepted (:func:`check_all`), and the scenario's row (:func:`finish`)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

import nats
import nats.errors
import nats.js.errors

from lab.chaos.harness import (
    STEP_TOPICS,
    Cluster,
    Load,
    Probe,
    Watch,
    wait_caught_up,
)
from lab.chaos.report import Row
from services.registry import DERIVED
from shared.events.replies import Rejected
from shared.events.subjects import (
    POSITION_HEADER,
    TRAJECTORY_STREAM,
)
from shared.infra.store import logged_events

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
        for store in DERIVED:
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
    from services.benefits.outbox import render as render_benefits
    from services.deadlines.application import build_deadlines
    from services.deadlines.outbox import render as render_deadlines
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
    cluster.stop_services()
    check = check_all(cluster, load)
    check.notes.extend(notes)
    worst_target, worst = watch.worst
    lost = check.total_lost + load.unanswered
    doubled = check.total_doubled
    surprises = load.surprises
    passed = (caught and lost == 0 and doubled == 0 and check.gaps == 0 and check.out_of_order == 0
              and check.rejected_but_stored == 0 and check.verify_ok and not surprises and extra_ok
              and (flow_limit is None or worst <= flow_limit))
    odd = f"{len(surprises)} replies other than the rules call for (e.g. {surprises[0]}); " if surprises else ""
    detail = (f"{len(load.outcomes):,} reports answered ({len(load.accepted):,} accepted, {load.retries:,} retries"
              f"{f', {load.unanswered} unanswered' if load.unanswered else ''}); {check.words()}; "
              f"slowest flow back {worst:.1f} s ({worst_target}); "
              f"{'caught up' if caught else f'NOT caught up: {level}'}; "
              f"{odd}{time.monotonic() - started:.0f} s in all")
    return Row(id=id, title=title, faults=faults, sent=load.sent, lost=lost, doubled=doubled,
               recover_s=None if recover is None else round(recover, 1), pass_figure=pass_figure, passed=passed,
               detail=detail, extra={"flow_back": watch.flow_back, "check": check.__dict__,
                                     "workdir": str(cluster.workdir)})

