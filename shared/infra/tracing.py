"""Traces (OpenTelemetry): one report, one trace, from the party's request to the derived services' outboxes.

Off by default: without ``REINTEGRATION_OTLP_ENDPOINT`` no tracer provider is installed, :data:`enabled` stays
``False`` and every helper here returns at once, so tracing costs nothing. With an endpoint, each process exports its
spans over OTLP/HTTP (batched, in the background).

**A report's trace id is its report id** (the 128 bits of the UUID). The services between the party and the derived
stores are joined by a store and a stream, and the store keeps no trace context (it is the system of record, and its
events enter the audit hash chain); but every hop knows the report: intake decodes it, the relay publishes its Case
event, and every derived step records the Case event it applied. So each hop derives its parent from the report and
the event, and each span's id from its step (:func:`span_id`):

* ``intake report``: span ``span_id("intake", report_id)``; a child of the party's own span when the party's
  ``traceparent`` carries the report's trace id (``reintegration submit`` sends one), a root linked to the party's
  span otherwise;
* ``relay publish``: one span per Case event published to TRAJECTORY, under intake's span; the message carries a
  ``traceparent`` header naming it;
* ``<service> apply`` (deadlines, benefits): one span per event, under the relay's span (from the header), id
  ``span_id(service, event_id)``;
* ``relay publish`` of the service's outbox: its messages' spans under that apply span.

The FastStream subscribers (queries, the auditors' questions, the feeds) get FastStream's own telemetry middleware.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from typing import Any, Final
from uuid import UUID

import structlog

log = structlog.get_logger("tracing")

TRACEPARENT: Final = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

#: Whether this process exports traces (set by :func:`configure`).
enabled = False
_provider: Any = None
_tracer: Any = None
#: Traces whose id's low 64 bits fall below this are sampled (OpenTelemetry's TraceIdRatioBased rule).
_bound = 1 << 64
#: The ids the next span takes: ``(trace id or None, span id)``, read once by :class:`_StepIds`.
_NEXT: ContextVar[tuple[int | None, int] | None] = ContextVar("reintegration_next_span_ids", default=None)


def trace_id(report_id: UUID) -> int:
    """The trace id of a report: its report id's 128 bits (never 0, which OpenTelemetry reserves)."""
    return report_id.int or 1


def trace_hex(report_id: UUID) -> str:
    """The trace id as the 32 hex digits log lines, ``traceparent`` headers and tracing back ends show."""
    return f"{trace_id(report_id):032x}"


def span_id(step: str, key: UUID | str) -> int:
    """The span id of ``step`` (``intake``, ``relay``, ``deadlines``, ...) for a report or event: the same in every
    process, so the next hop can name it as its parent."""
    return int.from_bytes(hashlib.sha256(f"{step}:{key}".encode()).digest()[:8], "big") or 1


def traceparent(trace: int, span: int) -> str:
    return f"00-{trace:032x}-{span:016x}-01"


def parse_traceparent(headers: Mapping[str, str] | None) -> tuple[int, int] | None:
    """``(trace id, span id)`` of a W3C ``traceparent`` header, ``None`` when there is none or it is malformed."""
    value = (headers or {}).get(TRACEPARENT)
    match = _TRACEPARENT.match(value.strip().lower()) if value else None
    if match is None:
        return None
    trace, span = int(match[1], 16), int(match[2], 16)
    return (trace, span) if trace and span else None


def wanted(trace: int) -> bool:
    """Whether the trace is sampled: the same answer in every process, from the trace id alone."""
    return (trace & 0xFFFF_FFFF_FFFF_FFFF) < _bound


def configure(endpoint: str | None, service: str, sample: float) -> None:
    """Export this process's spans to ``endpoint`` (OTLP over HTTP), ``sample`` of the reports (decided from the
    report's id, so in every process alike: a report is traced whole or not at all); nothing when it is ``None``."""
    global enabled, _provider, _tracer, _bound
    if not endpoint:
        return
    _bound = round(sample * (1 << 64))
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    class StepIds(RandomIdGenerator):
        """The ids :func:`span` asked for, else random ones."""

        def generate_span_id(self) -> int:
            ids = _NEXT.get()
            return ids[1] if ids is not None else super().generate_span_id()

        def generate_trace_id(self) -> int:
            ids = _NEXT.get()
            return ids[0] if ids is not None and ids[0] is not None else super().generate_trace_id()

    _provider = TracerProvider(resource=Resource.create({"service.name": f"reintegration-{service}"}),
                               id_generator=StepIds(), sampler=TraceIdRatioBased(sample))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"),
                                                    schedule_delay_millis=500))
    trace.set_tracer_provider(_provider)
    _tracer = _provider.get_tracer("reintegration")
    enabled = True
    log.info("traces exported over OTLP", endpoint=endpoint, service=service)


