"""Accounts and permissions per party, on a real nats-server running the generated configuration.

Every party kind is probed on every subject family: publishing, subscribing, creating a JetStream consumer, using
another party's consumer, asking for a feed filter that is not its own. Every cross-party probe must be refused by
the server (a permissions violation, reported through nats-py's ``error_cb``) and every own action must work. The
probe table and its harness live in :mod:`lab.probes`, shared with the S1 fault scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js import api

from lab.generator import Generator
from lab.probes import (
    AUDITORS,
    CASE,
    E1,
    E2,
    OUTSIDERS,
    SERVICES,
    Client,
    System,
    connect,
    intake_of,
    run_probes,
    start_system,
)
from services.feeds.handlers import serve_feed_consumers
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig, schedule_at_headers
from shared.events.feed import FeedError, FeedRefusal, FeedReply
from shared.events.subjects import (
    BENEFITS_STREAM,
    BENEFITS_SUBJECTS,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    DEADLINES_STREAM,
    DEADLINES_SUBJECTS,
    POSITION_HEADER,
    QUERY_PREFIX,
    TIMER_FIRED_PREFIX,
    TIMER_SCHEDULE_PREFIX,
    TIMERS_STREAM,
    TRAJECTORY_PREFIX,
    TRAJECTORY_STREAM,
    TRAJECTORY_SUBJECTS,
    consumer_name,
    employer_feed_subject,
    partition_filters,
    trajectory_subject,
)
from shared.infra.parties import (
    AUDIT_PREFIX,
    DEV_PARTIES_FILE,
    FEED_PREFIX,
    PARTY_JS_API,
    Parties,
    PartiesError,
    Party,
    Role,
    connect_as,
    feed_consumer_names,
    generate,
    load_credentials,
    load_parties,
    open_feed,
    parse_parties,
)
from shared.infra.relay import OutboxRelay
from shared.infra.streams import ensure_stream, ensure_timer_stream, ensure_trajectory_stream

# ----------------------------------------------------------------------------------------------- harness


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    running = start_system(tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


@dataclass
class Services:
    """Stand-ins for the services, each connected with its own generated credentials."""

    system: System
    clients: dict[str, Client] = field(default_factory=dict)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # (service, subject, account)

    async def start(self) -> None:
        for name in ("intake", "deadlines", "benefits", "audit", "feeds", "runtime"):
            self.clients[name] = await connect(self.system, f"service:{name}")
        js = self.clients["runtime"].nc.jetstream()
        await ensure_stream(js, TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS])
        await ensure_stream(js, DEADLINES_STREAM, DEADLINES_SUBJECTS)
        await ensure_stream(js, BENEFITS_STREAM, BENEFITS_SUBJECTS)

        def responder(service: str) -> Any:
            async def answer(msg: Msg) -> None:
                info = json.loads((msg.headers or {}).get("Nats-Request-Info", "{}"))
                self.seen.append((service, msg.subject, info.get("acc")))
                await msg.respond(json.dumps({"service": service, "subject": msg.subject,
                                              "account": info.get("acc")}).encode())
            return answer

        await self.clients["intake"].nc.subscribe("reintegration.intake.*.*", queue="intake",
                                                  cb=responder("intake"))
        await self.clients["deadlines"].nc.subscribe(f"{QUERY_PREFIX}.deadlines", queue="deadlines-query",
                                                     cb=responder("deadlines"))
        await self.clients["benefits"].nc.subscribe(f"{QUERY_PREFIX}.benefits", queue="benefits-query",
                                                    cb=responder("benefits"))
        await self.clients["audit"].nc.subscribe(f"{AUDIT_PREFIX}.>", queue="audit", cb=responder("audit"))
        await serve_feed_consumers(self.clients["feeds"].nc)
        for client in self.clients.values():
            await client.nc.flush()

    async def feed(self, enterprise: str, topic: str = "deadlines", count: int = 1, tag: str = "") -> list[bytes]:
        """Feed messages on the employer's subjects, published as the deriving service does."""
        service = self.clients[topic]
        js = service.nc.jetstream()
        payloads = []
        for i in range(count):
            payload = json.dumps({"enterprise_number": enterprise, "n": i, "tag": tag}).encode()
            await js.publish(employer_feed_subject(enterprise, topic, uuid.uuid4()), payload)
            payloads.append(payload)
        return payloads

    def violations(self) -> list[str]:
        return [f"{name}: {e}" for name, c in self.clients.items() for e in c.violations()]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.nc.close()


