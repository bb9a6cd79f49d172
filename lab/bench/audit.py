"""``reintegration bench audit``: the auditor's replay of one long case and ``audit verify`` over many cases, each
against reading the same events raw from the same stores in the same run.

The data: N case histories recorded by the real Case rules (:func:`~lab.bench.derived.build_histories`:
copies of a few hundred generated scripts under new case ids), plus one long case of ``--events`` events (an
incapacity, a vocational rehabilitation project proposed and approved, then training hours reported period after
period, every tenth period a rehabilitation cost instead), all interleaved by effective date and written into a
real intake store (SQLite). The deadlines and benefits stores are then filled by ``operate.rebuild`` (what
``reintegration deadlines|benefits rebuild`` runs, without NATS), and the auditor seals every chain
(``audit seal``), so that ``verify`` has everything it checks: recorded deadlines and ledgers, embedded source
events, sealed links.

* **Replay of one case** (what ``reintegration audit history|asof|explain|verify CASE`` run, through the
  :class:`~services.audit.Auditor`): each question asked ``REPLAY_RUNS`` times, alternating with the raw baseline:
  the case's rows selected from the intake store (``select_events``) and msgspec-decoded by the store's mapper.
  Median and p95 in milliseconds.
* **verify over all cases** (``Auditor.verify_all``, what ``reintegration audit verify`` runs): cases/s, against
  listing the cases from the intake store's notification log and selecting + decoding each case's rows in the three
  stores (intake, deadlines, benefits): the same events verify reads.

Rebuilding the two services' stores (batched transactions, about 2,000-4,000 events/s each on the project's 2-core
machine) takes a few minutes for 100,000 cases; the verified cases are capped by :data:`AUDIT_MAX_CASES`
(``REINTEGRATION_BENCH_AUDIT_CASES`` overrides it); the table says how many of the N cases were written, rebuilt
and verified.
"""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from eventsourcing.utils import get_topic
from rich.table import Table

from lab.bench.derived import (
    BASE_SCRIPTS,
    SEED,
    _base_dir,
    _cores,
    _progress,
    _ratio,
    build_histories,
    console,
    data_note,
    interleave,
    keep,
    write_intake,
)
from lab.generator import LATEST, enterprise_number, insz
from services.registry import DERIVED
from shared.events import reports as r
from shared.events.common import Party, PartyKind
from shared.events.envelope import CaseEvent
from shared.infra.settings import Settings

#: ``bench audit`` writes, rebuilds and verifies at most this many of the N cases (the first ones). Filling the
#: deadlines and benefits stores runs at about 2,000-4,000 events/s per service on the 2-core machine: 100,000
#: cases (about 420,000 events) take some 5 minutes. ``REINTEGRATION_BENCH_AUDIT_CASES`` overrides it.
AUDIT_MAX_CASES = 100_000
#: Times each replay question (and the raw read beside it) is asked of the long case.
REPLAY_RUNS = 40
#: "Now" for the in-memory intake that records the long case: after every generated date.
NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)
FUND = Party(kind=PartyKind.HEALTH_FUND, id="100")


def audit_cases(cases: int) -> int:
    limit = int(os.environ.get("REINTEGRATION_BENCH_AUDIT_CASES", AUDIT_MAX_CASES))
    return max(0, min(cases, limit))


# --- the long case --------------------------------------------------------------------------------------------


