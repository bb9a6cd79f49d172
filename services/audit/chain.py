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

Epochs. A derived store (deadlines, benefits) can be dropped and rebuilt from the intake store (``rebuild
--fresh``): every event is written again, with new times, so no sealed link matches any more. A rebuild therefore
writes, as the new store's first event, a generation record (:class:`shared.infra.derived.StoreRebuilt`: a new
generation id, when, who). A seal that finds a store of another generation than the one it sealed begins a new
*epoch* of that store: it records what the previous epoch held (per chain its head and an 8-byte fingerprint of
each sealed link, and one sha256 over all of it), records the epoch (the generation, when and by whom the store
says it was rebuilt, the seal that began it; chained to the store's previous epoch) and seals the new store from
its start. The links of epoch ``n`` are recorded under the store name ``<store>@<n>`` (epoch 1 under the plain name,
so that an audit store sealed before epochs existed reads on unchanged). Verification checks the store's chains in
its current epoch, and the older epochs as history: their links against what was recorded when they closed, the
epochs' own chain, and both through the checkpoints, whose digest also covers every epoch record. The intake store
is the record itself, never rebuilt: its chains run on across every epoch of the derived stores.

A generation record is taken as a rebuild only when it is the store's first event and is no generation sealed
before: a record added to a store that still holds its events, a store without its record, or an old store put
back are reported, and the store's chains are then checked against the epoch sealed last (so its tampered events
are named as ever). A seal does not extend them: it names the store and why (a seal with anomalies), seals the
other stores, and leaves the suspect store's new events unsealed until the store sealed last is put back or the
store is rebuilt. A seal reads a store's generation again after reading its events: a store rebuilt meanwhile is
left unsealed by that seal (nothing of the new generation goes into the old epoch's chains; the next seal begins
its epoch).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent

from shared.events.envelope import event_id_for
from shared.infra.clock import system_clock