@pytest.fixture
async def services(system: System) -> AsyncIterator[Services]:
    running = Services(system)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


async def runtime_js_delete(services: Services, consumer: str) -> None:
    """Remove a consumer a test opened only to read its reply (the next assertions expect none)."""
    await services.clients["feeds"].nc.jetstream().delete_consumer(DEADLINES_STREAM, consumer)


# --------------------------------------------------------------------------------------- the probe table


@pytest.mark.parametrize("party", [p.name for p in OUTSIDERS])
async def test_every_cross_party_probe_is_refused_and_every_own_action_allowed(system: System, party: str) -> None:
    result = await run_probes(system, party)
    assert not result.wrong, f"{party}: {len(result.wrong)} of {result.probes} probes wrong:\n" + "\n".join(
        result.wrong)
    assert result.cross_refused == result.cross and result.own_allowed == result.own > 0
    assert result.cross >= 60 and result.violations == result.cross  # one violation per refused probe, no other
    assert result.connected  # a violation is reported, the connection stays up


# ------------------------------------------------------------------------------------------ own actions


async def test_each_party_reaches_its_own_intake_and_the_service_knows_its_account(
    system: System, services: Services
) -> None:
    for party in OUTSIDERS:
        if party.role is Role.AUDITOR:
            continue
        client = await connect(system, party.name)
        reply = json.loads((await client.nc.request(intake_of(party), b"{}", timeout=2)).data)
        assert reply == {"service": "intake", "subject": intake_of(party), "account": party.name}
        other = next(p for p in OUTSIDERS if p.role is party.role and p != party)
        with pytest.raises(nats.errors.TimeoutError):  # refused by the server: no reply ever comes
            await client.nc.request(intake_of(other), b"{}", timeout=0.3)
        await client.settle()
        assert client.violations() == [f'nats: permissions violation for publish to "{intake_of(other)}"']
        await client.nc.close()
    assert [s for s in services.seen if s[0] == "intake"] == [
        ("intake", intake_of(p), p.name) for p in OUTSIDERS if p.role is not Role.AUDITOR]
    assert services.violations() == []


async def test_auditors_ask_read_only_questions_and_write_nothing(system: System, services: Services) -> None:
    for name in AUDITORS:
        client = await connect(system, f"auditor:{name}")
        for subject, service in ((f"{AUDIT_PREFIX}.case", "audit"), (f"{QUERY_PREFIX}.deadlines", "deadlines"),
                                 (f"{QUERY_PREFIX}.benefits", "benefits")):
            reply = json.loads((await client.nc.request(subject, b"{}", timeout=2)).data)
            assert reply == {"service": service, "subject": subject, "account": f"auditor:{name}"}
        for subject in (intake_of(Party(Role.HEALTH_FUND, "100")), trajectory_subject(CASE, "x.v1"),
                        f"$JS.API.STREAM.INFO.{TRAJECTORY_STREAM}", f"{PARTY_JS_API}.STREAM.INFO.{TRAJECTORY_STREAM}",
                        f"$JS.API.CONSUMER.CREATE.{TRAJECTORY_STREAM}", employer_feed_subject(E1, "deadlines", CASE),
                        f"{FEED_PREFIX}.{E1}"):
            assert not await client.publish(subject), subject
        await client.nc.close()
    assert services.violations() == []


