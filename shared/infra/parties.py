"""NATS accounts, users and permissions per party, generated from a parties file.

Who may do what on the NATS server is data: a parties file (TOML, see ``deploy/parties.dev.toml`` and
``docs/parties.md``) names the health funds, occupational health services, employers, auditors and services.
:func:`generate` turns it into the server's ``accounts { ... }`` block and one credentials file per party::

    text, credentials = generate(load_parties("deploy/parties.dev.toml"), Path("data/parties"))
    server = EmbeddedNatsServer(NatsServerConfig(store_dir=..., extra=text))
    nc = await connect_as(credentials["employer:0403170701"], server.url)

Two layers, each enough to refuse what the other would miss:

* **Accounts.** The services share one account (``REINTEGRATION``, the only one with JetStream). Every party has
  an account of its own, named after the party (``employer:0403170701``), that holds nothing but what the service
  account exports to it: its intake subject (a service import), an employer's own feed (a stream import), an
  auditor's ``reintegration.audit.>`` / ``reintegration.query.>`` (service imports), an employer's own pull
  consumers (``JS.reintegration.API.CONSUMER.MSG.NEXT|INFO...`` and ``$JS.ACK...`` service imports). A reply
  subject set by a party is mapped to a private ``_R_`` subject when it crosses into the service account, so no
  party can make the server publish into the service account's subjects (in one shared account it could: see
  ``docs/parties.md``).
* **User permissions.** Inside its account each party's user may publish and subscribe to exactly those imports
  and its own inbox (``_INBOX_<kind>_<id>.>``; connect with ``inbox_prefix``), so a probe anywhere else is refused
  by the server with a permissions violation rather than silently going nowhere. Each service user may use exactly
  the subjects and JetStream API calls its code makes (:data:`SERVICE_PERMISSIONS`).

Authentication is by nkeys: the server configuration holds only public keys, the credentials file holds the seed,
and a client proves it holds the seed by signing the server's nonce (nothing secret crosses the wire, with or
without TLS). nats-py supports it natively (``nkeys_seed_str``; the ``nkeys`` package, ``nats-py[nkeys]``).

Employers open their JetStream consumers through the ``feeds`` service (:mod:`services.feeds.handlers`, which says
why) rather than through ``$JS.API.CONSUMER.CREATE``; :func:`open_feed`, beside :func:`connect_as`, is the
employer's side of it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.events.common import IdentifierError, normalise_enterprise_number, normalise_health_fund
from shared.events.feed import FeedError
from shared.events.subjects import (
    BENEFITS_STREAM,
    BENEFITS_SUBJECTS,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    DEADLINES_STREAM,
    DEADLINES_SUBJECTS,
    EMPLOYER_FEED_PREFIX,
    INTAKE_PREFIX,
    INTAKE_WILDCARD,
    PREFIX,
    QUERY_PREFIX,
    TIMER_FIRED_PREFIX,
    TIMER_SCHEDULE_PREFIX,
    TIMERS_STREAM,
    TRAJECTORY_STREAM,
    TRAJECTORY_SUBJECTS,
    consumer_names,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext

__all__ = [
    "AUDIT_PREFIX",
    "DEV_PARTIES_FILE",
    "FEED_PREFIX",
    "IMPORTED_REPLY_PREFIX",
    "PARTIES_FILE_ENV",
    "PARTY_JS_API",
    "REQUEST_INFO_HEADER",
    "SERVICES",
    "SERVICE_ACCOUNT",
    "UNAUTHENTICATED",
    "Credentials",
    "Import",
    "Parties",
    "PartiesError",
    "Party",
    "Permissions",
    "Role",
    "UnknownRequester",
    "auditor_asking",
    "connect_as",
    "crossed_import",
    "feed_consumer_names",
    "generate",
    "imports",
    "load_credentials",
    "load_identity",
    "load_parties",
    "open_feed",
    "parse_parties",
    "parties_file",
    "permissions",
    "render_accounts",
    "requester",
    "write_config",
]

#: The account of every service; the only account with JetStream.
SERVICE_ACCOUNT: Final = "REINTEGRATION"
#: Where a party's account sees the service account's JetStream API (``nc.jetstream(prefix=PARTY_JS_API)``).
PARTY_JS_API: Final = "JS.reintegration.API"
JS_API: Final = "$JS.API"
#: Read-only audit questions, request-reply, served by the audit service: ``reintegration.audit.<question>``.
AUDIT_PREFIX: Final = f"{PREFIX}.audit"
#: An employer asks the feeds service for a pull consumer on its own feed: ``reintegration.feed.<enterprise>``.
FEED_PREFIX: Final = f"{PREFIX}.feed"
#: The parties file of the embedded runtime and the demo (``reintegration up`` / ``demo``).
DEV_PARTIES_FILE: Final = Path(__file__).resolve().parents[2] / "deploy" / "parties.dev.toml"
#: Where a service that maps accounts to parties (the audit service) finds the parties file the server runs with.
PARTIES_FILE_ENV: Final = "REINTEGRATION_PARTIES_FILE"
FEED_STREAMS: Final = (DEADLINES_STREAM, BENEFITS_STREAM)
CREDENTIALS_SUFFIX: Final = ".creds"
#: Beside each credentials file, for standard NATS clients: the nkey seed alone, and a JSON connection profile.
SEED_SUFFIX: Final = ".nk"
PROFILE_SUFFIX: Final = ".json"
ACCOUNTS_FILE: Final = "accounts.conf"


class PartiesError(ValueError):
    """The parties file is not valid."""


class Role(StrEnum):
    HEALTH_FUND = "health_fund"
    OCCUPATIONAL_HEALTH_SERVICE = "occupational_health_service"
    EMPLOYER = "employer"
    AUDITOR = "auditor"
    SERVICE = "service"


#: Parties-file key of each role.
_FILE_KEYS: Final = {
    "health_funds": Role.HEALTH_FUND,
    "occupational_health_services": Role.OCCUPATIONAL_HEALTH_SERVICE,
    "employers": Role.EMPLOYER,
    "auditors": Role.AUDITOR,
    "services": Role.SERVICE,
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True, order=True)
class Party:
    role: Role
    id: str

    @property
    def name(self) -> str:
        """``employer:0403170701``, ``auditor:inspectorate``, ``service:intake``: also the account's name."""
        return f"{self.role.value}:{self.id}"

    @property
    def account(self) -> str:
        return SERVICE_ACCOUNT if self.role is Role.SERVICE else self.name

    @property
    def inbox_prefix(self) -> str:
        """The only inbox the party may subscribe to: ``<inbox_prefix>.>``."""
        return f"_INBOX_{self.id}" if self.role is Role.SERVICE else f"_INBOX_{self.role.value}_{self.id}"

    @property
    def file_name(self) -> str:
        return f"{self.role.value}-{self.id}{CREDENTIALS_SUFFIX}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Parties:
    parties: tuple[Party, ...]
    #: A development file: allows the ``runtime`` service, which may report for every party (the demo feeds it).
    dev: bool = False

    def of(self, role: Role) -> list[Party]:
        return [p for p in self.parties if p.role is role]

    def get(self, name: str) -> Party:
        for party in self.parties:
            if party.name == name:
                return party
        raise KeyError(name)


