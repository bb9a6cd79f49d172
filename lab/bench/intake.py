"""``reintegration bench intake``: intake and relay against raw NATS baselines measured in the same run.

* Intake: N reports (each opening a case) through the real intake process over a real nats-server, C requests in
  flight; accepted reports/s and request-reply latency p50/p99. Baseline: a nats-py echo responder in its own
  process answering the same payloads on the same server.
* Relay: the events those reports recorded, from the intake store into a fresh TRAJECTORY stream (pipelined, fsync
  on every write). Baseline: a raw JetStream publish of the same payloads into another stream, same pipelining.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec
import nats
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from lab.bench.derived import data_note, temporary_base
from lab.bench.e2e import Pacer
from lab.generator import enterprise_number, insz
from reintegration.runtime import wait_for_intake
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import until
from shared.events import reports as r
from shared.events.common import Party, PartyKind
from shared.events.replies import REPLY_DECODER, Accepted
from shared.events.subjects import TRAJECTORY_STREAM, intake_subject
from shared.infra.settings import Settings
from shared.infra.streams import ensure_stream, ensure_trajectory_stream

console = Console()
ECHO_SUBJECT = "bench.echo"


@dataclass
class Figures:
    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def make_cases(n: int, seed: int = 7) -> tuple[Party, list[r.IncapacityReported]]:
    """``n`` reports that each open a case, from one employer."""
    rng = random.Random(seed)
    employer = enterprise_number(rng)
    party = Party(kind=PartyKind.EMPLOYER, id=employer)
    return party, [
        r.IncapacityReported(
            report_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            insz=insz(rng), enterprise_number=employer, staff_count=250, health_fund="100",
            occupational_health_service=employer, start_date=date(2024, 1, 1) + timedelta(days=i % 600),
            cause=r.Cause.ILLNESS, diagnosis="burn-out",
        )
        for i in range(n)
    ]


def make_reports(n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    party, reports = make_cases(n, seed)
    return [(intake_subject(party), msgspec.json.encode(report)) for report in reports]


def top_up_store(settings: Settings, events: int) -> int:
    """Record more cases directly in the intake store until it holds ``events`` events (the relay's sample);
    returns how many it holds."""
    from services.intake.application import build_intake

    app = build_intake(settings)
    try:
        held = app.recorder.max_notification_id() or 0
        missing = max(0, events - held)
        if missing:
            party, reports = make_cases(missing, seed=events)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                          transient=True) as progress:
                task = progress.add_task("recording more cases for the relay sample", total=missing)
                for report in reports:
                    app.submit(party, report, datetime.now(UTC))
                    progress.advance(task)
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


async def drive(url: str, requests: list[tuple[str, bytes]], concurrency: int, subject: str | None = None,
                rate: float | None = None) -> Figures:
    """Send ``requests`` (to ``subject`` if given: the echo), ``concurrency`` in flight, at most ``rate`` a second."""
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    gate = asyncio.Semaphore(concurrency)
    pacer = Pacer(rate)
    latencies: list[float] = []
    accepted = 0

    async def one(subj: str, payload: bytes) -> None:
        nonlocal accepted
        await pacer.wait()
        async with gate:
            t0 = time.perf_counter()
            msg = await nc.request(subject or subj, payload, timeout=30)
            latencies.append(time.perf_counter() - t0)
            if subject is None:
                if isinstance(REPLY_DECODER.decode(msg.data), Accepted):
                    accepted += 1
            else:
                accepted += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(s, p) for s, p in requests))
    elapsed = time.perf_counter() - started
    await nc.close()
    return Figures(accepted, elapsed, latencies)


async def echo_responder(url: str) -> None:
    nc = await nats.connect(url)

    async def handler(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(ECHO_SUBJECT, cb=handler)
    await asyncio.Event().wait()


async def relay_figures(settings: Settings, expected: int) -> Figures:
    from services.intake.outbox import run_relay

    nc = await nats.connect(settings.nats_servers)
    js = nc.jetstream()
    await ensure_trajectory_stream(js)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(run_relay(settings, stop))
    seen = {"held": 0, "at": time.monotonic()}

    async def held() -> int:
        if task.done():
            task.result()
        now_held = int((await js.stream_info(TRAJECTORY_STREAM)).state.messages)
        if now_held > seen["held"]:
            seen.update(held=now_held, at=time.monotonic())
        elif time.monotonic() - seen["at"] > 60:
            stop.set()
            raise RuntimeError(f"the relay stalled at {seen['held']} of {expected} events for 60 s")
        return now_held

    await until(held, timeout=math.inf, interval=0.01, what=f"{expected} events relayed",
                ready=lambda count: count >= expected)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    sample = await js.get_msg(TRAJECTORY_STREAM, seq=1)
    await nc.close()
    figures = Figures(expected, elapsed, [])
    figures.latencies = [float(len(sample.data or b""))]  # carry the payload size to the baseline
    return figures


async def raw_publish(url: str, count: int, payload: bytes, batch: int = 500) -> Figures:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js, "BENCH_RAW", ["bench.raw.>"])
    started = time.perf_counter()
    for first in range(0, count, batch):
        futures = [await js.publish_async(f"bench.raw.{i}", payload, headers={"Nats-Msg-Id": f"m{i}"})
                   for i in range(first, min(count, first + batch))]
        await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await nc.close()
    return Figures(count, elapsed, [])


def paced_reports(reports: int, rate: float) -> int:
    """How many reports the fixed-rate phase sends: about five seconds' worth, at least 100, at most ``reports``."""
    return min(reports, max(100, int(rate * 5)))


def run_intake_bench(*, reports: int, concurrency: int, relay_events: int, data_dir: Path | None,
                     rate: float = 200.0) -> None:
    base = Path(data_dir) if data_dir else temporary_base()
    server = EmbeddedNatsServer(NatsServerConfig(store_dir=base / "nats", http_port=None), run_dir=base / "nats-run")
    server.start()
    settings = Settings(data_dir=base / "data", nats_url=server.url)
    supervisor = Supervisor(stop_timeout=10)
    supervisor.add(Child("intake", python_module("reintegration", "serve", "intake"), env=settings.to_env()))
    supervisor.add(Child("echo", [sys.executable, "-c", "import asyncio, lab.bench.intake as b; "
                                  f"asyncio.run(b.echo_responder({server.url!r}))"]))
    supervisor.start_all()
    try:
        asyncio.run(wait_for_intake(server.url, 30))
        requests = make_reports(reports)
        warm = make_reports(200, seed=99)
        with console.status(f"intake: {reports} reports, {concurrency} in flight ..."):
            asyncio.run(drive(server.url, warm, concurrency))
            asyncio.run(drive(server.url, warm, concurrency, subject=ECHO_SUBJECT))
            raw = asyncio.run(drive(server.url, requests, concurrency, subject=ECHO_SUBJECT))
            real = asyncio.run(drive(server.url, requests, concurrency))
        paced = None
        if rate:
            count = paced_reports(reports, rate)
            fresh = make_reports(count, seed=11)
            with console.status(f"intake at a fixed {rate:,.0f} reports/s: {count} reports ..."):
                paced_raw = asyncio.run(drive(server.url, fresh, concurrency, subject=ECHO_SUBJECT, rate=rate))
                paced = (asyncio.run(drive(server.url, fresh, concurrency, rate=rate)), paced_raw)
        supervisor.stop(["intake"])
        stored = top_up_store(settings, relay_events)
        with console.status(f"relay: {stored} events into JetStream ..."):
            relay = asyncio.run(relay_figures(settings, stored))
            payload = b"x" * int(relay.latencies[0])
            raw_pub = asyncio.run(raw_publish(server.url, stored, payload))
    finally:
        supervisor.stop()
        server.stop()
    table = Table("measure", "reintegration", "raw baseline", "ratio", title="reintegration bench intake")
    table.add_row("accepted reports/s", f"{real.rate:,.0f}", f"{raw.rate:,.0f} (echo)", f"{real.rate / raw.rate:.3f}")
    table.add_row("request-reply p50 (ms)", f"{real.pct(0.5):.2f}", f"{raw.pct(0.5):.2f}",
                  f"{real.pct(0.5) / raw.pct(0.5):.1f}x")
    table.add_row("request-reply p99 (ms)", f"{real.pct(0.99):.2f}", f"{raw.pct(0.99):.2f}",
                  f"{real.pct(0.99) / raw.pct(0.99):.1f}x")
    if paced is not None:
        ours, echo = paced
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            table.add_row(f"request-reply {label} at {rate:,.0f}/s (ms)", f"{ours.pct(q):.2f}",
                          f"{echo.pct(q):.2f}", f"{ours.pct(q) / echo.pct(q):.1f}x")
    table.add_row("relay events/s into JetStream", f"{relay.rate:,.0f}", f"{raw_pub.rate:,.0f} (raw publish)",
                  f"{relay.rate / raw_pub.rate:.3f}")
    console.print(table)
    console.print(
        f"{reports} reports ({real.count} accepted), {concurrency} in flight"
        + (f"; then {paced[0].count} more at a fixed {rate:,.0f} a second, below saturation ({paced[0].rate:,.0f}/s "
           f"reached)" if paced is not None else "")
        + f"; relay over {stored} events of "
        f"{int(relay.latencies[0])} bytes; nats-server with fsync on every write; SQLite {data_note(base)}."
    )