async def test_an_employer_receives_its_own_updates_live_and_replayed_from_a_start_time(
    system: System, services: Services
) -> None:
    e1, e2 = await connect(system, f"employer:{E1}"), await connect(system, f"employer:{E2}")
    live: list[Msg] = []
    warmed = asyncio.Event()

    async def on_feed(msg: Msg) -> None:
        if b'"warm-up"' not in msg.data:
            live.append(msg)
        else:
            warmed.set()

    await e1.nc.subscribe(f"reintegration.employer.{E1}.>", cb=on_feed)
    await e1.nc.flush()
    # Interest reaches the exporting account through the server's import asynchronously: wait until one warm-up
    # message has come through (it lies before the replay's start time, so the replay below does not see it).
    for _ in range(200):
        await services.feed(E1, count=1, tag="warm-up")
        await asyncio.sleep(0.01)
        if warmed.is_set():
            break
    before = await services.feed(E1, count=3, tag="before") + await services.feed(E2, count=2, tag="before")
    await asyncio.sleep(0.05)
    start = datetime.now(UTC)
    await asyncio.sleep(0.05)
    after = await services.feed(E1, count=2, tag="after")
    await services.feed(E2, count=2, tag="after")
    benefits = await services.feed(E1, "benefits", count=2, tag="benefits")
    own = sorted([*before[:3], *after, *benefits])
    for _ in range(500):
        if len(live) >= len(own):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # and nothing more comes

    # Core subscription: exactly its own messages, from both streams.
    assert sorted(m.data for m in live) == own
    assert {m.subject.split(".")[2] for m in live} == {E1}

    # A new subscriber replays from a start time, through a consumer pinned to its own subjects.
    replay = await open_feed(e1.nc, E1, DEADLINES_STREAM, start_time=start)
    got = await replay.fetch(10, timeout=1)
    assert [m.data for m in got] == after
    for msg in got:
        await msg.ack_sync()  # through the employer's $JS.ACK import
    js = e1.nc.jetstream(prefix=PARTY_JS_API)
    _, replay_name = feed_consumer_names(E1)
    info = await js.consumer_info(DEADLINES_STREAM, replay_name)
    assert info.num_ack_pending == 0 and info.ack_floor.stream_seq > 0 and info.num_pending == 0
    assert info.config.filter_subject == f"reintegration.employer.{E1}.>" and info.config.deliver_subject is None

    # The durable live consumer: everything of its own on BENEFITS, resumed where it stopped after a reconnect.
    first = await open_feed(e1.nc, E1, BENEFITS_STREAM, consumer="live")
    msg = (await first.fetch(1, timeout=1))[0]
    assert msg.data == benefits[0]
    await msg.ack_sync()
    again = await open_feed(e1.nc, E1, BENEFITS_STREAM, consumer="live")
    assert [m.data for m in await again.fetch(10, timeout=1)] == benefits[1:]
    # A start or a filter for the existing live consumer would be ignored: refused, unless it starts over.
    for ignored in ({"start_time": datetime(2026, 1, 1, tzinfo=UTC)}, {"start_sequence": 1}, {"deliver": "new"},
                    {"filter": f"reintegration.employer.{E1}.benefits.>"}):
        with pytest.raises(FeedError, match=f"{next(iter(ignored))}: the durable consumer employer-{E1} exists"):
            await open_feed(e1.nc, E1, BENEFITS_STREAM, consumer="live", **ignored)  # type: ignore[arg-type]
    over = await open_feed(e1.nc, E1, BENEFITS_STREAM, consumer="live", start_sequence=1, reset=True)
    unacknowledged = await over.fetch(10, timeout=1)
    assert [m.data for m in unacknowledged] == benefits
    await unacknowledged[0].ack_sync()  # then the client dies with the rest unacknowledged
    # Reopened: what was never acknowledged comes back at once and in order, not after the minute of ack wait.
    reopened = await open_feed(e1.nc, E1, BENEFITS_STREAM, consumer="live")
    assert [m.data for m in await reopened.fetch(10, timeout=1)] == benefits[1:]

    # A narrower filter inside its own subjects is fine; E2's consumers are E2's own.
    narrow = await open_feed(e2.nc, E2, DEADLINES_STREAM, filter=f"reintegration.employer.{E2}.deadlines.>")
    assert len(await narrow.fetch(10, timeout=1)) == 4
    assert e1.violations() == [] and e2.violations() == [] and services.violations() == []
    await e1.nc.close()
    await e2.nc.close()