def parse_parties(data: Mapping[str, Any]) -> Parties:
    """Validate a parties mapping (the TOML file's content): known keys, valid identifiers, no duplicates."""
    unknown = set(data) - {*_FILE_KEYS, "dev"}
    if unknown:
        raise PartiesError(f"unknown keys {sorted(unknown)}; expected {sorted(_FILE_KEYS)} and dev")
    dev = data.get("dev", False)
    if not isinstance(dev, bool):
        raise PartiesError("dev must be true or false")
    found: list[Party] = []
    for key, role in _FILE_KEYS.items():
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PartiesError(f"{key} must be a list of strings")
        for value in values:
            try:
                if role is Role.HEALTH_FUND:
                    ident = normalise_health_fund(value.strip(), key)
                elif role in (Role.OCCUPATIONAL_HEALTH_SERVICE, Role.EMPLOYER):
                    ident = normalise_enterprise_number(value, key)
                elif role is Role.AUDITOR:
                    if not _NAME.match(value):
                        raise PartiesError(f"{key}: {value!r} is not a name of 1-40 of a-z, 0-9 and -")
                    ident = value
                else:
                    if value not in SERVICES:
                        raise PartiesError(f"{key}: unknown service {value!r}; expected one of {', '.join(SERVICES)}")
                    ident = value
            except IdentifierError as exc:
                raise PartiesError(str(exc)) from None
            party = Party(role, ident)
            if party in found:
                raise PartiesError(f"{party.name} is listed twice")
            found.append(party)
    if Party(Role.SERVICE, "runtime") in found and not dev:
        raise PartiesError("the runtime service may report for every party: only in a development file (dev = true)")
    return Parties(tuple(found), dev=dev)


