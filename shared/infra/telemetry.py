"""What a running process tells its operator: Prometheus metrics, health and readiness, on one port.

Every process (``reintegration serve <service>``, ``relay``, ``rebuild``) serves, on ``REINTEGRATION_METRICS_PORT``
(none when unset; ``up`` and compose give each process one):

* ``/metrics``: the metrics below and the process's own (CPU, memory, open files), in Prometheus' text format;
* ``/healthz``: 200 while the process's event loop answers within :data:`ANSWER_WITHIN_S`, else 503 (restart it);
* ``/readyz``: 200 when every readiness check of the process passes (connected to NATS, its store reachable, its
  consumer bound), else 503; the body is JSON naming each check and, for a failed one, why.

The server is a thread (prometheus_client's WSGI server); the checks run on the process's event loop, so a loop that
is stuck answers neither probe. Metric names follow Prometheus' conventions: units in the name, ``_total`` counters,
and labels of low cardinality only (a service, a party kind, a rejection code, a rule id, a ledger kind): never a
case id, a national number or an enterprise number (:func:`subject_pattern` turns subjects into their patterns).

Gauges that describe a stream or a consumer (events not yet applied, the age of the oldest one, dead letters
waiting, timers scheduled) are sampled every :data:`SAMPLE_EVERY_S` seconds by :class:`Sampler`, a job of each
process that writes a stream: the consumers of a stream are sampled by its writer (TRAJECTORY's by the relay,
DEADLINES' by the deadlines service), so a consumer that is paused or down still shows its lag rising. The
employers' own feed consumers are left out (one per employer: too many series, and an enterprise in each).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from wsgiref.simple_server import make_server

import structlog
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from shared.events.subjects import PREFIX

log = structlog.get_logger("telemetry")

#: A probe's checks must answer within this many seconds, or the probe fails.
ANSWER_WITHIN_S: Final = 3.0
#: How often the stream and consumer gauges are sampled.
SAMPLE_EVERY_S: Final = 2.0

# ------------------------------------------------------------------------------------------------- the metrics

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)

REPORTS_ACCEPTED = Counter("reintegration_reports_accepted_total",
                           "Reports recorded by intake (each once; a resent report is counted as a duplicate).",
                           ["party_kind"])
REPORTS_DUPLICATE = Counter("reintegration_reports_duplicate_total",
                            "Reports sent again: answered with their first acceptance, nothing recorded.",
                            ["party_kind"])
REPORTS_REJECTED = Counter("reintegration_reports_rejected_total", "Reports refused by intake, by rejection code.",
                           ["party_kind", "code"])
INTAKE_COMMIT = Histogram("reintegration_intake_commit_seconds",
                          "Time to decide and record one group of reports in the intake store (one transaction).",
                          buckets=_LATENCY_BUCKETS)
RELAY_LAG = Gauge("reintegration_relay_lag_events",
                  "Events recorded in a store and not yet in its stream (store position minus stream position).",
                  ["relay"])
RELAY_PUBLISHED = Counter("reintegration_relay_published_messages_total", "Messages a relay published.", ["relay"])
EVENTS_APPLIED = Counter("reintegration_events_applied_total",
                         "Trajectory events a derived service handled, by outcome (applied, duplicate, gap, parked, "
                         "dead_lettered).", ["service", "outcome"])
CONSUMER_PENDING = Gauge("reintegration_consumer_pending_events",
                         "Events of a durable consumer not yet applied (not delivered, or delivered and not acked), "
                         "sampled by the process that writes its stream.", ["stream", "consumer"])
CONSUMER_OLDEST_AGE = Gauge("reintegration_consumer_oldest_pending_age_seconds",
                            "Age of the oldest event a durable consumer has not yet applied (0 when none), sampled "
                            "by the process that writes its stream.", ["stream", "consumer"])
DEAD_LETTERS_WAITING = Gauge("reintegration_dead_letters_waiting",
                             "Dead letters of a service that no operator has resolved yet.", ["service"])
CASES_PARKED = Gauge("reintegration_cases_parked",
                     "Cases a service holds back behind a dead letter (parked).", ["service"])
TIMERS_PENDING = Gauge("reintegration_timers_pending", "Deadline timers scheduled and not yet fired.")
TIMER_FIRING_LAG = Histogram("reintegration_timer_firing_lag_seconds",
                             "How late a deadline timer fired after the moment it was scheduled for.",
                             buckets=_LAG_BUCKETS)
DEADLINE_CHANGES = Counter("reintegration_deadline_changes_total",
                           "Deadline changes recorded (opened, met, missed, reminded, expired, ...), by rule.",
                           ["rule", "change"])
LEDGER_ENTRIES = Counter("reintegration_ledger_entries_total", "Ledger entries recorded, by kind.", ["kind"])
DISCLOSURES = Counter("reintegration_disclosure_records_total",
                      "Disclosure records written (an employer's feed delivery, an auditor's question).", ["kind"])
REBUILD_DONE = Gauge("reintegration_rebuild_events_done", "Events a running rebuild has replayed so far.",
                     ["service"])
REBUILD_TOTAL = Gauge("reintegration_rebuild_events", "Events a running rebuild replays in all.", ["service"])
READY = Gauge("reintegration_ready", "1 when every readiness check of the process passes, else 0.", ["service"])


def subject_pattern(subject: str) -> str:
    """A subject with its case, party and enterprise tokens replaced by ``*``: a metric or span label of low
    cardinality. ``reintegration.trajectory.<case>.<type>`` -> ``reintegration.trajectory.*.*``;
    ``reintegration.feed.<enterprise>`` -> ``reintegration.feed.*``; other subjects keep their first three tokens."""
    tokens = subject.split(".")
    if not subject.startswith(f"{PREFIX}.") or len(tokens) < 3:
        return "other"
    head = tokens[:2]
    if tokens[1] in {"query", "audit"}:
        return ".".join(tokens[:3])
    return ".".join([*head, *("*" * (len(tokens) - 2))])


# ------------------------------------------------------------------------------------------------- health

#: A readiness check: ``None`` when it passes, else why not (one line).
Check = Callable[[], Awaitable[str | None]]


@dataclass
class Telemetry:
    """This process's probes and its metrics server: the services add their readiness checks when they are built,
    and ``reintegration`` starts the server (:meth:`serve`) around the service's run."""

    service: str = "reintegration"
    checks: dict[str, Check] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None
    server: ThreadingWSGIServer | None = None
    thread: threading.Thread | None = None
    port: int | None = None

    def check(self, name: str, check: Check) -> None:
        """Add (or replace) a readiness check."""
        self.checks[name] = check

    async def readiness(self) -> dict[str, str]:
        """Each check's answer: ``ok`` or why not."""
        answers: dict[str, str] = {}
        for name, check in list(self.checks.items()):
            try:
                reason = await asyncio.wait_for(check(), timeout=ANSWER_WITHIN_S)
            except TimeoutError:
                reason = f"no answer within {ANSWER_WITHIN_S:g} s"
            except Exception as exc:  # noqa: BLE001 - a failing check is an answer, not a crash
                reason = f"{type(exc).__name__}: {exc}"[:300]
            answers[name] = reason or "ok"
        if not answers:
            answers["started"] = "ok"
        READY.labels(self.service).set(1 if all(a == "ok" for a in answers.values()) else 0)
        return answers

    def _on_loop(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``work`` on the process's loop from the server's thread; raises ``TimeoutError`` when it is stuck."""
        if self.loop is None or self.loop.is_closed():
            raise TimeoutError("the process has no running event loop")

        async def run() -> Any:
            return await work()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=ANSWER_WITHIN_S + 1)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            with contextlib.suppress(Exception):  # the scrape carries the readiness of the moment
                self._on_loop(self.readiness)
            return self._metrics(environ, start_response)
        if path == "/healthz":
            try:
                self._on_loop(lambda: asyncio.sleep(0))
                status, body = "200 OK", {"alive": True, "service": self.service}
            except Exception:  # noqa: BLE001 - stuck or gone: not alive
                status, body = "503 Service Unavailable", {
                    "alive": False, "service": self.service,
                    "why": f"the event loop did not answer within {ANSWER_WITHIN_S + 1:g} s"}
        elif path == "/readyz":
            try:
                answers = self._on_loop(self.readiness)
            except Exception:  # noqa: BLE001 - stuck or gone: not ready
                answers = {"event loop": f"did not answer within {ANSWER_WITHIN_S + 1:g} s"}
            ready = all(a == "ok" for a in answers.values())
            status = "200 OK" if ready else "503 Service Unavailable"
            body = {"ready": ready, "service": self.service, "checks": answers}
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /metrics, /healthz and /readyz are served here\n"]
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    _metrics = staticmethod(make_wsgi_app(REGISTRY))

    def serve(self, port: int, address: str = "127.0.0.1", *, loop: asyncio.AbstractEventLoop) -> int:
        """Serve the three paths on ``address:port`` (0: a free port) from a thread; return the port."""
        self.loop = loop
        self.server = make_server(address, port, self._app, ThreadingWSGIServer, handler_class=_SilentHandler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self.thread.start()
        log.info("metrics, health and readiness served", service=self.service, address=address, port=self.port)
        return self.port

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


#: The process's one :class:`Telemetry` (one service a process; tests that run several in one process share it).
PROCESS = Telemetry()


@contextlib.asynccontextmanager
async def served(service: str, port: int | None, address: str = "127.0.0.1") -> Any:
    """Serve this process's metrics and probes while the block runs (nothing when ``port`` is ``None``)."""
    if port is None:
        yield None
        return
    PROCESS.service = service
    PROCESS.serve(port, address, loop=asyncio.get_running_loop())
    try:
        yield PROCESS
    finally:
        PROCESS.close()


def nats_connected(connection: Callable[[], Any]) -> Check:
    """A check that the process's NATS connection (``connection()``, ``None`` before it is made) is up."""

    async def check() -> str | None:
        nc = connection()
        if nc is None:
            return "not connected to NATS yet"
        return None if nc.is_connected else "NATS connection lost (reconnecting)"

    return check


def store_reachable(ping: Callable[[], Any]) -> Check:
    """A check that the store answers ``ping()`` (run in a thread)."""

    async def check() -> str | None:
        await asyncio.to_thread(ping)
        return None

    return check


def task_running(what: str, task: Callable[[], asyncio.Task[Any] | None]) -> Check:
    """A check that a background task (a consumer's pull loop) runs."""

    async def check() -> str | None:
        running = task()
        if running is None:
            return f"{what} not started"
        return f"{what} ended" if running.done() else None

    return check


@contextlib.contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - start)