async def test_feed_consumers_are_pinned_to_the_employers_own_subjects(system: System, services: Services) -> None:
    await services.feed(E2, count=2)
    e1 = await connect(system, f"employer:{E1}")
    subject = f"{FEED_PREFIX}.{E1}"
    for body, reason in (
        ({"stream": DEADLINES_STREAM, "filter": f"reintegration.employer.{E2}.>"}, "not inside"),
        ({"stream": DEADLINES_STREAM, "filter": "reintegration.employer.*.>"}, "not inside"),
        ({"stream": DEADLINES_STREAM, "filter": "reintegration.employer.>"}, "not inside"),
        ({"stream": DEADLINES_STREAM, "filter": ">"}, "not inside"),
        ({"stream": DEADLINES_STREAM, "filter": f"reintegration.employer.{E1}"}, "not inside"),
        ({"stream": DEADLINES_STREAM, "filter": f"reintegration.employer.{E1}.>.x"}, "not inside"),
        ({"stream": DEADLINES_STREAM, "filter": f"reintegration.employer.{E1}.deadlines\n"}, "not inside"),
        ({"stream": DEADLINES_STREAM, "filter": f"reintegration.employer.{E1}.dead lines.>"}, "not inside"),
        ({"stream": TRAJECTORY_STREAM}, "feed is in"),
        ({"stream": DEADLINES_STREAM, "deliver_subject": "reintegration.trajectory.x"}, "unknown field"),
        ({"stream": DEADLINES_STREAM, "consumer": "deadlines"}, "Invalid enum value"),
        ({"stream": DEADLINES_STREAM, "start_time": "2026-01-01T00:00:00"}, "offset"),
        ({"stream": DEADLINES_STREAM, "start_time": "2026-01-01T00:00:00Z", "start_sequence": 3}, "give one of them"),
        ({"stream": DEADLINES_STREAM, "start_sequence": 0}, "Expected `int` >= 1"),
    ):
        raw = (await e1.nc.request(subject, json.dumps(body).encode(), timeout=2)).data
        reply = json.loads(raw)
        assert reason in reply.get("error", ""), (body, reply)
        msgspec.json.decode(raw, type=FeedRefusal)  # the refusal the contract documents
    opened = (await e1.nc.request(subject, json.dumps({"stream": DEADLINES_STREAM}).encode(), timeout=2)).data
    assert msgspec.json.decode(opened, type=FeedReply).consumer == f"employer-{E1}-replay"  # strictly the contract
    await runtime_js_delete(services, f"employer-{E1}-replay")
    with pytest.raises(FeedError, match="not inside"):
        await open_feed(e1.nc, E1, DEADLINES_STREAM, filter=f"reintegration.employer.{E2}.>")
    # No consumer was made for any refused request, and E2's consumers stay out of E1's reach.
    runtime = services.clients["runtime"].nc.jetstream()
    for name in feed_consumer_names(E1):
        with pytest.raises(nats.js.errors.NotFoundError):
            await runtime.consumer_info(DEADLINES_STREAM, name)
    e2 = await connect(system, f"employer:{E2}")
    await open_feed(e2.nc, E2, DEADLINES_STREAM)
    _, e2_replay = feed_consumer_names(E2)
    assert not await e1.publish(f"{PARTY_JS_API}.CONSUMER.MSG.NEXT.{DEADLINES_STREAM}.{e2_replay}",
                                reply=f"{e1.nc._inbox_prefix.decode()}.steal")
    with pytest.raises(nats.errors.TimeoutError):
        await e1.nc.jetstream(prefix=PARTY_JS_API).consumer_info(DEADLINES_STREAM, e2_replay, timeout=0.3)
    assert len(e1.violations()) == 2 and services.violations() == []
    await e1.nc.close()
    await e2.nc.close()


async def test_nothing_a_party_sends_lands_in_the_service_accounts_subjects(system: System, services: Services) -> None:
    """In one shared account a reply subject is an address anywhere: intake's answer, or a JetStream pull, would be
    published on whatever subject the requester named, e.g. into the TRAJECTORY stream. Across accounts it is
    mapped to a private ``_R_`` subject and comes back to the requester's own account."""
    await services.feed(E1, count=3)
    runtime = services.clients["runtime"]
    leaked: list[Msg] = []

    async def watch(msg: Msg) -> None:
        leaked.append(msg)

    observer = await nats.connect(system.url, nkeys_seed_str=system.observer_seed)
    await observer.subscribe(f"{TRAJECTORY_PREFIX}.>", cb=watch)
    await observer.flush()
    e1 = await connect(system, f"employer:{E1}")
    target = trajectory_subject(CASE, "incapacity_reported.v1")
    assert await e1.publish(intake_of(Party(Role.EMPLOYER, E1)), reply=target)
    await open_feed(e1.nc, E1, DEADLINES_STREAM)
    _, name = feed_consumer_names(E1)
    assert await e1.publish(f"{PARTY_JS_API}.CONSUMER.MSG.NEXT.{DEADLINES_STREAM}.{name}", reply=target)
    await asyncio.sleep(0.3)
    info = await runtime.nc.jetstream().stream_info(TRAJECTORY_STREAM)
    assert info.state.messages == 0 and leaked == []
    assert e1.violations() == [] and services.violations() == []
    await e1.nc.close()
    await observer.close()


