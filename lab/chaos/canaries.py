"""Canaries in every medical or free-text field, and the running system S2 and S4 feed them through.

Both scenarios run the embedded runtime as ``reintegration up`` does (nats-server with the development parties'
accounts, intake, relay, deadlines, benefits, disclosures and feeds as their own processes) under the scenario's
folder, and feed it generated cases through the real intake subjects. Every field of every report that is marked
:data:`~shared.events.common.Medical` or :data:`~shared.events.common.FreeText` (found by
:func:`~shared.events.common.restricted_fields`, nested plan measures included) carries a canary string
``MEDCANARY-<case>-<n>``, also where the generator leaves the field empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from lab.generator import Generator, Script, Step
from services.registry import DERIVED
from shared.embedded.waiting import WaitTimeoutError, wait_until
from shared.events import reports as r
from shared.events.common import restricted_fields
from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, EMPLOYER_FEED_PREFIX
from shared.infra.settings import Settings

CANARY_PREFIX = "MEDCANARY"
#: The seed whose 25 employers are in ``deploy/parties.dev.toml``: each has credentials to replay its own feed.
SEED = 2026
FEED_STREAMS = (DEADLINES_STREAM, BENEFITS_STREAM)



# --- canaries -----------------------------------------------------------------------------------------------------


def restricted_report_types() -> list[type[r.Report]]:
    """The report types with at least one medical or free-text field (nested ones included)."""
    return [cls for cls in r.REPORT_TYPES if restricted_fields(cls)]


def plant(obj: Any, canary: str) -> Any:
    """``obj`` with ``canary`` in every medical or free-text field, also inside nested structs and lists."""
    if not isinstance(obj, msgspec.Struct):
        return obj
    changes: dict[str, Any] = {}
    for name in restricted_fields(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, (list, tuple)):
            changes[name] = type(value)(plant(item, canary) for item in value)
        elif isinstance(value, msgspec.Struct):
            changes[name] = plant(value, canary)
        else:
            changes[name] = canary
    return msgspec.structs.replace(obj, **changes) if changes else obj


def restricted_values(obj: Any) -> list[Any]:
    """The values of every medical or free-text leaf field of ``obj`` (the fields :func:`plant` fills)."""
    if not isinstance(obj, msgspec.Struct):
        return []
    out: list[Any] = []
    for name in restricted_fields(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, (list, tuple)):
            for item in value:
                out += restricted_values(item) if isinstance(item, msgspec.Struct) else [item]
        elif isinstance(value, msgspec.Struct):
            out += restricted_values(value)
        else:
            out.append(value)
    return out


def canary_scripts(count: int, generator: Generator | None = None, start: int = 0) -> list[Script]:
    """``count`` generated cases (the next ones of ``generator``, numbered from ``start``) with a canary of their
    own in every restricted field of every report."""
    generator = generator or Generator(SEED)
    scripts = []
    for index in range(start, start + count):
        script = generator.script()
        canary = f"{CANARY_PREFIX}-{index:06d}-{random.Random(index).getrandbits(32):08x}"
        script.opening = plant(script.opening, canary)
        script.steps = [
            Step(step.party, lambda c, build=step.build, canary=canary: plant(build(c), canary), step.expect,
                 step.label)
            for step in script.steps
        ]
        scripts.append(script)
    return scripts


def canaries_in(value: Any) -> bool:
    data = value if isinstance(value, bytes) else str(value).encode()
    return CANARY_PREFIX.encode() in data


# --- the running system -------------------------------------------------------------------------------------------


@dataclass
class FeedMessage:
    stream: str
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes

    @property
    def msg_id(self) -> str:
        return self.headers.get("Nats-Msg-Id") or f"{self.subject}:{self.seq}"

    @property
    def enterprise(self) -> str:
        return self.subject.split(".")[2]


@dataclass
class Fed:
    reports: int = 0
    accepted: int = 0
    surprises: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running_system(workdir: Path) -> Iterator[Any]:
    """The embedded runtime under ``workdir`` (random loopback port), stopped on exit, children by their pid."""
    from reintegration.runtime import Runtime

    runtime = Runtime(Settings(data_dir=workdir / "data"), nats_port=0)
    try:
        runtime.start()
        runtime.wait_ready(timeout=60)
        yield runtime
    finally:
        runtime.stop()


def feed_scripts(runtime: Any, scripts: list[Script], fed: Fed) -> None:
    from lab.demo import feed

    tally = asyncio.run(feed(runtime.settings.nats_url, scripts, concurrency=16, **runtime.settings.nats_options()))
    fed.accepted += tally.accepted
    fed.reports += tally.accepted + sum(tally.rejected.values())
    fed.surprises += tally.surprises


def settle(runtime: Any, timeout: float) -> bool:
    """Until deadlines and benefits have applied every recorded event (and every past-due timer fired), and both
    relays have published everything their stores hold."""
    from lab.bench.derived import StoreProbe
    from lab.demo import wait_for_derived

    if not wait_for_derived(runtime.settings, runtime, timeout=timeout):
        return False
    probes = {name: StoreProbe(runtime.settings.data_dir / f"{name}.sqlite") for name in DERIVED}
    streams = {"deadlines": DEADLINES_STREAM, "benefits": BENEFITS_STREAM}

    def published() -> bool:
        runtime.supervise_once()
        return all(p.tracking(f"relay:{n}->{streams[n]}") >= p.last_position() for n, p in probes.items())

    try:
        wait_until(published, timeout=timeout, interval=0.25, what="both relays at their stores' ends", times=2)
    except WaitTimeoutError:
        return False
    finally:
        for probe in probes.values():
            probe.close()
    return True


async def employer_messages(settings: Settings) -> list[FeedMessage]:
    """Every message on ``reintegration.employer.>`` in DEADLINES and BENEFITS, in stream order."""
    import nats
    import nats.js.errors

    nc = await nats.connect(settings.nats_url, **settings.nats_options())
    out: list[FeedMessage] = []
    try:
        js = nc.jetstream()
        for stream in FEED_STREAMS:
            seq = 1
            while True:
                try:
                    msg = await js.get_msg(stream, seq, subject=f"{EMPLOYER_FEED_PREFIX}.>", next=True)
                except nats.js.errors.NotFoundError:
                    break
                assert msg.seq is not None and msg.subject is not None
                out.append(FeedMessage(stream, msg.seq, msg.subject, dict(msg.headers or {}), msg.data or b""))
                seq = msg.seq + 1
    finally:
        await nc.close()
    return out