from .stores import STORES, AuditError, Generation, Stores

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
CREATE TABLE IF NOT EXISTS epochs (
    store TEXT NOT NULL, number INTEGER NOT NULL, generation TEXT, rebuilt_at TEXT, rebuilt_by TEXT,
    seal_id INTEGER NOT NULL, began_at TEXT NOT NULL, closed_chains INTEGER NOT NULL, closed_events INTEGER NOT NULL,
    closing TEXT NOT NULL, previous TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY (store, number)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS closed_chains (
    store TEXT NOT NULL, epoch INTEGER NOT NULL, originator_id TEXT NOT NULL, case_id TEXT, version INTEGER NOT NULL,
    head BLOB NOT NULL, fingerprints BLOB NOT NULL, PRIMARY KEY (store, epoch, originator_id)) WITHOUT ROWID;
"""
_APPEND_ONLY = ("seals", "links", "checkpoints", "epochs", "closed_chains")
ZERO_LINK = "0" * 64
#: How many bytes of each sealed link's fingerprint a closed epoch keeps (to name the link altered since).
FINGERPRINT = 8


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


class Epoch(msgspec.Struct, frozen=True, kw_only=True):
    """One generation of a derived store as sealed: its chains' links are recorded under :func:`label`."""

    store: str
    number: int
    #: the store's generation id (its :class:`~shared.infra.derived.StoreRebuilt` record); ``None``: a store no
    #: rebuild made
    generation: str | None
    #: when and by whom the store says it was rebuilt
    rebuilt_at: datetime | None
    rebuilt_by: str | None
    #: the seal that began the epoch, and when it ran
    seal_id: int
    began_at: datetime
    #: the previous epoch as it was when this one began: its chains, events and one sha256 over them
    closed_chains: int
    closed_events: int
    closing: str
    #: the store's previous epoch's link (zeros for its first) and this one's: sha256(previous || the fields)
    previous: str
    link: str


class SealReport(msgspec.Struct, frozen=True, kw_only=True):
    seal_id: int
    sealed_at: datetime
    chains: int
    events: int
    anomalies: list[str]
    #: the epochs this seal began (a derived store rebuilt since the last seal)
    epochs: list[Epoch] = []


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


class EpochView(msgspec.Struct, frozen=True, kw_only=True):
    """How a derived store's chains are checked now: in which epoch, and what the store's generation record says."""

    store: str
    #: the epoch the store's chains are checked in (a pending one has no links yet: every event is unsealed)
    number: int
    #: the epochs recorded so far, oldest first
    epochs: list[Epoch]
    #: the store was rebuilt since the last seal: the next seal begins epoch ``number``
    pending: bool = False
    #: the store's own generation record
    generation: str | None = None
    rebuilt_at: datetime | None = None
    rebuilt_by: str | None = None
    #: why the store's generation is not taken as a rebuild (its chains are checked in the epoch sealed last)
    problem: str | None = None

    @property
    def rebuilt(self) -> bool:
        """The store is no longer the one first sealed: a later epoch, or one about to begin."""
        return self.number > 1 and self.generation is not None and self.problem is None


def label(store: str, epoch: int) -> str:
    """What the links of ``store``'s chains in ``epoch`` are recorded under: the store's name in its first epoch,
    ``<store>@<n>`` from the second on."""
    return store if epoch <= 1 else f"{store}@{epoch}"


def unlabel(value: str) -> tuple[str, int]:
    """:func:`label` undone: (store, epoch); epoch 0 for a label :func:`label` does not give (``deadlines@x``,
    ``deadlines@``, ``deadlines@02``, ``deadlines@1``: the audit store was altered)."""
    store, at, number = value.partition("@")
    if not at:
        return store, 1
    epoch = int(number) if number.isascii() and number.isdigit() else 0
    return store, epoch if label(store, epoch) == value else 0


def _epoch_link(previous: str, e: Epoch) -> str:
    fields = [e.store, e.number, e.generation, e.rebuilt_at.isoformat() if e.rebuilt_at else None, e.rebuilt_by,
              e.seal_id, e.began_at.isoformat(), e.closed_chains, e.closed_events, e.closing]
    return hashlib.sha256(bytes.fromhex(previous) + json.dumps(fields).encode()).hexdigest()


def _fingerprints(links: Sequence[tuple[int, bytes, bytes]]) -> bytes:
    """Per sealed link (version, sha256 of the bytes, link) its first :data:`FINGERPRINT` bytes of a sha256."""
    return b"".join(hashlib.sha256(v.to_bytes(8, "big", signed=True) + d + link).digest()[:FINGERPRINT]
                    for v, d, link in links)


def _closing(rows: Iterable[tuple[str, int, bytes, bytes]]) -> str:
    """One sha256 over a closed epoch's chains: (originator id, head version, head link, fingerprints) each."""
    h = hashlib.sha256()
    for originator, version, head, fingerprints in sorted(rows):
        h.update(f"{originator} {version} {head.hex()} {hashlib.sha256(fingerprints).hexdigest()}\n".encode())
    return h.hexdigest()


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
        #: an audit store sealed before epochs existed has no epoch tables until its next seal creates them
        self.epoched = self.conn is not None and self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='epochs'").fetchone() is not None

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
        """The digest over every chain head as of ``seal_id`` (the heads of older epochs too) and every epoch begun
        by then; how many chains and events it covers."""
        heads = sorted(self.heads_as_of(seal_id))
        h = hashlib.sha256()
        for case, store, originator, version, link in heads:
            h.update(f"{case} {store} {originator} {version} {link.hex()}\n".encode())
        assert self.conn is not None
        for store, number, epoch_link in self.conn.execute(
                "SELECT store, number, link FROM epochs WHERE seal_id <= ? ORDER BY store, number", (seal_id,)
        ) if self.epoched else ():
            h.update(f"epoch {store} {number} {epoch_link}\n".encode())
        return h.hexdigest(), len(heads), sum(v for *_, v, _ in heads)

    # --- epochs of the derived stores ---------------------------------------------------------------------------

    def epochs(self, store: str) -> list[Epoch]:
        """``store``'s recorded epochs, oldest first (none: the store is in its first epoch, no rebuild sealed)."""
        if self.conn is None or not self.epoched:
            return []
        rows = self.conn.execute(
            "SELECT store, number, generation, rebuilt_at, rebuilt_by, seal_id, began_at, closed_chains, closed_events,"
            " closing, previous, link FROM epochs WHERE store=? ORDER BY number", (store,)).fetchall()
        return [Epoch(store=st, number=n, generation=g, rebuilt_at=datetime.fromisoformat(at) if at else None,
                      rebuilt_by=by, seal_id=seal, began_at=datetime.fromisoformat(began), closed_chains=cc,
                      closed_events=ce, closing=closing, previous=previous, link=link)
                for st, n, g, at, by, seal, began, cc, ce, closing, previous, link in rows]

    def closed_chains(self, store: str, epoch: int) -> dict[UUID, tuple[str | None, int, bytes, bytes]]:
        """What was recorded of ``store``'s chains in ``epoch`` when it closed: originator id -> (case id, head
        version, head link, fingerprints)."""
        if self.conn is None or not self.epoched:
            return {}
        rows = self.conn.execute("SELECT originator_id, case_id, version, head, fingerprints FROM closed_chains "
                                 "WHERE store=? AND epoch=?", (store, epoch))
        return {UUID(o): (c, v, bytes(head), bytes(f)) for o, c, v, head, f in rows}

    def epoch_links(self, store: str, epoch: int) -> dict[UUID, tuple[str | None, list[tuple[int, bytes, bytes]]]]:
        """Every sealed link of ``store``'s chains in ``epoch``: originator id -> (case id, [(version, sha256 of the
        bytes, link)] in version order)."""
        out: dict[UUID, tuple[str | None, list[tuple[int, bytes, bytes]]]] = {}
        if self.conn is None:
            return out
        for o, case, version, digest, link in self.conn.execute(
                "SELECT originator_id, case_id, version, state_digest, link FROM links WHERE store=? "
                "ORDER BY originator_id, version", (label(store, epoch),)):
            entry = out.setdefault(UUID(o), (case, []))
            entry[1].append((version, bytes(digest), bytes(link)))
        return out

    def links_of(self, value: str) -> bool:
        """Whether any link is recorded under the label ``value``."""
        return self.conn is not None and self.conn.execute(
            "SELECT 1 FROM links WHERE store=? LIMIT 1", (value,)).fetchone() is not None

    def labels(self) -> list[str]:
        """Every label links are recorded under (each distinct one found by one index seek)."""
        found: list[str] = []
        value = ""
        while self.conn is not None and (row := self.conn.execute(
                "SELECT store FROM links WHERE store > ? ORDER BY store LIMIT 1", (value,)).fetchone()):
            value = row[0]
            found.append(value)
        return found

    def labelled_epochs(self, store: str) -> list[tuple[int, str]]:
        """The epochs of ``store`` that links are recorded for, with their labels (epoch 0: a label :func:`label`
        does not give)."""
        return sorted((number, value) for value in self.labels() for name, number in [unlabel(value)]
                      if name == store)


# --- epochs ----------------------------------------------------------------------------------------------------

#: The stores a rebuild can make again (the intake store is the record: never rebuilt, never in a new epoch).
DERIVED = ("deadlines", "benefits")


def _on(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "an unknown date"


def epoch_view(stores: Stores, audit: AuditStore, store: str, gen: Generation | None = None) -> EpochView:
    """Which epoch ``store``'s chains are checked (and sealed) in, from the epochs recorded and the generation the
    store declares (``gen``: read when not given): the same one, a rebuilt store not sealed yet (``pending``), or a
    ``problem``."""
    epochs = audit.epochs(store)
    current = epochs[-1] if epochs else None
    number = current.number if current else 1
    sealed = current.generation if current else None
    gen = gen if gen is not None else stores.generation(store)
    record = gen.record
    declared = gen.id
    view = EpochView(store=store, number=number, epochs=epochs, generation=declared,
                     rebuilt_at=record.timestamp if record else None, rebuilt_by=record.rebuilt_by if record else None)
    if gen.absent or (declared == sealed and gen.error is None):
        return view  # an absent store: its sealed chains are missing, as ever
    if gen.error is not None:
        problem = f"its generation record cannot be read ({gen.error})"
    elif declared is None:
        problem = (f"it holds no generation record, but epoch {number} sealed the store rebuilt on "
                   f"{_on(current.rebuilt_at if current else None)} (generation {sealed}): the record was deleted "
                   "or the store replaced")
    elif older := next((e for e in epochs if e.generation == declared), None):
        problem = (f"it is the store sealed in epoch {older.number} (generation {declared}), replaced in epoch "
                   f"{number}: an old store was put back")
    elif not gen.first:
        problem = (f"it declares a rebuild on {_on(record.timestamp if record else None)} (generation {declared}) "
                   "but does not start with that record, as a rebuilt store does: not taken as a new epoch")
    else:
        begun = current is not None or audit.links_of(label(store, number))
        return msgspec.structs.replace(view, number=number + 1 if begun else number, pending=True)
    return msgspec.structs.replace(view, problem=f"the {store} store: {problem}")


def epoch_views(stores: Stores, audit: AuditStore,
                generations: dict[str, Generation] | None = None) -> dict[str, EpochView]:
    return {store: epoch_view(stores, audit, store, (generations or {}).get(store)) for store in DERIVED}


def _begin_epoch(audit: AuditStore, view: EpochView, seal_id: int, now: datetime) -> Epoch:
    """Close ``view.store``'s epoch sealed so far (what its chains hold, recorded once) and record the next one."""
    assert audit.conn is not None
    if audit.links_of(label(view.store, view.number)) or audit.closed_chains(view.store, view.number - 1):
        raise AuditError(f"{view.store}: epoch {view.number} has links or epoch {view.number - 1} was closed, but "
                         f"no record of epoch {view.number} is left: the audit store was altered (`audit verify`)")
    closing_rows = []
    events = 0
    if view.number > 1:
        closed = view.number - 1
        for originator, (case, links) in audit.epoch_links(view.store, closed).items():
            version, _digest, head = links[-1]
            fingerprints = _fingerprints(links)
            audit.conn.execute("INSERT INTO closed_chains VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (view.store, closed, str(originator), case, version, head, fingerprints))
            closing_rows.append((str(originator), version, head, fingerprints))
            events += len(links)
    previous = view.epochs[-1].link if view.epochs else ZERO_LINK
    epoch = Epoch(store=view.store, number=view.number, generation=view.generation, rebuilt_at=view.rebuilt_at,
                  rebuilt_by=view.rebuilt_by, seal_id=seal_id, began_at=now, closed_chains=len(closing_rows),
                  closed_events=events, closing=_closing(closing_rows), previous=previous, link="")
    epoch = msgspec.structs.replace(epoch, link=_epoch_link(previous, epoch))
    audit.conn.execute(
        "INSERT INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (epoch.store, epoch.number, epoch.generation, epoch.rebuilt_at.isoformat() if epoch.rebuilt_at else None,
         epoch.rebuilt_by, seal_id, now.isoformat(), epoch.closed_chains, epoch.closed_events, epoch.closing,
         epoch.previous, epoch.link))
    return epoch


def check_epochs(audit: AuditStore, view: EpochView) -> list[str]:
    """What is wrong with ``view.store``'s recorded epochs: their own chain, and each closed epoch's sealed links
    against what was recorded of them when it closed (naming the chain and version altered since)."""
    out: list[str] = []
    store = view.store
    previous = ZERO_LINK
    for index, epoch in enumerate(view.epochs):
        expected = view.epochs[0].number + index
        if epoch.number != expected or epoch.previous != previous or epoch.link != _epoch_link(previous, epoch):
            out.append(f"{store} epoch {epoch.number}: its record does not follow the epoch before it (the audit "
                       "store was altered)")
        previous = epoch.link
    current = view.epochs[-1].number if view.epochs else 1
    for number, value in audit.labelled_epochs(store):
        if number < 1:
            out.append(f"{store}: links are recorded under the label {value!r}, which names no epoch (the audit "
                       "store was altered)")
        elif number > current:
            out.append(f"{store}: links are recorded for an epoch {number} that no epoch record began (the audit "
                       "store was altered)")
    for epoch in view.epochs:
        if epoch.number > 1:
            out += _check_closed(audit, store, epoch)
    return out


def _check_closed(audit: AuditStore, store: str, began: Epoch) -> list[str]:
    """The epoch that ``began`` closed: its links against what was recorded of them then."""
    number = began.number - 1
    recorded = audit.closed_chains(store, number)
    name = f"{store} epoch {number}"
    out = []
    if _closing((str(o), v, head, f) for o, (_c, v, head, f) in recorded.items()) != began.closing or (
            len(recorded), sum(len(f) // FINGERPRINT for _c, _v, _h, f in recorded.values())
    ) != (began.closed_chains, began.closed_events):
        out.append(f"{name}: what was recorded of its chains when epoch {began.number} began no longer gives the "
                   f"digest {began.closing} (the audit store was altered)")
    sealed = audit.epoch_links(store, number)
    for originator in sorted(set(recorded) | set(sealed), key=str):
        case, links = sealed.get(originator, (None, []))
        kept = recorded.get(originator)
        case = case or (kept[0] if kept else None)
        where = f"{name}, case {case}" if case else f"{name}, aggregate {originator}"
        if kept is None:
            out.append(f"{where}: sealed links that epoch {began.number} did not record when it began (added "
                       "since: the audit store was altered)")
            continue
        _case, version, head, fingerprints = kept
        mine = _fingerprints(links)
        for index in range(max(len(mine), len(fingerprints)) // FINGERPRINT):
            a, b = mine[index * FINGERPRINT:(index + 1) * FINGERPRINT], \
                fingerprints[index * FINGERPRINT:(index + 1) * FINGERPRINT]
            if a != b:  # a sealed chain runs from version 1 without a gap: the index names the version
                what = "is gone" if not a else "was added" if not b else "differs from the one recorded"
                out.append(f"{where}, version {index + 1}: the sealed link {what} when epoch {began.number} began "
                           "(the audit store was altered)")
                break
        else:
            if links and (links[-1][0], links[-1][2]) != (version, head):
                out.append(f"{where}, version {version}: the head is not the one recorded when epoch "
                           f"{began.number} began (the audit store was altered)")
    return out


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
    after it was sealed stays detectable however often one seals. A derived store whose generation is not taken as
    a rebuild (:attr:`EpochView.problem`), or that was rebuilt while this seal read it, is not sealed: an anomaly
    says which and why, and the other stores are sealed.
    """
    assert audit.conn is not None, "seal needs the audit store opened writable"
    now = now or system_clock()
    conn = audit.conn
    anomalies: list[str] = []
    chains = events = 0
    began: list[Epoch] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        seal_id = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM seals").fetchone()[0]) + 1
        # what each derived store declares now: read again after its events, to find it rebuilt meanwhile
        generations = {store: stores.generation(store) for store in DERIVED}
        views = epoch_views(stores, audit, generations)
        for view in views.values():
            if view.problem:
                anomalies.append(
                    f"{view.problem}; its new events are not sealed (its chains stay as sealed in epoch "
                    f"{view.number}): put back the store sealed last, or rebuild it (`reintegration {view.store} "
                    "rebuild --fresh`)")
        sealing = [store for store in STORES if store not in views or not views[store].problem]
        labels = {"intake": "intake", **{store: label(store, view.number) for store, view in views.items()}}
        touched: dict[str, dict[UUID, None]] = {}
        last: dict[str, int] = {}
        for store in sealing:
            row = conn.execute("SELECT notification_id FROM positions WHERE store=?", (labels[store],)).fetchone()
            start = 1 if full or row is None else row[0] + 1
            touched[store] = {}
            last[store] = start - 1
            for n in stores.notifications(store, start):
                touched[store].setdefault(_originator(n.originator_id), None)
                last[store] = n.id
        case_of = _case_of(stores, audit, touched["intake"])
        for store in sealing:
            conn.execute("SAVEPOINT store_seal")  # one store's epoch and links: undone if it was rebuilt meanwhile
            pending = views[store] if store in views and views[store].pending else None
            epoch = _begin_epoch(audit, pending, seal_id, now) if pending is not None else None
            store_events = store_chains = 0
            store_anomalies = []
            for originator in touched[store]:
                head_version, prev = audit.head(labels[store], originator)
                case_id = case_of[store].get(originator)
                expected = head_version + 1
                extended = False
                for stored in stores.raw(store, originator, gt=head_version):
                    if stored.originator_version != expected:
                        store_anomalies.append(f"{store} {originator}: version {expected} is missing before "
                                               f"{stored.originator_version}; not sealed past {expected - 1}")
                        break
                    link = chain_link(prev, originator, expected, stored.topic, stored.state)
                    conn.execute(
                        "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (labels[store], str(originator), expected, str(case_id) if case_id else None,
                         hashlib.sha256(stored.state).digest(), link, seal_id),
                    )
                    prev, expected, extended = link, expected + 1, True
                    store_events += 1
                store_chains += extended
            conn.execute("INSERT INTO positions VALUES (?, ?) ON CONFLICT(store) DO UPDATE SET "
                         "notification_id = MAX(notification_id, excluded.notification_id)",
                         (labels[store], last[store]))
            if store in generations and stores.generation(store) != generations[store]:
                # rebuilt since its generation was read: what was read may be of either generation
                conn.execute("ROLLBACK TO store_seal")
                conn.execute("RELEASE store_seal")
                anomalies.append(f"the {store} store was rebuilt while sealing; seal again")
                continue
            conn.execute("RELEASE store_seal")
            events += store_events
            chains += store_chains
            anomalies += store_anomalies
            if epoch is not None:
                began.append(epoch)
            if progress:
                progress(store, events)
        conn.execute("INSERT INTO seals VALUES (?, ?, ?, ?)", (seal_id, now.isoformat(), events, chains))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SealReport(seal_id=seal_id, sealed_at=now, chains=chains, events=events, anomalies=anomalies,
                      epochs=began)


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
    audit: AuditStore, store: str, originator_id: UUID, stored: Sequence[StoredEvent], case_id: UUID | None,
    epoch: int = 1,
) -> ChainStatus:
    """Recompute one chain from its stored events and compare it with the links sealed in ``epoch`` of the
    store; the first break."""
    sealed = audit.links(label(store, epoch), originator_id)
    by_version = {s.originator_version: s for s in stored}
    stored_version = max(by_version, default=0)
    sealed_version = sealed[-1][0] if sealed else 0
    versions_of = {digest: v for v, digest, _ in sealed}
    case = str(case_id) if case_id else None

    def brk(version: int, kind: str, message: str) -> ChainStatus:
        event_id = str(event_id_for(case_id, version)) if store == "intake" and case_id else None
        where = f"case {case_id}" if case_id else f"{store} aggregate {originator_id}"
        what = f"event {event_id} (version {version})" if event_id else f"{store} event version {version}"
        if epoch > 1:
            what += f" of epoch {epoch}"
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
