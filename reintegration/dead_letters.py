"""``reintegration dead-letters``: list, replay and release dead-lettered trajectory events."""

from __future__ import annotations

import typer

dead_letters_app = typer.Typer(help="Dead-lettered trajectory events: list them, replay them after a fix.")
