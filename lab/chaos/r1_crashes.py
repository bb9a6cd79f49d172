"""R1 crash of each process: intake, relay, deadlines and benefits killed (SIGKILL) under load and
restarted; 0 lost, 0 doubled, audit verify 0 differences, flow back within 10 s."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from lab.chaos.checks import finish
from lab.chaos.harness import (
    SERVICES,
    Cluster,
    Load,
    Watch,
    drive,
    spread,
)
from lab.chaos.report import Row, scenario

# --- R1: crash of each process ------------------------------------------------------------------------------------


@scenario("R1", "crash of each process")
def crash_each_process(workdir: Path, quick: bool) -> Row:
    reports, per_target = (300, 1) if quick else (10_000, 5)
    rng = random.Random(101)
    targets = list(SERVICES)
    moments = spread(targets, per_target, rng)
    load = Load.generate(reports, seed=1)
    started = time.monotonic()
    watch: Watch
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def inject(cluster: Cluster, target: str) -> None:
            await asyncio.to_thread(cluster.kill, target)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            await asyncio.to_thread(cluster.spawn, target)

        asyncio.run(drive(cluster, load, moments, inject, watch))
        return finish("R1", "crash of each process", cluster, load, watch, len(moments),
                      "0 lost, 0 doubled, verify 0 diffs, flow back within 10 s", 10.0, started)