def parties_file(environ: Mapping[str, str] | None = None) -> Path:
    """The parties file named by ``REINTEGRATION_PARTIES_FILE``, else the development file."""
    value = (os.environ if environ is None else environ).get(PARTIES_FILE_ENV)
    return Path(value) if value else DEV_PARTIES_FILE


def load_parties(path: str | os.PathLike[str]) -> Parties:
    try:
        with Path(path).open("rb") as f:
            return parse_parties(tomllib.load(f))
    except tomllib.TOMLDecodeError as exc:
        raise PartiesError(f"{path}: {exc}") from None
    except PartiesError as exc:
        raise PartiesError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------------------------- permissions


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish to and subscribe to (NATS wildcards), and whether it may answer requests."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: May publish once to the reply subject of each message it received (request-reply services).
    allow_responses: bool = False


@dataclass(frozen=True)
class Import:
    """What the service account exports to one party's account, and where the party sees it."""

    kind: Literal["service", "stream"]
    #: The subject in the service account.
    subject: str
    #: The subject in the party's account (``None``: the same).
    to: str | None = None
    #: ``stream`` for a service that answers with several messages (a JetStream pull).
    response_type: Literal["singleton", "stream"] = "singleton"

    @property
    def local(self) -> str:
        return self.to or self.subject


def feed_consumer_names(enterprise: str) -> tuple[str, str]:
    """An employer's two pull consumers on each feed stream: ``(live, replay)``."""
    return f"employer-{enterprise}", f"employer-{enterprise}-replay"


def feed_filter(enterprise: str) -> str:
    return f"{EMPLOYER_FEED_PREFIX}.{enterprise}.>"


def _stream_admin(stream: str) -> list[str]:
    """Create (idempotent), update and inspect a stream: what ``ensure_stream`` does."""
    return [f"{JS_API}.STREAM.{action}.{stream}" for action in ("CREATE", "UPDATE", "INFO")]


def _stream_read(stream: str) -> list[str]:
    """Stream info and single-message reads (``get_msg``, direct or not)."""
    return [f"{JS_API}.STREAM.INFO.{stream}", f"{JS_API}.STREAM.MSG.GET.{stream}", f"{JS_API}.DIRECT.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}.>"]


def _consumers_read(stream: str) -> list[str]:
    """List a stream's consumers and read their state: what the metrics of the process writing it sample."""
    return [f"{JS_API}.CONSUMER.LIST.{stream}", f"{JS_API}.CONSUMER.INFO.{stream}.*"]


def _pull_consumer(stream: str, name: str, filter_subject: str) -> list[str]:
    """Create (the form with the filter in the subject, as nats-py sends it), inspect, pull and acknowledge."""
    return [f"{JS_API}.CONSUMER.CREATE.{stream}.{name}.{filter_subject}", f"{JS_API}.CONSUMER.INFO.{stream}.{name}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}", f"$JS.ACK.{stream}.{name}.>"]


def _partitioned_consumers(stream: str, service: str) -> list[str]:
    """The replicas' consumers ``<service>-p<i>of<k>``: several filter subjects, so nats-py creates them on the
    subject without a filter token (the filters, in the payload, are the replica's partitions)."""
    out = []
    for name in consumer_names(service):
        if name != service:
            out += [f"{JS_API}.CONSUMER.CREATE.{stream}.{name}", f"{JS_API}.CONSUMER.INFO.{stream}.{name}",
                    f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}", f"$JS.ACK.{stream}.{name}.>"]
    return out


