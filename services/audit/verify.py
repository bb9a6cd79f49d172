"""Recompute every case from its recorded history and compare with what the services recorded.

For each case: the intake store's events (readable, versions 1..n, each in its own row) are the history. Each
derived store's steps embed the Case events they applied; those must be the same events, in the same order (a
derived store that saw another history is a difference). Over the prefix a service has applied, the deadlines must
equal ``compute_deadlines`` and the effective ledger must equal ``compute_ledger`` (with the service's policy and
options, and the premium flag the service recorded, itself checked against the premium register). A service that
has applied fewer events than intake holds is *behind*, which is no difference. Every chain of the case is also
checked against the sealed links (:mod:`.chain`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from services.benefits.ledger import LedgerRecomputed, LedgerStep, PremiumGranted, project_ledger, project_premium
from services.deadlines.schedule import ScheduleStep, TimerFired, project_schedule
from shared.events import reports as r
from shared.events.envelope import CASE_NAMESPACE, CaseEvent
from shared.events.ids import uuid5
from shared.rulebook.benefits import LedgerEntry, natural_id
from shared.rulebook.calendar import belgian_date
from shared.rulebook.deadlines import OUTCOME_BY_KIND, Deadline

from .chain import (
    AuditStore,
    ChainStatus,
    CheckpointCheck,
    EpochView,
    check_chain,
    check_checkpoints,
    check_epochs,
    epoch_views,
    unlabel,
)
from .rules import Rules
from .stores import STORES, AuditError, Stores

VERIFIED, BEHIND, PARKED, DIFFERENT, BROKEN = "verified", "behind", "parked", "different", "broken"


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    #: intake, deadlines or benefits
    store: str
    #: the deadline or ledger entry id, or ``version 3`` / ``step 4``
    item: str | None = None
    rule: str | None = None
    field: str | None = None
    recorded: Any = None
    recomputed: Any = None
    message: str


class CaseVerdict(msgspec.Struct, frozen=True, kw_only=True):
    case_id: str
    #: verified, behind (a service has not applied every event yet), parked (a service could not apply one of
    #: its events: it waits for an operator, and an accepted report that cannot be applied is a defect),
    #: different, broken (a chain)
    status: str
    #: the highest version the intake store holds for the case
    intake_version: int
    deadlines_applied: int
    benefits_applied: int
    differences: list[Difference]
    chains: list[ChainStatus]
    notes: list[str]


class EpochCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A derived store's sealing epochs (:mod:`.chain`): the one its chains are checked in, its rebuild, and what
    is wrong with its epochs."""

    store: str
    #: the epoch the store's chains are checked in
    epoch: int
    #: the store was rebuilt after it was first sealed (``pending``: since the last seal, which the next one seals)
    rebuilt: bool
    pending: bool
    rebuilt_at: datetime | None
    rebuilt_by: str | None
    #: what to say of it (empty when the store is in its first epoch and nothing is wrong)
    message: str
    #: a generation that is no rebuild, epoch records or closed epochs' links altered
    problems: list[str]


class AuditReport(msgspec.Struct, frozen=True, kw_only=True):
    cases: int
    counts: dict[str, int]
    verdicts: list[CaseVerdict]
    #: chains that belong to no case (premium registers, parking records, generation records, orphans)
    other_chains: list[ChainStatus]
    other_differences: list[Difference]
    checkpoints: CheckpointCheck
    #: the derived stores' epochs (a rebuild begins one)
    epochs: list[EpochCheck]
    seconds: float

    @property
    def ok(self) -> bool:
        return (self.counts[DIFFERENT] == 0 and self.counts[BROKEN] == 0 and self.counts[PARKED] == 0
                and not self.other_differences
                and all(c.broken is None for c in self.other_chains) and self.checkpoints.ok
                and not any(e.problems for e in self.epochs))


