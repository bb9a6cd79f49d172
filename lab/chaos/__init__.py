"""The fault catalogue of ../shared/FAULTS.md as scenarios over real processes (run by ``reintegration chaos`` and
``tests/faults/``), one module per scenario. Importing a scenario module registers it in :mod:`lab.chaos.report`."""

from __future__ import annotations

import importlib

from .report import SCENARIOS, Row, order

#: Modules whose import registers scenarios, one per scenario, in catalogue order. The harnesses they share:
#: ``harness`` and ``checks`` (processes under load: R1-R4, R10, R11), ``trajectory`` (events in TRAJECTORY: R6-R8),
#: ``system`` (the embedded runtime and the reporting parties: R5, R9, S1, S3, F1, F2), ``canaries`` (S2, S4).
SCENARIO_MODULES: tuple[str, ...] = (
    "lab.chaos.r1_crashes",
    "lab.chaos.r2_broker_crash",
    "lab.chaos.r3_pauses",
    "lab.chaos.r4_broker_amnesia",
    "lab.chaos.r5_corruption",
    "lab.chaos.r6_duplicates",
    "lab.chaos.r7_out_of_order",
    "lab.chaos.r8_poison",
    "lab.chaos.r9_concurrent_writers",
    "lab.chaos.r10_store_full_or_down",
    "lab.chaos.r11_clock_skew",
    "lab.chaos.s1_cross_party_access",
    "lab.chaos.s2_medical_data_to_employers",
    "lab.chaos.s3_data_at_rest",
    "lab.chaos.s4_unlogged_disclosure",
    "lab.chaos.f1_hostile_input",
    "lab.chaos.f2_identifier_typos",
)


def load_scenarios() -> None:
    for module in SCENARIO_MODULES:
        importlib.import_module(module)


__all__ = ["SCENARIOS", "SCENARIO_MODULES", "Row", "load_scenarios", "order"]
