"""``reintegration demo``: the system on its embedded default, fed a seeded set of cases through real intake
subjects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from lab.client import request
from lab.generator import Generator, Script, encode_report
from lab.probes import refusal
from reintegration.runtime import Runtime
from shared.embedded.waiting import WaitTimeoutError, until, wait_until
from shared.events.replies import Accepted, Rejected
from shared.events.subjects import TRAJECTORY_STREAM, intake_subject
from shared.infra.settings import Settings, read_system_file
from shared.rulebook.calendar import BRUSSELS

console = Console()


@dataclass
class Tally:
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_regime: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    surprises: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def record(self, script: Script, label: str, expect: str, reply: Accepted | Rejected) -> None:
        got = "accepted" if isinstance(reply, Accepted) else reply.code.value
        if isinstance(reply, Accepted):
            self.accepted += 1
            self.by_regime[reply.regime or "(none)"] += 1
        else:
            self.rejected[got] += 1
            self.examples.setdefault(got, f"{script.kind} / {label}: {reply.message}")
        if got != expect:
            self.surprises.append(f"{script.kind} / {label}: expected {expect}, got {got}"
                                  + ("" if isinstance(reply, Accepted) else f" ({reply.message})"))


async def send(nc: nats.NATS, subject: str, payload: bytes, tally: Tally, timeout: float = 10) -> Accepted | Rejected:
    """Request-reply with the party's retry rule: same bytes again on timeout or a retryable rejection."""
    answer = await request(nc, subject, payload, timeout=timeout)
    tally.latencies.append(answer.seconds)
    return answer.reply


async def play(nc: nats.NATS, script: Script, tally: Tally) -> None:
    tally.by_kind[script.kind] += 1
    reply = await send(nc, intake_subject(script.opener), encode_report(script.opening), tally)
    tally.record(script, "incapacity reported", script.open_expect, reply)
    if not isinstance(reply, Accepted):
        return
    case_id = reply.case_id
    if script.kind == "company trajectory" and len(script.steps) > 1:
        # Parties resend: the same report twice must be stored once and answered the same way.
        again = await send(nc, intake_subject(script.opener), encode_report(script.opening), tally)
        if isinstance(again, Accepted) and again.duplicate and again.event_ids == reply.event_ids:
            tally.duplicates += 1
        else:
            tally.surprises.append(f"resent report not recognised as a duplicate: {again}")
    for step in script.steps:
        reply = await send(nc, intake_subject(step.party), encode_report(step.build(case_id)), tally)
        tally.record(script, step.label or "step", step.expect, reply)


async def feed(nats_url: str, scripts: list[Script], concurrency: int = 16, **options: Any) -> Tally:
    """Play the scripts through intake; ``options`` (credentials) go to ``nats.connect``: the runtime's, which may
    report for every party (dev only)."""
    tally = Tally()
    nc = await nats.connect(nats_url, name="reintegration-demo", **options)
    gate = asyncio.Semaphore(concurrency)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("feeding cases through intake", total=len(scripts))

        async def one(script: Script) -> None:
            async with gate:
                await play(nc, script, tally)
                progress.advance(task)

        await asyncio.gather(*(one(s) for s in scripts))
    await nc.close()
    return tally


async def wait_for_relay(nats_url: str, expected: int, timeout: float = 60, **options: Any) -> int:
    """Until TRAJECTORY holds ``expected`` messages; how many it holds."""
    nc = await nats.connect(nats_url, **options)
    js = nc.jetstream()

    async def held() -> int:
        return int((await js.stream_info(TRAJECTORY_STREAM)).state.messages)

    try:
        return await until(held, timeout=timeout, interval=0.2, what=f"{expected} messages in {TRAJECTORY_STREAM}",
                           ready=lambda count: count >= expected)
    except WaitTimeoutError as exc:
        return int(exc.last)
    finally:
        await nc.close()


def stored_events(settings: Settings) -> int:
    from services.intake.application import build_intake

    app = build_intake(settings)
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


