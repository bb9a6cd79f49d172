"""Traces over a running system (all services as `up` runs them, a real nats-server, SQLite stores), exported over
OTLP/HTTP to a receiver in the test: one report is one trace, its id the report's, with the spans of intake, the
relay, deadlines, benefits and their outboxes, each under the span of the hop before; a party's own span is the
parent of intake's when its traceparent carries the report's trace id. Without an endpoint nothing is exported."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import nats
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lab.demo import wait_for_derived
from lab.generator import Generator, encode_report
from reintegration.runtime import Runtime
from shared.embedded.waiting import wait_until
from shared.events.subjects import intake_subject
from shared.infra import tracing
from shared.infra.settings import Settings


@dataclass
class Span:
    service: str
    name: str
    trace: int
    span: int
    parent: int | None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Collector:
    """An OTLP/HTTP traces receiver: decodes each export request into :class:`Span` records."""

    spans: list[Span] = field(default_factory=list)
    requests: int = 0

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        self.requests += 1
        for resource in request.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes if a.key == "service.name"),
                           "")
            for scope in resource.scope_spans:
                for s in scope.spans:
                    self.spans.append(Span(
                        service, s.name, int.from_bytes(s.trace_id, "big"), int.from_bytes(s.span_id, "big"),
                        int.from_bytes(s.parent_span_id, "big") or None,
                        {a.key: a.value.string_value or str(a.value.int_value) for a in s.attributes}))


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    received = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                received.take(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield received, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.mark.slow
def test_one_report_is_one_trace_through_every_service(tmp_path: Path, collector: tuple[Collector, str]) -> None:
    received, endpoint = collector
    runtime = Runtime(Settings(data_dir=tmp_path / "data", otlp_endpoint=endpoint, trace_sample=1.0), nats_port=0)
    settings = runtime.start()
    try:
        runtime.wait_ready()
        script = Generator(2026).scripts(1)[0]
        report = encode_report(script.opening)
        report_id = uuid.UUID(json.loads(report)["report_id"])
        party_span = 0x1234_5678_9ABC_DEF0
        trace = tracing.trace_id(report_id)

        async def send() -> dict[str, object]:
            nc = await nats.connect(settings.nats_servers, **settings.nats_options())
            try:
                reply = await nc.request(intake_subject(script.opener), report, timeout=10,
                                         headers={"traceparent": tracing.traceparent(trace, party_span)})
                return msgspec.json.decode(reply.data)
            finally:
                await nc.close()

        reply = asyncio.run(send())
        assert reply["type"] == "accepted.v1", reply
        assert wait_for_derived(settings, runtime)
        event_id = uuid.UUID(str(reply["event_ids"][0]))  # type: ignore[index]

        def spans() -> list[Span]:
            return [s for s in received.spans if s.trace == trace]

        # (the benefits outbox publishes only when the step made ledger entries: an opening report makes none)
        wanted = {("intake", "intake report"), ("relay", "relay publish"), ("deadlines", "deadlines apply"),
                  ("benefits", "benefits apply"), ("deadlines", "relay publish")}
        found = wait_until(spans, timeout=30, interval=0.5, what="the report's spans from every service",
                           ready=lambda got: wanted <= {(s.service.removeprefix("reintegration-"), s.name)
                                                        for s in got})
        by = {(s.service.removeprefix("reintegration-"), s.name, s.attributes.get("relay", "")): s for s in found}
        intake = by["intake", "intake report", ""]
        relay = by["relay", "relay publish", "relay:intake->TRAJECTORY"]
        deadlines = by["deadlines", "deadlines apply", ""]
        benefits = by["benefits", "benefits apply", ""]
        assert intake.parent == party_span  # the party's own span, its traceparent naming the report's trace
        assert intake.span == tracing.span_id("intake", report_id)
        assert relay.parent == intake.span
        assert deadlines.parent == relay.span and benefits.parent == relay.span
        assert deadlines.span == tracing.span_id("deadlines", event_id)
        assert deadlines.attributes["reintegration.outcome"] == "applied"
        outbox = by["deadlines", "relay publish", "relay:deadlines->DEADLINES"]
        assert outbox.parent == deadlines.span
        ledger = by.get(("benefits", "relay publish", "relay:benefits->BENEFITS"))
        assert ledger is None or ledger.parent == benefits.span
        assert {s.trace for s in found} == {trace}  # one trace
    finally:
        runtime.stop()


def test_a_party_trace_of_another_id_is_linked_not_joined() -> None:
    """A party whose traceparent names a trace of its own: intake's span starts the report's trace, linked to it."""
    from services.intake.handlers import report_trace

    report_id = uuid.uuid4()
    body = msgspec.json.encode({"report_id": str(report_id), "type": "incapacity_reported.v1"})
    other = tracing.traceparent(0xABC, 0xDEF)
    assert report_trace(body, {"traceparent": other}) == (report_id, None, [(0xABC, 0xDEF)])
    same = tracing.traceparent(tracing.trace_id(report_id), 0xDEF)
    assert report_trace(body, {"traceparent": same}) == (report_id, 0xDEF, [])
    assert report_trace(body, {"traceparent": "00-zz-not-a-header"}) == (report_id, None, [])
    with pytest.raises(ValueError, match="no report id"):
        report_trace(b"{}", None)