def _derived(name: str, stream: str, subjects: Sequence[str]) -> tuple[list[str], list[str]]:
    """What every derived service does: its TRAJECTORY consumer (one per replica), dead letters, its own stream and
    relay, its query."""
    publish = [
        *_stream_admin(TRAJECTORY_STREAM), *_stream_read(TRAJECTORY_STREAM),
        *_pull_consumer(TRAJECTORY_STREAM, name, TRAJECTORY_SUBJECTS),
        *_partitioned_consumers(TRAJECTORY_STREAM, name),
        *_stream_admin(DEAD_LETTER_STREAM), f"{DEAD_LETTER_PREFIX}.{name}",
        *_stream_admin(stream), *_stream_read(stream), *subjects,
        # its metrics: the consumers of its stream, its dead letters waiting (shared.infra.telemetry)
        *_consumers_read(stream), *_stream_read(DEAD_LETTER_STREAM),
    ]
    return publish, [f"{QUERY_PREFIX}.{name}"]


def _service_permissions() -> dict[str, tuple[list[str], list[str], bool]]:
    deadlines_pub, deadlines_sub = _derived("deadlines", DEADLINES_STREAM, DEADLINES_SUBJECTS)
    deadlines_pub += [
        *_stream_admin(TIMERS_STREAM), f"{TIMER_SCHEDULE_PREFIX}.>", f"{JS_API}.STREAM.PURGE.{TIMERS_STREAM}",
        f"{JS_API}.STREAM.MSG.DELETE.{TIMERS_STREAM}",
        *_pull_consumer(TIMERS_STREAM, "deadlines-timers", f"{TIMER_FIRED_PREFIX}.>"),
        *_consumers_read(TIMERS_STREAM), *_stream_read(TIMERS_STREAM),
    ]
    benefits_pub, benefits_sub = _derived("benefits", BENEFITS_STREAM, BENEFITS_SUBJECTS)
    disclosures = [
        *_stream_admin(DEADLINES_STREAM), *_stream_admin(BENEFITS_STREAM),
        *_pull_consumer(DEADLINES_STREAM, "disclosures-deadlines", f"{EMPLOYER_FEED_PREFIX}.>"),
        *_pull_consumer(BENEFITS_STREAM, "disclosures-benefits", f"{EMPLOYER_FEED_PREFIX}.>"),
    ]
    feeds = [
        f"{JS_API}.CONSUMER.{action}.{stream}.*{tail}"
        for stream in FEED_STREAMS
        for action, tail in (("CREATE", f".{EMPLOYER_FEED_PREFIX}.>"), ("DELETE", ""), ("INFO", ""))
    ]
    audit = [f"{QUERY_PREFIX}.>", *(s for stream in (TRAJECTORY_STREAM, DEADLINES_STREAM, BENEFITS_STREAM)
                                    for s in _stream_read(stream))]
    streams = (TRAJECTORY_STREAM, DEAD_LETTER_STREAM, DEADLINES_STREAM, BENEFITS_STREAM, TIMERS_STREAM)
    runtime = [INTAKE_WILDCARD, f"{QUERY_PREFIX}.>", f"{JS_API}.INFO"]
    for stream in streams:
        runtime += [*_stream_admin(stream), *_stream_read(stream), f"{JS_API}.STREAM.PURGE.{stream}",
                    f"{JS_API}.CONSUMER.INFO.{stream}.*"]
    # The operator's commands: replay a range into TRAJECTORY (`relay --from`), purge a rebuilt service's streams
    # (`rebuild --fresh`), read dead letters and every stream's and consumer's state. No intake, no queries, no feed:
    # an operator reads cases from the stores, where nothing is disclosed to a party.
    operator = [f"{PREFIX}.trajectory.>", *_stream_admin(TRAJECTORY_STREAM), f"{JS_API}.INFO"]
    for stream in streams:  # `reintegration status` lists every consumer's state
        operator += [*_stream_read(stream), *_consumers_read(stream)]
    operator += [f"{JS_API}.STREAM.PURGE.{stream}" for stream in (DEADLINES_STREAM, BENEFITS_STREAM, TIMERS_STREAM)]
    return {
        # (publish, subscribe, allow_responses)
        "intake": ([], [INTAKE_WILDCARD], True),
        "relay": ([f"{PREFIX}.trajectory.>", *_stream_admin(TRAJECTORY_STREAM), *_stream_read(TRAJECTORY_STREAM),
                   *_consumers_read(TRAJECTORY_STREAM)], [], False),
        "deadlines": (deadlines_pub, deadlines_sub, True),
        "benefits": (benefits_pub, benefits_sub, True),
        "disclosures": (disclosures, [], False),
        "feeds": (feeds, [f"{FEED_PREFIX}.*"], True),
        "audit": (audit, [f"{AUDIT_PREFIX}.>"], True),
        # The embedded runtime (dev only): prepares and reads streams, probes intake; the demo feeds every party
        # through it; the operator commands (rebuild --fresh) purge with it. It holds every credentials file anyway.
        "runtime": (runtime, [], False),
        # Not a process: the identity every operator command connects with (`reintegration env` names its file).
        "operator": (operator, [], False),
    }


