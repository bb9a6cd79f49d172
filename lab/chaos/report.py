"""The fault catalogue's common shape: one registered scenario per FAULTS.md id, each returning one row.

A scenario is a function ``(workdir, quick) -> Row`` registered with :func:`scenario`. It starts its own
nats-server on loopback ports and its own store under ``workdir``, bounds its traffic and time, stops every process
it started, and reports what it injected and what it found: events sent, lost, doubled, time to recover, and whether
the catalogue's pass figure was reached. ``reintegration chaos run`` runs them and prints the table; the tests in
``tests/faults/`` run each with ``quick=True`` and assert the row passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    id: str
    title: str
    #: Faults injected (kills, pauses, poison messages, corrupted bytes, probes, ...).
    faults: int
    #: Reports or messages sent during the scenario.
    sent: int
    lost: int
    doubled: int
    #: Seconds from the last fault until the flow was back (every accepted report applied everywhere); ``None``
    #: where the scenario has no recovery to time.
    recover_s: float | None
    #: The catalogue's pass figure, in words, and whether it was reached.
    pass_figure: str
    passed: bool
    #: What else was measured (e.g. "10/10 dead letters listed; 9,990 processed").
    detail: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return f"reintegration chaos run {self.id}"


Scenario = Callable[[Path, bool], Row]


@dataclass(frozen=True)
class Registered:
    id: str
    title: str
    run: Scenario


SCENARIOS: dict[str, Registered] = {}


def scenario(id: str, title: str) -> Callable[[Scenario], Scenario]:
    """Register ``fn`` as the scenario ``id`` (a FAULTS.md id such as ``"R1"``)."""

    def register(fn: Scenario) -> Scenario:
        if id in SCENARIOS:
            raise ValueError(f"scenario {id} registered twice")
        SCENARIOS[id] = Registered(id, title, fn)
        return fn

    return register


def order(ids: list[str]) -> list[str]:
    """Catalogue order: R1..R11, S1..S4, F1..F2."""
    return sorted(ids, key=lambda i: ("RSF".index(i[0]) if i[0] in "RSF" else 9, int(i[1:]) if i[1:].isdigit() else 0))
