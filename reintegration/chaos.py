"""``reintegration chaos``: the fault catalogue (../shared/FAULTS.md) run against real processes, with figures."""

from __future__ import annotations

import typer

chaos_app = typer.Typer(help="Fault scenarios over real processes: each prints sent, lost, doubled, time to recover.")