#: Written into the demo's folder: a later demo may clear a folder holding it, and no other.
DEMO_MARKER = ".reintegration-demo"


def fresh_demo_folder(data_dir: Path) -> None:
    """The demo checks every reply against a fresh system: start from an empty folder. A folder an earlier demo
    left is cleared; any other non-empty folder is refused rather than touched."""
    import shutil

    running = read_system_file(data_dir)
    if running is not None and running.running:
        raise SystemExit(f"a system runs with data in {data_dir} (pid {running.pid}): stop it before another demo")
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / DEMO_MARKER).exists():
            raise SystemExit(f"{data_dir} holds data that no demo wrote: give the demo an empty or new --data-dir")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).write_text("written by `reintegration demo`; the next demo clears this folder\n")


def run_demo(*, data_dir: Path, cases: int, seed: int, port: int, keep_running: bool) -> int:
    fresh_demo_folder(data_dir)
    generator = Generator(seed)
    scripts = generator.scripts(cases, tour_first=True)
    runtime = Runtime(Settings.from_env(data_dir=data_dir), nats_port=port, started_by="demo")
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a demo like Ctrl-C: every process it started
    try:
        with console.status("starting nats-server, event store and services ..."):
            settings = runtime.start()
            runtime.wait_ready()
        console.print(f"system up in {time.perf_counter() - started:.1f} s: NATS at {settings.nats_url}")
        t0 = time.perf_counter()
        tally = asyncio.run(feed(settings.nats_url, scripts, **settings.nats_options()))
        elapsed = time.perf_counter() - t0
        events = stored_events(settings)
        with console.status("waiting for the relay to publish every recorded event ..."):
            in_stream = asyncio.run(wait_for_relay(settings.nats_url, events, **settings.nats_options()))
        report(tally, cases, elapsed, events, in_stream, settings)
        with console.status("waiting for deadlines and benefits to apply every event ..."):
            caught_up = wait_for_derived(settings, runtime)
        derived_report(settings, caught_up)
        own_feed = asyncio.run(employer_report(settings, runtime))
        verified = audit_report(settings)
        answered = asyncio.run(auditor_report(settings, runtime))
        if keep_running:
            console.print(f"system left running; Ctrl-C (or kill {os.getpid()}) stops it. Operator commands: "
                          f"eval \"$(reintegration env --data-dir {data_dir})\", then e.g. `reintegration "
                          "dead-letters list`, `reintegration audit verify`")
            with contextlib.suppress(KeyboardInterrupt):
                runtime.supervisor.supervise_until(lambda: False)
        return 1 if tally.surprises or in_stream != events or not caught_up or not verified or not own_feed \
            or not answered else 0
    finally:
        runtime.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def recorded_versions(settings: Settings) -> dict[Any, int]:
    """Each case's last recorded version, from the intake store."""
    from reintegration.operate import intake_log

    return {event.case_id: event.version for _position, event in intake_log(settings)}


def applied_everywhere(settings: Settings, pending: dict[Any, int]) -> bool:
    """Drop from ``pending`` (case -> version) the cases both derived services have applied up to that version, as
    their own stores show; whether none is left."""
    from services.benefits.application import build_benefits
    from services.deadlines.application import build_deadlines

    deadlines, benefits = build_deadlines(settings), build_benefits(settings)
    try:
        for case, version in list(pending.items()):
            schedule, ledger = deadlines.schedule(case), benefits.ledger(case)
            if schedule and ledger and schedule.source_version >= version and ledger.source_version >= version:
                del pending[case]
    finally:
        deadlines.close()
        benefits.close()
    return not pending