#: Per service: (publish, subscribe, allow_responses), besides its own inbox.
SERVICE_PERMISSIONS: Final = _service_permissions()
SERVICES: Final = tuple(SERVICE_PERMISSIONS)
_NOTHING: Final = (">",)  # a deny list that leaves nothing: an empty allow list would mean "everything"


def imports(party: Party) -> list[Import]:
    """What the service account exports to ``party``'s account (nothing for a service: it is in that account)."""
    if party.role is Role.SERVICE:
        return []
    if party.role is Role.AUDITOR:
        return [Import("service", f"{AUDIT_PREFIX}.>"), Import("service", f"{QUERY_PREFIX}.>")]
    own = [Import("service", f"{INTAKE_PREFIX}.{party.role.value}.{party.id}")]
    if party.role is not Role.EMPLOYER:
        return own
    own += [Import("service", f"{FEED_PREFIX}.{party.id}"), Import("stream", feed_filter(party.id))]
    for stream in FEED_STREAMS:
        for name in feed_consumer_names(party.id):
            own += [
                Import("service", f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}",
                       f"{PARTY_JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}", response_type="stream"),
                Import("service", f"{JS_API}.CONSUMER.INFO.{stream}.{name}",
                       f"{PARTY_JS_API}.CONSUMER.INFO.{stream}.{name}"),
                Import("service", f"$JS.ACK.{stream}.{name}.>"),
            ]
    return own


def permissions(party: Party) -> Permissions:
    inbox = f"{party.inbox_prefix}.>"
    if party.role is Role.SERVICE:
        publish, subscribe, responses = SERVICE_PERMISSIONS[party.id]
        return Permissions(tuple(dict.fromkeys(publish)), (inbox, *subscribe), responses)
    own = imports(party)
    return Permissions(
        publish=tuple(i.local for i in own if i.kind == "service"),
        subscribe=(inbox, *(i.local for i in own if i.kind == "stream")),
    )


# ------------------------------------------------------------------------------------------ server config


def _q(value: str) -> str:
    return json.dumps(value)


def _subjects(subjects: Sequence[str]) -> str:
    return "[" + ", ".join(_q(s) for s in subjects) + "]"


def _user(party: Party, public_key: str) -> str:
    perms = permissions(party)
    publish = f"{{ allow: {_subjects(perms.publish)} }}" if perms.publish else f"{{ deny: {_subjects(_NOTHING)} }}"
    lines = [
        f"      # {party.name}",
        f"      {{ nkey: {_q(public_key)}, permissions: {{",
        f"          publish: {publish}",
        f"          subscribe: {{ allow: {_subjects(perms.subscribe)} }}",
    ]
    if perms.allow_responses:
        lines.append("          allow_responses: true")
    lines.append("      } }")
    return "\n".join(lines)


