"""R7 out-of-order redelivery: nak with delay on event k while k+1 arrives, pull batches > 1.

Both consumers run in this process beside a second client bound to the same durable consumers, which pulls
event k of chosen cases and ``nak``-s it with a delay while k+1 is delivered to the service; some cases also have
k+1 stored before k. The consumers pull batches of up to 200."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from lab.chaos.report import Row, scenario
from lab.chaos.trajectory import (
    SERVICES,
    Lab,
    audit_verify,
    compare,
    consumer_figures,
    publish_all,
    relay_message,
)
from shared.embedded.waiting import until
from shared.events.envelope import CaseEvent
from shared.events.subjects import (
    TRAJECTORY_STREAM,
)
from shared.infra.streams import ensure_trajectory_stream

# --- R7: out-of-order redelivery ----------------------------------------------------------------------------------


@scenario("R7", "out-of-order redelivery: nak with delay on event k while k+1 arrives, pull batches > 1")
def r7_out_of_order(workdir: Path, quick: bool) -> Row:
    cases = 60 if quick else 2400
    lab = Lab.start(workdir)
    try:
        log = lab.write_input(cases, seed=707)
        return asyncio.run(_r7(lab, log, quick))
    finally:
        lab.stop()


async def _r7(lab: Lab, log: list[CaseEvent], quick: bool) -> Row:
    from reintegration.dead_letters import open_service
    from shared.infra.consumer import TrajectoryConsumer

    rng = random.Random(707)
    by_case: dict[uuid.UUID, list[CaseEvent]] = {}
    for event in log:
        by_case.setdefault(event.case_id, []).append(event)
    multi = [case for case, events in by_case.items() if len(events) >= 2]
    # Event k of every third case with two events or more is nak-ed with a delay by a second client on the same
    # durable consumer while k+1 goes to the service; in every fifth of those cases k+1 is also stored before k.
    targets = {case: rng.randrange(1, len(by_case[case])) for case in multi[::3]}
    swapped = dict(list(targets.items())[::5])
    positions = {(e.case_id, e.version): p for p, e in enumerate(log, start=1)}
    order = list(log)
    index = {(e.case_id, e.version): i for i, e in enumerate(order)}
    for case, k in swapped.items():
        i, j = index[(case, k)], index[(case, k + 1)]
        order[i], order[j] = order[j], order[i]
    messages = [relay_message(e, positions[(e.case_id, e.version)]) for e in order]

    nc = await nats.connect(lab.settings.nats_url)
    js = nc.jetstream()
    apps = {name: open_service(lab.settings, name) for name in SERVICES}
    executors = {name: ThreadPoolExecutor(max_workers=1) for name in SERVICES}
    hit: dict[str, set[uuid.UUID]] = {name: set() for name in SERVICES}
    consumers = {name: TrajectoryConsumer(name=name, apply=apps[name].apply_batch, park=apps[name].park,
                                          executor=executors[name]) for name in SERVICES}
    bounced = dict.fromkeys(SERVICES, 0)
    stop = asyncio.Event()
    try:
        await ensure_trajectory_stream(js)
        for consumer in consumers.values():
            await consumer.start(js)
        saboteurs = [asyncio.create_task(_saboteur(js, name, targets, hit[name], bounced, stop))
                     for name in SERVICES]
        started = time.monotonic()
        await publish_all(js, messages)

        async def settled() -> bool:
            for name in SERVICES:
                _d, stream_seq, pending, unacked = await consumer_figures(js, name)
                if stream_seq < len(log) or pending or unacked:
                    return False
            return all(consumers[n].counts["applied"] >= len(log) for n in SERVICES)

        await until(settled, timeout=300 if quick else 1800, what="both consumers through the stream")
        elapsed = time.monotonic() - started
        stop.set()
        await asyncio.gather(*saboteurs)
    finally:
        stop.set()
        for consumer in consumers.values():
            await consumer.stop()
        await nc.close()
        for executor in executors.values():
            executor.shutdown()
        for app in apps.values():
            app.close()
    comparisons = {name: compare(lab.settings, log, name) for name in SERVICES}
    counts, verified = audit_verify(lab.settings)
    lost = sum(c.lost for c in comparisons.values())
    doubled = sum(c.doubled for c in comparisons.values())
    disorder = sum(c.out_of_order for c in comparisons.values())
    gaps = {n: consumers[n].counts["gap"] for n in SERVICES}
    largest = {n: consumers[n].counts["largest_batch"] for n in SERVICES}
    batches = {n: consumers[n].counts["batches"] for n in SERVICES}
    parked = sum(consumers[n].counts["dead_lettered"] for n in SERVICES)
    naks = {n: len(hit[n]) for n in SERVICES}
    passed = (lost == 0 and doubled == 0 and disorder == 0 and parked == 0 and verified
              and all(naks[n] > 0 and gaps[n] > 0 and largest[n] > 1 for n in SERVICES))
    return Row(
        id="R7", title="out-of-order redelivery", faults=sum(naks.values()) + len(swapped),
        sent=len(messages), lost=lost, doubled=doubled, recover_s=None,
        pass_figure="0 events skipped; per-case order kept (or the case parked)", passed=passed,
        detail=(f"event k nak-ed with a 1 s delay by a second client on the same consumer while k+1 went on: "
                f"{', '.join(f'{n} {naks[n]:,}' for n in SERVICES)} of {len(targets):,} target cases "
                f"({len(swapped)} with k+1 stored before k); {sum(bounced.values()):,} other deliveries handed back "
                f"by it; gaps seen (k+1 before k) "
                f"{', '.join(f'{n} {gaps[n]:,}' for n in SERVICES)}; batches "
                f"{', '.join(f'{n} {batches[n]:,} (largest {largest[n]})' for n in SERVICES)}; {len(log):,} events "
                f"applied in {elapsed:.0f} s, 0 parked; skipped {lost}, doubled {doubled}, cases out of order "
                f"{disorder}; audit verify {counts}"
                + ("; " + "; ".join(e for c in comparisons.values() for e in c.examples) if disorder else "")),
        extra={"gaps": gaps, "largest_batch": largest, "batches": batches, "naks": naks, "bounced": bounced,
               "swapped": len(swapped), "targets": len(targets), "verify": counts, "events": len(log),
               "comparisons": {n: c.__dict__ for n, c in comparisons.items()}},
    )


async def _saboteur(js: JetStreamContext, name: str, targets: dict[uuid.UUID, int], hit: set[uuid.UUID],
                    bounced: dict[str, int], stop: asyncio.Event) -> None:
    """A second client on the service's durable consumer. Event k of a target case is ``nak``-ed with a 1 s delay
    (once), so that k+1 reaches the service first; anything else it pulls goes straight back (``nak``): those are
    redelivered after later messages, out of stream order. It stops once it has held back every target."""
    from shared.events.envelope import CASE_EVENT_DECODER

    sub = await js.pull_subscribe_bind(durable=name, stream=TRAJECTORY_STREAM)
    try:
        while not stop.is_set() and len(hit) < len(targets):
            try:
                messages = await sub.fetch(50, timeout=0.2)
            except TimeoutError:
                continue
            for msg in messages:
                event = CASE_EVENT_DECODER.decode(msg.data)
                if targets.get(event.case_id) == event.version and event.case_id not in hit:
                    hit.add(event.case_id)
                    await msg.nak(delay=1.0)
                else:
                    bounced[name] += 1
                    await msg.nak()
            await asyncio.sleep(0.01)  # a competitor, not a flood
    finally:
        await sub.unsubscribe()


