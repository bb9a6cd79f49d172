"""S4 unlogged disclosure: after employer deliveries, auditors ask questions through the ``reintegration audit``
commands (the CLI path that records each query). Every delivery and every query must leave exactly one disclosure
record with who, what, legal basis and when, none of which holds a canary."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.chaos.canaries import (
    SEED,
    Fed,
    FeedMessage,
    canaries_in,
    canary_scripts,
    employer_messages,
    feed_scripts,
    running_system,
    settle,
)
from lab.chaos.report import Row, scenario
from lab.generator import Generator
from shared.embedded.waiting import WaitTimeoutError, wait_until
from shared.infra.settings import Settings

S4_DELIVERIES, S4_QUICK_DELIVERIES = 1_000, 50
S4_QUERIES, S4_QUICK_QUERIES = 1_000, 50


# --- S4 -----------------------------------------------------------------------------------------------------------

#: The auditor questions S4 asks, in turn, each about a random case.
QUERY_COMMANDS: tuple[tuple[str, ...], ...] = (("history",), ("applied",), ("asof", "--version", "1"), ("verify",))


def ask_auditor(data_dir: Path, command: tuple[str, ...], case_id: str, auditor: str) -> int:
    """One ``reintegration audit <command> CASE`` as its process runs it (argv included, which the query record
    names), in this process; its exit code."""
    from typer.testing import CliRunner

    from reintegration.cli import app

    args = ["audit", command[0], case_id, *command[1:], "--data-dir", str(data_dir)]
    saved = sys.argv
    sys.argv = ["reintegration", *args]
    try:
        result = CliRunner().invoke(app, args, env={"REINTEGRATION_AUDITOR": auditor})
    finally:
        sys.argv = saved
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code


def disclosure_records(settings: Settings) -> list[Any]:
    from services.disclosures.log import build_disclosures

    log = build_disclosures(settings)
    try:
        return list(log.records())
    finally:
        log.close()


def _has_canary(record: Any) -> bool:
    return any(canaries_in(getattr(record, name)) for name in ("who", "what", "legal_basis", "reference"))


@scenario("S4", "unlogged disclosure")
def unlogged_disclosure(workdir: Path, quick: bool) -> Row:
    from services.disclosures.log import AUDIT_BASIS, EMPLOYER_BASIS

    target = S4_QUICK_DELIVERIES if quick else S4_DELIVERIES
    queries = S4_QUICK_QUERIES if quick else S4_QUERIES
    started = time.monotonic()
    began = datetime.now(UTC)
    fed = Fed()
    rng = random.Random(SEED)
    failures: list[str] = []
    with running_system(workdir) as runtime:
        settings = runtime.settings
        messages: list[FeedMessage] = []
        fed_cases, batch = 0, (60 if quick else 400)
        generator = Generator(SEED)
        settled = True
        while len(messages) < target and fed_cases < 50 * target:
            feed_scripts(runtime, canary_scripts(batch, generator, start=fed_cases), fed)
            fed_cases += batch
            settled = settle(runtime, timeout=120 + batch * 0.1)
            messages = asyncio.run(employer_messages(settings))
        # The recorder has seen every delivery once its two consumers have nothing pending.
        def recorded() -> bool:
            if len([x for x in disclosure_records(settings) if x.kind == "delivery"]) >= len(messages):
                return True
            runtime.supervise_once()
            return False

        with contextlib.suppress(WaitTimeoutError):  # what is missing then is counted below
            wait_until(recorded, timeout=120, interval=0.5, what="a disclosure record of every delivery")
        cases = sorted({str(e.case_id) for e in _opened_cases(settings)})
        asked: list[tuple[str, str, tuple[str, ...]]] = []
        for index in range(queries):
            command = QUERY_COMMANDS[index % len(QUERY_COMMANDS)]
            case_id, auditor = rng.choice(cases), f"inspector-{index:04d}"
            code = ask_auditor(settings.data_dir, command, case_id, auditor)
            if code != 0:
                failures.append(f"audit {' '.join(command)} {case_id}: exit {code}")
            asked.append((auditor, case_id, command))
        ended = datetime.now(UTC)
        records = disclosure_records(settings)
    deliveries = [x for x in records if x.kind == "delivery"]
    by_reference = Counter(x.reference for x in deliveries)
    delivery_lost = sum(1 for m in messages if m.msg_id not in by_reference)
    delivery_doubled = sum(n - 1 for n in by_reference.values() if n > 1)
    by_message = {m.msg_id: m for m in messages}
    bad_deliveries = [
        x for x in deliveries
        if x.reference not in by_message
        or x.who != f"employer:{by_message[x.reference].enterprise}"
        or by_message[x.reference].subject not in x.what
        or EMPLOYER_BASIS not in x.legal_basis or not x.legal_basis.split(";")[0].strip()
        or x.disclosed_at.tzinfo is None or not began <= x.disclosed_at <= ended
        or str(x.case_id) not in by_message[x.reference].subject
    ]
    query_records = [x for x in records if x.kind == "query"]
    by_who = Counter(x.who for x in query_records)
    query_lost = sum(1 for auditor, _, _ in asked if by_who[f"auditor:{auditor}"] == 0)
    query_doubled = sum(n - 1 for n in by_who.values() if n > 1)
    wanted = {f"auditor:{a}": (case, command) for a, case, command in asked}
    bad_queries = [
        x for x in query_records
        if x.who not in wanted or str(x.case_id) != wanted[x.who][0]
        or f"audit {wanted[x.who][1][0]} {wanted[x.who][0]}" not in x.what
        or x.legal_basis != AUDIT_BASIS or x.disclosed_at.tzinfo is None or not began <= x.disclosed_at <= ended
    ]
    medical = [x for x in records if _has_canary(x)]
    lost, doubled = delivery_lost + query_lost, delivery_doubled + query_doubled
    passed = (len(messages) >= target and len(asked) == queries and not lost and not doubled and not bad_deliveries
              and not bad_queries and not medical and not failures and settled and not fed.surprises)
    detail = (
        f"{len(messages):,} employer deliveries ({fed_cases:,} cases) and {len(asked):,} auditor queries: "
        f"{len(deliveries):,} + {len(query_records):,} disclosure records, {lost} missing, {doubled} doubled, "
        f"{len(bad_deliveries) + len(bad_queries)} incomplete or wrong (who, what, basis, when), {len(medical)} with "
        f"medical content{'; ' + failures[0] if failures else ''}{'' if settled else '; NOT SETTLED in time'}; "
        f"{time.monotonic() - started:.0f} s"
    )
    return Row(
        id="S4", title="unlogged disclosure", faults=0, sent=len(messages) + len(asked), lost=lost, doubled=doubled,
        recover_s=None, pass_figure="100% of deliveries and queries leave a disclosure record (who, what, legal "
        "basis, when), none with medical content", passed=passed, detail=detail,
        extra={"deliveries": len(messages), "delivery_records": len(deliveries), "queries": len(asked),
               "query_records": len(query_records), "delivery_lost": delivery_lost, "query_lost": query_lost,
               "bad_deliveries": len(bad_deliveries), "bad_queries": len(bad_queries), "medical": len(medical),
               "failures": failures[:10], "settled": settled, "surprises": fed.surprises[:10]},
    )


def _opened_cases(settings: Settings) -> list[Any]:
    from reintegration.operate import intake_log

    return [event for _position, event in intake_log(settings) if event.version == 1]
