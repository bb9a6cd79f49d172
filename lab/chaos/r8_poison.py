"""R8 poison messages: 5 undecodable + 5 rule-breaking among the events, dead-lettered, replayed.

Both services run as processes (``python -m reintegration serve deadlines|benefits``, nothing changed) over a
stream in which 10 messages are poison, each the last of its case so that nothing waits behind it. Then
``reintegration dead-letters list`` and ``replay`` run as processes: the intake store holds the true events, so
after the fix every case catches up."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import nats
import nats.errors
import nats.js.errors

from lab.chaos.report import Row, scenario
from lab.chaos.trajectory import (
    ENCODER,
    SERVICES,
    Lab,
    audit_verify,
    compare,
    consumer_figures,
    publish_all,
    relay_message,
    step_count,
)
from shared.embedded.waiting import until
from shared.events.envelope import CaseEvent
from shared.events.subjects import (
    DEAD_LETTER_STREAM,
)

# --- R8: poison messages ------------------------------------------------------------------------------------------


@scenario("R8", "poison messages: 5 undecodable + 5 rule-breaking among the events, dead-lettered, replayed")
def r8_poison(workdir: Path, quick: bool) -> Row:
    cases, events = (40, 120) if quick else (2400, 10_000)
    lab = Lab.start(workdir)
    try:
        log = lab.write_input(cases, seed=808, events=events)
        return asyncio.run(_r8(lab, log, quick))
    finally:
        lab.stop()


def _poison(log: list[CaseEvent]) -> dict[int, tuple[str, bytes]]:
    """Ten of the log's indexes and their bad bytes: 5 undecodable (the last event of a case with several), 5
    rule-breaking (the only event of a case, rewritten into a later report: a case must open with its incapacity)."""
    last: dict[uuid.UUID, int] = {}
    count: dict[uuid.UUID, int] = {}
    for index, event in enumerate(log):
        last[event.case_id] = index
        count[event.case_id] = count.get(event.case_id, 0) + 1
    several = [last[c] for c in last if count[c] >= 2]
    single = [last[c] for c in last if count[c] == 1]
    later = next(e for e in log if e.version >= 2)
    rng = random.Random(808)
    out: dict[int, tuple[str, bytes]] = {}
    for index in rng.sample(several, 5):
        out[index] = ("undecodable", ENCODER.encode(log[index])[:-7] + b"\x00\xff")
    for index in rng.sample(single, 5):
        event = log[index]
        bad = msgspec.structs.replace(event, report=msgspec.structs.replace(later.report, case_id=event.case_id))
        out[index] = ("rule-breaking", ENCODER.encode(bad))
    return out


async def _r8(lab: Lab, log: list[CaseEvent], quick: bool) -> Row:
    from reintegration.dead_letters import list_dead_letters

    poison = _poison(log)
    messages = [relay_message(e, p, data=poison[p - 1][1] if (p - 1) in poison else None)
                for p, e in enumerate(log, start=1)]
    nc = await nats.connect(lab.settings.nats_url)
    js = nc.jetstream()
    try:
        await publish_all(js, messages)
        procs = [lab.spawn(["reintegration", "serve", name], name) for name in SERVICES]
        alive = lab.alive(procs)
        started = time.monotonic()

        async def dead_lettered() -> bool:
            alive()
            try:
                held = (await js.stream_info(DEAD_LETTER_STREAM)).state.messages
            except nats.js.errors.NotFoundError:
                return False
            if held < 2 * len(poison):
                return False
            for name in SERVICES:
                _d, stream_seq, pending, unacked = await consumer_figures(js, name)
                if stream_seq < len(log) or pending or unacked:
                    return False
            return all(step_count(lab.settings, n) >= len(log) - len(poison) for n in SERVICES)

        await until(dead_lettered, timeout=300 if quick else 1800, what="poison dead-lettered, the rest applied")
        consume_s = time.monotonic() - started
        figures = {name: await consumer_figures(js, name) for name in SERVICES}
        processed = {name: step_count(lab.settings, name) for name in SERVICES}
        listed = _cli(lab, ["dead-letters", "list", "--json"])
        letters = json.loads(listed.stdout)
        # The fix: the intake store holds the true events; replay re-drives the ten cases from it.
        replayed = _cli(lab, ["dead-letters", "replay"])
        after_replay = {name: step_count(lab.settings, name) for name in SERVICES}
        again = _cli(lab, ["dead-letters", "replay"])
        unresolved = await asyncio.to_thread(list_dead_letters, lab.settings)
    finally:
        await nc.close()
    lab.supervisor.stop(procs)
    comparisons = {name: compare(lab.settings, log, name) for name in SERVICES}
    counts, verified = audit_verify(lab.settings)
    poison_cases = {str(log[i].case_id) for i in poison}
    per_service = {n: [letter for letter in letters if letter["service"] == n] for n in SERVICES}
    listed_ok = {n: {letter["case_id"] for letter in per_service[n]} == poison_cases and len(per_service[n]) == 10
                 for n in SERVICES}
    exact = {n: sorted({letter["deliveries"] for letter in per_service[n]}) for n in SERVICES}
    # The server counts each delivery: every event once, each poison message max_deliver (5) times, nothing more.
    extra_deliveries = {n: figures[n][0] - len(log) for n in SERVICES}
    lost = sum(c.lost for c in comparisons.values())
    doubled = sum(c.doubled for c in comparisons.values())
    passed = (all(listed_ok.values()) and all(exact[n] == [5] for n in SERVICES)
              and all(extra_deliveries[n] == 4 * len(poison) for n in SERVICES)
              and all(processed[n] == len(log) - len(poison) for n in SERVICES)
              and replayed.returncode == 0 and all(after_replay[n] == len(log) for n in SERVICES)
              and unresolved == [] and "nothing to replay" in again.stdout
              and lost == 0 and doubled == 0 and verified)
    return Row(
        id="R8", title="poison messages", faults=len(poison), sent=len(messages), lost=lost, doubled=doubled,
        recover_s=None,
        pass_figure=("each delivered exactly max_deliver times, then dead-lettered (10/10 listed), "
                     f"{len(log) - len(poison):,} processed, replayable after a fix"),
        passed=passed,
        detail=(f"listed {', '.join(f'{n} {len(per_service[n])}/10' for n in SERVICES)} (deliveries "
                f"{', '.join(f'{n} {exact[n]}' for n in SERVICES)}; server deliveries beyond one per event: "
                f"{', '.join(f'{n} {extra_deliveries[n]}' for n in SERVICES)} = 10 x 4); processed "
                f"{', '.join(f'{n} {processed[n]:,}' for n in SERVICES)} of {len(log):,} in {consume_s:.0f} s; "
                f"after `dead-letters replay`: {', '.join(f'{n} {after_replay[n]:,}' for n in SERVICES)}, "
                f"{len(unresolved)} unresolved, a second replay: "
                f"{'nothing to do' if 'nothing to replay' in again.stdout else 'DID SOMETHING'}; "
                f"audit verify {counts}"),
        extra={"letters": len(letters), "deliveries": exact, "extra_deliveries": extra_deliveries,
               "processed": processed, "after_replay": after_replay, "unresolved": len(unresolved),
               "verify": counts, "events": len(log), "replay_output": replayed.stdout[-2000:]},
    )


def _cli(lab: Lab, args: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "reintegration", *args, "--data-dir", str(lab.settings.data_dir)],
                            env={**os.environ, **lab.settings.to_env(), "COLUMNS": "200"}, capture_output=True,
                            text=True, timeout=600)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"reintegration {' '.join(args)} exited with {result.returncode}: {result.stderr[-2000:]}")
    return result


