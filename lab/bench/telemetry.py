"""``reintegration bench telemetry``: what metrics and traces cost the system, on against off in the same run.

The load of ``bench e2e`` (generated cases through intake, relay, deadlines and benefits on an embedded nats-server
with the parties' accounts, fsync on every write, SQLite stores), run in alternating rounds:

* **off**: no metrics port, no OTLP endpoint (what a process does when neither is set);
* **metrics**: every process serves ``/metrics``, scraped every second by the bench (as a busy Prometheus would);
* **traces**: every process exports its spans over OTLP/HTTP (``--trace-sample`` of the reports, as
  ``REINTEGRATION_TRACE_SAMPLE``) to a receiver in the bench process that reads and discards them;
* **on**: both.

Each round starts a fresh system in its own folder with the same cases. Figures per mode: accepted reports/s over
the load, events/s from the first report until both derived services have applied every event (the whole
pipeline's throughput), and CPU milliseconds per event over every process of the system (the services and
nats-server; not the bench's own scraper and receiver, which stand for Prometheus and a collector): the steadiest
of the three on a shared machine, where the rates swing with other load, and on a saturated machine the rate falls
by about what the CPU per event grows. The median over the rounds and the ratio to off. The modes run in a
rotating order, round after round, to spread a shared machine's drift over all of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
import urllib.request
from contextlib import suppress
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from lab.bench.derived import _base_dir, _cores, _progress, data_note
from lab.bench.e2e import CONCURRENCY, SEED, SERVICES, BenchRuntime, _cpu_seconds, _drive, _wait_consumers
from lab.generator import Generator
from shared.infra.settings import Settings

console = Console()
MODES = ("off", "metrics", "traces", "on")


class _Discard(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that reads each export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def _scraper(runtime: BenchRuntime, stop: threading.Event) -> threading.Thread:
    """Scrape every process's ``/metrics`` once a second until ``stop``."""

    def run() -> None:
        while not stop.wait(1.0):
            for child in list(runtime.children.values()):
                if child.metrics_port is not None:
                    with suppress(OSError):
                        urllib.request.urlopen(f"http://127.0.0.1:{child.metrics_port}/metrics", timeout=2).read()

    thread = threading.Thread(target=run, name="scraper", daemon=True)
    thread.start()
    return thread


def one_round(base: Path, mode: str, cases: int, endpoint: str, progress: Any, sample: float) -> dict[str, float]:
    """One system, one load: accepted reports/s and events/s until everything is applied."""
    generator = Generator(SEED)
    scripts = [generator.script() for _ in range(cases)]
    settings = Settings(data_dir=base / "data")
    if mode in ("traces", "on"):
        settings = replace(settings, otlp_endpoint=endpoint, trace_sample=sample)
    runtime = BenchRuntime(settings, services=SERVICES, metrics=mode in ("metrics", "on"))
    stop = threading.Event()
    try:
        runtime.start()
        runtime.wait_ready()
        asyncio.run(_wait_consumers(runtime))
        scraper = _scraper(runtime, stop) if runtime.metrics else None
        pids = runtime.pids()
        before = sum(_cpu_seconds(pid) or 0.0 for pid in pids.values())
        load, watched, events = asyncio.run(_drive(runtime, scripts, CONCURRENCY, progress))
        cpu = sum(_cpu_seconds(pid) or 0.0 for pid in pids.values()) - before
        stop.set()
        if scraper is not None:
            scraper.join(timeout=5)
    finally:
        stop.set()
        runtime.stop()
    return {"accepted_per_s": len(load.accepted) / load.seconds, "settled_seconds": watched.settled,
            "events": events, "events_per_s": events / watched.settled, "cpu_ms_per_event": cpu / events * 1000}


def measure(*, cases: int, rounds: int, sample: float = 0.01, data_dir: Path | None = None) -> dict[str, Any]:
    if cases < 1 or rounds < 1:
        raise typer.BadParameter("--cases and --rounds: at least 1")
    if not 0 <= sample <= 1:
        raise typer.BadParameter("--trace-sample: a share from 0 to 1")
    base = _base_dir(data_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    threading.Thread(target=server.serve_forever, name="otlp-discard", daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    started = time.perf_counter()
    try:
        with _progress() as progress:
            for index in range(rounds):
                for mode in MODES[index % len(MODES):] + MODES[:index % len(MODES)]:
                    runs[mode].append(one_round(base / f"round-{index}-{mode}", mode, cases, endpoint, progress,
                                                sample))
    finally:
        server.shutdown()
    medians = {mode: {key: statistics.median(run[key] for run in runs[mode]) for key in runs[mode][0]}
               for mode in MODES}
    return {"cases": cases, "rounds": rounds, "trace_sample": sample, "machine": _cores(), "runs": runs,
            "median": medians,
            "ratio_to_off": {mode: {key: medians[mode][key] / medians["off"][key]
                                    for key in ("accepted_per_s", "events_per_s", "cpu_ms_per_event")}
                             for mode in MODES},
            "seconds": time.perf_counter() - started, "data_dir": str(base)}


def run_telemetry_bench(*, cases: int, rounds: int, sample: float = 0.01,
                        data_dir: Path | None = None) -> dict[str, Any]:
    result = measure(cases=cases, rounds=rounds, sample=sample, data_dir=data_dir)
    table = Table("mode (median of the rounds)", "accepted reports/s", "ratio to off", "pipeline events/s",
                  "ratio to off", "CPU ms per event (all processes)", "ratio to off",
                  title="reintegration bench telemetry")
    for mode in MODES:
        median, ratio = result["median"][mode], result["ratio_to_off"][mode]
        table.add_row(mode, f"{median['accepted_per_s']:,.0f}", f"{ratio['accepted_per_s']:.3f}",
                      f"{median['events_per_s']:,.0f}", f"{ratio['events_per_s']:.3f}",
                      f"{median['cpu_ms_per_event']:.3f}", f"{ratio['cpu_ms_per_event']:.3f}")
    console.print(table)
    for mode in MODES:
        console.print(f"{mode}: accepted reports/s per round "
                      + ", ".join(f"{run['accepted_per_s']:,.0f}" for run in result["runs"][mode]))
    on = result["ratio_to_off"]["on"]
    console.print(f"cost of metrics and traces (on against off): {on['cpu_ms_per_event'] - 1:+.1%} CPU per event "
                  f"over every process (services and nats-server; on a saturated machine throughput falls by "
                  f"about as much), {1 - on['accepted_per_s']:+.1%} accepted reports/s, {1 - on['events_per_s']:+.1%} "
                  f"pipeline events/s (rates swing with a shared machine's load; a positive figure is a loss)")
    console.print(f"{result['cases']:,} cases a round, {result['rounds']} round(s) of each mode in rotating order; "
                  f"traces of {sample:.0%} of the reports; metrics scraped every second; {result['machine']}; "
                  f"{data_note(Path(result['data_dir']))}")
    if path := os.environ.get("REINTEGRATION_BENCH_JSON"):
        Path(path).write_text(json.dumps(result, indent=2))
    return result