async def test_connections_without_known_credentials_are_refused(system: System, tmp_path: Path) -> None:
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error)):
        await nats.connect(system.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
    stranger, _ = generate(parse_parties({"employers": [E1]}), tmp_path / "stranger")
    assert stranger  # a valid key pair the server does not know
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error)):
        await connect_as(tmp_path / "stranger" / f"employer-{E1}.creds", system.url, allow_reconnect=False,
                         max_reconnect_attempts=0, connect_timeout=2)


# -------------------------------------------------------------------------------------------- services


async def test_each_service_can_do_what_its_code_does_and_nothing_of_another_service(system: System) -> None:
    clients = {name: await connect(system, f"service:{name}") for name in SERVICES}
    try:
        # relay: its stream, its subjects, and the tail it resumes after (stream info, get_msg).
        relay = clients["relay"]
        js = relay.nc.jetstream()
        await ensure_trajectory_stream(js)
        ack = await (await js.publish_async(trajectory_subject(CASE, "incapacity_reported.v1"), b"{}",
                                            headers={POSITION_HEADER: "1", "Nats-Msg-Id": "e1"}))
        tail = OutboxRelay(name="relay", recorder=None, mapper=None, tracking=None, js=js,  # type: ignore[arg-type]
                           stream=TRAJECTORY_STREAM, render=lambda e: [])
        assert (await tail.stream_tail())[:2] == (ack.seq, 1)
        assert (await js.get_msg(TRAJECTORY_STREAM, seq=1, direct=True)).data == b"{}"

        for name, stream, subjects in (("deadlines", DEADLINES_STREAM, DEADLINES_SUBJECTS),
                                       ("benefits", BENEFITS_STREAM, BENEFITS_SUBJECTS)):
            client = clients[name]
            js = client.nc.jetstream()
            await ensure_trajectory_stream(js)  # TrajectoryConsumer.start
            await ensure_stream(js, DEAD_LETTER_STREAM, [f"{DEAD_LETTER_PREFIX}.>"])
            await ensure_stream(js, stream, subjects)
            sub = await js.pull_subscribe(TRAJECTORY_SUBJECTS, durable=name, stream=TRAJECTORY_STREAM,
                                          config=api.ConsumerConfig(durable_name=name, ack_wait=30, max_deliver=1000,
                                                                    max_ack_pending=10_000),
                                          inbox_prefix=client.nc._inbox_prefix + b".")
            msg = (await sub.fetch(1, timeout=2))[0]
            await msg.in_progress()
            await msg.nak(delay=0.1)
            msg = (await sub.fetch(1, timeout=2))[0]
            await msg.ack_sync()
            # A replica's consumer: its partitions (several filters: created on the subject without a filter).
            replica = consumer_name(name, 1, 2)
            part = await js.pull_subscribe(TRAJECTORY_SUBJECTS, durable=replica, stream=TRAJECTORY_STREAM,
                                           config=api.ConsumerConfig(durable_name=replica,
                                                                     filter_subjects=partition_filters(1, 2)),
                                           inbox_prefix=client.nc._inbox_prefix + b".")
            assert (await js.consumer_info(TRAJECTORY_STREAM, replica)).config.filter_subjects == \
                partition_filters(1, 2)
            with contextlib.suppress(nats.errors.TimeoutError):
                for m in await part.fetch(1, timeout=0.5):
                    await m.ack_sync()
            await js.publish(f"{DEAD_LETTER_PREFIX}.{name}", b"poison")
            await js.publish(f"reintegration.{name}.{CASE}.x", b"{}")
            await js.publish(employer_feed_subject(E1, name, CASE), b"{}")
            assert (await js.get_msg(TRAJECTORY_STREAM, subject=f"{TRAJECTORY_PREFIX}.{CASE}.>")).data == b"{}"
            assert (await js.stream_info(stream)).state.messages == 2
            assert await client.subscribe(f"{QUERY_PREFIX}.{name}")  # answered in test_auditors_ask_...

        # deadlines' timers: schedule, fire (the server writes the target), consume, delete, purge.
        deadlines = clients["deadlines"]
        js = deadlines.nc.jetstream()
        await ensure_timer_stream(js)
        timers = await js.pull_subscribe(f"{TIMER_FIRED_PREFIX}.>", durable="deadlines-timers", stream=TIMERS_STREAM,
                                         config=api.ConsumerConfig(durable_name="deadlines-timers",
                                                                   filter_subject=f"{TIMER_FIRED_PREFIX}.>"),
                                         inbox_prefix=deadlines.nc._inbox_prefix + b".")
        await js.publish(f"{TIMER_SCHEDULE_PREFIX}.d1", b"{}", headers=schedule_at_headers(
            datetime.now(UTC) - timedelta(seconds=1), f"{TIMER_FIRED_PREFIX}.d1"))
        await js.publish(f"{TIMER_SCHEDULE_PREFIX}.d2", b"{}", headers=schedule_at_headers(
            datetime.now(UTC) + timedelta(days=1), f"{TIMER_FIRED_PREFIX}.d2"))
        fired = (await timers.fetch(1, timeout=3))[0]
        assert fired.subject == f"{TIMER_FIRED_PREFIX}.d1"
        await fired.ack()
        await js.delete_msg(TIMERS_STREAM, fired.metadata.sequence.stream)
        await js.purge_stream(TIMERS_STREAM, subject=f"{TIMER_SCHEDULE_PREFIX}.d2")

        # disclosures: the employer feed of both streams.
        disclosures = clients["disclosures"]
        js = disclosures.nc.jetstream()
        for stream, subjects in ((DEADLINES_STREAM, DEADLINES_SUBJECTS), (BENEFITS_STREAM, BENEFITS_SUBJECTS)):
            await ensure_stream(js, stream, subjects)
            name = f"disclosures-{stream.lower()}"
            sub = await js.pull_subscribe("reintegration.employer.>", durable=name, stream=stream,
                                          config=api.ConsumerConfig(durable_name=name,
                                                                    filter_subject="reintegration.employer.>"),
                                          inbox_prefix=disclosures.nc._inbox_prefix + b".")
            msg = (await sub.fetch(1, timeout=2))[0]
            assert msg.subject.startswith(f"reintegration.employer.{E1}.")
            await msg.ack()

        # audit: reads the streams, asks the derived services, answers auditors.
        audit = clients["audit"]
        js = audit.nc.jetstream()
        for stream in (TRAJECTORY_STREAM, DEADLINES_STREAM, BENEFITS_STREAM):
            assert (await js.stream_info(stream)).state.messages >= 1
            await js.get_msg(stream, seq=1)
        assert await audit.subscribe(f"{AUDIT_PREFIX}.>") and await audit.publish(f"{QUERY_PREFIX}.deadlines")

        # runtime: prepares and purges streams, probes intake.
        runtime = clients["runtime"]
        js = runtime.nc.jetstream()
        await ensure_stream(js, TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS])
        await js.purge_stream(BENEFITS_STREAM)
        assert await runtime.publish("reintegration.intake.health_fund.100")

        # operator: replays into TRAJECTORY (relay --from), purges a rebuilt service's streams, reads every stream
        # (dead letters) and consumer.
        operator = clients["operator"]
        js = operator.nc.jetstream()
        await ensure_trajectory_stream(js)
        await js.publish(trajectory_subject(CASE, "incapacity_reported.v1"), b"{}",
                         headers={POSITION_HEADER: "1", "Nats-Msg-Id": "e1"})
        await js.purge_stream(DEADLINES_STREAM)
        await js.purge_stream(TIMERS_STREAM)
        await js.get_msg(TRAJECTORY_STREAM, seq=1, direct=True)
        assert (await js.stream_info(DEAD_LETTER_STREAM)).state.messages >= 2
        assert (await js.consumer_info(TRAJECTORY_STREAM, "deadlines")).name == "deadlines"

        # intake: answers (allow_responses) and publishes nothing else.
        intake = clients["intake"]
        assert await intake.subscribe("reintegration.intake.*.*")

        problems = [f"{name}: {v}" for name, c in clients.items() for v in c.violations()]
        assert problems == []

        # Nothing of another service's.
        refusals = {
            "intake": ["publish " + trajectory_subject(CASE, "x.v1"), "publish $JS.API.STREAM.INFO.TRAJECTORY",
                       f"publish {employer_feed_subject(E1, 'deadlines', CASE)}", "subscribe reintegration.>",
                       "subscribe _INBOX_relay.>"],
            "relay": [f"publish reintegration.deadlines.{CASE}.x", "publish $JS.API.STREAM.PURGE.TRAJECTORY",
                      "publish $JS.API.STREAM.DELETE.TRAJECTORY", "subscribe reintegration.intake.*.*",
                      "publish reintegration.intake.health_fund.100"],
            "deadlines": [f"publish reintegration.benefits.{CASE}.x",
                          f"publish {employer_feed_subject(E1, 'benefits', CASE)}",
                          "publish $JS.API.CONSUMER.MSG.NEXT.TRAJECTORY.benefits",
                          "publish $JS.API.CONSUMER.CREATE.TRAJECTORY.benefits.reintegration.trajectory.>",
                          "publish $JS.API.CONSUMER.CREATE.TRAJECTORY.benefits-p0of2",
                          "publish $JS.API.CONSUMER.CREATE.TRAJECTORY.deadlines-p0of9",
                          "publish " + trajectory_subject(CASE, "x.v1"), "publish $JS.API.STREAM.PURGE.DEADLINES",
                          "subscribe reintegration.query.benefits", "publish reintegration.timers.fired.d9"],
            "benefits": [f"publish reintegration.deadlines.{CASE}.x", "publish $JS.ACK.TRAJECTORY.deadlines.1.1.1.1.0",
                         f"publish {TIMER_SCHEDULE_PREFIX}.d9", "publish $JS.API.STREAM.CREATE.TIMERS"],
            "disclosures": [f"publish {employer_feed_subject(E1, 'deadlines', CASE)}",
                            "publish $JS.API.CONSUMER.MSG.NEXT.TRAJECTORY.deadlines",
                            "publish $JS.API.STREAM.PURGE.DEADLINES"],
            "feeds": ["publish $JS.API.CONSUMER.CREATE.TRAJECTORY.x.reintegration.trajectory.>",
                      "publish $JS.API.CONSUMER.DELETE.TRAJECTORY.deadlines",
                      f"publish $JS.API.CONSUMER.CREATE.{DEADLINES_STREAM}.x.reintegration.deadlines.>",
                      "publish $JS.API.CONSUMER.MSG.NEXT.DEADLINES.disclosures-deadlines"],
            "audit": ["publish " + trajectory_subject(CASE, "x.v1"), "publish $JS.API.STREAM.PURGE.TRAJECTORY",
                      "publish $JS.API.CONSUMER.CREATE.TRAJECTORY", "publish reintegration.intake.health_fund.100"],
            "runtime": ["publish " + trajectory_subject(CASE, "x.v1"), "publish $JS.API.STREAM.DELETE.TRAJECTORY",
                        "subscribe reintegration.>"],
            # no report, no query, no feed, no consumer of its own, nothing deleted; TRAJECTORY is never purged
            "operator": ["publish reintegration.intake.health_fund.100", "publish reintegration.query.deadlines",
                         "publish reintegration.feed.0403170701", "publish $JS.API.STREAM.PURGE.TRAJECTORY",
                         "publish $JS.API.STREAM.DELETE.DEADLINES",
                         "publish $JS.API.CONSUMER.CREATE.TRAJECTORY.x.reintegration.trajectory.>",
                         "publish $JS.API.CONSUMER.DELETE.TRAJECTORY.deadlines",
                         f"publish reintegration.deadlines.{CASE}.x", f"publish {TIMER_SCHEDULE_PREFIX}.d9",
                         "subscribe reintegration.>", "subscribe reintegration.audit.>"],
        }
        wrong = []
        for name, probes_ in refusals.items():
            for probe in probes_:
                action, subject = probe.split(" ", 1)
                client = clients[name]
                if await (client.publish(subject) if action == "publish" else client.subscribe(subject)):
                    wrong.append(f"{name}: {probe} allowed")
        assert wrong == []
    finally:
        for client in clients.values():
            await client.nc.close()


