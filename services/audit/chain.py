"""Tamper evidence: a hash chain over every aggregate's stored events, sealed links and checkpoints.

The chain. For each aggregate (a case in the intake store; a case's schedule or ledger, a premium register or a
parking record in a derived store) the stored events, in version order, form a chain over the bytes exactly as the
recorder returns them (``StoredEvent.state``: the encrypted bytes when a cipher is on, so sealing needs no key)::

    link_0 = 32 zero bytes
    link_v = sha256(link_{v-1} || originator_id (16 bytes) || version (8 bytes, big-endian)
                    || len(topic) (4 bytes) || topic (UTF-8) || len(state) (8 bytes) || state)

The lengths make the encoding unambiguous (no two different events give the same input).

Where the links live. ``audit seal`` records every new link, with the sha256 of the event's bytes, in the auditor's
own SQLite file ``<data dir>/audit.sqlite``, never in the stores it protects: whoever can rewrite a store's rows
(a service, a DBA of the events database) cannot rewrite the links in the same transaction, and the file can live
on another volume or belong to another OS user. The links are append-only (triggers refuse updates and deletes;
that only stops mistakes). ``audit checkpoint`` seals, then records and prints one sha256 over every chain's head
(lines ``<case id> <store> <originator id> <version> <head>``, sorted), itself chained to the previous checkpoint.
That digest is handed to an outside party (printed, mailed, time-stamped): it is the anchor. Rewriting the data
*and* the links consistently changes a head, hence the digest, which no longer matches the one held outside.

Verification recomputes every chain from the stores and compares it with the sealed links version by version. The
first link that differs names the aggregate, the version and (for a case) the event id, and says why: the bytes
changed, the bytes are those sealed for another version (events swapped or moved), or the event is gone. Events
after the last seal are "unsealed" (not an error: seal often, e.g. from cron after every relay batch); a tampering
before the first seal of an event cannot be seen by a chain, only by the recomputation in :mod:`.verify`.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent

from shared.events.envelope import event_id_for
from shared.infra.clock import system_clock

from .stores import STORES, Stores

GENESIS = bytes(32)
AUDIT_FILE = "audit.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seals (
    id INTEGER PRIMARY KEY, sealed_at TEXT NOT NULL, events INTEGER NOT NULL, chains INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    store TEXT NOT NULL, originator_id TEXT NOT NULL, version INTEGER NOT NULL, case_id TEXT,
    state_digest BLOB NOT NULL, link BLOB NOT NULL, seal_id INTEGER NOT NULL,
    PRIMARY KEY (store, originator_id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (store TEXT PRIMARY KEY, notification_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, seal_id INTEGER NOT NULL, chains INTEGER NOT NULL,
    events INTEGER NOT NULL, digest TEXT NOT NULL, previous TEXT NOT NULL, link TEXT NOT NULL);
"""
_APPEND_ONLY = ("seals", "links", "checkpoints")


