"""Services that derive one aggregate per case from the Case events (deadlines, benefits).

Each derived aggregate records, with every change, the Case event that caused it (``source``: the recorded event
itself, so the derived store is self-explaining and an auditor can recompute from it) and the case version it has
applied. That version is the consumer's position, per case, stored in the same transaction as the state: an event
at or below it is a redelivery (acknowledged, nothing changes); an event beyond the next one is a gap (an earlier
event of that case was not applied yet) and is handed back to be redelivered after it. A high-water mark can
therefore never pass an unapplied event.

When a case's event cannot be applied at all (it is dead-lettered), the case is *parked*: its later events are
dead-lettered behind it instead of waiting forever. A replay after the fix (``reintegration dead-letters replay``)
releases the case, re-drives its events in order and records, in this store, which dead letters it resolved, so
that none is replayed twice.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError, PersistenceError

from shared.events import reports as r
from shared.events.envelope import CaseEvent
from shared.events.ids import uuid5

from .retry import retry_on_conflict
from .store import check_cipher
from .tracing import working_on

#: A derived aggregate's state: an immutable struct with its ``id`` and ``version``.
S = TypeVar("S", bound=MutableOrImmutableAggregate[UUID])


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    GAP = "gap"
    PARKED = "parked"


class DerivedStep(msgspec.Struct, frozen=True, kw_only=True):
    """What every derived step records: the Case event applied (``source``), its store position, and the case's
    employer and worker (for the employer feed), besides the aggregate's own id, version and time."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    source: CaseEvent
    position: int
    enterprise_number: str
    insz: str


class CaseParked(msgspec.Struct, frozen=True, kw_only=True):
    """A case whose event ``case_version`` could not be applied: its later events wait in the dead-letter stream."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    case_id: UUID
    case_version: int
    reason: str
    released: bool = False

    @property
    def id(self) -> UUID:  # the parking record is its own state: eventsourcing reads its id and version
        return self.originator_id

    @property
    def version(self) -> int:
        return self.originator_version


def _project_parking(state: CaseParked | None, events: Iterable[CaseParked]) -> CaseParked | None:
    for event in events:
        state = event
    return state


def letter_key(letter_id: str | None, sequence: int) -> str:
    """What a resolution is recorded under: the letter's own id (``Reintegration-Letter-Id``), stable whatever
    happens to the DEAD_LETTERS stream; ``seq:<n>`` only for letters written before letters had ids."""
    return letter_id or f"seq:{sequence}"


class DeadLettersResolved(msgspec.Struct, frozen=True, kw_only=True):
    """Dead letters of this service that an operator resolved: ``replayed`` (their case caught up from the intake
    store) or ``discarded`` (nothing to apply). ``letters``: their keys (:func:`letter_key`); ``sequences``: where
    they were in the dead-letter stream then, for the record."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    sequences: tuple[int, ...]
    case_id: UUID | None
    how: str
    note: str
    letters: tuple[str, ...] = ()


class DeadLetterBook(msgspec.Struct, frozen=True, kw_only=True):
    """Every resolution so far, by letter key (:func:`letter_key`)."""

    id: UUID
    version: int
    resolved: dict[str, DeadLettersResolved]


def _project_book(state: DeadLetterBook | None, events: Iterable[DeadLettersResolved]) -> DeadLetterBook | None:
    for event in events:
        resolved = dict(state.resolved) if state is not None else {}
        # a resolution recorded before letters had ids names them by sequence
        keys = event.letters or tuple(letter_key(None, s) for s in event.sequences)
        resolved.update(dict.fromkeys(keys, event))
        state = DeadLetterBook(id=event.originator_id, version=event.originator_version, resolved=resolved)
    return state


