"""R5 corruption: a flipped byte in the broker's TRAJECTORY files, then a flipped byte, two swapped events and a
deleted row in the SQLite event store; ``audit verify`` must name each tampered case and event, and the services
must agree with the store again after the broker file was damaged."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from lab.chaos.report import Row, scenario
from lab.chaos.system import (
    PARTIES,
    credentials_name,
    seed_cases,
    start_runtime,
    store_count,
    wait_applied,
)
from services.registry import DERIVED
from shared.infra.settings import Settings

# ================================================================================================ R5 corruption


def _feed_cases(runtime: Any, cases: int, seed: int) -> list[uuid.UUID]:
    from shared.infra.parties import connect_as

    async def run() -> list[uuid.UUID]:
        url = runtime.settings.nats_url
        conns = {kind: await connect_as(runtime.credentials[credentials_name(p)], url) for kind, p in PARTIES.items()}
        try:
            return await seed_cases(conns, cases, seed)
        finally:
            for nc in conns.values():
                await nc.close()

    return asyncio.run(run())


def _verify_cli(data_dir: Path) -> tuple[int, dict[str, Any]]:
    """``reintegration audit verify --json`` as an operator runs it: (exit code, report)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "reintegration", "audit", "verify", "--data-dir", str(data_dir),
                           "--json"], capture_output=True, timeout=1800, check=False)
    text = done.stdout.decode()
    return done.returncode, json.loads(text[text.index("{"):]) if "{" in text else {}


