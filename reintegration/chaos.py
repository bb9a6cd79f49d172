"""``reintegration chaos``: the fault catalogue (../shared/FAULTS.md) run against real processes, with figures.

Scenarios live in the lab (:mod:`lab.chaos`, one module per scenario);
``chaos list`` names them, ``chaos run [ID ...]`` runs them (``--quick`` for the small sizes the tests use) and
prints one row each: faults injected, events sent, lost, doubled, time to recover, and the pass figure.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .extras import lab_module

chaos_app = typer.Typer(help="Fault scenarios over real processes: each prints sent, lost, doubled, time to recover.")
console = Console()

def load_scenarios() -> ModuleType:
    """The lab's fault catalogue with every scenario registered (exit 2 where the lab is not installed)."""
    chaos = lab_module("chaos")
    chaos.load_scenarios()
    return chaos


@chaos_app.command("list")
def list_scenarios() -> None:
    """The scenarios this build can run, in catalogue order."""
    chaos = load_scenarios()
    for id in chaos.order(list(chaos.SCENARIOS)):
        console.print(f"{id:4} {chaos.SCENARIOS[id].title}")


def table(rows: list[Any]) -> Table:
    out = Table(title="Fault scenarios")
    for column in ("id", "fault or attack", "faults", "sent", "lost", "doubled", "recover (s)", "pass figure",
                   "result", "detail"):
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(row.id, row.title, f"{row.faults:,}", f"{row.sent:,}", str(row.lost), str(row.doubled),
                    "-" if row.recover_s is None else f"{row.recover_s:.1f}", row.pass_figure,
                    "[green]pass[/]" if row.passed else "[red]FAIL[/]", row.detail)
    return out


@chaos_app.command("run")
def run(
    ids: Annotated[list[str] | None, typer.Argument(help="Scenario ids (R1 ... F2); all when none.")] = None,
    quick: Annotated[bool, typer.Option(help="Small sizes (what the tests run).")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Folder for the scenarios' servers and stores.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Run scenarios and print their table; exit 1 if any missed its pass figure."""
    from . import logs

    logs.configure("WARNING")
    chaos = load_scenarios()
    SCENARIOS, order = chaos.SCENARIOS, chaos.order
    wanted = order([i.upper() for i in ids] if ids else list(SCENARIOS))
    unknown = [i for i in wanted if i not in SCENARIOS]
    if unknown:
        console.print(f"[red]unknown scenario(s) {', '.join(unknown)}[/]; known: {', '.join(order(list(SCENARIOS)))}")
        raise typer.Exit(2)
    base = data_dir or Path(tempfile.mkdtemp(prefix="reintegration-chaos-"))
    rows: list[Any] = []
    for id in wanted:
        started = time.monotonic()
        console.print(f"[bold]{id}[/] {SCENARIOS[id].title} ...")
        workdir = base / id
        workdir.mkdir(parents=True, exist_ok=True)
        row = SCENARIOS[id].run(workdir, quick)
        rows.append(row)
        console.print(f"  {'pass' if row.passed else 'FAIL'} in {time.monotonic() - started:.0f} s: {row.detail}")
    if as_json:
        print(json.dumps([{**row.__dict__, "command": row.command} for row in rows], indent=2, default=str))
    else:
        console.print(table(rows))
    raise typer.Exit(0 if all(row.passed for row in rows) else 1)
