"""Operator and case-worker commands over the derived services: show, rebuild, simulate, dead letters."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shared.events.envelope import CaseEvent
from shared.infra.derived import DerivedApplication, Outcome
from shared.infra.settings import Settings
from shared.infra.store import logged_events, missing_store, read_only_env, store_exists
from shared.infra.telemetry import REBUILD_DONE, REBUILD_TOTAL, Telemetry

console = Console()


def intake_log(settings: Settings, start: int = 1, batch: int = 1000) -> Iterator[tuple[int, CaseEvent]]:
    """Every recorded Case event from the intake store's own notification log (no NATS), in order."""
    from services.intake.application import build_intake

    intake = build_intake(settings)
    try:
        yield from logged_events(intake, start, batch)
    finally:
        intake.close()


def intake_size(settings: Settings) -> int:
    from services.intake.application import build_intake

    intake = build_intake(settings)
    try:
        return intake.recorder.max_notification_id() or 0
    finally:
        intake.close()


def drop_store(settings: Settings, service: str) -> None:
    """Delete a derived service's store (its SQLite file, or its PostgreSQL schema) before a fresh rebuild."""
    if settings.store == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            (settings.data_dir / f"{service}.sqlite{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    from shared.infra.store import postgres_env

    p = postgres_env(settings.postgres_url or "")
    with psycopg.connect(dbname=p["POSTGRES_DBNAME"], host=p["POSTGRES_HOST"], port=p["POSTGRES_PORT"],
                         user=p["POSTGRES_USER"], password=p["POSTGRES_PASSWORD"] or None, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{service}" CASCADE')


#: The streams a derived service publishes into, which a fresh rebuild publishes again from position 1.
OUTPUT_STREAMS = {"deadlines": ["DEADLINES", "TIMERS"], "benefits": ["BENEFITS"]}


def purge_streams(settings: Settings, service: str) -> list[str]:
    """Purge the service's output streams (its rebuilt store will publish everything again); the names purged."""
    import asyncio

    import nats.js.errors

    from .connect import connect_once

    async def purge() -> list[str]:
        nc = await connect_once(settings, timeout=2)
        try:
            js = nc.jetstream()
            done = []
            for stream in OUTPUT_STREAMS[service]:
                try:
                    await js.purge_stream(stream)
                    done.append(stream)
                except nats.js.errors.NotFoundError:
                    pass
            return done
        finally:
            await nc.close()

    return asyncio.run(purge())


def rebuild(app_factory: Any, settings: Settings, service: str, *, fresh: bool, start: int) -> dict[Outcome, int]:
    """Apply the intake store's log to a derived service, with progress; idempotent, resumable.

    ``fresh`` drops the service's store first. Its output streams must then start over too: they are purged when
    the NATS server is reachable, otherwise the command says which to purge (the relay refuses a stream that is
    ahead of its store, so nothing is published twice or skipped meanwhile). A rebuild that starts on an empty
    store records, as its first event, a new generation of the store (:func:`mark_generation`).
    """
    if fresh:
        drop_store(settings, service)
        try:
            purged = purge_streams(settings, service)
            console.print(f"dropped the {service} store; purged {', '.join(purged) or 'no stream (none yet)'}")
        except Exception as exc:  # noqa: BLE001 - rebuilding needs no NATS; say what is left to do
            console.print(
                f"[yellow]dropped the {service} store; NATS at {settings.nats_url} not reachable ({exc!r}): purge "
                f"stream(s) {', '.join(OUTPUT_STREAMS[service])} before the {service} service starts again[/]"
            )
    app: DerivedApplication[Any] = app_factory(settings)
    total = intake_size(settings)
    columns = (TextColumn(f"rebuilding {service}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    done = REBUILD_DONE.labels(service)
    REBUILD_TOTAL.labels(service).set(total)
    done.set(max(0, start - 1))

    def advanced(task: Any, position: int) -> None:
        progress.update(task, completed=position)
        done.set(position)

    metrics = serve_metrics(f"rebuild-{service}", settings)
    try:
        mark_generation(app, service, start)
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(service, total=total, completed=max(0, start - 1))
            counts = app.rebuild_from(
                intake_log(settings, start),
                now=lambda: datetime.now(UTC),
                progress=lambda position, outcome: advanced(task, position),
            )
    finally:
        app.close()
        if metrics is not None:
            metrics.close()
    console.print(
        f"{service}: {counts[Outcome.APPLIED]} applied, {counts[Outcome.DUPLICATE]} already applied, "
        f"{counts[Outcome.GAP] + counts[Outcome.PARKED]} not applicable (gap or parked) of {total} events"
    )
    return counts


def serve_metrics(name: str, settings: Settings) -> Telemetry | None:
    """A long command's own ``/metrics`` (its progress) when ``REINTEGRATION_METRICS_PORT`` asks for one; its
    probes answer from a loop of its own, as the command itself runs without one."""
    if settings.metrics_port is None:
        return None
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="metrics-loop", daemon=True).start()
    metrics = Telemetry(service=name)
    metrics.serve(settings.metrics_port, settings.metrics_address, loop=loop)
    console.print(f"progress served at http://{settings.metrics_address}:{metrics.port}/metrics")
    return metrics


def mark_generation(app: DerivedApplication[Any], service: str, start: int) -> None:
    """On an empty store (a fresh rebuild, or a store deleted by hand), record first that this rebuild makes a new
    generation of it: the audit's next seal then starts a new epoch of the store's hash chains instead of calling
    every rebuilt event tampered with; the chains sealed before stay as history (`audit verify` reports the
    rebuild, with when and who: the operator's login)."""
    import getpass

    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's numeric user)
        who = "unknown"
    marked = app.mark_rebuilt(who, start, datetime.now(UTC))
    if marked is not None:
        console.print(f"a new generation of the {service} store ({marked.generation}, by {who}): the next "
                      "`reintegration audit seal` starts a new epoch of its hash chains")


def reader_env(settings: Settings, service: str) -> dict[str, str] | None:
    """The environment that opens ``service``'s store read-only for an operator's read-only command, or ``None``
    after saying which store is missing and where one probably is: such a command never creates a store."""
    env = read_only_env(settings, service) if store_exists(settings, service) else None
    if env is None:
        console.print(f"[red]{missing_store(settings, service)}[/]")
    return env


def show_deadlines(settings: Settings, case_id: uuid.UUID, as_json: bool) -> int:
    from services.deadlines.application import build_deadlines
    from services.deadlines.views import schedule_view

    if (env := reader_env(settings, "deadlines")) is None:
        return 2
    app = build_deadlines(settings, None, **env)
    try:
        schedule = app.schedule(case_id)
        if schedule is None:
            console.print(f"[yellow]no deadlines recorded for case {case_id}[/]")
            return 1
        view = schedule_view(schedule)
    finally:
        app.close()
    if as_json:
        sys.stdout.write(json.dumps(view, indent=2, default=str) + "\n")
        return 0
    print_deadlines(view["deadlines"], title=f"Deadlines of case {case_id} (after {view['source_version']} events)")
    return 0


def print_deadlines(rows: list[dict[str, Any]], title: str, to: Console | None = None) -> None:
    """Deadlines as a table of short columns (due date, the id `audit explain` takes, rule, regime, state, party),
    each explanation below its row. The state shown and the explanation agree (see
    :func:`services.deadlines.views.agreeing`): rows without ``shown_state`` (simulate's, the auditor's) get it here.
    """
    from services.deadlines.views import agreeing

    from .tables import Column, Row, print_table

    columns = [Column("due"), Column("id"), Column("rule", spill=True), Column("regime", spill=True),
               Column("state"), Column("party", spill=True)]
    lines = []
    for row in rows:
        shown = row if "shown_state" in row else {**row, **agreeing(row, row.get("outcome"))}
        state = shown["shown_state"] + (" (overdue then)" if row.get("overdue_then") else "")
        lines.append(Row([str(row["due_on"]), short_id(row["id"]), row["rule"], row["regime"], state, row["party"]],
                         below=[shown["explanation"]]))
    print_table(to or console, columns, lines, title=title)


def short_id(item_id: Any) -> str:
    """The first 8 characters of an item id: what ``audit explain CASE ID`` takes (any unique prefix of 4 or more)."""
    return str(item_id)[:8]


def show_ledger(settings: Settings, case_id: uuid.UUID, as_json: bool) -> int:
    from services.benefits.application import build_benefits
    from services.benefits.handlers import answer
    from shared.events.queries import Query

    if (env := reader_env(settings, "benefits")) is None:
        return 2
    app = build_benefits(settings, None, **env)
    try:
        view = answer(app, Query(case_id=case_id))
    finally:
        app.close()
    if "error" in view:
        console.print(f"[yellow]{view['error']}[/]")
        return 1
    if as_json:
        sys.stdout.write(json.dumps(view, indent=2, default=str) + "\n")
        return 0
    print_ledger(view["entries"], title=f"Ledger of case {case_id} (after {view['source_version']} events)",
                 events=view.get("events"))
    return 0


#: How a table names a rule's status other than C (confirmed).
STATUS_MARKS = {"U": "uncertain", "A": "announced, never enacted"}


def ledger_figure(row: dict[str, Any]) -> str:
    """What an entry moves, for a table: an amount in euro, a percentage of its base (rounded for reading: the
    exact value is in ``--json``), the full base restored or exempted, or nothing (a notice)."""
    from decimal import Decimal

    from shared.rulebook.benefits_ledger import show_euro, show_percent

    if row.get("amount") is not None:
        return show_euro(Decimal(str(row["amount"])))
    base = row.get("base")
    if row.get("percentage") is not None:
        figure = show_percent(Decimal(str(row["percentage"])))
        return f"{figure} of the {base}" if base else figure
    if row["kind"] == "restoration" and base:
        return f"the full {base}"
    if row["kind"] == "guaranteed_wage_exemption" and base:
        return f"no {base} owed"
    return "-"


def print_ledger(rows: list[dict[str, Any]], title: str, events: dict[str, dict[str, Any]] | None = None,
                 to: Console | None = None) -> None:
    """The ledger as a table, in recording order: number, the id `audit explain` takes, period, kind, figure, rule,
    regime, who receives / who pays; below each row its explanation, legal basis and causing events.

    Entries are never edited, so a ledger may hold entries no longer in force: such a row says ``REVERSED by #n``
    and its reversal says ``reverses #m``, so that the table can be read without adding up the rows.
    ``events`` (event id -> version, type) names the causing events; without it their ids are shown.
    """
    from .tables import Column, Row, print_table

    number = {str(row["id"]): n for n, row in enumerate(rows, start=1)}
    reversed_by = {str(row["reverses"]): number[str(row["id"])] for row in rows
                   if row["kind"] == "reversal" and row.get("reverses")}
    columns = [Column("#", right=True), Column("id"), Column("period", wrap=True), Column("kind"),
               Column("figure", wrap=True), Column("rule", spill=True), Column("regime", spill=True),
               Column("to / from", wrap=True, spill=True)]
    lines = []
    for n, row in enumerate(rows, start=1):
        kind, style = row["kind"], None
        if row["kind"] == "reversal" and row.get("reverses"):
            target = number.get(str(row["reverses"]))
            kind = f"reversal\nreverses {f'#{target}' if target else short_id(row['reverses'])}"
            style = "italic"
        elif str(row["id"]) in reversed_by:
            kind = f"{row['kind']}\nREVERSED by #{reversed_by[str(row['id'])]}"
            style = "dim"
        rule = row["rule"] + (f"\n({STATUS_MARKS[row['status']]})" if row.get("status") in STATUS_MARKS else "")
        period = f"{row['period_start']} .. {row.get('period_end') or '(open)'}"
        causes = ", ".join(_event_label(str(e), events) for e in row.get("causing_events") or ())
        lines.append(Row([str(n), short_id(row["id"]), period, kind, ledger_figure(row), rule, row["regime"] or "-",
                          f"{row['beneficiary']} / {row['payer']}"],
                         below=[row["explanation"], f"legal basis: {row['legal_basis']}",
                                f"caused by: {causes or '-'}"], style=style))
    print_table(to or console, columns, lines, title=title)


def _event_label(event_id: str, events: dict[str, dict[str, Any]] | None) -> str:
    """``v3 partial_resumption_authorised.v1 (2024-01-15)`` when the event is known, else its id."""
    event = (events or {}).get(event_id)
    if event is None:
        return event_id
    return f"v{event['version']} {event['type']} ({event['effective_date']})"


def print_contribution(result: Any, data: Any, as_json: bool) -> int:
    """``benefits contribution``: the employer responsibility contribution of one quarter, with its rule, legal
    basis, regime and each threshold against the employer's figure; as a table or JSON (exact decimals as strings).
    Exit code 0 either way: "not due" is an answer, not an error."""
    from decimal import Decimal

    from rich.text import Text

    from shared.rulebook.benefits_ledger import show_euro, show_percent

    from .tables import wrap

    if as_json:
        out = {"input": msgspec.to_builtins(data), "result": msgspec.to_builtins(result)}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    label = f"Q{result.quarter} {result.year}"
    rows: list[tuple[str, str | Text]] = []
    due = "[bold]due[/]" if result.due else "not due"
    rows.append(("contribution", f"{due}: {show_euro(result.amount)}" if result.amount is not None else due))
    if result.percentage is not None:
        rows.append(("computed as" if result.due else "if it were due",
                     Text(f"{show_percent(result.percentage)} of the previous quarter's wages of "
                          f"{show_euro(Decimal(data.previous_quarter_wages))}")))
    status = f" ({STATUS_MARKS[result.status.value]})" if result.status and result.status.value in STATUS_MARKS else ""
    rows += [("rule", Text(f"{result.rule or 'none in force'}{status}")),
             ("legal basis", Text(result.legal_basis or "-")), ("regime", Text(result.regime or "-"))]
    for t in result.thresholds:
        mark = "[green]met[/]" if t.met else "[red]not met[/]"
        rows.append((f"threshold {t.name}", f"{mark}: {_plain_decimal(t.figure)} (at least "
                                            f"{_plain_decimal(t.at_least)})"))
    rows.append(("explanation", Text(result.explanation)))
    # the value column gets what the names leave of the width, and its text is wrapped here: never inside an amount
    names = max(len(name) for name, _ in rows)
    width = max(20, console.width - names - 7)
    table = Table(title=f"Employer responsibility contribution of {result.enterprise_number}, {label}",
                  show_header=False, show_lines=True)
    table.add_column(no_wrap=True)
    table.add_column(width=width)
    for name, value in rows:
        table.add_row(name, Text("\n".join(wrap(value.plain, width))) if isinstance(value, Text) else value)
    console.print(table)
    return 0


def _plain_decimal(value: Any) -> str:
    from shared.rulebook.benefits_ledger import DECIMAL_CONTEXT

    return format(value.normalize(DECIMAL_CONTEXT), "f")


def announced_rule_ids() -> dict[str, str]:
    """Ids of the rulebook's announced, never-enacted rules (status A), each with its legal basis: what
    ``simulate --enable-announced`` and ``REINTEGRATION_ENABLED_ANNOUNCED`` may switch on."""
    from shared.rulebook import default_rulebook
    from shared.rulebook.benefits import BenefitRule
    from shared.rulebook.model import Status

    return {rule.id: rule.legal_basis for rule in default_rulebook().rules(BenefitRule)
            if isinstance(rule, BenefitRule) and rule.status is Status.ANNOUNCED}


def simulation_options(settings: Settings, enterprise_number: str | None, *, enable_announced: tuple[str, ...] = (),
                       roll_forward: bool | None = None) -> tuple[Any, Any]:
    """The deadline policy and ledger options a deployed service with ``settings`` applies to a case of
    ``enterprise_number`` (roll-forward, the employer's own policies, the announced sanctions it enables), with the
    command line's additions: what-if answers must agree with what the services will record."""
    from shared.rulebook import default_rulebook
    from shared.rulebook.benefits import Options
    from shared.rulebook.deadlines import Policy, case_policy, parse_employer_policies

    deployed = Policy(roll_forward=settings.roll_forward if roll_forward is None else roll_forward)
    policy = (case_policy(deployed, parse_employer_policies(settings.employer_policies, default_rulebook()),
                          enterprise_number)
              if enterprise_number else deployed)
    options = Options(enabled_announced=frozenset(settings.enabled_announced) | frozenset(enable_announced))
    return policy, options


def simulate(path: Path, as_json: bool, today: str | None, settings: Settings | None = None, *,
             enable_announced: tuple[str, ...] = (), roll_forward: bool | None = None,
             prior_premium: bool = False) -> int:
    """Reads reports (JSON lines, one or more cases) and prints the deadlines and the ledger of each case, without a
    server, under the deployment's settings (``settings``, from the environment by default) plus the command
    line's. Cases are computed in the order the file opens them, so the once-per-worker-and-employer premium goes
    to the first case of a worker and employer that earns it, as the benefits service's premium register does;
    ``prior_premium``: that premium was already received in a case outside the file."""
    from services.benefits.views import cited_events
    from shared.events import reports as r
    from shared.events.codec import ContractError
    from shared.rulebook import default_rulebook
    from shared.rulebook.benefits import compute_ledger, holds_premium, premium_rule_ids
    from shared.rulebook.deadlines import compute_deadlines

    from .simulation import run_simulation

    settings = settings or Settings.from_env()
    try:
        cases, rejected = run_simulation(path.read_text().splitlines(), today)
    except ContractError as exc:
        console.print(f"[red]{path}: {exc.message}[/] (field {exc.field})")
        return 2
    rulebook = default_rulebook(starts=settings.rule_starts)
    premiums = premium_rule_ids(rulebook)
    holders: set[tuple[str, str]] = set()  # (worker, employer) whose premium a case of the file received
    computed = []
    for case_id, events in cases:
        opening = events[0].report
        assert isinstance(opening, r.IncapacityReported)
        pair = (opening.insz, opening.enterprise_number)
        policy, options = simulation_options(settings, opening.enterprise_number, enable_announced=enable_announced,
                                             roll_forward=roll_forward)
        prior = prior_premium or pair in holders
        ledger = compute_ledger(events, rulebook, options, prior_premium=prior)
        if holds_premium(ledger, premiums):
            holders.add(pair)
        computed.append((case_id, events, compute_deadlines(events, rulebook, policy), ledger, policy, prior))
    enabled = sorted(frozenset(settings.enabled_announced) | frozenset(enable_announced))
    if as_json:
        sys.stdout.write(json.dumps({
            "cases": [{"case_id": case_id, "events": msgspec.to_builtins(events),
                       "deadlines": msgspec.to_builtins(deadlines), "ledger": msgspec.to_builtins(ledger),
                       "options": {"policy": policy.id, "roll_forward": policy.roll_forward,
                                   "employer_policies": sorted(policy.employer_policies),
                                   "enabled_announced": enabled, "prior_premium": prior}}
                      for case_id, events, deadlines, ledger, policy, prior in computed],
            "rejected": rejected,
        }, indent=2, default=str) + "\n")
        return 0 if not rejected else 1
    for refusal in rejected:
        where = ", ".join(f"{k} {refusal[k]}" for k in ("field", "rule", "regime") if refusal[k])
        console.print(f"[red]line {refusal['line']} rejected[/] ({refusal['code']}): {refusal['message']}"
                      + (f" ({where})" if where else ""))
    console.print(f"{len(computed)} case(s), {sum(len(c[1]) for c in computed)} reports recorded; announced "
                  f"sanctions enabled: {', '.join(enabled) or 'none'}")
    for n, (case_id, events, deadlines, ledger, policy, prior) in enumerate(computed, start=1):
        label = f"case {n} ({case_id})" if len(computed) > 1 else f"case {case_id}"
        known = "; the premium was already received in another case" if prior else ""
        console.print(f"{label}: deadline policy {policy.id}{known}")
        print_deadlines(msgspec.to_builtins(deadlines), title=f"Deadlines, {label}")
        print_ledger(msgspec.to_builtins(ledger), title=f"Ledger, {label}", events=cited_events(ledger, events))
    return 0 if not rejected else 1
