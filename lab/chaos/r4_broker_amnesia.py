"""R4 broker amnesia: relay kills longer than the (shortened) duplicate window, then the broker's whole
store deleted; the relay re-drives from the store, the consumers from their tracking: 0 lost, 0 doubled."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from lab.chaos.checks import finish
from lab.chaos.harness import (
    Cluster,
    Levels,
    Load,
    Probe,
    Watch,
    drive,
    levels,
    merged,
    spread,
    wait_caught_up,
)
from lab.chaos.report import Row, scenario
from shared.events.subjects import (
    TRAJECTORY_STREAM,
)

# --- R4: broker amnesia -------------------------------------------------------------------------------------------


#: R4's duplicate window on TRAJECTORY (the services' own is 2 minutes): "past the window" in seconds, not minutes.
SHORT_WINDOW_S = 1.0


async def hold_short_window(cluster: Cluster, stop: asyncio.Event, seen: list[float]) -> None:
    """Keep TRAJECTORY's duplicate window at :data:`SHORT_WINDOW_S`: a restarted relay sets its own 2 minutes
    again, so look twice a second and set it back."""
    nc = await cluster.connect()
    js = nc.jetstream()
    try:
        while not stop.is_set():
            try:
                info = await js.stream_info(TRAJECTORY_STREAM)
                window = info.config.duplicate_window or 0
                if abs(window - SHORT_WINDOW_S) > 0.01:
                    seen.append(window)
                    config = replace(info.config, duplicate_window=SHORT_WINDOW_S)
                    await js.update_stream(config)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError):
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await nc.close()



async def _amnesia(cluster: Cluster) -> None:
    """The worst power loss: the server dies and its whole JetStream store with it; it restarts empty."""
    await asyncio.to_thread(cluster.kill_server)
    await asyncio.to_thread(shutil.rmtree, cluster.nats_store)
    await asyncio.sleep(2 * SHORT_WINDOW_S)
    await asyncio.to_thread(cluster.start_server)


@scenario("R4", "broker amnesia")
def broker_amnesia(workdir: Path, quick: bool) -> Row:
    """Relay kills with a downtime longer than the (shortened) duplicate window, then the broker's whole store
    deleted once everything was delivered (so every pending timer and consumer position is gone), and (full size)
    again in the middle of the load."""
    reports, relay_kills, mid_load_wipes = (200, 1, 0) if quick else (3_000, 3, 1)
    rng = random.Random(404)
    first, second = Load.generate(reports // 2, seed=4), Load.generate(reports - reports // 2, seed=44)
    started = time.monotonic()
    stop = asyncio.Event()
    windows: list[float] = []
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def kill_relay(cluster: Cluster, target: str) -> None:
            await asyncio.to_thread(cluster.kill, target)
            await asyncio.sleep(SHORT_WINDOW_S + rng.uniform(0.5, 1.5))  # past the window before it resumes
            await asyncio.to_thread(cluster.spawn, target)

        async def wipe(cluster: Cluster, target: str) -> None:
            await _amnesia(cluster)

        async def run() -> tuple[bool, Levels]:
            keeper = asyncio.create_task(hold_short_window(cluster, stop, windows))
            probe = Probe(cluster.settings)
            try:
                await drive(cluster, first, spread(["relay"], relay_kills, rng, 0.1, 0.8), kill_relay, watch)
                caught = await wait_caught_up(cluster, probe, 120)
                await asyncio.sleep(2 * SHORT_WINDOW_S)
                nc = await cluster.connect()
                before = await levels(probe, nc.jetstream())
                await nc.close()
                await _amnesia(cluster)  # everything delivered, every timer pending: all of it forgotten
                watch.after("nats-server", time.monotonic(), first, before, probe, None)
                await drive(cluster, second, spread(["nats-server"], mid_load_wipes, rng, 0.3, 0.7), wipe, watch)
                return caught
            finally:
                stop.set()
                await keeper
                probe.close()

        caught_first, _ = asyncio.run(run())
        load = merged(first, second)
        faults = relay_kills + 1 + mid_load_wipes
        return finish("R4", "broker amnesia", cluster, load, watch, faults,
                      "relay re-drives from the store, consumers from tracking: 0 lost, 0 doubled, also past the "
                      "dedup window", None, started, extra_ok=caught_first,
                      notes=[f"TRAJECTORY duplicate window {SHORT_WINDOW_S:g} s (set back from "
                             f"{sorted(set(windows))} s after restarts)"])


