"""`reintegration status`: one screen of a running system, read with the operator's identity.

Every service process that ``up`` (or ``demo``) supervises (running, restarts, ready: its ``/readyz``, and why not),
every JetStream stream the system uses (messages, bytes, last message), every durable consumer on them (events not
yet delivered, delivered but not acknowledged, redelivered, and the age in seconds of the oldest event not yet
acknowledged), the dead letters waiting per consumer, the timers scheduled, the stores' sizes, and the last error
each service's log holds. Read-only: it asks the server and the services for information and reads files, and
changes nothing. (A deployment that ``up`` does not supervise, such as compose, has no services file: its services'
health is on their own ``/readyz`` and in Prometheus.)
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.events.subjects import (
    BENEFITS_STREAM,
    DEAD_LETTER_STREAM,
    DEADLINES_STREAM,
    TIMERS_STREAM,
    TRAJECTORY_STREAM,
)
from shared.infra.settings import Settings
from shared.infra.telemetry import oldest_unacknowledged_age, readiness

#: The stream whose messages the screen counts by subject: dead letters per consumer.
_COUNTED = {DEAD_LETTER_STREAM: ">"}
STREAMS = (TRAJECTORY_STREAM, DEADLINES_STREAM, BENEFITS_STREAM, TIMERS_STREAM, DEAD_LETTER_STREAM)
#: An error line of a service's log, however it was written: structlog's console (``[error    ]``), key-value
#: (``level='error'``) or JSON (``"level": "error"``) lines, and the standard library's (FastStream's: ``ERROR``).
_ERROR = re.compile(r"\[(error|critical)\s*\]|level='(error|critical)'|\"level\": \"(error|critical)\"|"
                    r"(^|\s)(ERROR|CRITICAL)\s")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


async def gather(settings: Settings) -> dict[str, Any]:
    """Everything the screen shows, as data (``--json``)."""
    from .connect import connect_once

    now = datetime.now(UTC)
    nc = await connect_once(settings)
    streams, consumers, dead, timers = [], [], {}, 0
    try:
        js = nc.jetstream()
        for name in STREAMS:
            try:  # the subjects of the two streams whose counts per subject the screen shows, in the same request
                info = await js.stream_info(name, subjects_filter=_COUNTED.get(name))
            except Exception:  # noqa: BLE001 - a stream the system has not made (yet)
                streams.append({"stream": name, "exists": False})
                continue
            state = info.state
            streams.append({"stream": name, "exists": True, "messages": state.messages, "bytes": state.bytes,
                            "last_sequence": state.last_seq, "consumers": state.consumer_count})
            for consumer in await js.consumers_info(name):
                consumers.append({
                    "stream": name, "consumer": consumer.name, "pending": consumer.num_pending,
                    "unacknowledged": consumer.num_ack_pending, "redelivered": consumer.num_redelivered,
                    "lag_seconds": round(await oldest_unacknowledged_age(js, name, consumer, now), 1),
                })
            if name == DEAD_LETTER_STREAM:
                dead = {subject.rsplit(".", 1)[-1]: n for subject, n in (state.subjects or {}).items()}
            if name == TIMERS_STREAM:  # scheduled, or fired and not yet recorded (recorded ones are deleted)
                timers = state.messages
    finally:
        await nc.close()
    return {"at": now.isoformat(), "nats_url": settings.nats_url, "services": services(settings.data_dir),
            "streams": streams, "consumers": consumers,
            "dead_letters": dead, "timers_scheduled": timers, "stores": stores(settings),
            "last_errors": last_errors(settings.data_dir / "logs")}


def services(data_dir: Path) -> list[dict[str, Any]]:
    """The supervised service processes (``<data dir>/services.json``), each with what its ``/readyz`` says."""
    from .runtime import SERVICES_FILE

    try:
        children = json.loads((data_dir / SERVICES_FILE).read_text(encoding="utf-8"))["children"]
    except (OSError, ValueError, KeyError):
        return []
    out = []
    for child in children:
        port = child.get("metrics_port")
        ready, why = readiness(port) if child.get("running") else (False, "not running")
        entry = {"service": child["name"], "running": bool(child.get("running")), "pid": child.get("pid"),
                 "restarts": child.get("restarts", 0), "ready": ready, "not_ready_because": why,
                 "metrics_port": port}
        if ready is not None and port is not None:
            entry["parked_cases"] = parked_cases(port)
        out.append(entry)
    return out


def parked_cases(port: int) -> dict[str, int]:
    """The cases a derived service holds back behind a dead letter, from its ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except (OSError, ValueError):
        return {}
    return {sample.labels["service"]: int(sample.value) for family in text_string_to_metric_families(text)
            if family.name == "reintegration_cases_parked" for sample in family.samples}