def chain_link(prev: bytes, originator_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """The link of one stored event, given the link before it."""
    topic_bytes = topic.encode()
    h = hashlib.sha256(prev)
    h.update(originator_id.bytes)
    h.update(version.to_bytes(8, "big", signed=True))
    h.update(len(topic_bytes).to_bytes(4, "big"))
    h.update(topic_bytes)
    h.update(len(state).to_bytes(8, "big"))
    h.update(state)
    return h.digest()


class ChainBreak(msgspec.Struct, frozen=True, kw_only=True):
    """The first link of a chain that no longer matches what was sealed."""

    store: str
    originator_id: str
    case_id: str | None
    version: int
    #: the intake event's id (for a case's own chain)
    event_id: str | None
    #: changed (other bytes), moved (the bytes sealed for another version), missing (deleted), audit (the audit
    #: store's own links are inconsistent)
    kind: str
    message: str


class ChainStatus(msgspec.Struct, frozen=True, kw_only=True):
    store: str
    originator_id: str
    case_id: str | None
    sealed_version: int
    stored_version: int
    #: stored events after the last sealed one (recorded since the last seal)
    unsealed: int
    broken: ChainBreak | None = None


class SealReport(msgspec.Struct, frozen=True, kw_only=True):
    seal_id: int
    sealed_at: datetime
    chains: int
    events: int
    anomalies: list[str]


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    created_at: datetime
    seal_id: int
    chains: int
    events: int
    #: sha256 over every chain head as of ``seal_id``: the value to hand to an outside party
    digest: str
    previous: str
    #: sha256(previous link || digest): the checkpoints' own chain
    link: str


class CheckpointCheck(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    latest: Checkpoint | None
    messages: list[str]


def _originator(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


class AuditStore:
    """The auditor's own SQLite file: sealed links, seal runs, store positions and checkpoints."""

    def __init__(self, data_dir: Path, *, writable: bool) -> None:
        self.path = Path(data_dir) / AUDIT_FILE
        self.conn: sqlite3.Connection | None = None
        self.writable = writable
        if writable:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.executescript(_SCHEMA)
            for table in _APPEND_ONLY:
                for op in ("UPDATE", "DELETE"):
                    self.conn.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
        elif self.path.exists():
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)

    @property
    def sealed(self) -> bool:
        return self.conn is not None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # --- reading ----------------------------------------------------------------------------------------------

    def head(self, store: str, originator_id: UUID) -> tuple[int, bytes]:
        assert self.conn is not None
        row = self.conn.execute(
            "SELECT version, link FROM links WHERE store=? AND originator_id=? ORDER BY version DESC LIMIT 1",
            (store, str(originator_id)),
        ).fetchone()
        return (row[0], bytes(row[1])) if row else (0, GENESIS)

    def links(self, store: str, originator_id: UUID) -> list[tuple[int, bytes, bytes]]:
        """(version, sha256 of the bytes, link) of every sealed event of one chain, in version order."""
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT version, state_digest, link FROM links WHERE store=? AND originator_id=? ORDER BY version",
            (store, str(originator_id)),
        ).fetchall()
        return [(v, bytes(d), bytes(link)) for v, d, link in rows]

    def chains(self) -> list[tuple[str, UUID, str | None]]:
        """Every sealed chain: (store, originator id, case id)."""
        if self.conn is None:
            return []
        rows = self.conn.execute("SELECT store, originator_id, MIN(case_id) FROM links GROUP BY store, originator_id")
        return [(store, UUID(o), case) for store, o, case in rows]

    def heads_as_of(self, seal_id: int) -> list[tuple[str, str, str, int, bytes]]:
        assert self.conn is not None
        rows = self.conn.execute(
            "SELECT l.case_id, l.store, l.originator_id, l.version, l.link FROM links l JOIN ("
            " SELECT store, originator_id, MAX(version) AS v FROM links WHERE seal_id <= ?"
            " GROUP BY store, originator_id"
            ") h ON l.store = h.store AND l.originator_id = h.originator_id AND l.version = h.v",
            (seal_id,),
        ).fetchall()
        return [(c or o, s, o, v, bytes(link)) for c, s, o, v, link in rows]

    def checkpoints(self) -> list[Checkpoint]:
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT id, created_at, seal_id, chains, events, digest, previous, link FROM checkpoints ORDER BY id"
        ).fetchall()
        return [
            Checkpoint(number=n, created_at=datetime.fromisoformat(at), seal_id=s, chains=c, events=e, digest=d,
                       previous=p, link=link)
            for n, at, s, c, e, d, p, link in rows
        ]

    def digest_as_of(self, seal_id: int) -> tuple[str, int, int]:
        """The digest over every chain head as of ``seal_id``; how many chains and events it covers."""
        heads = sorted(self.heads_as_of(seal_id))
        h = hashlib.sha256()
        for case, store, originator, version, link in heads:
            h.update(f"{case} {store} {originator} {version} {link.hex()}\n".encode())
        return h.hexdigest(), len(heads), sum(v for *_, v, _ in heads)


