"""Operator and case-worker commands over the derived services: show, rebuild, simulate, dead letters."""

from __future__ import annotations

import json
import sys
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
from shared.infra.store import logged_events

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

    import nats

    async def purge() -> list[str]:
        nc = await asyncio.wait_for(
            nats.connect(settings.nats_servers, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1,
                         **settings.nats_options()),
            timeout=3,
        )
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
    ahead of its store, so nothing is published twice or skipped meanwhile).
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
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(service, total=total, completed=max(0, start - 1))
            counts = app.rebuild_from(
                intake_log(settings, start),
                now=lambda: datetime.now(UTC),
                progress=lambda position, outcome: progress.update(task, completed=position),
            )
    finally:
        app.close()
    console.print(
        f"{service}: {counts[Outcome.APPLIED]} applied, {counts[Outcome.DUPLICATE]} already applied, "
        f"{counts[Outcome.GAP] + counts[Outcome.PARKED]} not applicable (gap or parked) of {total} events"
    )
    return counts


def show_deadlines(settings: Settings, case_id: uuid.UUID, as_json: bool) -> int:
    from services.deadlines.application import build_deadlines
    from services.deadlines.main import schedule_view

    app = build_deadlines(settings)
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


def print_deadlines(rows: list[dict[str, Any]], title: str) -> None:
    table = Table("due", "rule", "regime", "party", "state", "explanation", title=title, show_lines=True)
    for row in rows:
        state = row.get("outcome") or row["state"]
        if row.get("late"):
            state += " (late)"
        table.add_row(str(row["due_on"]), row["rule"], row["regime"], row["party"], state, row["explanation"])
    console.print(table)


def show_ledger(settings: Settings, case_id: uuid.UUID, as_json: bool) -> int:
    from services.benefits.application import build_benefits
    from services.benefits.main import ledger_view
    from shared.infra.service import Query

    app = build_benefits(settings)
    try:
        view = ledger_view(app, Query(case_id=case_id))
    finally:
        app.close()
    if "error" in view:
        console.print(f"[yellow]{view['error']}[/]")
        return 1
    if as_json:
        sys.stdout.write(json.dumps(view, indent=2, default=str) + "\n")
        return 0
    print_ledger(view["entries"], title=f"Ledger of case {case_id}")
    return 0


def print_ledger(rows: list[dict[str, Any]], title: str) -> None:
    table = Table("period", "kind", "to / from", "amount", "rule", "regime", "explanation", title=title,
                  show_lines=True)
    for row in rows:
        figure = f"{row['amount']} EUR" if row.get("amount") is not None else f"{row.get('percentage')} % of {row.get('base')}"
        period = f"{row['period_start']} .. {row.get('period_end') or ''}"
        table.add_row(period, row["kind"], f"{row['beneficiary']} / {row['payer']}", figure, row["rule"],
                      row["regime"], row["explanation"])
    console.print(table)


def simulate(path: Path, as_json: bool, today: str | None) -> int:
    """Reads a case's reports (JSON lines) and prints the deadlines and the ledger they produce, without a server."""
    from shared.events.codec import ContractError
    from shared.rulebook import default_rulebook
    from shared.rulebook.benefits import compute_ledger
    from shared.rulebook.deadlines import compute_deadlines

    from .simulation import run_simulation

    try:
        events, rejected = run_simulation(path.read_text().splitlines(), today)
    except ContractError as exc:
        console.print(f"[red]{path}: {exc.message}[/] (field {exc.field})")
        return 2
    rulebook = default_rulebook()
    deadlines = compute_deadlines(events, rulebook)
    ledger = compute_ledger(events, rulebook)
    if as_json:
        sys.stdout.write(json.dumps({
            "events": msgspec.to_builtins(events),
            "rejected": rejected,
            "deadlines": msgspec.to_builtins(deadlines),
            "ledger": msgspec.to_builtins(ledger),
        }, indent=2, default=str) + "\n")
        return 0 if not rejected else 1
    for line, message in rejected:
        console.print(f"[red]line {line} rejected[/]: {message}")
    console.print(f"{len(events)} reports recorded")
    print_deadlines(msgspec.to_builtins(deadlines), title="Deadlines")
    print_ledger(msgspec.to_builtins(ledger), title="Ledger")
    return 0 if not rejected else 1