# ---------------------------------------------------------------------------------------- the file itself


def test_the_dev_parties_file_runs_a_server_and_lists_the_demos_employers(tmp_path: Path) -> None:
    parties = load_parties(DEV_PARTIES_FILE)
    employers = [p.id for p in parties.of(Role.EMPLOYER)]
    assert employers[1:] == [e for e, _ in Generator(2026).employers]  # the demo's default seed
    assert [p.id for p in parties.of(Role.HEALTH_FUND)] == ["100", "300", "500"]
    assert "0202239951" in [p.id for p in parties.of(Role.OCCUPATIONAL_HEALTH_SERVICE)]
    assert parties.dev and Party(Role.SERVICE, "runtime") in parties.parties
    config, credentials = generate(parties, tmp_path / "parties")
    assert set(credentials) == {p.name for p in parties.parties}
    with EmbeddedNatsServer(NatsServerConfig(store_dir=tmp_path / "nats", extra=config, http_port=None),
                            run_dir=tmp_path / "run"):
        pass  # the server accepts the configuration (it exits at once on an error)


def test_parties_files_are_checked() -> None:
    for data, message in (
        ({"health_funds": ["101"]}, "unknown health fund"),
        ({"employers": ["0403170702"]}, "enterprise"),
        ({"employers": ["0403170701", "0403.170.701"]}, "listed twice"),
        ({"auditors": ["Bad Name"]}, "not a name"),
        ({"services": ["mailer"]}, "unknown service"),
        ({"services": ["runtime"]}, "development file"),
        ({"employer": ["0403170701"]}, "unknown keys"),
        ({"employers": "0403170701"}, "list of strings"),
    ):
        with pytest.raises(PartiesError, match=message):
            parse_parties(data)
    assert parse_parties({"employers": ["0403.170.701"]}).parties == (Party(Role.EMPLOYER, "0403170701"),)


