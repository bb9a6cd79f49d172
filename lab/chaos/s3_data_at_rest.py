"""S3 data at rest: with encryption on, no national number or canary in clear in the SQLite files (and WAL) or
the PostgreSQL data directory; what the JetStream store holds in clear is counted and reported."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec

from lab.chaos.report import Row, scenario
from lab.chaos.system import (
    FUND,
    PARTIES,
    credentials_name,
    datetime_now,
    national_number,
    remap,
    request_with_retry,
    start_postgres,
    start_runtime,
    wait_applied,
)
from services.registry import DERIVED
from shared.events import reports as r
from shared.events.common import PartyKind
from shared.events.replies import Accepted
from shared.events.subjects import intake_subject
from shared.infra.settings import Settings

# ================================================================================================ S3 data at rest


def _feed_with_canaries(runtime: Any, cases: int, seed: int) -> tuple[list[str], list[str], int]:
    """Generated cases, each with a canary in its diagnosis and in a certificate's findings (medical text): the
    national numbers and canaries sent, and how many reports were accepted."""
    from lab.generator import Generator, encode_report
    from shared.infra.parties import connect_as

    generator = Generator(seed)
    numbers: list[str] = []
    canaries: list[str] = []
    accepted = 0

    async def run() -> None:
        nonlocal accepted
        url = runtime.settings.nats_url
        conns = {kind: await connect_as(runtime.credentials[credentials_name(p)], url) for kind, p in PARTIES.items()}
        gate = asyncio.Semaphore(16)

        async def play(index: int) -> None:
            nonlocal accepted
            script = remap(generator.script())
            diagnosis, findings = f"CANARYDX{seed:02d}{index:06d}Q", f"CANARYFN{seed:02d}{index:06d}Q"
            opening = msgspec.structs.replace(script.opening, diagnosis=diagnosis)
            if script.open_expect != "accepted":  # an invalid opening stores nothing: no canary either
                opening = msgspec.structs.replace(opening, insz=national_number(generator.rng))
            async with gate:
                reply = await request_with_retry(conns[script.opener.kind], intake_subject(script.opener),
                                                 encode_report(opening))
                if not isinstance(reply, Accepted):
                    return
                numbers.append(opening.insz)
                canaries.append(diagnosis)
                accepted += 1
                for step in script.steps:
                    if isinstance(await request_with_retry(conns[step.party.kind], intake_subject(step.party),
                                                 encode_report(step.build(reply.case_id))), Accepted):
                        accepted += 1
                certificate = r.DefinitiveUnfitnessCertified(
                    report_id=uuid.uuid4(), case_id=reply.case_id, certified_on=opening.start_date + timedelta(days=1),
                    findings=findings)
                ohs = PARTIES[PartyKind.OCCUPATIONAL_HEALTH_SERVICE]
                if isinstance(await request_with_retry(conns[ohs.kind], intake_subject(ohs),
                                                       encode_report(certificate)),
                              Accepted):
                    canaries.append(findings)
                    accepted += 1

        try:
            await asyncio.gather(*(play(i) for i in range(cases)))
        finally:
            for nc in conns.values():
                await nc.close()

    asyncio.run(run())
    return numbers, canaries, accepted


def scan(paths: list[Path], needles: list[str]) -> dict[str, set[str]]:
    """File name -> the needles found in it in clear."""
    import re

    pattern = re.compile(b"|".join(re.escape(n.encode()) for n in sorted(set(needles), key=len, reverse=True)))
    found: dict[str, set[str]] = {}
    for path in paths:
        if not path.is_file():
            continue
        hits = {m.group().decode() for m in pattern.finditer(path.read_bytes())}
        if hits:
            found[str(path)] = hits
    return found


def _postgres_at_rest(workdir: Path, cipher_key: str, cases: int) -> tuple[str, dict[str, set[str]], list[str]]:
    """The same kind of cases recorded in a PostgreSQL intake store with encryption on; what its data directory
    holds in clear after a checkpoint."""
    import psycopg

    from lab.generator import Generator
    from services.intake.application import build_intake
    from shared.infra.store import postgres_env

    shutil.rmtree(workdir / "pgdata", ignore_errors=True)
    server, url = start_postgres(workdir)
    if server is None:
        return url, {}, []
    needles: list[str] = []
    try:
        settings = Settings(data_dir=workdir / "pg-files", store="postgres", postgres_url=url, cipher_key=cipher_key)
        app = build_intake(settings)
        generator = Generator(31)
        fund = PARTIES[PartyKind.HEALTH_FUND]
        for index in range(cases):
            opening, _ = generator.opening(date(2024, 1, 10))
            diagnosis = f"CANARYPG{index:06d}Q"
            opening = msgspec.structs.replace(opening, health_fund=FUND, diagnosis=diagnosis)
            app.submit(fund, opening, datetime_now())
            needles += [opening.insz, diagnosis]
        app.close()
        params = postgres_env(url)
        with psycopg.connect(dbname=params["POSTGRES_DBNAME"], host=params["POSTGRES_HOST"],
                             port=params["POSTGRES_PORT"], user=params["POSTGRES_USER"], autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        files = [p for p in (workdir / "pgdata").rglob("*") if p.is_file()]
        found = scan(files, needles)
        return f"PostgreSQL: {len(files):,} files of the data directory", found, needles
    finally:
        server.stop()


@scenario("S3", "data at rest")
def data_at_rest(workdir: Path, quick: bool) -> Row:
    from eventsourcing.cipher import AESCipher

    cases = 60 if quick else 1_000
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    key = AESCipher.create_key(16)
    runtime = start_runtime(data_dir, ("intake", "relay", *DERIVED), cipher_key=key)
    try:
        numbers, canaries, accepted = _feed_with_canaries(runtime, cases, 11)
        caught_up, _ = wait_applied(runtime.settings, runtime, 120 if quick else 600)
        needles = numbers + canaries
        stores = lambda: sorted(data_dir.glob("*.sqlite*"))  # noqa: E731 - the database files, WAL and shm
        running = scan(stores(), needles)
    finally:
        runtime.stop()
    at_rest = scan(stores(), needles)
    store_files = [p.name for p in stores()]
    jetstream_files = [p for p in (data_dir / "nats").rglob("*") if p.is_file()]
    jetstream = scan(jetstream_files, needles)
    log_files = [p for p in (data_dir / "logs").rglob("*") if p.is_file()]
    logs = scan(log_files, needles)
    pg_note, pg_found, pg_needles = _postgres_at_rest(workdir, key, 30 if quick else 300)
    in_clear = lambda found: len(set().union(*found.values())) if found else 0  # noqa: E731
    js_numbers = len({n for hits in jetstream.values() for n in hits if n in set(numbers)})
    js_canaries = len({n for hits in jetstream.values() for n in hits if n in set(canaries)})
    passed = (caught_up and not running and not at_rest and not pg_found and not jetstream and not logs
              and bool(numbers) and bool(canaries) and (bool(pg_needles) or "skipped" in pg_note))
    detail = (
        f"encryption on; {len(numbers):,} cases ({accepted:,} reports) with {len(numbers):,} national numbers and "
        f"{len(canaries):,} medical canaries; event stores in clear: SQLite {in_clear(running)} while running / "
        f"{in_clear(at_rest)} stopped ({', '.join(store_files)}), "
        + (f"{pg_note}: {in_clear(pg_found)} of {len(pg_needles):,}" if pg_needles else pg_note)
        + f"; JetStream store (trajectory payloads sealed with the stores' cipher): {js_numbers:,} of "
        f"{len(numbers):,} national numbers and {js_canaries:,} of {len(canaries):,} canaries in clear in "
        f"{len(jetstream)} file(s); service logs: {in_clear(logs)} in clear; derived services caught up: {caught_up}"
    )
    return Row(id="S3", title="data at rest", faults=0, sent=accepted, lost=0, doubled=0, recover_s=None,
               pass_figure="encryption on: 0 national numbers or canaries in clear in the event stores (SQLite file "
                           "and WAL, PostgreSQL), the JetStream store or the logs",
               passed=passed, detail=detail,
               extra={"sqlite_running": {k: sorted(v)[:5] for k, v in running.items()},
                      "sqlite_stopped": {k: sorted(v)[:5] for k, v in at_rest.items()},
                      "postgres": {k: sorted(v)[:5] for k, v in pg_found.items()}, "postgres_note": pg_note,
                      "jetstream_numbers": js_numbers, "jetstream_canaries": js_canaries,
                      "jetstream_files": sorted(jetstream)[:10], "logs": in_clear(logs), "numbers": len(numbers),
                      "canaries": len(canaries), "caught_up": caught_up})


