"""Metrics, health and readiness of a running system (all services as `up` runs them, a real nats-server, SQLite
stores): the scraped counters equal what the stores and streams hold, the lag gauges settle to 0 and rise while a
consumer is paused, /readyz follows the NATS connection, every metric the dashboard and the alert rules use exists,
and no label names a case, a worker or an enterprise."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.demo import feed, stored_events, wait_for_derived
from lab.generator import Generator
from reintegration.runtime import Runtime
from services.disclosures.log import build_disclosures
from shared.embedded.natsserver import free_port
from shared.embedded.waiting import wait_until
from shared.events.codec import encode
from shared.events.subjects import BENEFITS_PREFIX, BENEFITS_STREAM, DEADLINES_PREFIX, DEADLINES_STREAM, INTAKE_PREFIX
from shared.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
Samples = list[tuple[str, dict[str, str], float]]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def ports(runtime: Runtime) -> dict[str, int]:
    return {name: child.metrics_port for name, child in runtime.children.items() if child.metrics_port is not None}


def scrape_all(runtime: Runtime) -> dict[str, Samples]:
    return {name: scrape(port) for name, port in ports(runtime).items()}


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for sample, have, value in samples
               if sample == name and all(have.get(k) == v for k, v in labels.items()))


def by(samples: Samples, name: str, label: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for sample, have, value in samples:
        if sample == name and value:
            out[have[label]] += int(value)
    return out


def messages(settings: Settings, stream: str, subjects: str) -> int:
    async def count() -> int:
        nc = await nats.connect(settings.nats_servers, **settings.nats_options())
        try:
            info = await nc.jetstream().stream_info(stream, subjects_filter=subjects)
            return sum((info.state.subjects or {}).values())
        finally:
            await nc.close()

    return asyncio.run(count())


def dashboard_metrics() -> set[str]:
    """Every metric name the Grafana dashboard's queries and the Prometheus alert rules use."""
    texts = [json.dumps(json.loads((ROOT / "deploy/grafana/dashboards/reintegration.json").read_text())),
             (ROOT / "deploy/prometheus/alerts.yml").read_text()]
    return {name for text in texts for name in re.findall(r"\b((?:reintegration|faststream)_[a-z0-9_]+)", text)}


def exposed(names: set[str]) -> set[str]:
    """The names a query can use for the scraped series (a histogram's ``_bucket``, ``_sum`` and ``_count``)."""
    return names | {n.rsplit("_", 1)[0] for n in names if n.endswith(("_bucket", "_sum", "_count", "_created"))}


#: The system's own durable consumers, each sampled by the process that writes its stream.
CONSUMERS = {"deadlines", "benefits", "disclosures-deadlines", "disclosures-benefits", "deadlines-timers"}