def plain(value: Any) -> Any:
    """JSON types only (what a JSON file holds): dates, ids and decimals as strings, tuples as lists."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Where two JSON-like values differ (dotted paths, first few)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _paths(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b, strict=False)) for p in _paths(x, y, f"{prefix}[{i}]")]
    return [] if a == b else [prefix or "(value)"]


def _field_diffs(store: str, item: str, rule: str | None, recorded: Any, computed: Any,
                 skip: tuple[str, ...] = ()) -> list[Difference]:
    out = []
    for name in recorded.__struct_fields__:
        if name in skip:
            continue
        a, b = getattr(recorded, name), getattr(computed, name)
        if a != b:
            out.append(Difference(store=store, item=item, rule=rule, field=name, recorded=plain(a),
                                  recomputed=plain(b), message=f"{name}: recorded {plain(a)}, recomputed {plain(b)}"))
    return out


def compare_deadlines(recorded: dict[UUID, Deadline], computed: Sequence[Deadline]) -> list[Difference]:
    out: list[Difference] = []
    wanted = {d.id: d for d in computed}
    for deadline_id, mine in recorded.items():
        theirs = wanted.get(deadline_id)
        if theirs is None:
            out.append(Difference(store="deadlines", item=str(deadline_id), rule=mine.rule, recorded=plain(mine),
                                  message=f"deadline {mine.rule} due {mine.due_on} is recorded but not recomputed"))
        else:
            out += _field_diffs("deadlines", str(deadline_id), mine.rule, mine, theirs)
    for deadline_id, theirs in wanted.items():
        if deadline_id not in recorded:
            out.append(Difference(store="deadlines", item=str(deadline_id), rule=theirs.rule, recomputed=plain(theirs),
                                  message=f"deadline {theirs.rule} due {theirs.due_on} is recomputed but not recorded"))
    return out


def _entry_words(e: LedgerEntry) -> str:
    figure = f"{e.amount} EUR" if e.amount is not None else f"{e.percentage} % of {e.base}" if e.percentage else ""
    return f"{e.kind} {e.rule} from {e.period_start} {figure}".rstrip()


def compare_ledger(recorded_effective: Sequence[LedgerEntry], computed: Sequence[LedgerEntry]) -> list[Difference]:
    """Recorded entries in force against the computed ones, matched by id (a reinstated entry by its origin)."""
    by_id = {c.id: c for c in computed}
    alias: dict[UUID, UUID] | None = None  # a reinstated entry's id -> its origin's, built when first needed
    out: list[Difference] = []
    matched: set[UUID] = set()
    loose: list[LedgerEntry] = []
    for entry in recorded_effective:
        cid = entry.id if entry.id in by_id else None
        if cid is None:
            if alias is None:
                alias = {uuid5(c.id, f"reinstated:{n}"): c.id for c in computed for n in range(1, 9)}
            cid = alias.get(entry.id)
        if cid is None and natural_id(entry) in by_id:
            cid = natural_id(entry)
        if cid is None or cid in matched:
            loose.append(entry)
            continue
        matched.add(cid)
        out += _field_diffs("benefits", str(entry.id), entry.rule, entry, by_id[cid], skip=("id",))
    missing = [c for c in computed if c.id not in matched]
    for entry in loose:
        twin = next((c for c in missing if (c.rule, c.kind, c.period_start) == (entry.rule, entry.kind,
                                                                                  entry.period_start)), None)
        if twin is not None:
            missing.remove(twin)
            out += _field_diffs("benefits", str(entry.id), entry.rule, entry, twin, skip=("id",))
            continue
        out.append(Difference(store="benefits", item=str(entry.id), rule=entry.rule, recorded=plain(entry),
                              message=f"ledger entry {_entry_words(entry)} is in force but not recomputed"))
    for entry in missing:
        out.append(Difference(store="benefits", item=str(entry.id), rule=entry.rule, recomputed=plain(entry),
                              message=f"ledger entry {_entry_words(entry)} is recomputed but not in force"))
    return out


def check_intake(case_id: UUID, rows: Sequence[Any]) -> tuple[list[CaseEvent], list[Difference]]:
    """The readable history, and what is wrong with the stored rows (undecodable, misplaced, missing)."""
    out: list[Difference] = []
    history: list[CaseEvent] = []
    for expected, row in enumerate(rows, start=1):
        version = row.stored.originator_version
        item = f"version {version}"
        if row.error is not None:
            out.append(Difference(store="intake", item=item, message=f"stored event cannot be read: {row.error}"))
        elif version != expected:
            out.append(Difference(store="intake", item=item, message=f"version {expected} is missing"))
        elif not isinstance(row.event, CaseEvent) or row.event.case_id != case_id or row.event.version != version:
            got = getattr(row.event, "version", "?")
            out.append(Difference(store="intake", item=item, field="version", recorded=version, recomputed=got,
                                  message=f"the row of version {version} holds the event of version {got}"))
        if out:
            break
        history.append(row.event)
    if history and not isinstance(history[0].report, r.IncapacityReported):
        out.append(Difference(store="intake", item="version 1", message="the case does not start with its incapacity"))
    return history, out


def check_steps(store: str, events: Sequence[Any], history: Sequence[CaseEvent], complete: bool = True
                ) -> tuple[int, list[Difference]]:
    """The derived aggregate's versions are contiguous and its embedded sources are the intake history."""
    out: list[Difference] = []
    for expected, event in enumerate(events, start=1):
        if event.originator_version != expected:
            out.append(Difference(
                store=store, item=f"step {expected}",
                message=f"{store} version {expected} is missing (next is {event.originator_version})"))
            break
    sources = [e.source for e in events if isinstance(e, (ScheduleStep, LedgerStep))]
    for index, source in enumerate(sources):
        if index >= len(history):
            if not complete:
                break  # the intake history is unreadable from here: nothing to compare with
            out.append(Difference(store=store, item=f"version {source.version}",
                                  message=f"{store} applied event version {source.version}, which the intake store "
                                          "does not hold"))
            break
        if source != history[index]:
            where = _paths(plain(source), plain(history[index]))
            out.append(Difference(store=store, item=f"version {index + 1}", field=", ".join(where[:5]),
                                  recorded=[plain(_at(source, p)) for p in where[:5]],
                                  recomputed=[plain(_at(history[index], p)) for p in where[:5]],
                                  message=f"{store} applied another event {index + 1} than the intake store holds "
                                          f"({', '.join(where[:5])})"))
            break
    return len(sources), out


