"""``reintegration bench telemetry``: what metrics and traces cost the system, on against off in the same run.

The load of ``bench e2e`` (generated cases through intake, relay, deadlines and benefits on an embedded nats-server
with the parties' accounts, fsync on every write, SQLite stores), run in alternating rounds:

* **off**: no metrics port, no OTLP endpoint (what a process does when neither is set);
* **on**: every process serves ``/metrics`` (scraped every second by the bench, as a busy Prometheus would) and
  exports every span over OTLP/HTTP to a receiver in the bench process that reads and discards them.

Each round starts a fresh system in its own folder with the same cases. Figures per mode: accepted reports/s over
the load, and seconds from the first report until both derived services have applied every event (the whole
pipeline's throughput); the median over the rounds and the ratio on/off. The alternation spreads a shared machine's
drift over both modes.
"""

from __future__ import annotations

import asyncio
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
from lab.bench.e2e import CONCURRENCY, SEED, SERVICES, BenchRuntime, _drive, _wait_consumers
from lab.generator import Generator
from shared.infra.settings import Settings

console = Console()
MODES = ("off", "on")


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


def one_round(base: Path, mode: str, cases: int, endpoint: str, progress: Any) -> dict[str, float]:
    """One system, one load: accepted reports/s and seconds until everything is applied."""
    generator = Generator(SEED)
    scripts = [generator.script() for _ in range(cases)]
    settings = Settings(data_dir=base / "data")
    if mode == "on":
        settings = replace(settings, otlp_endpoint=endpoint)
    runtime = BenchRuntime(settings, services=SERVICES, metrics=mode == "on")
    stop = threading.Event()
    try:
        runtime.start()
        runtime.wait_ready()
        asyncio.run(_wait_consumers(runtime))
        scraper = _scraper(runtime, stop) if mode == "on" else None
        load, watched, events = asyncio.run(_drive(runtime, scripts, CONCURRENCY, progress))
        stop.set()
        if scraper is not None:
            scraper.join(timeout=5)
    finally:
        stop.set()
        runtime.stop()
    return {"accepted_per_s": len(load.accepted) / load.seconds, "settled_seconds": watched.settled,
            "events": events, "events_per_s": events / watched.settled}


def measure(*, cases: int, rounds: int, data_dir: Path | None = None) -> dict[str, Any]:
    if cases < 1 or rounds < 1:
        raise typer.BadParameter("--cases and --rounds: at least 1")
    base = _base_dir(data_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    threading.Thread(target=server.serve_forever, name="otlp-discard", daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    started = time.perf_counter()
    try:
        with _progress() as progress:
            for index in range(rounds):
                for mode in MODES if index % 2 == 0 else tuple(reversed(MODES)):
                    runs[mode].append(one_round(base / f"round-{index}-{mode}", mode, cases, endpoint, progress))
    finally:
        server.shutdown()
    medians = {mode: {key: statistics.median(run[key] for run in runs[mode]) for key in runs[mode][0]}
               for mode in MODES}
    return {"cases": cases, "rounds": rounds, "machine": _cores(), "runs": runs, "median": medians,
            "ratio_on_off": {key: medians["on"][key] / medians["off"][key]
                             for key in ("accepted_per_s", "events_per_s")},
            "seconds": time.perf_counter() - started, "data_dir": str(base)}


def run_telemetry_bench(*, cases: int, rounds: int, data_dir: Path | None = None) -> dict[str, Any]:
    result = measure(cases=cases, rounds=rounds, data_dir=data_dir)
    table = Table("measure (median of the rounds)", "off", "on: metrics scraped 1/s, every span exported", "on/off",
                  title="reintegration bench telemetry")
    for key, label in (("accepted_per_s", "accepted reports/s"),
                       ("events_per_s", "events/s, first report until all applied")):
        off, on = result["median"]["off"][key], result["median"]["on"][key]
        table.add_row(label, f"{off:,.0f}", f"{on:,.0f}", f"{on / off:.3f}")
    console.print(table)
    for mode in MODES:
        console.print(f"{mode}: accepted reports/s per round "
                      + ", ".join(f"{run['accepted_per_s']:,.0f}" for run in result["runs"][mode]))
    ratio = result["ratio_on_off"]
    console.print(f"cost of metrics and traces: {1 - ratio['accepted_per_s']:+.1%} accepted reports/s, "
                  f"{1 - ratio['events_per_s']:+.1%} events/s through the pipeline (a positive figure is a loss)")
    console.print(f"{result['cases']:,} cases a round, {result['rounds']} round(s) of each mode, alternating; "
                  f"{result['machine']}; {data_note(Path(result['data_dir']))}")
    return result