def provider() -> Any:
    """The tracer provider (for FastStream's telemetry middleware), ``None`` when tracing is off."""
    return _provider


def shutdown() -> None:
    """Export what is still buffered (at the end of the process)."""
    if _provider is not None:
        _provider.shutdown()


@contextlib.contextmanager
def span(name: str, *, trace: int, span_id: int, parent: int | None = None,
         attributes: Mapping[str, Any] | None = None, links: Sequence[tuple[int, int]] = (),
         start_time: int | None = None) -> Iterator[Any]:
    """A span ``span_id`` of trace ``trace``, a child of span ``parent`` (a root without one); ``None`` when
    tracing is off. ``links``: other spans (``(trace, span)``) it relates to, such as a party's own."""
    if not enabled or not wanted(trace):
        yield None
        return
    from opentelemetry import trace as api
    from opentelemetry.context import Context

    def context_of(trace_: int, span_: int) -> Any:
        return api.SpanContext(trace_, span_, is_remote=True, trace_flags=api.TraceFlags(api.TraceFlags.SAMPLED))

    context = (api.set_span_in_context(api.NonRecordingSpan(context_of(trace, parent)), Context())
               if parent is not None else Context())
    token = _NEXT.set((trace, span_id))
    try:
        opened = _tracer.start_span(name, context=context, attributes=dict(attributes or {}),
                                    links=[api.Link(context_of(*link)) for link in links], start_time=start_time)
    finally:
        _NEXT.reset(token)
    try:
        yield opened
    except BaseException as exc:
        opened.record_exception(exc)
        opened.set_status(api.Status(api.StatusCode.ERROR, str(exc)[:200]))
        raise
    finally:
        opened.end()


def case_event_parent(event: Any) -> tuple[int, int] | None:
    """Where a Case event's relay span hangs: ``(trace, intake's span)`` of its report."""
    report = getattr(event, "report", None)
    report_id = getattr(report, "report_id", None)
    return (trace_id(report_id), span_id("intake", report_id)) if isinstance(report_id, UUID) else None


def derived_step_parent(service: str, event: Any) -> tuple[int, int] | None:
    """Where a derived step's relay span hangs: ``(trace, the service's apply span)`` of the Case event it applied
    (``None`` for a step no report caused: a fired timer, a recomputation)."""
    source = getattr(event, "source", None)
    report = getattr(source, "report", None)
    report_id = getattr(report, "report_id", None)
    if source is None or not isinstance(report_id, UUID):
        return None
    return trace_id(report_id), span_id(service, source.event_id)


# ------------------------------------------------------------------------------------------------- log lines

#: The step this thread is working on: its case, Case event and trace (read by :func:`add_step_fields`).
_STEP: ContextVar[Any] = ContextVar("reintegration_step", default=None)


def step_fields(event: Any) -> dict[str, str]:
    """``case_id``, ``event_id`` and ``trace_id`` of a Case event (empty for ``None``), for a log line."""
    if event is None:
        return {}
    report_id = getattr(getattr(event, "report", None), "report_id", None)
    fields = {"case_id": str(event.case_id), "event_id": str(event.event_id)}
    if isinstance(report_id, UUID):
        fields["trace_id"] = trace_hex(report_id)
    return fields


def working_on(event: Any) -> None:
    """Name the Case event this thread now steps (``None`` when done): every log line until then carries its
    case id, event id and trace id. One context variable set per event: cheap enough for every event."""
    _STEP.set(event)


def add_step_fields(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the ids of the step in progress (:func:`working_on`), unless the line names its own."""
    event = _STEP.get()
    if event is not None:
        for key, value in step_fields(event).items():
            event_dict.setdefault(key, value)
    return event_dict
