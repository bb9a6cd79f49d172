"""R11 clock skew: every service's clock 24 h behind, then 24 h ahead, then jumping 1 h; the legal dates
recorded must equal those recomputed from the intake history."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

from lab.chaos.checks import finish
from lab.chaos.harness import (
    Cluster,
    Load,
    Probe,
    Watch,
    drive,
    merged,
    wait_caught_up,
)
from lab.chaos.report import Row, scenario
from lab.generator import Generator
from shared.infra.store import logged_events

# --- R11: clock skew ----------------------------------------------------------------------------------------------


def legal_dates(cluster: Cluster) -> dict[str, Any]:
    """Every case's recorded deadlines against ``compute_deadlines`` over its intake history (which takes no clock),
    and every fired timer's recorded lag."""
    from reintegration.operate import intake_log
    from services.deadlines.application import build_deadlines
    from services.deadlines.schedule import TimerFired, timer_due
    from services.deadlines.timers import fire_time
    from shared.rulebook.deadlines import compute_deadlines

    histories: dict[UUID, list[Any]] = defaultdict(list)
    for _position, event in intake_log(cluster.settings):
        histories[event.case_id].append(event)
    app = build_deadlines(cluster.settings)
    compared = differing = 0
    examples: list[str] = []
    lags: list[float] = []
    early = 0
    try:
        for case_id, history in histories.items():
            schedule = app.schedule(case_id)
            recorded = schedule.deadlines if schedule else {}
            opening = history[0].report
            computed = {d.id: d for d in compute_deadlines(history, app.rulebook,
                                                           app.policy_for(opening.enterprise_number))}
            for deadline_id in set(recorded) | set(computed):
                compared += 1
                mine, theirs = recorded.get(deadline_id), computed.get(deadline_id)
                if mine is None or theirs is None or (mine.rule, mine.due_on, mine.state) != (
                        theirs.rule, theirs.due_on, theirs.state):
                    differing += 1
                    if len(examples) < 3:
                        examples.append(f"{case_id} {deadline_id}: recorded {mine and mine.due_on}, "
                                        f"recomputed {theirs and theirs.due_on}")
        for _, event in logged_events(app):
            if isinstance(event, TimerFired):
                lags.append(event.lag_seconds)
                early += event.fired_at < fire_time(timer_due(event.deadline))
    finally:
        app.close()
    lags.sort()
    return {"cases": len(histories), "deadlines compared": compared, "differing": differing, "examples": examples,
            "timers fired": len(lags), "median lag h": round(lags[len(lags) // 2] / 3600, 1) if lags else None,
            "lag >= 24 h": sum(1 for lag in lags if lag >= 86_400),
            "recorded as fired before due": early}


@scenario("R11", "clock skew")
def clock_skew(workdir: Path, quick: bool) -> Row:
    """Every service's clock 24 h behind, then 24 h ahead (a jump back and forth of 48 h), then right and jumping
    1 h ahead in the middle of the load; a third of the cases in each phase. The nats-server keeps the true time
    (its scheduled timers fire by it)."""
    cases = 60 if quick else 1_000
    generator = Generator(11)
    phases = [[generator.script() for _ in range(cases // 3)] for _ in range(3)]
    loads = [Load(scripts=p, planned=sum(1 + len(s.steps) for s in p)) for p in phases]
    started = time.monotonic()
    cluster = Cluster(workdir, clock_skew=True)
    day = 86_400.0
    for name in cluster.services:
        cluster.set_clock(name, -day)
    changes = len(cluster.services)
    with cluster.start():
        watch = Watch(cluster)

        async def jump(cluster: Cluster, target: str) -> None:
            for name in cluster.services:
                cluster.set_clock(name, 3_600.0)

        async def run() -> None:
            nonlocal changes
            probe = Probe(cluster.settings)
            try:
                await drive(cluster, loads[0], [], jump, watch)
                await wait_caught_up(cluster, probe, 300)
                for name in cluster.services:
                    cluster.set_clock(name, +day)
                await drive(cluster, loads[1], [], jump, watch)
                await wait_caught_up(cluster, probe, 300)
                for name in cluster.services:
                    cluster.set_clock(name, 0.0)
                await drive(cluster, loads[2], [(0.5, "clock")], jump, watch)
                changes += 2 * len(cluster.services)
            finally:
                probe.close()

        asyncio.run(run())
        load = merged(*loads)
        row = finish("R11", "clock skew", cluster, load, watch, 0, "0 differences in legal dates over "
                     f"{cases:,} cases; late timers recorded with their lag", None, started)
        dates = legal_dates(cluster)
    row.faults = changes
    row.extra["legal_dates"] = dates
    row.passed = row.passed and dates["differing"] == 0 and dates["cases"] > 0
    row.detail += (f"; legal dates: {dates['deadlines compared']:,} deadlines of {dates['cases']:,} cases compared, "
                   f"{dates['differing']} differ{' e.g. ' + dates['examples'][0] if dates['examples'] else ''}; "
                   f"timers fired {dates['timers fired']:,} (median lag {dates['median lag h']} h, "
                   f"{dates['lag >= 24 h']:,} with lag >= 24 h, {dates['recorded as fired before due']} recorded as "
                   "fired before their due time)")
    return row
