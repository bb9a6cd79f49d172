"""Pins of what never moves without a migration: every CLI command's ``--help`` and the topics of stored classes.

Stored class topics (``module:Class``) are written into every stored event and enter the audit hash chain, so a
class that is stored never changes its module or name. The CLI is the operator's contract: its commands and
options stay as they are. To change either on purpose, regenerate the snapshot with
``REINTEGRATION_UPDATE_PINS=1 pytest tests/test_pins.py`` and say why in the commit.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
import typer.main
from eventsourcing.utils import get_topic, resolve_topic
from typer.testing import CliRunner

from reintegration.cli import app

SNAPSHOT = Path(__file__).parent / "snapshots" / "cli_help.txt"
UPDATE = os.environ.get("REINTEGRATION_UPDATE_PINS") == "1"

#: Every class whose instances the stores hold, by the topic written with each stored event.
STORED_TOPICS = {
    "shared.events.envelope:CaseEvent",
    "shared.infra.derived:CaseParked",
    "shared.infra.derived:DeadLettersResolved",
    "shared.infra.derived:StoreRebuilt",
    "services.deadlines.schedule:ScheduleStep",
    "services.deadlines.schedule:TimerFired",
    "services.deadlines.schedule:ScheduleRecomputed",
    "services.benefits.ledger:LedgerStep",
    "services.benefits.ledger:LedgerRecomputed",
    "services.benefits.ledger:PremiumGranted",
    "services.disclosures.log:DisclosureRecorded",
}


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if hasattr(command, "commands"):  # a group (typer ships its own click)
        for name in sorted(command.commands):
            found += _commands(command.commands[name], (*path, name))
    return found


def _help_texts() -> str:
    runner = CliRunner()
    root = typer.main.get_command(app)
    parts = []
    for path in _commands(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120", "TERM": "dumb", "NO_COLOR": "1"},
                               terminal_width=120)
        parts.append(f"=== reintegration {' '.join(path)} (exit {result.exit_code})\n{result.output}")
    return "\n".join(parts)


def test_every_command_help_matches_the_snapshot() -> None:
    texts = _help_texts()
    if UPDATE:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(texts)
    assert texts == SNAPSHOT.read_text(), "a CLI command or option changed: see this file's docstring"


def _stored_classes() -> set[str]:
    """Every msgspec struct of the production packages that carries an ``originator_version`` field: a stored
    event or record."""
    found = set()
    for package_name in ("shared", "services"):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == info.name
                        and ("originator_version" in value.__struct_fields__
                             or "originator_version" in vars(value))):
                    found.add(get_topic(value))
    return found


def test_stored_topics_are_pinned() -> None:
    assert _stored_classes() - {"shared.infra.derived:DerivedStep"} == STORED_TOPICS


@pytest.mark.parametrize("topic", sorted(STORED_TOPICS))
def test_a_stored_topic_resolves_to_the_class_it_names(topic: str) -> None:
    cls = resolve_topic(topic)
    assert get_topic(cls) == topic