# --- sealing ---------------------------------------------------------------------------------------------------


def _case_of(stores: Stores, audit: AuditStore, new_cases: Iterable[UUID]) -> dict[str, dict[UUID, UUID]]:
    """derived aggregate id -> case id, for every case sealed or about to be."""
    cases = set(new_cases)
    if audit.conn is not None:
        cases.update(UUID(o) for (o,) in audit.conn.execute(
            "SELECT DISTINCT originator_id FROM links WHERE store='intake'"))
    out: dict[str, dict[UUID, UUID]] = {"intake": {c: c for c in cases}}
    for store in ("deadlines", "benefits"):
        app = stores.derived(store)
        out[store] = {app.derived_id(c): c for c in cases} if app is not None else {}
    return out


def seal(stores: Stores, audit: AuditStore, *, full: bool = False, now: datetime | None = None,
         progress: Callable[[str, int], None] | None = None) -> SealReport:
    """Extend every chain with the events stored since the last seal (``full``: look at every aggregate again).

    Sealed links are never rewritten: a chain is extended from its last sealed link, so an event tampered with
    after it was sealed stays detectable however often one seals.
    """
    assert audit.conn is not None, "seal needs the audit store opened writable"
    now = now or system_clock()
    conn = audit.conn
    anomalies: list[str] = []
    chains = events = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        seal_id = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM seals").fetchone()[0]) + 1
        touched: dict[str, dict[UUID, None]] = {}
        last: dict[str, int] = {}
        for store in STORES:
            row = conn.execute("SELECT notification_id FROM positions WHERE store=?", (store,)).fetchone()
            start = 1 if full or row is None else row[0] + 1
            touched[store] = {}
            last[store] = start - 1
            for n in stores.notifications(store, start):
                touched[store].setdefault(_originator(n.originator_id), None)
                last[store] = n.id
        case_of = _case_of(stores, audit, touched["intake"])
        for store in STORES:
            for originator in touched[store]:
                head_version, prev = audit.head(store, originator)
                case_id = case_of[store].get(originator)
                expected = head_version + 1
                extended = False
                for stored in stores.raw(store, originator, gt=head_version):
                    if stored.originator_version != expected:
                        anomalies.append(f"{store} {originator}: version {expected} is missing before "
                                         f"{stored.originator_version}; not sealed past {expected - 1}")
                        break
                    link = chain_link(prev, originator, expected, stored.topic, stored.state)
                    conn.execute(
                        "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (store, str(originator), expected, str(case_id) if case_id else None,
                         hashlib.sha256(stored.state).digest(), link, seal_id),
                    )
                    prev, expected, extended = link, expected + 1, True
                    events += 1
                chains += extended
            conn.execute("INSERT INTO positions VALUES (?, ?) ON CONFLICT(store) DO UPDATE SET "
                         "notification_id = MAX(notification_id, excluded.notification_id)", (store, last[store]))
            if progress:
                progress(store, events)
        conn.execute("INSERT INTO seals VALUES (?, ?, ?, ?)", (seal_id, now.isoformat(), events, chains))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SealReport(seal_id=seal_id, sealed_at=now, chains=chains, events=events, anomalies=anomalies)


def checkpoint(stores: Stores, audit: AuditStore, *, now: datetime | None = None) -> tuple[SealReport, Checkpoint]:
    """Seal, then record one digest over every chain head (chained to the previous checkpoint)."""
    now = now or system_clock()
    report = seal(stores, audit, now=now)
    assert audit.conn is not None
    digest, chains, events = audit.digest_as_of(report.seal_id)
    previous = audit.checkpoints()[-1].link if audit.checkpoints() else "0" * 64
    link = hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(digest)).hexdigest()
    number = len(audit.checkpoints()) + 1
    audit.conn.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (number, now.isoformat(), report.seal_id, chains, events, digest, previous, link))
    return report, Checkpoint(number=number, created_at=now, seal_id=report.seal_id, chains=chains, events=events,
                              digest=digest, previous=previous, link=link)