def _at(value: Any, path: str) -> Any:
    current = plain(value)
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            index = int(part[1:-1])
            current = current[index] if isinstance(current, list) and index < len(current) else None
        else:
            current = current.get(part) if isinstance(current, dict) else None
    return current


def check_outcomes(outcomes: dict[UUID, TimerFired], computed: Sequence[Deadline]) -> list[Difference]:
    ids = {d.id for d in computed}
    out = []
    for deadline_id, fired in outcomes.items():
        d = fired.deadline
        expected = OUTCOME_BY_KIND.get(d.deadline_kind, "missed")
        if fired.outcome != expected:
            out.append(Difference(
                store="deadlines", item=str(deadline_id), rule=d.rule, field="outcome", recorded=fired.outcome,
                recomputed=expected,
                message=f"a {d.deadline_kind} deadline's timer records {fired.outcome}, not {expected}"))
        if belgian_date(fired.fired_at) <= d.due_on:
            out.append(Difference(store="deadlines", item=str(deadline_id), rule=d.rule, field="fired_at",
                                  recorded=fired.fired_at.isoformat(), recomputed=f"after {d.due_on}",
                                  message=f"the timer's outcome is recorded before the deadline passed ({d.due_on})"))
        if deadline_id not in ids:
            out.append(Difference(store="deadlines", item=str(deadline_id), rule=d.rule,
                                  message="a timer outcome is recorded for a deadline the history does not hold"))
    return out


def premium_register(stores: Stores, history: Sequence[CaseEvent]) -> PremiumGranted | None:
    opening = history[0].report
    assert isinstance(opening, r.IncapacityReported)
    if stores.benefits is None:
        return None
    register_id = uuid5(CASE_NAMESPACE, f"premium:{opening.insz}:{opening.enterprise_number}")
    events = [row.event for row in stores.rows("benefits", register_id) if row.error is None]
    return project_premium(None, events)


def _check_schedule(events: Sequence[Any], prefix: Sequence[CaseEvent], rules: Rules) -> list[Difference]:
    """The recorded schedule against the deadlines recomputed over the events it applied, and its timers."""
    schedule = project_schedule(None, events)
    assert schedule is not None, "a schedule with steps"
    computed = rules.deadlines(prefix)
    return [*compare_deadlines(schedule.deadlines, computed), *check_outcomes(schedule.outcomes, computed)]


def _check_ledger(stores: Stores, rules: Rules, case_id: UUID, events: Sequence[Any], history: Sequence[CaseEvent],
                  prefix: Sequence[CaseEvent]) -> list[Difference]:
    """The recorded ledger against the one recomputed over the events it applied, with the premium flag it
    recorded, itself checked against the premium register."""
    recorded_events = [e for e in events if isinstance(e, LedgerStep | LedgerRecomputed)]
    steps = [e for e in recorded_events if isinstance(e, LedgerStep)]
    ledger = project_ledger(None, recorded_events)
    assert ledger is not None, "a ledger with steps"
    prior = recorded_events[-1].prior_premium
    register = premium_register(stores, history) if prior else None
    out = []
    if prior and (register is None or register.case_id == case_id):
        out.append(Difference(store="benefits", item=f"step {len(steps)}", field="prior_premium", recorded=True,
                              recomputed=False, message="the ledger says another case got the premium; the register "
                                                        "names no other case"))
    return out + compare_ledger(ledger.effective, rules.ledger(prefix, prior_premium=prior))