# A worker's national number (11 digits), an enterprise number (10 digits starting 0 or 1), a case id (UUID).
_PERSONAL = re.compile(r"\b\d{11}\b|\b[01]\d{9}\b|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


@pytest.mark.slow
def test_metrics_equal_the_stores_settle_and_name_no_one(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=0)
    settings = runtime.start()
    try:
        runtime.wait_ready()
        assert set(ports(runtime)) == set(runtime.children)  # every process serves its metrics
        for name, port in ports(runtime).items():
            _status, body = wait_until(lambda port=port: probe(port, "/readyz"), timeout=30, interval=0.2,
                                      ready=lambda answer: answer[0] == 200, what=f"{name} ready")
            assert body["ready"] and all(v == "ok" for v in body["checks"].values()), body
            assert probe(port, "/healthz") == (200, {"alive": True, "service": name})

        before = scrape(ports(runtime)["intake"])
        tally = asyncio.run(feed(settings.nats_url, Generator(2026).scripts(20, tour_first=True),
                                 **settings.nats_options()))
        refused: Counter[str] = Counter()

        async def bad_reports() -> None:  # three refusals of two kinds, besides those of the stories
            nc = await nats.connect(settings.nats_servers, **settings.nats_options())
            try:
                for body in (encode({}), b"not json", b'{"report_id": 5}'):
                    reply = json.loads((await nc.request(f"{INTAKE_PREFIX}.health_fund.100", body, timeout=10)).data)
                    refused[reply["code"]] += 1
            finally:
                await nc.close()

        asyncio.run(bad_reports())
        assert wait_for_derived(settings, runtime)

        after = scrape(ports(runtime)["intake"])
        accepted = total(after, "reintegration_reports_accepted_total") - total(before,
                                                                                "reintegration_reports_accepted_total")
        assert accepted == tally.accepted > 0
        assert (total(after, "reintegration_reports_duplicate_total")
                - total(before, "reintegration_reports_duplicate_total")) == tally.duplicates
        rejected = by(after, "reintegration_reports_rejected_total", "code")
        rejected.subtract(by(before, "reintegration_reports_rejected_total", "code"))
        assert +rejected == Counter(tally.rejected) + refused
        assert total(after, "reintegration_intake_commit_seconds_count") > 0

        def settled() -> dict[str, Samples]:
            runtime.supervise_once()
            return scrape_all(runtime)

        def is_settled(scrapes: dict[str, Samples]) -> bool:
            every = [s for samples in scrapes.values() for s in samples]
            gauges = [v for n, _l, v in every if n in {"reintegration_consumer_pending_events",
                                                         "reintegration_consumer_oldest_pending_age_seconds",
                                                         "reintegration_relay_lag_events"}]
            consumers = {labels["consumer"] for n, labels, _v in every if n == "reintegration_consumer_pending_events"}
            changes = total(scrapes["deadlines"], "reintegration_deadline_changes_total")
            entries = total(scrapes["benefits"], "reintegration_ledger_entries_total")
            return (consumers >= CONSUMERS and not any(gauges)
                    and changes == messages(settings, DEADLINES_STREAM, f"{DEADLINES_PREFIX}.>")
                    and entries == messages(settings, BENEFITS_STREAM, f"{BENEFITS_PREFIX}.>"))

        try:
            scrapes = wait_until(settled, timeout=60, interval=1, ready=is_settled, what="lag gauges at 0")
        except Exception:
            last = scrape_all(runtime)
            print({name: [s for s in samples if s[0].startswith("reintegration") and "bucket" not in s[0]
                          and s[2]] for name, samples in last.items()})
            print(messages(settings, DEADLINES_STREAM, f"{DEADLINES_PREFIX}.>"),
                  messages(settings, BENEFITS_STREAM, f"{BENEFITS_PREFIX}.>"))
            raise
        every = [s for samples in scrapes.values() for s in samples]
        assert total(scrapes["relay"], "reintegration_relay_published_messages_total") == stored_events(settings)
        assert total(scrapes["deadlines"], "reintegration_events_applied_total", outcome="applied") == stored_events(
            settings)
        assert by(scrapes["deadlines"], "reintegration_deadline_changes_total", "change")["opened"] > 0
        assert by(scrapes["benefits"], "reintegration_ledger_entries_total", "kind")

        log = build_disclosures(settings)
        try:
            recorded = Counter(r.kind for r in log.records())
        finally:
            log.close()
        disclosed: Counter[str] = Counter()
        for samples in scrapes.values():
            disclosed.update(by(samples, "reintegration_disclosure_records_total", "kind"))
        assert disclosed == recorded and sum(recorded.values()) > 0

        names = {n for n, _l, _v in every}
        missing = dashboard_metrics() - exposed(names)
        assert not missing, f"the dashboard or the alert rules use metrics no process exposes: {sorted(missing)}"
        personal = sorted({f"{n}{{{k}={v}}}" for n, labels, _v in every for k, v in labels.items()
                           if _PERSONAL.search(v)})
        assert not personal, personal
    finally:
        runtime.stop()


@pytest.mark.slow
def test_a_paused_consumer_shows_its_lag_and_readiness_follows_nats(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), nats_port=free_port())
    settings = runtime.start()
    relay = ports(runtime)["relay"]
    try:
        runtime.wait_ready()
        generator = Generator(2026)
        asyncio.run(feed(settings.nats_url, generator.scripts(5), **settings.nats_options()))
        assert wait_for_derived(settings, runtime)

        def benefits_lag() -> tuple[float, float]:
            samples = scrape(relay)
            return (total(samples, "reintegration_consumer_pending_events", consumer="benefits"),
                    total(samples, "reintegration_consumer_oldest_pending_age_seconds", consumer="benefits"))

        assert wait_until(benefits_lag, timeout=30, interval=0.5, ready=lambda lag: lag == (0, 0),
                          what="benefits caught up") == (0, 0)
        runtime.supervisor.signal("benefits", signal.SIGSTOP)  # paused: the stream goes on filling
        try:
            asyncio.run(feed(settings.nats_url, generator.scripts(5), **settings.nats_options()))
            pending, _age = wait_until(benefits_lag, timeout=30, interval=0.5, ready=lambda lag: lag[1] >= 2,
                                      what="the paused consumer's lag rising")
            assert pending > 0
        finally:
            runtime.supervisor.signal("benefits", signal.SIGCONT)
        wait_until(benefits_lag, timeout=60, interval=0.5, ready=lambda lag: lag == (0, 0),
                   what="the lag back to 0 once continued")

        deadlines = ports(runtime)["deadlines"]
        assert runtime.server is not None
        runtime.server.stop()
        _status, body = wait_until(lambda: probe(deadlines, "/readyz"), timeout=30, interval=0.5,
                                  ready=lambda answer: answer[0] == 503, what="deadlines not ready without NATS")
        assert not body["ready"] and body["checks"]["nats"] != "ok"
        assert probe(deadlines, "/healthz")[0] == 200  # alive: it waits for the server, nothing to restart
        runtime.server.start()
        wait_until(lambda: probe(deadlines, "/readyz"), timeout=60, interval=0.5,
                   ready=lambda answer: answer[0] == 200, what="deadlines ready again")
    finally:
        runtime.stop()


def test_no_metrics_port_serves_nothing(tmp_path: Path) -> None:
    """Off unless asked: a runtime without metrics starts its services with no port at all."""
    runtime = Runtime(Settings(data_dir=tmp_path / "data"), metrics=False)
    assert all(child.metrics_port is None and "REINTEGRATION_METRICS_PORT" not in child.env
               for child in runtime.plan())