def _flip_broker_byte(data_dir: Path, rng: random.Random) -> str:
    """Flip one byte inside a stored message of the TRAJECTORY stream's newest block file."""
    blocks = sorted((data_dir / "nats").rglob("TRAJECTORY/msgs/*.blk"), key=lambda p: int(p.stem))
    if not blocks:
        raise RuntimeError(f"no TRAJECTORY block file under {data_dir / 'nats'}")
    block = blocks[-1]
    data = bytearray(block.read_bytes())
    at = data.find(b'"report"', rng.randrange(len(data) // 2)) + 3  # inside an event's JSON
    data[at] ^= 0x20
    block.write_bytes(bytes(data))
    return f"{block.name} byte {at}"


@scenario("R5", "corruption")
def corruption(workdir: Path, quick: bool) -> Row:
    from services.audit import Auditor
    from shared.events.envelope import event_id_for

    cases, later, per_kind = (30, 10, 2) if quick else (400, 100, 10)
    rng = random.Random(5)
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    services = ("intake", "relay", *DERIVED)
    runtime = start_runtime(data_dir, services)
    try:
        _feed_cases(runtime, cases, 41)
        first_ok, _ = wait_applied(runtime.settings, runtime, 300)
    finally:
        runtime.stop()
    # 1. A byte of a broker file: the server restarts on it, the services carry on from the event store.
    broker_fault = _flip_broker_byte(data_dir, rng)
    restarted = time.monotonic()
    runtime = start_runtime(data_dir, services)
    try:
        _feed_cases(runtime, later, 43)
        caught_up, _ = wait_applied(runtime.settings, runtime, 300)
        recover_s = time.monotonic() - restarted
        stream, unreadable = asyncio.run(_stream_messages(runtime))
    finally:
        runtime.stop()
    settings = Settings(data_dir=data_dir)
    events, _ = store_count(settings)
    code, before = _verify_cli(data_dir)
    counts = before.get("counts", {})
    broker_differ = counts.get("different", -1) + counts.get("broken", 0)
    # 2. The event store: seal, then tamper with one case per fault and verify.
    with Auditor(settings) as auditor:
        auditor.seal()
    path = data_dir / "intake.sqlite"
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT originator_id, MAX(originator_version) FROM stored_events GROUP BY originator_id "
                          "HAVING MAX(originator_version) >= 3").fetchall()
    chosen = rng.sample(rows, 3 * per_kind)
    tampered: dict[str, tuple[str, int]] = {}  # case id -> (fault, first version that must be named)
    with sqlite3.connect(path) as db:
        for index, (originator, top) in enumerate(chosen):
            case = str(uuid.UUID(originator))
            fault = ("flip", "swap", "delete")[index % 3]
            version = rng.randint(1, top - 1)
            if fault == "flip":
                (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id=? AND originator_version=?",
                                      (originator, version)).fetchone()
                state = bytearray(state)
                state[rng.randrange(len(state))] ^= 1 << rng.randrange(8)
                db.execute("UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=?",
                           (bytes(state), originator, version))
            elif fault == "swap":
                for old, new in ((version, -1), (version + 1, version), (-1, version + 1)):
                    db.execute("UPDATE stored_events SET originator_version=? WHERE originator_id=? AND "
                               "originator_version=?", (new, originator, old))
            else:
                db.execute("DELETE FROM stored_events WHERE originator_id=? AND originator_version=?",
                           (originator, version))
            tampered[case] = (fault, version)
    code_after, after = _verify_cli(data_dir)
    verdicts = {v["case_id"]: v for v in after.get("verdicts", [])}
    named: dict[str, int] = Counter()
    missed: list[str] = []
    for case, (fault, version) in tampered.items():
        verdict = verdicts.get(case, {})
        breaks = [c["broken"] for c in verdict.get("chains", []) if c.get("broken") and c["store"] == "intake"]
        ok = (verdict.get("status") == "broken" and breaks and breaks[0]["case_id"] == case
              and breaks[0]["version"] == version and breaks[0]["event_id"] == str(event_id_for(uuid.UUID(case),
                                                                                                  version))
              and case in breaks[0]["message"] and breaks[0]["event_id"] in breaks[0]["message"])
        if ok:
            named[fault] += 1
        else:
            missed.append(f"{fault} {case} v{version}: {verdict.get('status')} {breaks[:1]}")
    false_alarms = [c for c, v in verdicts.items() if c not in tampered and v["status"] in ("different", "broken")]
    detected = sum(named.values())
    passed = (first_ok and caught_up and broker_differ == 0 and code == 0 and detected == len(tampered)
              and not false_alarms and code_after == 1)
    detail = (
        f"broker: flipped {broker_fault} of TRAJECTORY with the server stopped, restarted, fed {later} more cases: "
        f"services caught up {caught_up} in {recover_s:.1f} s, stream holds {stream:,} messages for {events:,} "
        f"stored events ({unreadable} no longer readable or decodable: the broker does not heal a damaged message, "
        f"the services hold the store's version), `audit verify` after reconciliation: {broker_differ} cases differ "
        f"(exit {code}); store: "
        f"{len(tampered)} cases tampered after a seal ({per_kind} flipped byte, {per_kind} swapped events, "
        f"{per_kind} deleted rows): flagged naming case and event {detected}/{len(tampered)} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(named.items()))}), false alarms {len(false_alarms)} of "
        f"{len(verdicts) - len(tampered)} untouched cases, verify exit {code_after}"
    )
    return Row(id="R5", title="corruption", faults=1 + len(tampered), sent=events, lost=max(0, events - stream),
               doubled=max(0, stream - events), recover_s=recover_s,
               pass_figure="0 cases differ from the store after reconciliation; verify flags 100% of store tampering, "
                           "naming case and event",
               passed=passed, detail=detail,
               extra={"missed": missed[:10], "false_alarms": false_alarms[:10], "broker_counts": counts,
                      "after_counts": after.get("counts", {}), "tampered": len(tampered), "detected": detected,
                      "stream_messages": stream, "stream_unreadable": unreadable,
                      "stored_events": events})


async def _stream_messages(runtime: Any) -> tuple[int, int]:
    """(messages in TRAJECTORY, how many of them cannot be read back or no longer decode)."""
    import nats

    from shared.events.envelope import CaseEvent
    from shared.events.subjects import TRAJECTORY_STREAM

    nc = await nats.connect(runtime.settings.nats_url, **runtime.settings.nats_options())
    try:
        js = nc.jetstream()
        state = (await js.stream_info(TRAJECTORY_STREAM)).state
        unreadable = 0
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msgspec.json.decode((await js.get_msg(TRAJECTORY_STREAM, seq=seq)).data, type=CaseEvent)
            except Exception:  # noqa: BLE001 - the figure: lost or damaged in the broker's files
                unreadable += 1
        return state.messages, unreadable
    finally:
        await nc.close()