def wait_for_derived(settings: Settings, runtime: Runtime, timeout: float = 120) -> bool:
    """Until both derived services have applied every recorded event of every case (from their own stores), then
    every deadline already past due has its timer fired and its outcome recorded."""
    from services.deadlines.application import build_deadlines

    versions = recorded_versions(settings)
    pending = dict(versions)
    today = datetime.now(UTC).astimezone(BRUSSELS).date()

    def applied() -> bool:
        runtime.supervise_once()
        return not pending or applied_everywhere(settings, pending)

    def fired() -> bool:
        deadlines = build_deadlines(settings)
        try:
            waiting = 0
            for case in versions:
                schedule = deadlines.schedule(case)
                waiting += sum(1 for d in (schedule.open_deadlines() if schedule else ()) if d.due_on < today)
        finally:
            deadlines.close()
        if waiting:
            runtime.supervise_once()
        return not waiting

    try:  # one budget for both: every event applied first, then every past-due timer fired
        wait_until(lambda: applied() and fired(), timeout=timeout, interval=0.5,
                   what="deadlines and benefits applied every event, then every past-due deadline's timer fired")
    except WaitTimeoutError:
        return False
    return True


def derived_report(settings: Settings, caught_up: bool) -> None:
    """What the derived services made of the demo: deadlines by outcome, ledger entries by kind."""
    from reintegration.operate import intake_log
    from services.benefits.application import build_benefits
    from services.deadlines.application import build_deadlines

    cases = {event.case_id for _position, event in intake_log(settings)}
    deadlines, benefits = build_deadlines(settings), build_benefits(settings)
    states: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    #: (kind, rule) of the entries in force: one kind (premium) covers the employer's return-to-work premium and
    #: the worker's rehabilitation premiums, so the summary names the rule too.
    kinds: Counter[tuple[str, str]] = Counter()
    totals: dict[tuple[str, str], Decimal] = {}
    employer_entries = 0
    try:
        for case in cases:
            schedule = deadlines.schedule(case)  # type: ignore[arg-type]
            for deadline in (schedule.deadlines.values() if schedule else ()):
                fired = schedule.outcomes.get(deadline.id) if schedule else None
                state = fired.outcome if fired else deadline.state
                states[state + (" late" if deadline.late else "")] += 1
                rules[deadline.rule] += 1
            ledger = benefits.ledger(case)  # type: ignore[arg-type]
            for entry in (ledger.effective if ledger else ()):
                key = (entry.kind.value, entry.rule)
                kinds[key] += 1
                if entry.amount is not None:
                    totals[key] = totals.get(key, Decimal(0)) + entry.amount
                employer_entries += entry.concerns_employer
    finally:
        deadlines.close()
        benefits.close()
    if not caught_up:
        console.print("[red]the derived services did not catch up in time[/]")
    table = Table("outcome", "deadlines", title="Deadlines derived (met, missed by a fired timer, open, cancelled)")
    for state, n in states.most_common():
        table.add_row(state, str(n))
    console.print(table)
    top = Table("rule", "deadlines", title="Most frequent deadline rules")
    for rule, n in rules.most_common(8):
        top.add_row(rule, str(n))
    console.print(top)
    from reintegration.tables import Column, Row, print_table

    rows = []
    for (kind, rule), n in sorted(kinds.items(), key=lambda item: (item[0][0], -item[1], item[0][1])):
        total = totals.get((kind, rule))
        rows.append(Row([kind, rule, str(n), f"{total:,.2f}" if total is not None else "(no amount)"]))
    # rule ids whole at any width (the counts go below their row when the line is too narrow)
    print_table(console, [Column("kind"), Column("rule"), Column("entries", right=True, spill=True),
                          Column("total EUR", right=True, spill=True)], rows,
                title="Benefit ledger entries in force, by kind and rule", blank_lines=False)
    recorded = sorted({kind for kind, _ in kinds})
    console.print(f"ledger kinds recorded: {', '.join(recorded) or 'none'}")
    console.print(f"{employer_entries} ledger entries concern the employers and went to their own feeds")