# --- verifying -------------------------------------------------------------------------------------------------


def check_chain(
    audit: AuditStore, store: str, originator_id: UUID, stored: Sequence[StoredEvent], case_id: UUID | None
) -> ChainStatus:
    """Recompute one chain from its stored events and compare it with the sealed links; the first break."""
    sealed = audit.links(store, originator_id)
    by_version = {s.originator_version: s for s in stored}
    stored_version = max(by_version, default=0)
    sealed_version = sealed[-1][0] if sealed else 0
    versions_of = {digest: v for v, digest, _ in sealed}
    case = str(case_id) if case_id else None

    def brk(version: int, kind: str, message: str) -> ChainStatus:
        event_id = str(event_id_for(case_id, version)) if store == "intake" and case_id else None
        where = f"case {case_id}" if case_id else f"{store} aggregate {originator_id}"
        what = f"event {event_id} (version {version})" if event_id else f"{store} event version {version}"
        return ChainStatus(
            store=store, originator_id=str(originator_id), case_id=case, sealed_version=sealed_version,
            stored_version=stored_version, unsealed=0,
            broken=ChainBreak(store=store, originator_id=str(originator_id), case_id=case, version=version,
                              event_id=event_id, kind=kind, message=f"{where}, {what}: {message}"),
        )

    prev = GENESIS
    for expected, (version, digest, link) in enumerate(sealed, start=1):
        if version != expected:
            return brk(expected, "audit", f"the audit store holds no link for version {expected} (it was altered)")
        row = by_version.get(version)
        if row is None:
            now_at = next((v for v, s in by_version.items() if hashlib.sha256(s.state).digest() == digest), None)
            moved = f"; its bytes are now stored as version {now_at}" if now_at else ""
            return brk(version, "missing", f"sealed but no longer stored (deleted){moved}")
        if chain_link(prev, originator_id, version, row.topic, row.state) != link:
            actual = hashlib.sha256(row.state).digest()
            if actual == digest:
                return brk(version, "changed", f"same bytes as sealed, but topic {row.topic!r} differs")
            if actual in versions_of:
                return brk(version, "moved", f"the stored version {version} holds the bytes sealed for version "
                                             f"{versions_of[actual]} (events swapped or reordered)")
            return brk(version, "changed", "the stored bytes differ from those sealed")
        prev = link
    unsealed = sum(1 for v in by_version if v > sealed_version)
    return ChainStatus(store=store, originator_id=str(originator_id), case_id=case, sealed_version=sealed_version,
                       stored_version=stored_version, unsealed=unsealed)


def check_checkpoints(audit: AuditStore, outside: str | None = None) -> CheckpointCheck:
    """The checkpoints' own chain; the latest digest recomputed from the sealed links; an outside digest found."""
    checkpoints = audit.checkpoints()
    messages: list[str] = []
    previous = "0" * 64
    for cp in checkpoints:
        expected = hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(cp.digest)).hexdigest()
        if cp.previous != previous or cp.link != expected:
            messages.append(f"checkpoint #{cp.number}: its link does not follow checkpoint #{cp.number - 1} "
                            "(the audit store was altered)")
        previous = cp.link
    to_check = [checkpoints[-1]] if checkpoints else []
    if outside is not None:
        wanted = outside.lower().removeprefix("sha256:")
        match = [cp for cp in checkpoints if wanted in (cp.digest, cp.link)]
        if not match:
            messages.append(f"the digest {outside} matches no recorded checkpoint")
        to_check.extend(cp for cp in match if cp not in to_check)
    for cp in to_check:
        digest, _, _ = audit.digest_as_of(cp.seal_id)
        if digest != cp.digest:
            messages.append(f"checkpoint #{cp.number}: the sealed heads now give {digest}, not the recorded "
                            f"{cp.digest} (sealed links were altered)")
    return CheckpointCheck(ok=not messages, latest=checkpoints[-1] if checkpoints else None, messages=messages)
