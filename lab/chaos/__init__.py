"""The fault catalogue of ../shared/FAULTS.md as scenarios over real processes (run by ``reintegration chaos`` and
``tests/faults/``). Importing a scenario module registers its scenarios in :mod:`lab.chaos.report`."""

from __future__ import annotations

import importlib

from .report import SCENARIOS, Row, order

#: Modules whose import registers scenarios.
SCENARIO_MODULES: tuple[str, ...] = (
    "lab.chaos.process",  # R1-R4, R10, R11: crashes, pauses, broker amnesia, store down, clocks
    "lab.chaos.delivery",  # R6-R8: duplicates, out-of-order redelivery, poison messages
    "lab.chaos.input",  # R5, R9, S1, S3, F1, F2: corruption, concurrent writers, access, at rest, input
    "lab.chaos.privacy",  # S2, S4: medical data to employers, unlogged disclosure
)


def load_scenarios() -> None:
    for module in SCENARIO_MODULES:
        importlib.import_module(module)


__all__ = ["SCENARIOS", "SCENARIO_MODULES", "Row", "load_scenarios", "order"]