def test_credentials_are_private_kept_across_generations_and_rotated_on_request(tmp_path: Path) -> None:
    parties = Parties((Party(Role.EMPLOYER, E1), Party(Role.HEALTH_FUND, "100")))
    _, first = generate(parties, tmp_path)
    creds = load_credentials(first[f"employer:{E1}"])
    assert stat.S_IMODE(first[f"employer:{E1}"].stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert creds.seed.startswith("SU") and creds.nkey.startswith("U") and creds.account == f"employer:{E1}"
    assert creds.connect_options() == {"nkeys_seed_str": creds.seed, "inbox_prefix": f"_INBOX_employer_{E1}"}
    config, _ = generate(parties, tmp_path)
    assert load_credentials(first[f"employer:{E1}"]).seed == creds.seed and creds.nkey in config
    assert creds.seed not in config  # the server holds public keys only
    generate(parties, tmp_path, rotate=True)
    assert load_credentials(first[f"employer:{E1}"]).seed != creds.seed
    _, _only = generate(Parties((Party(Role.HEALTH_FUND, "100"),)), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.creds")) == ["health_fund-100.creds"]


async def test_standard_clients_connect_with_the_seed_file_and_the_profile(system: System, services: Services) -> None:
    """Besides the project's credentials file, each party has what any NATS client reads: the nkey seed alone
    (`<role>-<id>.nk`, as `nats --nkey` and nats.js's nkeyAuthenticator take it) and a JSON profile with its inbox
    prefix, and the JetStream API prefix for the parties that have JetStream only."""
    for party in OUTSIDERS:
        creds = system.credentials[party.name]
        seed_file, profile_file = creds.with_suffix(".nk"), creds.with_suffix(".json")
        assert seed_file.stat().st_mode & 0o777 == 0o600 and profile_file.stat().st_mode & 0o777 == 0o600
        profile = json.loads(profile_file.read_text())
        assert profile["seed_file"] == seed_file.name and profile["party"] == party.name
        assert ("js_api_prefix" in profile) == (party.role is Role.EMPLOYER)
        assert seed_file.read_text().strip() == load_credentials(creds).seed
        # nats-py's own file option, as a standard client would use it: no project code in between
        nc = await nats.connect(system.url, nkeys_seed=str(seed_file), inbox_prefix=profile["inbox_prefix"])
        if party.role is not Role.AUDITOR:
            reply = json.loads((await nc.request(intake_of(party), b"{}", timeout=2)).data)
            assert reply["account"] == party.name
        else:
            reply = json.loads((await nc.request(f"{AUDIT_PREFIX}.history", b"{}", timeout=2)).data)
            assert reply["account"] == party.name
        await nc.close()