def long_history(events: int, seed: int = SEED) -> list[CaseEvent]:
    """One case of exactly ``events`` events, each decided and recorded by the real Case rules (in memory).

    An incapacity opened by its health fund, a vocational rehabilitation project proposed and approved, then one
    report per period: training hours attended, every tenth period the project's costs. The periods follow each
    other (at most 28 days each) up to the generator's last date, so the count is bounded by the days available
    (about 3,000).
    """
    from services.intake.application import IntakeApplication
    from services.intake.decide import Rejection
    from shared.infra.store import MsgspecMapper, NullTranscoder

    if events < 4:
        raise ValueError("the long case needs at least 4 events (opening, proposal, approval, one period), "
                         f"not {events}")
    rng = random.Random(seed)
    start = date(2017, 1, 9)
    proposed = start + timedelta(days=200)
    approved = proposed + timedelta(days=30)
    first = approved + timedelta(days=7)
    periods = events - 3
    span = (LATEST - first).days + 1
    if periods > span:
        raise ValueError(f"the long case holds at most {span + 3} events (one period a day from {first} to {LATEST})")
    length = max(1, min(28, span // periods))
    memory = {"PERSISTENCE_MODULE": "eventsourcing.popo", "MAPPER_TOPIC": get_topic(MsgspecMapper),
              "TRANSCODER_TOPIC": get_topic(NullTranscoder)}
    intake = IntakeApplication(env=memory)

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    opening = r.IncapacityReported(
        report_id=uid(), insz=insz(rng), enterprise_number=enterprise_number(rng), staff_count=80,
        health_fund=FUND.id, occupational_health_service=enterprise_number(rng), start_date=start,
        cause=r.Cause.ILLNESS,
    )
    case_id = intake.submit(FUND, opening, NOW).case_id
    reports: list[r.Report] = [
        r.VocationalRehabilitationProposed(report_id=uid(), case_id=case_id, proposed_on=proposed),
        r.VocationalRehabilitationApproved(report_id=uid(), case_id=case_id, approved_on=approved),
    ]
    for index in range(periods):
        begin = first + timedelta(days=index * length)
        end = begin + timedelta(days=length - 1)
        if index % 10 == 9:
            reports.append(r.RehabilitationCostsReported(
                report_id=uid(), case_id=case_id, incurred_on=end, cost_kind=rng.choice(list(r.CostKind)),
                amount=Decimal(rng.randint(1_000, 40_000)) / 100))
        else:
            reports.append(r.TrainingHoursAttended(
                report_id=uid(), case_id=case_id, period_start=begin, period_end=end,
                hours=Decimal(min(24 * length, rng.randint(4, 60)))))
    for number, report in enumerate(reports, start=2):
        try:
            intake.submit(FUND, report, NOW)
        except Rejection as exc:
            raise RuntimeError(f"the rules refused report {number} of the long case ({r.tag_of(report)}): "
                               f"{exc}") from exc
    history = intake.case_events(case_id)
    assert len(history) == events, f"the long case holds {len(history)} events, not {events}"
    return history


# --- measurements ---------------------------------------------------------------------------------------------


@dataclass
class Timings:
    label: str
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def p95_ms(self) -> float:
        if len(self.seconds) < 2:
            return self.seconds[0] * 1000
        return statistics.quantiles(self.seconds, n=20, method="inclusive")[18] * 1000


def _time(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _raw_case(auditor: Any, case_id: uuid.UUID) -> int:
    """The case's rows from the intake store (``select_events``) and the mapper's msgspec decode of each."""
    app = auditor.stores.intake
    rows = app.recorder.select_events(case_id)
    for stored in rows:
        app.mapper.to_domain_event(stored)
    return len(rows)


def replay_bench(auditor: Any, case_id: uuid.UUID, runs: int, progress: Any) -> tuple[Timings, list[Timings], int]:
    """The raw read and each auditor question over the long case, ``runs`` times each, alternating."""
    events = _raw_case(auditor, case_id)
    latest = auditor.as_of(case_id, version=events)
    middle = auditor.history(case_id)[events // 2].recorded_at
    item = (latest.ledger or latest.deadlines or [{"id": None}])[-1]["id"]
    questions: list[tuple[str, Callable[[], Any]]] = [
        ("audit history", lambda: auditor.history(case_id)),
        (f"audit asof --version {events}", lambda: auditor.as_of(case_id, version=events)),
        ("audit asof --time (half-way)", lambda: auditor.as_of(case_id, time=middle)),
    ]
    if item is not None:
        questions.append(("audit explain (a ledger entry)" if latest.ledger else "audit explain (a deadline)",
                          lambda: auditor.explain(case_id, str(item))))
    questions.append(("audit verify CASE", lambda: auditor.verify(case_id)))
    raw = Timings("raw: select + msgspec decode of the case's events", [])
    timed = [Timings(label, []) for label, _ in questions]
    task = progress.add_task(f"replaying one case of {events} events ({runs} runs)", total=runs)
    for _ in range(2):  # warm-up: caches, compiled patterns, SQLite pages
        _raw_case(auditor, case_id)
        for _, fn in questions:
            fn()
    for run in range(runs):
        raw.seconds.append(_time(lambda: _raw_case(auditor, case_id)))
        for timing, (_, fn) in zip(timed, questions, strict=True):
            timing.seconds.append(_time(fn))
        progress.update(task, completed=run + 1)
    return raw, timed, events


def raw_verify_read(auditor: Any, progress: Any) -> tuple[float, int, int]:
    """The events ``verify`` reads, read raw: the case ids from the intake store's notification log, then each
    case's rows in the intake, deadlines and benefits stores, selected and msgspec-decoded. (seconds, cases,
    events)."""
    from services.audit.stores import CASE_EVENT_TOPIC

    stores = auditor.stores
    task = progress.add_task("raw: select + decode every case's events in the three stores", total=None)
    started = time.perf_counter()
    seen: dict[Any, None] = {}
    position = 1
    while page := stores.intake.recorder.select_notifications(position, 2000):
        for n in page:
            if n.topic == CASE_EVENT_TOPIC:
                seen.setdefault(n.originator_id, None)
        position = page[-1].id + 1
    progress.update(task, total=len(seen))
    read = 0
    for done, case_id in enumerate(seen, start=1):
        case_uuid = case_id if isinstance(case_id, uuid.UUID) else uuid.UUID(str(case_id))
        for name in ("intake", *DERIVED):
            app = stores.app(name)
            if app is None:
                continue
            originator = case_uuid if name == "intake" else app.derived_id(case_uuid)
            for stored in app.recorder.select_events(originator):
                app.mapper.to_domain_event(stored)
                read += 1
        if done % 200 == 0:
            progress.update(task, completed=done)
    progress.update(task, completed=len(seen))
    return time.perf_counter() - started, len(seen), read


def _rebuild(settings: Settings, service: str) -> float:
    """What ``reintegration <service> rebuild`` runs over an empty store (no NATS involved), timed."""
    from reintegration import operate

    module = __import__(f"services.{service}.application", fromlist=["x"])
    started = time.perf_counter()
    operate.rebuild(getattr(module, f"build_{service}"), settings, service, fresh=False, start=1)
    return time.perf_counter() - started


# --- the command ----------------------------------------------------------------------------------------------


def run_audit_bench(*, cases: int, events: int, data_dir: Path | None) -> None:
    from services.audit import Auditor

    verified_cases = audit_cases(cases)
    base = _base_dir(data_dir)
    # No NATS: the rebuild reads and writes SQLite only (an empty store needs no --fresh, so no stream is purged).
    settings = Settings(data_dir=base / "data")
    with _progress() as progress:
        histories = build_histories(verified_cases, progress) if verified_cases else []
        long_case = long_history(events)
        case_id = long_case[0].case_id
        log = interleave([*histories, long_case])
        bases = min(BASE_SCRIPTS, verified_cases)
        del histories
        total = len(log)
        write_intake(settings, log, progress)
        del log
    rebuild_s = {service: _rebuild(settings, service) for service in DERIVED}
    with Auditor(settings) as auditor, _progress() as progress:
        seal_s = _time(auditor.seal)
        raw, questions, replayed = replay_bench(auditor, case_id, REPLAY_RUNS, progress)
        raw_s, raw_cases, raw_events = raw_verify_read(auditor, progress)
        task = progress.add_task("audit verify over every case", total=None)
        started = time.perf_counter()
        report = auditor.verify_all(lambda done, all_: progress.update(task, completed=done, total=all_))
        verify_s = time.perf_counter() - started

    table = Table("measure", "reintegration", "raw baseline", "ratio", title="reintegration bench audit")
    for timing in questions:
        table.add_row(f"{timing.label}, one case of {replayed} events: ms median / p95",
                      f"{timing.median_ms:,.1f} / {timing.p95_ms:,.1f}",
                      f"{raw.median_ms:,.2f} / {raw.p95_ms:,.2f} (select + decode)",
                      f"{timing.median_ms / raw.median_ms:,.1f}x" if raw.median_ms else "n/a")
    verify_rate, raw_rate = report.cases / verify_s, raw_cases / raw_s
    table.add_row(f"audit verify: cases/s over {report.cases:,} cases", f"{verify_rate:,.0f}",
                  f"{raw_rate:,.0f} (select + decode of {raw_events:,} events in 3 stores)",
                  _ratio(verify_rate, raw_rate))
    table.add_row(f"audit verify: seconds for {report.cases:,} cases", f"{verify_s:,.2f}", f"{raw_s:,.2f}",
                  f"{verify_s / raw_s:,.0f}x" if raw_s else "n/a")
    table.add_row("audit verify: ms per case", f"{verify_s / report.cases * 1000:,.2f}",
                  f"{raw_s / raw_cases * 1000:,.3f}", "")
    counts = ", ".join(f"{n:,} {status}" for status, n in report.counts.items() if n)
    table.add_row("audit verify: result", f"{counts}{'' if report.ok else ' (DIFFERENCES)'}", "", "")
    table.add_row("setup: audit seal of every chain (s)", f"{seal_s:,.1f}", "", "")
    for service, seconds in rebuild_s.items():
        table.add_row(f"setup: {service} rebuild of {total:,} events (s)", f"{seconds:,.1f}", "", "")
    console.print(table)
    if not report.ok:
        keep(base)  # the stores that did not verify stay for a look
    capped = (f"{verified_cases:,} of the {cases:,} cases requested (capped at {audit_cases(10**12):,}: "
              f"AUDIT_MAX_CASES, or REINTEGRATION_BENCH_AUDIT_CASES)" if verified_cases < cases
              else f"all {cases:,} cases requested")
    console.print(
        f"Replay: one case of {replayed} events (rehabilitation with training-hour reports), each question "
        f"{REPLAY_RUNS} times beside the raw read. verify: {capped} (copies of {bases} generated histories) plus the "
        f"long case, {total:,} events written, rebuilt into the deadlines and benefits stores and sealed; SQLite "
        f"stores; {_cores()}; {data_note(base)}."
    )
    if not report.ok:
        raise SystemExit("audit verify found differences: see the table")


__all__ = ["AUDIT_MAX_CASES", "audit_cases", "long_history", "run_audit_bench"]
