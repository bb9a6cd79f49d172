"""R3 pauses: the nats-server and each service stopped (SIGSTOP) for 2 s under load, then continued;
0 lost, 0 doubled."""

from __future__ import annotations

import asyncio
import random
import signal
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

# --- R3: pauses ---------------------------------------------------------------------------------------------------


@scenario("R3", "pauses")
def pauses(workdir: Path, quick: bool) -> Row:
    reports, per_target = (300, 1) if quick else (3_000, 3)
    rng = random.Random(303)
    moments = spread(["nats-server", *SERVICES], per_target, rng, 0.05, 0.8)
    load = Load.generate(reports, seed=3)
    started = time.monotonic()
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def inject(cluster: Cluster, target: str) -> None:
            cluster.signal(target, signal.SIGSTOP)
            try:
                await asyncio.sleep(2.0)
            finally:
                cluster.signal(target, signal.SIGCONT)

        asyncio.run(drive(cluster, load, moments, inject, watch))
        return finish("R3", "pauses", cluster, load, watch, len(moments),
                      "0 doubled, 0 lost (SIGSTOP 2 s / SIGCONT)", None, started)