def stores(settings: Settings) -> list[dict[str, Any]]:
    """The SQLite stores' files and sizes (bytes, the write-ahead log included); on PostgreSQL, where they are."""
    if settings.store != "sqlite":
        return [{"store": "postgres", "where": settings.postgres_url.rsplit("@", 1)[-1] if settings.postgres_url
                 else "-"}]
    out = []
    for path in sorted(settings.data_dir.glob("*.sqlite")):
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        out.append({"store": path.stem, "bytes": size})
    return out


def last_errors(logs: Path) -> dict[str, str]:
    """The last error of each service's log (``<data dir>/logs/<service>.log``), when it has one: the error line,
    and the exception a traceback after it ends with (``... raised an exception: TimeoutError``); a traceback with no
    error line before it gives its exception alone."""
    found: dict[str, str] = {}
    for log in sorted(logs.glob("*.log")) if logs.is_dir() else ():
        with log.open(encoding="utf-8", errors="replace") as f:
            last = _last_error(f)
        if last:
            found[log.stem] = last[:300]
    return found


def _last_error(lines: Iterable[str]) -> str | None:
    last = said = None  # the last error; the error line it came from
    near = 0  # lines since that error line (or the end of its traceback), blank ones and chaining ones not counted
    traceback_of: str | None = None  # while in a traceback: the error line it belongs to ("" when none)
    for raw in lines:
        line = _ANSI.sub("", raw).rstrip()
        if line.startswith(_TRACEBACK):
            traceback_of = said if said is not None and near <= 2 else ""
        elif traceback_of is not None:
            if line and not line[0].isspace():  # the exception the traceback ends with
                last = f"{traceback_of}: {line}" if traceback_of else line
                said, near, traceback_of = traceback_of or None, 0, None
        elif _ERROR.search(line):
            last = said = " ".join(line.split())
            near = 0
        elif line and not line.startswith(_CHAINED):
            near += 1
    return last


def print_status(view: dict[str, Any]) -> int:
    """The screen; exit code 1 when something needs the operator (dead letters, a consumer behind), else 0."""
    from rich.console import Console

    from .tables import Column, Row, print_paragraph, print_table

    out = Console()
    print_paragraph(out, f"reintegration at {view['nats_url']}, {view['at']}", style="bold")
    if view["services"]:
        print_table(out, [Column("service"), Column("up"), Column("restarts", right=True), Column("ready"),
                          Column("why not ready", spill=True)],
                    [Row([s["service"], "yes" if s["running"] else "no", str(s["restarts"]),
                          {True: "yes", False: "no", None: "?"}[s["ready"]], s["not_ready_because"] or ""])
                     for s in view["services"]], title="services", blank_lines=False)
    print_table(out, [Column("stream"), Column("messages", right=True), Column("bytes", right=True),
                      Column("consumers", right=True)],
                [Row([s["stream"], str(s.get("messages", "-")), str(s.get("bytes", "-")),
                      str(s.get("consumers", "-"))] if s["exists"] else [s["stream"], "(none)", "-", "-"])
                 for s in view["streams"]], title="streams", blank_lines=False)
    print_table(out, [Column("consumer"), Column("stream"), Column("pending", right=True),
                      Column("unacked", right=True), Column("lag s", right=True),
                      Column("redelivered", right=True, spill=True)],
                [Row([c["consumer"], c["stream"], str(c["pending"]), str(c["unacknowledged"]),
                      f"{c['lag_seconds']:g}", str(c["redelivered"])]) for c in view["consumers"]],
                title="consumers (pending: not delivered yet; lag: age of the oldest event not acknowledged)",
                blank_lines=False)
    dead = view["dead_letters"]
    parked: dict[str, int] = {}
    for service in view.get("services", ()):
        parked.update(service.get("parked_cases", {}))
    if parked:
        print_paragraph(out, "parked cases: " + ", ".join(f"{n} of {s}" for s, n in sorted(parked.items())),
                        style="red" if any(parked.values()) else None)
    print_paragraph(out, "dead letters: " + (", ".join(f"{n} for {c}" for c, n in sorted(dead.items()))
                                             if dead else "none"), style="red" if dead else None)
    print_paragraph(out, f"timers scheduled: {view['timers_scheduled']}")
    print_paragraph(out, "stores: " + ", ".join(
        f"{s['store']} {s['bytes']:,} bytes" if "bytes" in s else f"{s['store']} at {s['where']}"
        for s in view["stores"]))
    for service, line in sorted(view["last_errors"].items()):
        print_paragraph(out, f"last error of {service}: {line}", style="yellow")
    return attention(view)


def attention(view: dict[str, Any]) -> int:
    """1 when something needs the operator: dead letters waiting, a consumer with events not delivered or not
    acknowledged, a service down or not ready; else 0."""
    behind = any(c["pending"] or c["unacknowledged"] for c in view["consumers"])
    down = any(not s["running"] or s["ready"] is False for s in view.get("services", ()))
    return 1 if view["dead_letters"] or behind or down else 0


def to_json(view: dict[str, Any]) -> str:
    return json.dumps(view, indent=2)
