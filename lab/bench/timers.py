"""``reintegration bench timers``: how many deadline timers the server holds, and what they cost it.

* Held: N open deadlines, due on days spread over the next two years, armed by the deadlines service's own
  :class:`~services.deadlines.timers.TimerWriter` (one ``Nats-Schedule: @at`` message each in TIMERS, awaited one at
  a time as the service does) on an embedded nats-server with fsync on every write. Figures: timers armed/s, the
  timers the stream holds, its bytes, and the server's resident memory before and after. Baseline, same run and
  server: the same N payloads published the same way as plain messages into a stream without schedules.
* Fired: K timers armed to fire 5 s ahead, in the writer's format; how late the server fires each one (the fired
  message's stream timestamp against its scheduled moment; p50/p99, max), which is what a deadline's "missed"
  waits on besides the service.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
from rich.console import Console
from rich.table import Table

from lab.bench.derived import _base_dir, _progress, _vm_rss_mib, base_histories, data_note
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.events.subjects import TIMER_FIRED_PREFIX, TIMER_SCHEDULE_PREFIX, TIMERS_STREAM
from shared.infra.streams import ensure_stream, ensure_timer_stream
from shared.rulebook import default_rulebook
from shared.rulebook.deadlines import Deadline, DeadlineState, compute_deadlines

console = Console()
PLAIN_STREAM = "BENCH_PLAIN_TIMERS"


def open_deadlines(count: int, today: date) -> list[tuple[Any, Deadline]]:
    """``count`` open deadlines (from real computed ones), each of its own case, due over the next two years,
    with the Case event that opened a real one (what a ScheduleStep records as its source)."""
    rulebook = default_rulebook()
    histories = base_histories(40)
    templates = [(h[0], d) for h in histories for d in compute_deadlines(h, rulebook)]
    out = []
    for i in range(count):
        source, template = templates[i % len(templates)]
        out.append((source, msgspec.structs.replace(
            template, id=uuid.uuid4(), case_id=uuid.uuid4(), due_on=today + timedelta(days=1 + i % 730),
            state=DeadlineState.OPEN, closed_by=None, closed_on=None, recomputed_on=None, superseded=(),
        )))
    return out


async def arm_with_the_writer(url: str, deadlines: list[tuple[Any, Deadline]], progress: Any) -> float:
    """Arm every deadline's timer through the service's TimerWriter; seconds taken."""
    from services.deadlines.schedule import DeadlineChange, ScheduleStep
    from services.deadlines.timers import TimerWriter

    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_timer_stream(js)
    # The writer's position bookkeeping (recorder, mapper, tracking) is not used by ``apply``.
    writer = TimerWriter(recorder=None, mapper=None, tracking=None, js=js)  # type: ignore[arg-type]
    task = progress.add_task("arming timers with the TimerWriter", total=len(deadlines))
    now = datetime.now(UTC)
    started = time.perf_counter()
    for position, (source, deadline) in enumerate(deadlines, start=1):
        step = ScheduleStep(
            originator_id=uuid.uuid5(deadline.case_id, "deadlines"), originator_version=1, timestamp=now,
            source=source, position=position, enterprise_number="0000000097", insz="00000000097",
            changes=[DeadlineChange(change="opened", deadline=deadline)],
        )
        await writer.apply(step)
        progress.advance(task)
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


async def publish_plain(url: str, payloads: list[bytes], progress: Any) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js, PLAIN_STREAM, ["bench.plain.>"])
    task = progress.add_task("baseline: the same payloads as plain messages", total=len(payloads))
    started = time.perf_counter()
    for i, payload in enumerate(payloads):
        await js.publish(f"bench.plain.{i}", payload)
        progress.advance(task)
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


async def stream_state(url: str, name: str) -> tuple[int, int]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(name)
        return info.state.messages, info.state.bytes
    finally:
        await nc.close()


async def fire_precision(url: str, count: int, ahead: float = 5.0) -> list[float]:
    """Arm ``count`` timers ``ahead`` seconds from now (the writer's subjects and headers); lateness of each."""
    from services.deadlines.timers import Timer

    nc = await nats.connect(url)
    js = nc.jetstream()
    late: list[float] = []
    done = asyncio.Event()
    at = (datetime.now(UTC) + timedelta(seconds=ahead)).replace(microsecond=0) + timedelta(seconds=1)

    async def arrived(msg: Any) -> None:
        # the fired message's own timestamp in the stream: when the server fired it
        fired = msg.metadata.timestamp if msg.metadata is not None else datetime.now(UTC)
        late.append((fired - at).total_seconds())
        if len(late) >= count:
            done.set()

    prefix = f"{TIMER_FIRED_PREFIX}.bench-{uuid.uuid4().hex[:8]}"
    # A fired timer is stored in the stream (not published on core NATS): read it as the service does, through
    # JetStream.
    sub = await js.subscribe(f"{prefix}.>", stream=TIMERS_STREAM, cb=arrived, ordered_consumer=True)
    encoder = msgspec.json.Encoder()
    for _ in range(count):
        deadline_id = uuid.uuid4()
        timer = Timer(deadline_id=deadline_id, case_id=uuid.uuid4(), due_on=at.date(), fires_at=at)
        await js.publish(f"{TIMER_SCHEDULE_PREFIX}.bench.{deadline_id}", encoder.encode(timer), headers={
            "Nats-Schedule": f"@at {at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "Nats-Schedule-Target": f"{prefix}.{deadline_id}",
        })
    try:
        await asyncio.wait_for(done.wait(), timeout=ahead + 120)
    finally:
        await sub.unsubscribe()
        await nc.close()
    return late


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_timers_bench(*, timers: int, fire: int, data_dir: Path | None) -> None:
    base = _base_dir(data_dir)
    server = EmbeddedNatsServer(NatsServerConfig(store_dir=base / "nats", http_port=None, sync_always=True),
                                run_dir=base / "nats-run")
    server.start()
    try:
        today = datetime.now(UTC).date()
        with _progress() as progress:
            deadlines = open_deadlines(timers, today)
            rss_start = _vm_rss_mib(server.pid)
            armed_s = asyncio.run(arm_with_the_writer(server.url, deadlines, progress))
            held, held_bytes = asyncio.run(stream_state(server.url, TIMERS_STREAM))
            rss_timers = _vm_rss_mib(server.pid)
            encoder = msgspec.json.Encoder()
            payloads = [encoder.encode({"deadline_id": str(d.id), "case_id": str(d.case_id),
                                        "due_on": d.due_on.isoformat(), "fires_at": "2030-01-01T00:00:00Z"})
                        for _s, d in deadlines]
            del deadlines
            plain_s = asyncio.run(publish_plain(server.url, payloads, progress))
            plain, plain_bytes = asyncio.run(stream_state(server.url, PLAIN_STREAM))
            rss_end = _vm_rss_mib(server.pid)
        with console.status(f"{fire} timers armed to fire in 5 s ..."):
            late = asyncio.run(fire_precision(server.url, fire))
    finally:
        server.stop()

    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.1f}"

    table = Table("measure", "reintegration", "raw baseline", "ratio", title="reintegration bench timers")
    table.add_row("timers armed/s (TimerWriter, one awaited publish each)", f"{timers / armed_s:,.0f}",
                  f"{timers / plain_s:,.0f} (plain publish)", f"{plain_s / armed_s:.3f}")
    table.add_row("timers held in TIMERS (pending schedules)", f"{held:,}", f"{plain:,} (plain messages)", "")
    table.add_row("stream bytes (MiB)", mib(held_bytes / 2**20), mib(plain_bytes / 2**20),
                  f"{held_bytes / plain_bytes:.2f}x" if plain_bytes else "")
    grown_timers = (rss_timers - rss_start) if rss_timers is not None and rss_start is not None else None
    grown_plain = (rss_end - rss_timers) if rss_end is not None and rss_timers is not None else None
    table.add_row("nats-server VmRSS before / with the timers (MiB)", f"{mib(rss_start)} / {mib(rss_timers)}",
                  f"{mib(rss_timers)} / {mib(rss_end)} (plain added)", "")
    table.add_row("server memory per 1,000 timers (KiB)",
                  "n/a" if grown_timers is None else f"{grown_timers * 1024 * 1000 / timers:,.0f}",
                  "n/a" if grown_plain is None else f"{grown_plain * 1024 * 1000 / timers:,.0f}", "")
    table.add_row(f"fired timer lateness p50 / p99 / max (s), {fire} due at once",
                  f"{_pct(late, 0.5):.2f} / {_pct(late, 0.99):.2f} / {max(late):.2f}", "", "")
    console.print(table)
    console.print(f"{timers:,} open deadlines due over the next 730 days; nats-server with fsync on every write; "
                  f"{data_note(base)}.")