def render_accounts(parties: Parties, public_keys: Mapping[str, str]) -> str:
    """The server's ``accounts`` block for ``parties``; ``public_keys`` maps each party's name to its nkey."""
    exports: dict[tuple[str, str, str], list[str]] = {}
    for party in parties.parties:
        for item in imports(party):
            exports.setdefault((item.kind, item.subject, item.response_type), []).append(party.account)
    services = [p for p in parties.parties if p.role is Role.SERVICE]
    out = [
        "# Generated by `reintegration parties config` (shared/infra/parties.py); do not edit.",
        "# One account for the services (the only one with JetStream), one per party with only its imports.",
        "accounts {",
        f"  {_q(SERVICE_ACCOUNT)}: {{",
        "    jetstream: enabled",
        "    users: [",
        *(_user(p, public_keys[p.name]) for p in services),
        "    ]",
        "    exports: [",
    ]
    for (kind, subject, response_type), accounts in exports.items():
        extra = ", response_type: stream" if response_type == "stream" else ""
        out.append(f"      {{ {kind}: {_q(subject)}, accounts: {_subjects(accounts)}{extra} }}")
    out += ["    ]", "  }"]
    for party in parties.parties:
        if party.role is Role.SERVICE:
            continue
        out += [f"  {_q(party.account)}: {{", "    users: [", _user(party, public_keys[party.name]), "    ]",
                "    imports: ["]
        for item in imports(party):
            source = f"{{ account: {_q(SERVICE_ACCOUNT)}, subject: {_q(item.subject)} }}"
            if item.kind == "stream":
                out.append(f"      {{ stream: {source} }}")
            else:
                to = f", to: {_q(item.to)}" if item.to else ""
                # share: the service sees who asked (Nats-Request-Info header: {"acc": "<party name>", ...}).
                out.append(f"      {{ service: {source}{to}, share: true }}")
        out += ["    ]", "  }"]
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """One party's credentials file: who it is, its nkey seed, and how to connect."""

    party: str
    account: str
    nkey: str
    seed: str
    inbox_prefix: str
    #: The JetStream API prefix this party uses (``nc.jetstream(prefix=...)``); ``None`` for a party without
    #: JetStream (health funds, occupational health services and auditors only request and reply).
    js_api_prefix: str | None = JS_API
    url: str | None = None
    path: Path | None = field(default=None, compare=False)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` or FastStream's ``NatsBroker``."""
        return {"nkeys_seed_str": self.seed, "inbox_prefix": self.inbox_prefix}

    @property
    def pull_inbox_prefix(self) -> bytes:
        """For pull subscribers, which otherwise deliver to ``_INBOX.`` (FastStream's subscriber default)."""
        return f"{self.inbox_prefix}.".encode()

    def jetstream(self, nc: NATS, **options: Any) -> JetStreamContext:
        if self.js_api_prefix is None:
            raise PartiesError(f"{self.party} has no JetStream: it only sends requests and reads their replies")
        return nc.jetstream(prefix=self.js_api_prefix, **options)

    def profile(self, seed_file: str) -> dict[str, Any]:
        """What any NATS client needs besides the seed, as JSON (``<role>-<id>.json`` beside ``seed_file``)."""
        profile: dict[str, Any] = {"party": self.party, "account": self.account, "nkey": self.nkey,
                                   "seed_file": seed_file, "inbox_prefix": self.inbox_prefix}
        if self.js_api_prefix is not None:
            profile["js_api_prefix"] = self.js_api_prefix
        if self.url:
            profile["url"] = self.url
        return profile

    def render(self) -> str:
        lines = [
            f"# NATS credentials of {self.party} (reintegration parties). Secret: its holder is that party.",
            "# Python: nc = await shared.infra.parties.connect_as(\"<this file>\", url)",
            "#     or: nc = await nats.connect(url, nkeys_seed_str=seed, inbox_prefix=inbox_prefix)",
        ]
        values = {"party": self.party, "account": self.account, "nkey": self.nkey, "seed": self.seed,
                  "inbox_prefix": self.inbox_prefix}
        if self.js_api_prefix is not None:
            values["js_api_prefix"] = self.js_api_prefix
        if self.url:
            values["url"] = self.url
        lines += [f"{key} = {_q(value)}" for key, value in values.items()]
        return "\n".join(lines) + "\n"


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    with Path(path).open("rb") as f:
        data = tomllib.load(f)
    try:
        return Credentials(party=data["party"], account=data["account"], nkey=data["nkey"], seed=data["seed"],
                           inbox_prefix=data["inbox_prefix"], js_api_prefix=data.get("js_api_prefix"),
                           url=data.get("url"), path=Path(path))
    except KeyError as exc:
        raise PartiesError(f"{path}: credentials file without {exc.args[0]!r}") from None


async def connect_as(credentials: str | os.PathLike[str] | Credentials, url: str | None = None,
                     **options: Any) -> NATS:
    """A nats-py connection as the party of ``credentials`` (its nkey and its own inbox prefix)."""
    import nats

    creds = credentials if isinstance(credentials, Credentials) else load_credentials(credentials)
    server = url or creds.url
    if not server:
        raise PartiesError(f"no URL for {creds.party}: pass one (the credentials file has none)")
    options.setdefault("name", f"reintegration {creds.party}")
    return await nats.connect(server, **creds.connect_options(), **options)


def _new_seed() -> str:
    import nkeys

    return nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER).decode()


def _public_key(seed: str) -> str:
    import nkeys

    return str(nkeys.from_seed(bytearray(seed.encode())).public_key.decode())


def generate(parties: Parties, out_dir: str | os.PathLike[str], *, url: str | None = None,
             rotate: bool = False) -> tuple[str, dict[str, Path]]:
    """Write one credentials file per party under ``out_dir`` (mode 0600) and return the server's ``accounts``
    block and ``{party name: credentials path}``.

    A party's existing credentials file is kept (same key) unless ``rotate``: credentials handed out stay valid
    across restarts. Files of parties no longer in ``parties`` are removed.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    paths: dict[str, Path] = {}
    public: dict[str, str] = {}
    for party in parties.parties:
        path = directory / party.file_name
        seed = None
        if path.exists() and not rotate:
            try:
                old = load_credentials(path)
                if old.party == party.name:
                    seed = old.seed
                    _public_key(seed)
            except Exception:  # noqa: BLE001 - unreadable or foreign: replaced by a fresh key
                seed = None
        seed = seed or _new_seed()
        creds = Credentials(party=party.name, account=party.account, nkey=_public_key(seed), seed=seed,
                            inbox_prefix=party.inbox_prefix, js_api_prefix=_js_api_prefix(party.role), url=url)
        seed_file = path.with_suffix(SEED_SUFFIX)
        _write_secret(path, creds.render())
        # The same key for standard clients: the seed alone (what `nats --nkey` and nats.js's nkeyAuthenticator
        # read) and a profile with the inbox prefix (and, for a JetStream party, the API prefix).
        _write_secret(seed_file, creds.seed + "\n")
        _write_secret(path.with_suffix(PROFILE_SUFFIX), json.dumps(creds.profile(seed_file.name), indent=2) + "\n")
        paths[party.name] = path
        public[party.name] = creds.nkey
    kept = {p.with_suffix(suffix) for p in paths.values() for suffix in (CREDENTIALS_SUFFIX, SEED_SUFFIX,
                                                                          PROFILE_SUFFIX)}
    for suffix in (CREDENTIALS_SUFFIX, SEED_SUFFIX, PROFILE_SUFFIX):
        for stale in directory.glob(f"*{suffix}"):
            if stale not in kept:
                stale.unlink()
    return render_accounts(parties, public), paths


def _js_api_prefix(role: Role) -> str | None:
    """The JetStream API prefix of a role: the services' own API, an employer's imported one, none for the rest."""
    if role is Role.SERVICE:
        return JS_API
    return PARTY_JS_API if role is Role.EMPLOYER else None


def _write_secret(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only, replaced at once."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    temporary.replace(path)


def write_config(parties_file: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, url: str | None = None,
                 rotate: bool = False) -> tuple[Path, dict[str, Path]]:
    """``reintegration parties config``: ``out_dir/accounts.conf`` (include it in nats.conf) and the credentials."""
    text, paths = generate(load_parties(parties_file), out_dir, url=url, rotate=rotate)
    conf = Path(out_dir) / ACCOUNTS_FILE
    conf.write_text(text, encoding="utf-8")
    return conf, paths


# ------------------------------------------------------------------------------------ the employer's feed


async def open_feed(nc: NATS, enterprise: str, stream: str, *, consumer: Literal["live", "replay"] = "replay",
                    start_time: datetime | None = None, deliver: Literal["all", "new"] = "all",
                    filter: str | None = None, reset: bool = False, timeout: float = 5.0,
                    start_sequence: int | None = None) -> JetStreamContext.PullSubscription:
    """As an employer: open a pull consumer on its own feed in ``stream`` and bind to it (``await sub.fetch(n)``,
    then ``await msg.ack()``)."""
    body: dict[str, Any] = {"stream": stream, "consumer": consumer, "deliver": deliver, "reset": reset}
    if start_time is not None:
        body["start_time"] = start_time.isoformat()
    if start_sequence is not None:
        body["start_sequence"] = start_sequence
    if filter is not None:
        body["filter"] = filter
    msg = await nc.request(f"{FEED_PREFIX}.{enterprise}", json.dumps(body).encode(), timeout=timeout)
    reply = json.loads(msg.data)
    if "error" in reply:
        raise FeedError(reply["error"])
    js = nc.jetstream(prefix=reply.get("api_prefix", PARTY_JS_API))
    return await js.pull_subscribe_bind(consumer=reply["consumer"], stream=stream)


# --- who asked a request -----------------------------------------------------------------------------------------

#: The header the server adds to a request that crossed an account boundary through a ``share: true`` import.
REQUEST_INFO_HEADER: Final = "Nats-Request-Info"
#: The server maps the reply subject of a request that crosses an import to a private subject with this prefix.
IMPORTED_REPLY_PREFIX: Final = "_R_."
#: Who asked, on a server without accounts (no identity to be had).
UNAUTHENTICATED: Final = "unauthenticated"


class UnknownRequester(Exception):
    """Who asked cannot be established: ``code`` is ``unauthenticated`` or ``not_a_party``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def crossed_import(reply: str) -> bool:
    """Whether a request came from another account (a party's), through an import: its reply subject is mapped."""
    return reply.startswith(IMPORTED_REPLY_PREFIX)


def requester(headers: Mapping[str, str] | None, reply: str, parties: Parties, whose: str = "a party's") -> Party:
    """The party whose account the server says the request came from.

    The server sets ``Nats-Request-Info`` (replacing a client's own) and maps the reply subject to a private
    ``_R_.`` subject when a request crosses an import. Inside the service account it does neither: a header there
    is whatever the client wrote, so a request whose reply was not mapped is refused even with the header. (On a
    server without accounts nobody can be authenticated: any client may set any header; see :func:`load_identity`.)
    """
    info = (headers or {}).get(REQUEST_INFO_HEADER)
    if not info or not crossed_import(reply):
        raise UnknownRequester("unauthenticated", f"no {REQUEST_INFO_HEADER} set by the server: the request did not "
                               f"come through {whose} account (connect with its own credentials)")
    try:
        account = json.loads(info).get("acc")
    except (ValueError, AttributeError):
        account = None
    if not isinstance(account, str) or not account:
        raise UnknownRequester("unauthenticated", f"{REQUEST_INFO_HEADER} names no account")
    try:
        return parties.get(account)
    except KeyError:
        raise UnknownRequester("not_a_party", f"account {account!r} is not a party of the parties file") from None


def auditor_asking(headers: Mapping[str, str] | None, reply: str, parties: Parties | None, what: str) -> str:
    """The auditor whose account asked (:func:`requester`), or :data:`UNAUTHENTICATED` on a server without
    accounts (``parties`` is ``None``: any client may set any header there, so nobody can be authenticated);
    :class:`UnknownRequester` otherwise, ``not_an_auditor`` for a party that is not one (``what`` are for
    auditors)."""
    if parties is None:
        return UNAUTHENTICATED
    party = requester(headers, reply, parties, whose="an auditor's")
    if party.role is not Role.AUDITOR:
        raise UnknownRequester("not_an_auditor", f"{party.name} is not an auditor: {what} are for auditors")
    return party.name


def load_identity(credentials: str | os.PathLike[str] | None, path: Path | None = None) -> Parties | None:
    """The parties the server runs with, to tell who asked a request; ``None`` for an open server (a service
    without credentials). Refuses to start when the service's own credentials are not from that parties file."""
    if credentials is None:
        return None
    path = path or parties_file()
    if not path.exists():
        raise PartiesError(f"parties file {path} not found: set {PARTIES_FILE_ENV} to the file the server's "
                           "accounts were generated from")
    parties = load_parties(path)
    own = load_credentials(credentials).party
    try:
        parties.get(own)
    except KeyError:
        raise PartiesError(f"{path} does not list {own} (these credentials): not the server's parties file") from None
    return parties
