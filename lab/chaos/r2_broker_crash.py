"""R2 broker crash: the nats-server killed under load and restarted on the same store and port; 0 lost,
0 doubled, per-case order kept."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from lab.chaos.checks import finish
from lab.chaos.harness import (
    Cluster,
    Load,
    Watch,
    drive,
    spread,
)
from lab.chaos.report import Row, scenario

# --- R2: broker crash ---------------------------------------------------------------------------------------------


@scenario("R2", "broker crash")
def broker_crash(workdir: Path, quick: bool) -> Row:
    reports, kills = (300, 1) if quick else (10_000, 5)
    rng = random.Random(202)
    moments = spread(["nats-server"], kills, rng, 0.1, 0.85)
    load = Load.generate(reports, seed=2)
    started = time.monotonic()
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def inject(cluster: Cluster, target: str) -> None:
            await asyncio.to_thread(cluster.kill_server)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await asyncio.to_thread(cluster.start_server)  # same store, same port

        asyncio.run(drive(cluster, load, moments, inject, watch))
        return finish("R2", "broker crash", cluster, load, watch, len(moments),
                      "0 lost, 0 doubled, per-case order kept", None, started)