def _check_derived(stores: Stores, rules: Rules, store: str, case_id: UUID, history: Sequence[CaseEvent],
                   readable: bool) -> tuple[list[Any], int, list[Difference]]:
    """One derived store's rows of the case, how many events it applied and its differences (none is looked for
    beyond an unreadable step, a broken sequence or an unreadable history)."""
    app = stores.derived(store)
    if app is None:
        return [], 0, []
    derived_rows = stores.rows(store, app.derived_id(case_id))
    stored = [row.stored for row in derived_rows]
    broken = next((row for row in derived_rows if row.error is not None), None)
    if broken is not None:
        return stored, 0, [Difference(store=store, item=f"step {broken.stored.originator_version}",
                                      message=f"stored step cannot be read: {broken.error}")]
    events = [row.event for row in derived_rows]
    applied, diffs = check_steps(store, events, history, complete=readable)
    if diffs or not readable or not events:
        return stored, applied, diffs
    prefix = history[:applied]
    if store == "deadlines":
        return stored, applied, _check_schedule(events, prefix, rules)
    return stored, applied, _check_ledger(stores, rules, case_id, events, history, prefix)


def _status(chains: Sequence[ChainStatus], diffs: Sequence[Difference], applied: dict[str, int],
            history: Sequence[CaseEvent], parked: bool = False) -> str:
    if any(c.broken for c in chains):
        return BROKEN
    if diffs:
        return DIFFERENT
    if parked:
        return PARKED
    if any(n < len(history) for n in applied.values()):
        return BEHIND
    return VERIFIED


def verify_case(stores: Stores, audit: AuditStore, rules: Rules, case_id: UUID,
                views: dict[str, EpochView] | None = None) -> CaseVerdict:
    """One case recomputed and its chains checked (in each derived store's current epoch: ``views``, read when
    not given)."""
    views = views if views is not None else epoch_views(stores, audit)
    rows = stores.rows("intake", case_id)
    stored = {"intake": [row.stored for row in rows]}
    history, diffs = check_intake(case_id, rows)
    if not rows:
        sealed = bool(audit.links("intake", case_id))
        if not sealed and not _derived_rows(stores, case_id):
            raise AuditError(f"no case {case_id} in the intake store (nor in any seal or derived store)")
        diffs.append(Difference(store="intake", message="the case is sealed but no longer in the intake store"
                                if sealed else "the case is not in the intake store, but a derived store recorded "
                                "steps of it"))
    notes: list[str] = []
    applied = {"deadlines": 0, "benefits": 0}
    readable = not diffs
    parked = False
    for store in ("deadlines", "benefits"):
        if stores.derived(store) is None:
            continue
        stored[store], applied[store], store_diffs = _check_derived(stores, rules, store, case_id, history, readable)
        diffs += store_diffs
        if (parking := stores.parked(store, case_id)) is not None:
            parked = True
            notes.append(f"{store} parked the case at version {parking.case_version} on "
                         f"{parking.timestamp.date().isoformat()}: {parking.reason}")
    chains = case_chains(stores, audit, case_id, stored, views)
    notes += [epoch_sentence(view) for view in views.values()
              if (view.rebuilt or view.problem) and stores.derived(view.store) is not None]
    for store, n in applied.items():
        if readable and n < len(history):
            notes.append(f"{store} has applied {n} of {len(history)} events")
    unsealed = sum(c.unsealed for c in chains)
    if audit.sealed and unsealed:
        notes.append(f"{unsealed} event(s) recorded since the last seal")
    stored_version = max((row.stored.originator_version for row in rows), default=0)
    return CaseVerdict(case_id=str(case_id), status=_status(chains, diffs, applied, history, parked),
                       intake_version=stored_version, deadlines_applied=applied["deadlines"],
                       benefits_applied=applied["benefits"], differences=diffs, chains=chains, notes=notes)


def _derived_rows(stores: Stores, case_id: UUID) -> bool:
    """Whether a derived store holds any step of the case."""
    return any(stores.raw(store, app.derived_id(case_id))
               for store in ("deadlines", "benefits") if (app := stores.derived(store)) is not None)


