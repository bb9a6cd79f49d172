"""Cross-party access probes: every party x every subject family, on a real nats-server running the generated
accounts.

Each party kind is probed on every subject family: publishing, subscribing, creating a JetStream consumer, using
another party's consumer, asking for a feed filter that is not its own. Every cross-party probe must be refused by
the server (a permissions violation, reported through nats-py's ``error_cb``) and every own action must work.
``tests/integration/test_permissions.py`` asserts it per party; the S1 fault scenario
(:mod:`lab.chaos.s1_cross_party_access`) runs the same table and reports the counts::

    system = start_system(Path("/tmp/probes"))
    try:
        result = asyncio.run(run_probes(system, "employer:0403170701"))
    finally:
        system.server.stop()
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nkeys
from nats.aio.client import Client as NATS

from services import registry
from shared.embedded.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.embedded.waiting import until
from shared.events.subjects import (
    BENEFITS_STREAM,
    DEAD_LETTER_PREFIX,
    DEADLINES_STREAM,
    QUERY_PREFIX,
    TIMER_FIRED_PREFIX,
    TIMER_SCHEDULE_PREFIX,
    TRAJECTORY_PREFIX,
    TRAJECTORY_STREAM,
    TRAJECTORY_SUBJECTS,
    employer_feed_subject,
    trajectory_subject,
)
from shared.infra.parties import (
    AUDIT_PREFIX,
    FEED_PREFIX,
    PARTY_JS_API,
    Credentials,
    Party,
    Role,
    connect_as,
    feed_consumer_names,
    generate,
    load_credentials,
    parse_parties,
)

FUNDS = ["100", "300"]
OHS = ["0202239951", "0441257948"]
EMPLOYERS = ["0403170701", "0299925087"]
AUDITORS = ["inspectorate", "court-of-audit"]
#: Every service of :mod:`services.registry`, and the runtime (what ``up`` connects as).
SERVICES = [*(entry.name for entry in registry.SERVICES), "runtime", "operator"]
PARTIES = parse_parties({"dev": True, "health_funds": FUNDS, "occupational_health_services": OHS,
                         "employers": EMPLOYERS, "auditors": AUDITORS, "services": SERVICES})
OUTSIDERS = [p for p in PARTIES.parties if p.role is not Role.SERVICE]
E1, E2 = EMPLOYERS
CASE = uuid.UUID("7d8b3c1e-1111-4111-8111-111111111111")


# ----------------------------------------------------------------------------------------------- harness


@dataclass
class System:
    server: EmbeddedNatsServer
    credentials: dict[str, Path]
    config: str
    #: A user of the service account without any restriction: a witness of what reaches the service account.
    observer_seed: str

    @property
    def url(self) -> str:
        return self.server.url

    def creds(self, name: str) -> Credentials:
        return load_credentials(self.credentials[name])


def start_system(directory: Path) -> System:
    """A nats-server (from the wheel) with the accounts of :data:`PARTIES` and one unrestricted observer user of the
    service account; credentials under ``directory / "parties"``. The caller stops ``system.server``."""
    config, credentials = generate(PARTIES, directory / "parties")
    seed = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER)
    observer = nkeys.from_seed(bytearray(seed)).public_key.decode()
    witnessed = config.replace("    users: [\n", f'    users: [\n      {{ nkey: "{observer}" }}\n', 1)
    server = EmbeddedNatsServer(NatsServerConfig(store_dir=directory / "nats", extra=witnessed),
                                run_dir=directory / "run")
    server.start()
    return System(server, credentials, config, seed.decode())


@dataclass(frozen=True)
class Refusal:
    """A permissions violation the server reported: the action it refused, on which subject, in its words."""

    action: str  # ``publish`` or ``subscription``
    subject: str
    text: str


# nats-py lower-cases the server's -ERR text: 'Permissions Violation for Publish to "<subject>"'
_REFUSAL = re.compile(r'permissions violation for (\w+) to "([^"]*)"')


def refusal(error: Exception) -> Refusal | None:
    """The permissions violation ``error`` reports, or ``None`` for any other error. nats-py hands the server's
    asynchronous -ERR to the error callback as a plain ``nats.errors.Error`` whose text is all it carries: it is
    read here, once, into a :class:`Refusal`."""
    text = str(error)
    match = _REFUSAL.search(text)
    return Refusal(match[1], match[2], text) if match else None


@dataclass
class Client:
    """One party's connection, with the server's asynchronous errors (permissions violations) collected."""

    party: str
    nc: NATS
    errors: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    sentinels: int = 0

    def violations(self) -> list[str]:
        return [r.text for r in self.refusals if not r.subject.startswith(SENTINEL)]

    async def settle(self) -> None:
        """Wait until the server has answered everything sent so far. A flush is not enough: the server's -ERR for
        a refused publish can come after the PONG. -ERRs keep their order, so wait for one more, provoked."""
        self.sentinels += 1
        sentinel = f"{SENTINEL}.{self.sentinels}"
        await self.nc.publish(sentinel, b"")
        await self.nc.flush()
        await until(lambda: any(r.subject == sentinel for r in self.refusals), timeout=5, interval=0.001,
                    what=f"{self.party}: the server's answer for {sentinel}")

    async def publish(self, subject: str, reply: str = "") -> bool:
        """Publish once; ``True`` when the server accepted it, ``False`` when it refused it."""
        before = len(self.refusals)
        await self.nc.publish(subject, b"probe", reply=reply)
        await self.settle()
        return not _refused(self.refusals[before:], "publish", subject)

    async def subscribe(self, subject: str) -> bool:
        before = len(self.refusals)
        sub = await self.nc.subscribe(subject)
        await self.settle()
        refused = _refused(self.refusals[before:], "subscription", subject)
        await sub.unsubscribe()
        return not refused


#: Nobody may publish here: each probe is followed by one, whose refusal marks the end of the probe's answers.
SENTINEL = "probe.sentinel"


def _refused(refusals: list[Refusal], what: str, subject: str) -> bool:
    return any(r.action == what and r.subject == subject.lower() for r in refusals)


async def connect(system: System, name: str, **options: Any) -> Client:
    client = Client(name, None)  # type: ignore[arg-type]

    async def on_error(error: Exception) -> None:
        client.errors.append(str(error))
        if (refused := refusal(error)) is not None:
            client.refusals.append(refused)

    client.nc = await connect_as(system.credentials[name], system.url, error_cb=on_error, **options)
    return client


# --------------------------------------------------------------------------------------- the probe table


def intake_of(party: Party) -> str:
    return f"reintegration.intake.{party.role.value}.{party.id}"


def probes(party: Party) -> list[tuple[str, str, bool]]:
    """``(publish|subscribe, subject, allowed)`` for one party: its own actions and everything else."""
    others = [p for p in OUTSIDERS if p != party]
    own_names = feed_consumer_names(party.id) if party.role is Role.EMPLOYER else ()
    table: list[tuple[str, str, bool]] = []

    def allow(action: str, *subjects: str) -> None:
        table.extend((action, s, True) for s in subjects)

    def refuse(action: str, *subjects: str) -> None:
        table.extend((action, s, False) for s in subjects)

    # Own: its inbox; its intake subject; an employer its feed, its feed consumers; an auditor the read-only subjects.
    allow("subscribe", f"{party.inbox_prefix}.>", f"{party.inbox_prefix}.abc.*")
    if party.role is Role.AUDITOR:
        allow("publish", f"{AUDIT_PREFIX}.case", f"{AUDIT_PREFIX}.disclosures.employer", f"{QUERY_PREFIX}.deadlines",
              f"{QUERY_PREFIX}.benefits")
    else:
        allow("publish", intake_of(party))
        refuse("publish", f"{AUDIT_PREFIX}.case", f"{QUERY_PREFIX}.deadlines", f"{QUERY_PREFIX}.benefits",
               f"{QUERY_PREFIX}.trajectory")
        refuse("subscribe", f"{AUDIT_PREFIX}.>", f"{QUERY_PREFIX}.>")
    if party.role is Role.EMPLOYER:
        allow("subscribe", f"reintegration.employer.{party.id}.>", f"reintegration.employer.{party.id}.deadlines.>",
              employer_feed_subject(party.id, "benefits", CASE))
        allow("publish", f"{FEED_PREFIX}.{party.id}")
        for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
            for name in own_names:
                allow("publish", f"{PARTY_JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}",
                      f"{PARTY_JS_API}.CONSUMER.INFO.{stream}.{name}", f"$JS.ACK.{stream}.{name}.1.1.1.1.0")
    # Other parties: their intake subjects, inboxes, feeds, feed requests and consumers.
    for other in others:
        if other.role is not Role.AUDITOR:
            refuse("publish", intake_of(other))
        refuse("subscribe", f"{other.inbox_prefix}.>")
        refuse("publish", f"{other.inbox_prefix}.spoofed-reply")
        if other.role is Role.EMPLOYER:
            refuse("subscribe", f"reintegration.employer.{other.id}.>",
                   employer_feed_subject(other.id, "deadlines", CASE))
            refuse("publish", f"{FEED_PREFIX}.{other.id}")
            for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
                for name in feed_consumer_names(other.id):
                    refuse("publish", f"{PARTY_JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}",
                           f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
                           f"{PARTY_JS_API}.CONSUMER.INFO.{stream}.{name}", f"$JS.ACK.{stream}.{name}.1.1.1.1.0")
    if party.role is not Role.EMPLOYER:
        refuse("publish", f"reintegration.intake.employer.{EMPLOYERS[0]}", f"{FEED_PREFIX}.{EMPLOYERS[0]}")
    # Every family of the system's own subjects: nobody outside the service account reads or writes them.
    refuse("subscribe", ">", "reintegration.>", "reintegration.intake.>", "reintegration.trajectory.>",
           f"{TRAJECTORY_PREFIX}.{CASE}.incapacity_reported", "reintegration.deadlines.>", "reintegration.benefits.>",
           "reintegration.timers.>", "reintegration.dead.>", "reintegration.employer.>", "reintegration.employer.*.>",
           "reintegration.employer.*.deadlines.>", "reintegration.feed.*", "_INBOX.>", "_R_.>", "$JS.>",
           "$JS.ACK.>", "$JS.API.>", f"{PARTY_JS_API}.>", "$SYS.>")
    refuse("publish", trajectory_subject(CASE, "incapacity_reported.v1"), f"reintegration.deadlines.{CASE}.opened",
           f"reintegration.benefits.{CASE}.premium", f"{TIMER_SCHEDULE_PREFIX}.{CASE}", f"{TIMER_FIRED_PREFIX}.{CASE}",
           f"{DEAD_LETTER_PREFIX}.deadlines", "_INBOX.reply", "_R_.abc.def")
    # Even its own feed subjects: only the deriving services write a feed.
    for enterprise in EMPLOYERS:
        refuse("publish", employer_feed_subject(enterprise, "deadlines", CASE),
               employer_feed_subject(enterprise, "benefits", CASE))
    # JetStream: no stream API, no consumer creation (the feeds service creates them), no service consumer.
    for prefix in ("$JS.API", PARTY_JS_API):
        refuse("publish", f"{prefix}.INFO", f"{prefix}.STREAM.NAMES", f"{prefix}.STREAM.LIST",
               f"{prefix}.STREAM.INFO.{TRAJECTORY_STREAM}", f"{prefix}.STREAM.INFO.{DEADLINES_STREAM}",
               f"{prefix}.STREAM.CREATE.EVIL", f"{prefix}.STREAM.UPDATE.{DEADLINES_STREAM}",
               f"{prefix}.STREAM.DELETE.{TRAJECTORY_STREAM}", f"{prefix}.STREAM.PURGE.{DEADLINES_STREAM}",
               f"{prefix}.STREAM.MSG.GET.{TRAJECTORY_STREAM}", f"{prefix}.STREAM.MSG.DELETE.{BENEFITS_STREAM}",
               f"{prefix}.DIRECT.GET.{TRAJECTORY_STREAM}", f"{prefix}.CONSUMER.CREATE.{TRAJECTORY_STREAM}",
               f"{prefix}.CONSUMER.CREATE.{TRAJECTORY_STREAM}.x.{TRAJECTORY_SUBJECTS}",
               f"{prefix}.CONSUMER.CREATE.{TRAJECTORY_STREAM}.deadlines-p0of2",
               f"{prefix}.CONSUMER.MSG.NEXT.{TRAJECTORY_STREAM}.benefits-p1of2",
               f"{prefix}.CONSUMER.DURABLE.CREATE.{DEADLINES_STREAM}.x",
               f"{prefix}.CONSUMER.MSG.NEXT.{TRAJECTORY_STREAM}.deadlines",
               f"{prefix}.CONSUMER.LIST.{DEADLINES_STREAM}", f"{prefix}.CONSUMER.NAMES.{DEADLINES_STREAM}",
               f"{prefix}.CONSUMER.DELETE.{DEADLINES_STREAM}.disclosures-deadlines")
        for enterprise in EMPLOYERS:  # not even an employer for its own subjects: the filter is in the payload
            for name in feed_consumer_names(enterprise):
                refuse("publish",
                       f"{prefix}.CONSUMER.CREATE.{DEADLINES_STREAM}.{name}.reintegration.employer.{enterprise}.>",
                       f"{prefix}.CONSUMER.DELETE.{DEADLINES_STREAM}.{name}")
    refuse("publish", f"$JS.ACK.{TRAJECTORY_STREAM}.deadlines.1.1.1.1.0",
           f"$JS.ACK.{DEADLINES_STREAM}.disclosures-deadlines.1.1.1.1.0", "$JS.FC.x.y")
    return table


@dataclass
class ProbeResult:
    party: str
    probes: int
    #: cross-party probes (expected refused) and own actions (expected allowed)
    cross: int
    own: int
    cross_refused: int
    own_allowed: int
    #: permissions violations the server reported (one per refused probe, no other)
    violations: int
    connected: bool
    wrong: list[str]

    @property
    def ok(self) -> bool:
        return not self.wrong and self.violations == self.cross and self.connected


async def run_probes(system: System, party: str) -> ProbeResult:
    """Run the probe table of ``party`` (a name such as ``employer:0403170701``) with its own credentials."""
    table = probes(PARTIES.get(party))
    client = await connect(system, party)
    try:
        wrong = []
        cross_refused = own_allowed = 0
        for action, subject, allowed in table:
            ok = await (client.publish(subject) if action == "publish" else client.subscribe(subject))
            if ok != allowed:
                wrong.append(f"{action} {subject}: {'allowed' if ok else 'refused'}, expected the opposite")
            elif allowed:
                own_allowed += 1
            else:
                cross_refused += 1
        cross = sum(1 for _, _, allowed in table if not allowed)
        return ProbeResult(party=party, probes=len(table), cross=cross, own=len(table) - cross,
                           cross_refused=cross_refused, own_allowed=own_allowed, violations=len(client.violations()),
                           connected=client.nc.is_connected, wrong=wrong)
    finally:
        await client.nc.close()