async def employer_report(settings: Settings, runtime: Runtime) -> bool:
    """One employer, with its own credentials, replays its feed: it receives its own workers' updates only, and
    the server refuses it another employer's feed."""
    from shared.events.subjects import EMPLOYER_FEED_PREFIX
    from shared.infra.parties import connect_as

    employers = sorted(n.split(":", 1)[1] for n in runtime.credentials if n.startswith("employer:"))
    if not employers:
        console.print("[yellow]no employer credentials (open server): employer feed not shown[/]")
        return True
    counts = await _feed_counts(settings, employers)
    enterprise = max(employers, key=lambda e: counts.get(e, 0))
    refused: list[str] = []
    nc = await connect_as(runtime.credentials[f"employer:{enterprise}"], settings.nats_url,
                          error_cb=_collector(refused))
    try:
        # The services' outboxes may still be publishing the last steps: replay until the streams held as many
        # messages for the employer after the replay as before it, so that the two counts are of the same feed.
        for _ in range(5):
            received, foreign = await _replay(nc, enterprise)
            before, counts = counts, await _feed_counts(settings, employers)
            if counts.get(enterprise, 0) == before.get(enterprise, 0):
                break
        other = next(e for e in employers if e != enterprise)
        await nc.subscribe(f"{EMPLOYER_FEED_PREFIX}.{other}.>")
        await nc.publish(f"{EMPLOYER_FEED_PREFIX}.{other}.probe", b"")  # a second refusal marks the first's arrival
        with contextlib.suppress(WaitTimeoutError):  # no refusal is reported below
            await until(lambda: bool(refused), timeout=2.5, interval=0.05, what="the server's refusal")
    finally:
        await nc.close()
    ok = received == counts.get(enterprise, 0) and foreign == 0 and bool(refused)
    colour = "green" if ok else "red"
    console.print(
        f"[{colour}]employer {enterprise}, with its own credentials, replayed {received} feed messages "
        f"({counts.get(enterprise, 0)} in the streams for it, {foreign} of other employers); reading employer "
        f"{other}'s feed was refused by the server: {'yes' if refused else 'NO'}[/]"
    )
    return ok


async def _replay(nc: Any, enterprise: str) -> tuple[int, int]:
    """The employer replays its whole feed: (messages received, messages of another employer among them)."""
    from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, EMPLOYER_FEED_PREFIX
    from shared.infra.parties import open_feed

    received, foreign = 0, 0
    for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
        sub = await open_feed(nc, enterprise, stream, consumer="replay")
        while True:
            try:
                batch = await sub.fetch(200, timeout=1)
            except Exception:  # noqa: BLE001 - nats-py's fetch timeout: the replay is complete
                break
            for msg in batch:
                received += 1
                foreign += not msg.subject.startswith(f"{EMPLOYER_FEED_PREFIX}.{enterprise}.")
                await msg.ack()
    return received, foreign


def _collector(refused: list[str]):
    async def note(exc: Exception) -> None:
        if (refused_by_server := refusal(exc)) is not None:
            refused.append(refused_by_server.text)

    return note


async def _feed_counts(settings: Settings, employers: list[str]) -> dict[str, int]:
    from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, EMPLOYER_FEED_PREFIX

    nc = await nats.connect(settings.nats_url, **settings.nats_options())
    counts: dict[str, int] = {}
    try:
        js = nc.jetstream()
        for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
            info = await js.stream_info(stream, subjects_filter=f"{EMPLOYER_FEED_PREFIX}.>")
            for subject, n in (info.state.subjects or {}).items():
                counts[subject.split(".")[2]] = counts.get(subject.split(".")[2], 0) + n
    finally:
        await nc.close()
    return counts


def audit_report(settings: Settings) -> bool:
    """Seal every chain, then verify every case: recomputed deadlines and ledgers against the recorded ones."""
    from services.audit import Auditor

    with Auditor(settings) as auditor, console.status("audit: sealing the hash chains and verifying every case ..."):
        auditor.seal()
        result = auditor.verify_all(None)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()) if n)
    colour = "green" if result.ok else "red"
    console.print(f"[{colour}]audit verify over {result.cases} cases: {counts}[/] ({result.seconds:.1f} s)")
    return result.ok