class StoreRebuilt(msgspec.Struct, frozen=True, kw_only=True):
    """A derived store's generation: the first event of a store that ``rebuild`` made from the intake store's log.

    The audit's seals read it: a store of another generation than the one they sealed was rebuilt, and its hash
    chains start a new epoch (the old epoch's links are kept as history). Only a store's first event declares its
    generation (:meth:`DerivedApplication.mark_rebuilt`)."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    generation: UUID
    #: who ran the rebuild (the operator's login)
    rebuilt_by: str
    #: the intake store position the rebuild started from
    start: int


class DerivedApplication(Application[UUID], Generic[S]):
    """Base of a derived service: ``step`` builds the one event a Case event leads to; ``project`` folds them."""

    #: Names the derived aggregate; its id is ``uuid5(case_id, purpose)``.
    purpose: ClassVar[str]
    write_attempts: ClassVar[int] = 5
    #: How many cases' states a process keeps between their events (:meth:`current`); 0: read each from the store.
    state_cache: int = 1000

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # eventsourcing's aggregate cache would keep a second copy of the states :meth:`current` keeps (and of
        # every state a query or a timer read): off, the store answers those
        super().__init__({**(env or {}), "AGGREGATE_CACHE_MAXSIZE": ""})
        check_cipher(self)
        self._states: OrderedDict[UUID, S | None] = OrderedDict()
        #: derived aggregate id -> its case, for the aggregates whose states are cached
        self._case_of: dict[UUID, UUID] = {}
        #: Held from reading a case's state to recording what follows from it (a batch of Case events, a batch of
        #: fired timers, a recomputation): two threads of one process never step from the same state, so their
        #: writes never conflict (and never fall back to one event at a time); another process's still can.
        self.writing = threading.RLock()
        #: Told what each save recorded, once it is recorded (the service's metrics of deadlines and ledger entries).
        self.on_recorded: Callable[[Sequence[Any]], None] | None = None

    def derived_id(self, case_id: UUID) -> UUID:
        return uuid5(case_id, self.purpose)

    # --- to implement ---------------------------------------------------------------------------------

    def project(self, state: S | None, events: Iterable[Any]) -> S | None:
        raise NotImplementedError

    def step(self, state: S | None, event: CaseEvent, position: int, now: datetime) -> list[Any]:
        """The derived events recording ``event`` (version ``source_version(state) + 1``) and its consequences,
        saved in one transaction. An application implements this or :meth:`advance`."""
        return self.advance(state, event, position, now)[0]

    def advance(self, state: S | None, event: CaseEvent, position: int, now: datetime) -> tuple[list[Any], S | None]:
        """:meth:`step`, and the aggregate's state after it: by default :meth:`project` of the step's events of
        the aggregate itself (a step may also write another aggregate, such as a premium register)."""
        if type(self).step is DerivedApplication.step:
            raise NotImplementedError(f"{type(self).__name__} implements neither step nor advance")
        steps = self.step(state, event, position, now)
        own = self.derived_id(event.case_id)
        return steps, self.project(state, [e for e in steps if e.originator_id == own])

    def source_version(self, state: S | None) -> int:
        """The case version ``state`` has applied (its ``source_version``), 0 before any."""
        return getattr(state, "source_version", 0) if state is not None else 0

    @staticmethod
    def opening_of(state: Any, event: CaseEvent) -> r.IncapacityReported:
        """The report that opened the case: ``event``'s when it is the case's first (``state`` is None), else the
        one the state keeps (its ``opening``)."""
        opening = event.report if state is None else state.opening
        assert isinstance(opening, r.IncapacityReported), "a case starts with its incapacity"
        return opening

    def sources(self, case_id: UUID, version: int | None = None) -> list[CaseEvent]:
        """The Case events the case's aggregate applied (up to its ``version``), read from its recorded steps:
        the history a recomputation or a view needs (the state itself does not keep it)."""
        events = self.repository.event_store.get(self.derived_id(case_id), lte=version)
        return [e.source for e in events if isinstance(e, DerivedStep)]

    # --- the use case -----------------------------------------------------------------------------------

    def load(self, case_id: UUID, version: int | None = None) -> S | None:
        try:
            return self.repository.get(self.derived_id(case_id), version=version, projector_func=self.project)
        except AggregateNotFoundError:
            return None

    def current(self, case_id: UUID) -> S | None:
        """The case's state to step from: the one this process last recorded while nothing else wrote the case
        (kept for :attr:`state_cache` cases), else read from the store. A state another writer overtook (a
        recomputation, a second process) only makes the step's write conflict; the conflict drops it from the
        cache and the step is redone from the store."""
        state = self._states.get(case_id)
        if state is not None:
            self._states.move_to_end(case_id)
            return state
        return self.load(case_id)

    def _remember(self, case_id: UUID, state: S | None) -> None:
        if state is None or self.state_cache <= 0:
            return
        if case_id not in self._states:
            self._case_of[self.derived_id(case_id)] = case_id
        self._states[case_id] = state
        self._states.move_to_end(case_id)
        self._trim(self.state_cache)

    def _trim(self, keep: int) -> None:
        """Forget the least recently used states beyond ``keep``."""
        while len(self._states) > keep:
            evicted, _state = self._states.popitem(last=False)
            self._case_of.pop(self.derived_id(evicted), None)

    def _forget(self, case_id: UUID) -> None:
        if self._states.pop(case_id, None) is not None:
            self._case_of.pop(self.derived_id(case_id), None)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Save, and forget the cached state of every case whose aggregate the saved events touch (the caller
        remembers the state it just recorded): what another path writes is read from the store next time."""
        try:
            # Every object saved here is a domain event: collected as such, without eventsourcing's runtime
            # protocol check of each object (a noticeable share of a batch's cost).
            processing = ProcessingEvent[UUID]()
            processing.events.extend(obj for obj in objs if obj is not None)
            processing.saved_kwargs.update(kwargs)
            recordings = self._record(processing)
            self._take_snapshots(processing)
            self._notify(recordings)
            if self.on_recorded is not None:
                self.on_recorded(processing.events)
            return recordings
        finally:
            for obj in objs:
                case_id = self._case_of.get(getattr(obj, "originator_id", None))  # type: ignore[arg-type]
                if case_id is not None:
                    self._forget(case_id)

    def process(self, event: CaseEvent, position: int, now: datetime) -> Outcome:
        """Apply one Case event exactly once, in its case's order (:meth:`apply_batch` of one)."""
        outcome = self.apply_batch([(position, event)], now)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def apply_batch(self, chunk: Sequence[tuple[int, CaseEvent]], now: datetime | Callable[[], datetime],
                    ) -> list[Outcome | Exception]:
        """Apply a batch of Case events (positions and events, each case's in version order) in one transaction:
        each case's state is carried in memory from one of its events to the next. Per event its outcome, or the
        exception its step raised (that event is not applied, and its case's later events in the batch are gaps).

        A transaction that meets a concurrent writer (another process that stepped or recomputed a case, a
        premium register shared with another case) is redone one event at a time, each retried on conflict
        (:func:`retry_on_conflict`). A case's first event is stepped without a read (see :meth:`_step_batch`)."""
        clock = now if callable(now) else (lambda: now)
        opens = any(event.version == 1 for _position, event in chunk)
        with self.writing:
            # First without asking the store about the cases the batch opens; after a conflict, once more reading
            # every case (a first event delivered again, a rebuild run over a built store); then one at a time.
            for first_unread in (True, False) if opens else (False,):
                with self.batch_scope():
                    try:
                        outcomes, pending, states = self._step_batch(chunk, clock, first_unread=first_unread)
                        if first_unread and any(isinstance(o, Exception) for o in outcomes):
                            # A first event that cannot be stepped may be one applied long ago under other rules
                            # (a redelivery): only the store can say it is a duplicate rather than a poison.
                            continue
                        if pending:
                            self.save(*pending)
                    except IntegrityError:
                        for _position, event in chunk:
                            self._forget(event.case_id)
                        continue
                for case_id, state in states.items():
                    self._remember(case_id, state)
                return outcomes
            return [self._one(event, position, clock()) for position, event in chunk]

    def _one(self, event: CaseEvent, position: int, now: datetime) -> Outcome | Exception:
        try:
            return retry_on_conflict(lambda: self._apply(event, position, now), attempts=self.write_attempts,
                                     what=f"case {event.case_id}: recording version {event.version}")
        except PersistenceError:
            raise
        except Exception as exc:  # noqa: BLE001 - the caller decides what an unappliable event becomes
            return exc

    def _apply(self, event: CaseEvent, position: int, now: datetime) -> Outcome:
        outcomes, pending, states = self._step_batch([(position, event)], lambda: now)
        outcome = outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        try:
            if pending:
                self.save(*pending)
        except IntegrityError:
            self._forget(event.case_id)
            raise
        for case_id, state in states.items():
            self._remember(case_id, state)
        return outcome

    def _step_batch(self, chunk: Sequence[tuple[int, CaseEvent]], clock: Callable[[], datetime], *,
                    first_unread: bool = False) -> tuple[list[Outcome | Exception], list[Any], dict[UUID, S | None]]:
        """Step ``chunk`` in memory: per event its outcome (or the exception its step raised), the events to
        save, and each case's state after them.

        ``first_unread``: a case's first event is stepped without asking the store whether the case has a state
        (it has none, unless the event is delivered again, which is rare): a redelivered first event then writes
        version 1 again, the batch conflicts and :meth:`apply_batch` steps it again reading every case."""
        states: dict[UUID, S | None] = {}
        changed: dict[UUID, S | None] = {}
        pending: list[Any] = []
        outcomes: list[Outcome | Exception] = []
        for position, event in chunk:
            case_id = event.case_id
            if case_id not in states:
                new = first_unread and event.version == 1 and case_id not in self._states
                states[case_id] = None if new else self.current(case_id)
            state = states[case_id]
            seen = self.source_version(state)
            if event.version <= seen:
                outcomes.append(Outcome.DUPLICATE)
                continue
            if event.version > seen + 1 and case_id in self._states and case_id not in changed:
                # A state this process remembers may lag what another process recorded since (a replay, a
                # rebuild): only the store can say that an event is missing.
                self._forget(case_id)
                states[case_id] = state = self.load(case_id)
                seen = self.source_version(state)
                if event.version <= seen:
                    outcomes.append(Outcome.DUPLICATE)
                    continue
            if event.version != seen + 1:
                outcomes.append(Outcome.PARKED if self.parked(case_id) else Outcome.GAP)
                continue
            working_on(event)
            try:
                steps, after = self.advance(state, event, position, clock())
            except PersistenceError:
                raise
            except Exception as exc:  # noqa: BLE001 - this event is not applied; the batch goes on
                outcomes.append(exc)
                continue
            finally:
                working_on(None)
            pending.extend(steps)
            states[case_id] = changed[case_id] = after
            outcomes.append(Outcome.APPLIED)
        return outcomes, pending, changed

    # --- parking -------------------------------------------------------------------------------------------

    def _parking_id(self, case_id: UUID) -> UUID:
        return uuid.uuid5(case_id, f"{self.purpose}:parked")

    def parked(self, case_id: UUID) -> CaseParked | None:
        try:
            state = self.repository.get(self._parking_id(case_id), projector_func=_project_parking)
        except AggregateNotFoundError:
            return None
        return None if state is None or state.released else state

    def park(self, case_id: UUID, version: int, reason: str, now: datetime) -> None:
        """Park ``case_id`` at ``version`` (idempotent while it stays parked)."""
        if self.parked(case_id):
            return
        try:
            current = self.repository.get(self._parking_id(case_id), projector_func=_project_parking)
            next_version = current.originator_version + 1 if current else 1
        except AggregateNotFoundError:
            next_version = 1
        self.save(
            CaseParked(
                originator_id=self._parking_id(case_id),
                originator_version=next_version,
                timestamp=now,
                case_id=case_id,
                case_version=version,
                reason=reason[:1000],
            )
        )

    def release(self, case_id: UUID, now: datetime) -> CaseParked | None:
        """Unpark ``case_id`` (after a fix), so that its replayed events are applied again; what was parked."""
        parked = self.parked(case_id)
        if parked is None:
            return None
        self.save(msgspec.structs.replace(parked, originator_version=parked.originator_version + 1, timestamp=now,
                                          released=True))
        return parked

    # --- dead letters resolved by an operator ------------------------------------------------------------------

    def _book_id(self) -> UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"reintegration:{self.purpose}:dead-letters")

    def dead_letter_book(self) -> DeadLetterBook:
        try:
            book = self.repository.get(self._book_id(), projector_func=_project_book)
        except AggregateNotFoundError:
            book = None
        return book or DeadLetterBook(id=self._book_id(), version=0, resolved={})

    def resolve_dead_letters(self, letters: Iterable[tuple[str, int]], case_id: UUID | None, how: str, note: str,
                             now: datetime) -> DeadLettersResolved | None:
        """Record ``letters`` (each its key, :func:`letter_key`, and its sequence) as resolved (idempotent: those
        already resolved are left out). Another operator who resolved some meanwhile makes the write conflict: the
        book is read again (:func:`retry_on_conflict`)."""
        wanted = list(letters)
        return retry_on_conflict(lambda: self._resolve(wanted, case_id, how, note, now), attempts=self.write_attempts,
                                 what="recording the resolved dead letters")

    def _resolve(self, letters: list[tuple[str, int]], case_id: UUID | None, how: str, note: str,
                 now: datetime) -> DeadLettersResolved | None:
        book = self.dead_letter_book()
        new = sorted({key: seq for key, seq in letters if key not in book.resolved}.items(), key=lambda item: item[1])
        if not new:
            return None
        event = DeadLettersResolved(originator_id=self._book_id(), originator_version=book.version + 1,
                                    timestamp=now, sequences=tuple(seq for _key, seq in new), case_id=case_id,
                                    how=how, note=note[:1000], letters=tuple(key for key, _seq in new))
        self.save(event)
        return event

    # --- the store's generation ------------------------------------------------------------------------------

    def generation_id(self) -> UUID:
        """The id of the aggregate that records the store's generation (:class:`StoreRebuilt`)."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"reintegration:{self.purpose}:generation")

    def mark_rebuilt(self, rebuilt_by: str, start: int, now: datetime) -> StoreRebuilt | None:
        """Record, as the first event of an empty store, that a rebuild makes it (a new generation of the store);
        ``None`` (nothing recorded) when the store holds events already."""
        if self.recorder.max_notification_id():
            return None
        event = StoreRebuilt(originator_id=self.generation_id(), originator_version=1, timestamp=now,
                             generation=uuid.uuid4(), rebuilt_by=rebuilt_by[:200], start=start)
        self.save(event)
        return event

    def rebuild_from(
        self,
        source: Iterable[tuple[int, CaseEvent]],
        now: Callable[[], datetime],
        progress: Callable[[int, Outcome], None] | None = None,
        batch: int = 2000,
        cache: int = 50_000,
    ) -> dict[Outcome, int]:
        """Apply events read from the intake store's own log (no NATS): idempotent, resumable from anywhere.

        The events of ``batch`` positions are stepped in memory and saved in one transaction
        (:meth:`apply_batch`); an event that cannot be applied stops the rebuild with its error. The states of up
        to ``cache`` cases are kept between their events meanwhile (a log interleaves many cases)."""
        counts = dict.fromkeys(Outcome, 0)
        chunk: list[tuple[int, CaseEvent]] = []
        kept, self.state_cache = self.state_cache, max(self.state_cache, cache)
        try:
            for item in source:
                chunk.append(item)
                if len(chunk) >= batch:
                    self._rebuild_chunk(chunk, now, counts, progress)
                    chunk = []
            if chunk:
                self._rebuild_chunk(chunk, now, counts, progress)
        finally:
            self.state_cache = kept
            self._trim(kept)
        return counts

    def batch_scope(self) -> contextlib.AbstractContextManager[None]:
        """Held while a batch is stepped in memory before it is saved: an application whose steps read state
        other steps write (beyond their own aggregate) makes the batch's unsaved writes visible here."""
        return contextlib.nullcontext()

    def _rebuild_chunk(
        self,
        chunk: list[tuple[int, CaseEvent]],
        now: Callable[[], datetime],
        counts: dict[Outcome, int],
        progress: Callable[[int, Outcome], None] | None,
    ) -> None:
        outcomes = self.apply_batch(chunk, now)
        for (position, event), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, Exception):
                raise RuntimeError(f"case {event.case_id} version {event.version} (position {position}) cannot "
                                   f"be applied: {outcome!r}") from outcome
            counts[outcome] += 1
            if progress:
                progress(position, outcome)