def case_chains(stores: Stores, audit: AuditStore, case_id: UUID, stored: dict[str, list[Any]] | None = None,
                views: dict[str, EpochView] | None = None) -> list[ChainStatus]:
    """The case's chains in each store (``stored``: the rows already read, by store), each derived store's in the
    epoch ``views`` (or :func:`.chain.epoch_views`) names."""
    views = views if views is not None else epoch_views(stores, audit)
    out = []
    for store in STORES:
        if store == "intake":
            originator = case_id
        elif (app := stores.derived(store)) is not None:
            originator = app.derived_id(case_id)
        else:
            continue
        rows = (stored or {}).get(store)
        out.append(check_chain(audit, store, originator, rows if rows is not None else stores.raw(store, originator),
                               case_id, views[store].number if store in views else 1))
    return out


def epoch_sentence(view: EpochView) -> str:
    """What to say of a derived store's epochs: rebuilt on a day (sealed since, or not yet), or why its generation
    is not taken as a rebuild."""
    if view.problem:
        return f"{view.problem} (its chains are checked in epoch {view.number})"
    if not view.rebuilt:
        return ""
    on = f"{view.rebuilt_at:%Y-%m-%d}" if view.rebuilt_at else "an unknown date"
    who = f" by {view.rebuilt_by}" if view.rebuilt_by else ""
    kept = ", ".join(f"epoch {n}" for n in range(1, view.number))
    if view.pending:
        return (f"{view.store} rebuilt on {on}{who}, not sealed since: `reintegration audit seal` begins epoch "
                f"{view.number} ({kept} kept as history)")
    began = view.epochs[-1]
    return (f"{view.store} rebuilt on {on}{who}: its chains are sealed in epoch {view.number} since seal "
            f"#{began.seal_id} ({kept} kept as history)")


def verify_all(stores: Stores, audit: AuditStore, rules: Rules, progress: Callable[[int, int], None] | None = None,
               outside_digest: str | None = None) -> AuditReport:
    started = time.perf_counter()
    cases = stores.case_ids()
    known = set(cases)
    sealed = audit.chains()
    cases += [o for store, o, _ in sealed if store == "intake" and o not in known]  # deleted from intake entirely
    views = epoch_views(stores, audit)
    verdicts = []
    for done, case_id in enumerate(cases, start=1):
        verdicts.append(verify_case(stores, audit, rules, case_id, views))
        if progress:
            progress(done, len(cases))
    case_ids = set(cases)
    derived = {store: {app.derived_id(c) for c in case_ids}
               for store in ("deadlines", "benefits") if (app := stores.derived(store)) is not None}
    other_chains = []
    strays: dict[str, None] = {}
    for value, originator, _case in sealed:
        store, epoch = unlabel(value)  # epoch 0: an altered label, named by check_epochs
        if store not in STORES or (store == "intake" and value != "intake"):
            strays.setdefault(value, None)
        # an older epoch's chains are history (checked by check_epochs), not the store's
        elif (store != "intake" and epoch == views[store].number
              and originator not in derived.get(store, set())):
            other_chains.append(check_chain(audit, store, originator, stores.raw(store, originator), None, epoch))
    other_differences = [Difference(store=unlabel(value)[0], item=f"label {value!r}",
                                    message="links are recorded under a label that names no store's chains (the "
                                            "audit store was altered)") for value in strays]
    other_differences += orphans(stores, derived)
    counts = dict.fromkeys((VERIFIED, BEHIND, PARKED, DIFFERENT, BROKEN), 0)
    for verdict in verdicts:
        counts[verdict.status] += 1
    epochs = [EpochCheck(store=v.store, epoch=v.number, rebuilt=v.rebuilt, pending=v.pending, rebuilt_at=v.rebuilt_at,
                         rebuilt_by=v.rebuilt_by, message="" if v.problem else epoch_sentence(v),
                         problems=([v.problem] if v.problem else []) + check_epochs(audit, v))
              for v in views.values()]
    return AuditReport(cases=len(cases), counts=counts, verdicts=verdicts, other_chains=other_chains,
                       other_differences=other_differences, checkpoints=check_checkpoints(audit, outside_digest),
                       epochs=epochs, seconds=round(time.perf_counter() - started, 3))


def orphans(stores: Stores, derived: dict[str, set[UUID]]) -> list[Difference]:
    """Derived aggregates (schedules, ledgers) of cases the intake store does not hold."""
    from eventsourcing.utils import get_topic

    topics = {"deadlines": get_topic(ScheduleStep), "benefits": get_topic(LedgerStep)}
    out = []
    for store, ids in derived.items():
        seen: set[str] = set()
        for n in stores.notifications(store):
            originator = str(n.originator_id)
            if n.topic == topics[store] and originator not in seen and UUID(originator) not in ids:
                seen.add(originator)
                out.append(Difference(store=store, item=originator,
                                      message=f"{store} aggregate {originator} belongs to no case of the intake store"))
    return out