async def oldest_unacknowledged_age(js: Any, stream: str, info: Any, now: datetime) -> float:
    """Seconds since the stream stored the oldest message the consumer ``info`` describes has not acknowledged
    (0 when none)."""
    if not info.num_pending and not info.num_ack_pending:
        return 0.0
    subject = info.config.filter_subject or None
    try:
        message = await js.get_msg(stream, seq=info.ack_floor.stream_seq + 1, subject=subject, next=True)
    except Exception:  # noqa: BLE001 - purged or gone meanwhile: no age to tell
        return 0.0
    stored = getattr(message, "time", None)
    if not isinstance(stored, datetime):
        return 0.0
    return max(0.0, (now - stored.astimezone(UTC)).total_seconds())


#: Durable consumers of employers' feeds: not sampled (see the module's docstring).
FEED_CONSUMER_PREFIX: Final = "employer-"


@dataclass
class Sampler:
    """The job of a process that writes ``streams``: every :data:`SAMPLE_EVERY_S` seconds, each of their
    consumers' events not yet applied and the age of the oldest; for a derived service its dead letters waiting
    and the cases they park (``waiting(js)``), and the timers scheduled (``timers(js)``, deadlines)."""

    service: str
    streams: tuple[str, ...]
    waiting: Callable[[Any], Awaitable[tuple[int, int]]] | None = None
    timers: Callable[[Any], Awaitable[int]] | None = None
    every: float = SAMPLE_EVERY_S

    async def sample(self, js: Any) -> None:
        now = datetime.now(UTC)
        for stream in self.streams:
            for info in await js.consumers_info(stream):
                if info.name.startswith(FEED_CONSUMER_PREFIX):
                    continue
                CONSUMER_PENDING.labels(stream, info.name).set(info.num_pending + info.num_ack_pending)
                age = await oldest_unacknowledged_age(js, stream, info, now)
                CONSUMER_OLDEST_AGE.labels(stream, info.name).set(round(age, 3))
        if self.waiting is not None:
            letters, parked = await self.waiting(js)
            DEAD_LETTERS_WAITING.labels(self.service).set(letters)
            CASES_PARKED.labels(self.service).set(parked)
        if self.timers is not None:
            TIMERS_PENDING.set(await self.timers(js))

    async def run(self, js: Any, stop: asyncio.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                await self.sample(js)
                failing = False
            except Exception as exc:  # noqa: BLE001 - a sample missed is taken again at the next tick
                if not failing:  # once, until a sample succeeds again (NATS down would repeat it every tick)
                    log.warning("metrics not sampled", service=self.service, error=repr(exc))
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every)


def readiness(port: int | None) -> tuple[bool | None, str | None]:
    """``(ready, why not)`` from a process's ``/readyz``; ``(None, why)`` when it cannot be asked."""
    if port is None:
        return None, "no metrics port"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
            return True, None
    except urllib.error.HTTPError as exc:  # 503: not ready, the body names the failing checks
        try:
            checks = json.loads(exc.read())["checks"]
        except (ValueError, KeyError):
            return False, f"HTTP {exc.code}"
        return False, "; ".join(f"{name}: {why}" for name, why in checks.items() if why != "ok")
    except (OSError, ValueError) as exc:
        return None, f"not answering ({getattr(exc, 'reason', exc)})"