async def auditor_report(settings: Settings, runtime: Runtime) -> bool:
    """The dev auditor, with its own credentials, asks the audit service over NATS to verify the longest case; the
    disclosure log then holds the question under the name the server authenticated."""
    from reintegration.operate import intake_log
    from services.disclosures.log import build_disclosures
    from shared.infra.parties import AUDIT_PREFIX, connect_as

    auditors = sorted(n for n in runtime.credentials if n.startswith("auditor:"))
    if not auditors:
        console.print("[yellow]no auditor credentials (open server): the audit subjects are not shown[/]")
        return True
    versions: dict[Any, int] = {}
    for _position, event in intake_log(settings):
        versions[event.case_id] = event.version
    case = max(versions, key=lambda c: (versions[c], str(c)))
    nc = await connect_as(runtime.credentials[auditors[0]], settings.nats_url)

    async def ask() -> dict[str, Any]:
        try:
            msg = await nc.request(f"{AUDIT_PREFIX}.verify", json.dumps({"case_id": str(case)}).encode(), timeout=10)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            runtime.supervise_once()  # the audit service may still be (re)starting
            return {}
        answer: dict[str, Any] = json.loads(msg.data)
        return answer

    try:
        reply = await until(ask, timeout=60, interval=0.5, what=f"an answer on {AUDIT_PREFIX}.verify")
    except WaitTimeoutError:
        reply = {}
    finally:
        await nc.close()
    if "answer" not in reply:
        console.print(f"[red]{auditors[0]} asked {AUDIT_PREFIX}.verify over NATS: {reply.get('error', 'no answer')}[/]")
        return False
    log = build_disclosures(settings)
    try:
        records = [r for r in log.records(case_id=case) if r.reference == reply["disclosure"]]
    finally:
        log.close()
    verdict = reply["answer"]
    ok = verdict["status"] == "verified" and reply["asked_by"] == auditors[0] and [r.who for r in records] == [
        auditors[0]]
    console.print(
        f"[{'green' if ok else 'red'}]{auditors[0]}, with its own credentials, asked {AUDIT_PREFIX}.verify over NATS "
        f"about case {case}: {verdict['status']} ({verdict['intake_version']} events); the disclosure log names "
        f"{', '.join(r.who for r in records) or 'nobody'} as the one who asked[/]"
    )
    return ok


def report(tally: Tally, cases: int, elapsed: float, events: int, in_stream: int, settings: Settings) -> None:
    total = tally.accepted + sum(tally.rejected.values())
    console.rule("[bold]reintegration demo")
    console.print(
        f"{cases} cases, {total} reports in {elapsed:.1f} s ({total / elapsed:.0f} reports/s): "
        f"[green]{tally.accepted} accepted[/], [yellow]{sum(tally.rejected.values())} rejected[/], "
        f"{tally.duplicates} resent reports recognised as duplicates"
    )
    kinds = Table("case history", "cases", title="Generated cases")
    for kind, n in tally.by_kind.most_common():
        kinds.add_row(kind, str(n))
    console.print(kinds)
    regimes = Table("regime", "accepted reports", title="Accepted reports by regime of their effective date")
    for regime, n in sorted(tally.by_regime.items()):
        regimes.add_row(regime, str(n))
    console.print(regimes)
    rejections = Table("code", "count", "example", title="Rejected reports and why", show_lines=True)
    for code, n in tally.rejected.most_common():
        rejections.add_row(code, str(n), tally.examples[code])
    console.print(rejections)
    if tally.surprises:
        console.print(f"[red]{len(tally.surprises)} replies differ from what the rules call for:[/]")
        for line in tally.surprises[:20]:
            console.print(f"  {line}")
    else:
        console.print("[green]every reply is the one the rules call for[/]")
    status = "[green]all published[/]" if in_stream == events else "[red]missing events[/]"
    console.print(f"event store: {events} events; TRAJECTORY stream: {in_stream} messages ({status})")
    data = settings.data_dir.resolve()
    console.print(f"data: event store {data / 'intake.sqlite'}, JetStream store {data / 'nats'}, logs {data / 'logs'}")
