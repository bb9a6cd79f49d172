"""R6 duplicates everywhere: acks held past ack_wait, republished with new ids, dedup window shrunk.

Both services run as their own processes (``python -m lab.chaos.r6_duplicates serve <name>``: the service's own
composition root with a short ``ack_wait`` so that a pause can outlast it, and a fetch that waits as long), two
replicas each on one durable consumer; replica a is paused with SIGSTOP past ``ack_wait`` while it holds messages;
every event is republished under a new message id, and the stream's duplicate window shrunk to republish events
under their own ids."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
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
    step_count,
)
from shared.embedded.waiting import WaitTimeoutError, until
from shared.events.envelope import CaseEvent
from shared.events.subjects import (
    TRAJECTORY_STREAM,
)
from shared.infra.settings import Settings
from shared.infra.streams import ensure_trajectory_stream

# --- R6: duplicates everywhere ------------------------------------------------------------------------------------


@scenario("R6", "duplicates everywhere: acks held past ack_wait, republished with new ids, dedup window shrunk")
def r6_duplicates(workdir: Path, quick: bool) -> Row:
    # Two pauses even when quick: a replica stopped just as its pull request had expired holds nothing, and the
    # scenario needs at least one redelivery per service to show that it changes nothing.
    cases, pauses, ack_wait = (60, 2, 1.0) if quick else (2400, 3, 2.0)
    lab = Lab.start(workdir)
    try:
        log = lab.write_input(cases, seed=606)
        return asyncio.run(_r6(lab, log, pauses, ack_wait, quick))
    finally:
        lab.stop()


async def _r6(lab: Lab, log: list[CaseEvent], pauses: int, ack_wait: float, quick: bool) -> Row:
    nc = await nats.connect(lab.settings.nats_url)
    js = nc.jetstream()
    procs: dict[str, list[str]] = {}
    try:
        await ensure_trajectory_stream(js)
        originals = [relay_message(event, position) for position, event in enumerate(log, start=1)]
        # Two replicas of each service on its one durable consumer: what one holds past ack_wait goes to the other.
        procs = {name: [lab.spawn(["lab.chaos.r6_duplicates", "serve", name, "--ack-wait", str(ack_wait)],
                                  f"{name}-{replica}") for replica in "ab"] for name in SERVICES}
        alive = lab.alive([p for pair in procs.values() for p in pair])

        async def pulling(replicas: int) -> bool:
            alive()
            return await _pulling(js, replicas)

        await until(lambda: pulling(2), timeout=120, what="both replicas of each service pulling")
        faults = 0
        chunk = -(-len(originals) // pauses)
        for first in range(0, len(originals), chunk):
            # Replica a stops with its pull request open: the server fills it, then redelivers it to replica b after
            # ack_wait, while a still holds every message; a applies and acknowledges them once continued.
            for name in SERVICES:
                lab.supervisor.signal(procs[name][0], signal.SIGSTOP)
            await publish_all(js, originals[first:first + chunk])
            await asyncio.sleep(ack_wait * 2.5)
            for name in SERVICES:
                lab.supervisor.signal(procs[name][0], signal.SIGCONT)
            faults += len(SERVICES)
            await until(lambda: pulling(1), timeout=120, what="the services pulling again")
        # Republish every event under a new message id while the services consume: the stream stores each twice.
        copies = [relay_message(event, position, msg_id=str(uuid.uuid4()))
                  for position, event in enumerate(log, start=1)]
        stored_copies = await publish_all(js, copies)
        faults += 1
        # Shrink the duplicate window, let it pass, and republish events under their own ids: stored again.
        info = await js.stream_info(TRAJECTORY_STREAM)
        info.config.duplicate_window = 0.5
        await js.update_stream(info.config)
        again = [originals[i] for i in range(0, len(originals), 10)]
        await asyncio.sleep(0.5)  # one window first: a publish inside it is dropped as a duplicate
        try:  # the server forgets the old ids on its own timer: wait until the first is stored again
            stored_again = await until(lambda: publish_all(js, again[:1]), timeout=20, interval=0.5,
                                       what="an event stored again under its own id past the window")
        except WaitTimeoutError:
            stored_again = 0
        stored_again += await publish_all(js, again[1:])
        faults += 1
        total = len(originals) + stored_copies + stored_again
        last_fault = time.monotonic()

        async def settled() -> bool:
            alive()
            for name in SERVICES:
                _deliveries, stream_seq, pending, unacked = await consumer_figures(js, name)
                if stream_seq < total or pending or unacked:
                    return False
            return all(step_count(lab.settings, name) >= len(log) for name in SERVICES)

        await until(settled, timeout=300 if quick else 1200, what="both services through the stream")
        recover = time.monotonic() - last_fault
        figures = {name: await consumer_figures(js, name) for name in SERVICES}
    finally:
        await nc.close()
        lab.supervisor.stop([p for pair in procs.values() for p in pair])
    comparisons = {name: compare(lab.settings, log, name) for name in SERVICES}
    counts, verified = audit_verify(lab.settings)
    # Every delivery beyond the first of each event is a duplicate the services had to recognise: the republished
    # copies, the copies stored again past the window, and the server's redeliveries of what a paused replica held.
    seen = {name: figures[name][0] - len(log) for name in SERVICES}
    redelivered = {name: figures[name][0] - figures[name][1] for name in SERVICES}
    lost = sum(c.lost for c in comparisons.values())
    doubled = sum(c.doubled for c in comparisons.values())
    disorder = sum(c.out_of_order for c in comparisons.values())
    need = 100 if quick else 10_000
    passed = (sum(seen.values()) >= need and lost == 0 and doubled == 0 and disorder == 0 and verified
              and all(redelivered[n] > 0 for n in SERVICES))
    return Row(
        id="R6", title="duplicates everywhere", faults=faults, sent=total, lost=lost, doubled=doubled,
        recover_s=round(recover, 1), pass_figure=f">= {need:,} redeliveries seen, 0 doubled effects",
        passed=passed,
        detail=(f"{sum(seen.values()):,} duplicate deliveries seen ({', '.join(f'{n} {seen[n]:,}' for n in SERVICES)}"
                f"; of which server redeliveries of messages a paused replica held past ack_wait ({pauses} pause(s) "
                f"of {ack_wait * 2.5:.1f} s): {', '.join(f'{n} {redelivered[n]:,}' for n in SERVICES)}); "
                f"{stored_copies:,} copies under new ids, {stored_again:,} under their own ids past a 0.5 s window; "
                f"{len(log):,} events, 2 replicas per service, both stores "
                f"{'equal to' if not (lost or doubled or disorder) else 'DIFFERENT from'} the input; "
                f"audit verify {counts}"),
        extra={"seen": seen, "redelivered": redelivered, "events": len(log), "verify": counts,
               "copies": stored_copies, "again": stored_again,
               "comparisons": {n: c.__dict__ for n, c in comparisons.items()}},
    )


async def _pulling(js: JetStreamContext, replicas: int) -> bool:
    """Each service's durable consumer exists and has a pull request waiting from ``replicas`` clients."""
    for name in SERVICES:
        try:
            info = await js.consumer_info(TRAJECTORY_STREAM, name)
        except nats.js.errors.NotFoundError:
            return False
        if (info.num_waiting or 0) < replicas:
            return False
    return True


# --- a service with a short ack wait (R6) ------------------------------------------------------------------------


def serve(name: str, ack_wait: float) -> None:
    """Run the service ``name`` from its own composition root, its consumer's ``ack_wait`` set to ``ack_wait``."""
    import importlib

    from reintegration import logs

    logs.configure("WARNING")
    service = importlib.import_module(f"services.{name}.main").build_service(Settings.from_env())
    service.consumer.ack_wait = ack_wait
    # A pull request that waits as long as the ack wait: the one a paused replica left open is filled by the server
    # (the replica then holds those messages past ack_wait), rather than expiring first as a 0.1 s one mostly does.
    service.consumer.fetch_timeout = ack_wait
    asyncio.run(service.stream_app.run())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve" and sys.argv[3] == "--ack-wait":
        serve(sys.argv[2], float(sys.argv[4]))
    else:
        raise SystemExit("usage: python -m lab.chaos.r6_duplicates serve deadlines|benefits --ack-wait SECONDS")
