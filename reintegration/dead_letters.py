"""``reintegration dead-letters``: list, replay and discard dead-lettered trajectory events.

A derived service (deadlines, benefits) dead-letters a TRAJECTORY message it could not apply after
``max_deliver`` (5) deliveries: undecodable bytes, or an event its code cannot fold (a bug, a contract it does not
know yet). The message is copied unchanged to ``reintegration.dead.<service>`` in the ``DEAD_LETTERS`` stream, with
the error, the delivery count, the original subject and stream sequence in headers. Its case is *parked*: the
case's later events are dead-lettered behind it, in order, so the case never skips an event and never loops.

What "replayable after a fix" means for an operator:

1. ``reintegration dead-letters list`` shows, per service, each dead letter still to resolve: original subject,
   case, version, error, deliveries, when. The first letter of a case is the cause (``poison``); the others waited
   behind it (``behind``). Nothing else of the case is applied by that service until it is resolved; the other
   service and every other case are unaffected.
2. Fix the cause. Either the service's code (deploy the version that decodes or folds the event; restarting the
   service is enough, its durable consumer resumes), or the data (a message corrupted on its way: the intake store,
   the system of record, still holds the event as accepted).
3. ``reintegration dead-letters replay [--service S] [--case C]`` then, per case: releases the parked case, reads
   the case's events from the intake store (never from the dead letter's bytes, which may be the corrupted copy)
   and applies every version the service has not applied yet, in order, with the service's own code in this
   process, into the service's store. The running service's relay publishes what the steps derive, as for any
   step. The live consumer holds the case's newer events back (a gap) until the replay has caught up, then applies
   them. Once the case has caught up, its dead letters are recorded as resolved in the service's own store (who
   replayed what, when; under each letter's own id, which survives a DEAD_LETTERS stream that starts over), so a
   second replay finds nothing to do; the dead letters themselves stay in the stream as
   the record of the incident (``list --all`` shows them with their resolution).
4. If the fix did not work, the event fails again: the case is parked again at that version, its dead letters stay
   unresolved, and the command says which event failed and why (exit code 1).
5. A dead letter with nothing behind it to re-drive (no case in its subject, or a case the intake store does not
   hold: bytes that were never an accepted report) is resolved with ``dead-letters discard SEQ --reason TEXT``.

The replay is idempotent and safe while the services run: each step is written with optimistic concurrency on the
case's version, so the replay and the live consumer can never apply one event twice. Listing and replaying need
read access to the ``DEAD_LETTERS`` stream (stream info and message get: the ``operator`` credentials, which
``reintegration env`` names) and the stores (``REINTEGRATION_DATA_DIR`` or ``REINTEGRATION_POSTGRES_URL``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console

from services.registry import BY_NAME, DERIVED
from shared.events.dead_letters import DeadLetterRecord
from shared.events.envelope import CASE_EVENT_DECODER, CaseEvent
from shared.events.subjects import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, POSITION_HEADER, trajectory_case
from shared.infra.derived import DeadLettersResolved, DerivedApplication, Outcome, letter_key
from shared.infra.settings import Settings

from .connect import connect_once, refusal
from .errors import FIND_SETTINGS

dead_letters_app = typer.Typer(help="Dead-lettered trajectory events: list them, replay them after a fix.")
console = Console()
errors = Console(stderr=True)

#: The derived services whose consumers dead-letter (the service registry's derived ones).
SERVICES: tuple[str, ...] = DERIVED


class DeadLetterError(Exception):
    """A dead-letter command cannot go on; the message says why and what to do."""


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    #: Its sequence in the DEAD_LETTERS stream: what ``replay --seq`` and ``discard`` name.
    seq: int
    #: The consumer (service) that dead-lettered it.
    service: str
    original_subject: str
    case_id: str | None
    #: The case version, when the message could be decoded.
    version: int | None
    #: The intake store position (``Reintegration-Position``).
    position: int | None
    #: ``poison`` (it failed itself) or ``behind`` (it waited behind its case's poison message).
    kind: str
    error: str
    deliveries: int | None
    #: When it was dead-lettered (the time the DEAD_LETTERS stream stored it).
    dead_at: datetime | None
    original_stream_sequence: int | None
    #: ``None``, or how it was resolved: ``replayed ...`` / ``discarded ...``.
    resolved: str | None = None
    #: Its own id (``Reintegration-Letter-Id``): what its resolution is recorded under. None for letters written
    #: before letters had ids (recorded under their sequence).
    letter_id: str | None = None

    @property
    def key(self) -> str:
        return letter_key(self.letter_id, self.seq)


def _case_in(subject: str) -> str | None:
    case = trajectory_case(subject)
    return str(case) if case is not None else None


def parse(seq: int, subject: str, headers: dict[str, str] | None, data: bytes | None, when: datetime | None
          ) -> DeadLetter:
    """One stored dead letter, as the consumer wrote it (its record: :class:`DeadLetterRecord`)."""
    record = DeadLetterRecord.from_headers(headers)
    event: CaseEvent | None = None
    try:
        event = CASE_EVENT_DECODER.decode(data or b"")
    except Exception:  # noqa: BLE001 - undecodable dead letters are expected; they are listed as they are
        event = None
    case = record.case_id or (str(event.case_id) if event else None) or _case_in(record.original_subject)
    return DeadLetter(
        seq=seq, service=subject.removeprefix(f"{DEAD_LETTER_PREFIX}."), original_subject=record.original_subject,
        case_id=case or None, version=record.case_version or (event.version if event else None),
        position=_position(headers), kind="behind" if record.behind else "poison", error=record.error,
        deliveries=record.deliveries, dead_at=when, original_stream_sequence=record.stream_sequence,
        letter_id=record.letter_id,
    )


def _position(headers: dict[str, str] | None) -> int | None:
    """The intake store position the original message carried (``Reintegration-Position``)."""
    try:
        return int((headers or {})[POSITION_HEADER])
    except (KeyError, ValueError):
        return None


async def read_stream(settings: Settings, service: str | None = None) -> list[DeadLetter]:
    """Every message in the DEAD_LETTERS stream (of ``service``), oldest first."""
    import nats.errors
    import nats.js.errors

    nc = await connect_once(settings)  # a failure is said by the command line (reintegration.errors)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(DEAD_LETTER_STREAM)
        except nats.js.errors.NotFoundError:
            return []  # no service has started yet: nothing was ever dead-lettered
        except nats.errors.Error as exc:
            if refusal() is not None:
                raise  # said by the command line as a refused permission (reintegration.errors)
            raise DeadLetterError(f"cannot read stream {DEAD_LETTER_STREAM} ({type(exc).__name__}): these "
                                  f"credentials may not read it; the operator's can. {FIND_SETTINGS}") from exc
        out: list[DeadLetter] = []
        subject = f"{DEAD_LETTER_PREFIX}.{service}" if service else f"{DEAD_LETTER_PREFIX}.>"
        seq = info.state.first_seq
        while info.state.messages and seq <= info.state.last_seq:
            try:
                msg = await js.get_msg(DEAD_LETTER_STREAM, seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                break
            assert msg.seq is not None
            out.append(parse(msg.seq, msg.subject or "", msg.headers, msg.data, msg.time))
            seq = msg.seq + 1
        return out
    finally:
        await nc.close()


# --- the services' stores --------------------------------------------------------------------------------------


def open_service(settings: Settings, service: str) -> DerivedApplication[Any]:
    """The application of the derived service ``service`` on its store (the registry's ``application``)."""
    if service not in SERVICES:
        raise DeadLetterError(f"unknown service {service!r}: dead letters are replayed into "
                              f"{' or '.join(SERVICES)}")
    entry = BY_NAME[service]
    application: DerivedApplication[Any] = entry.load(entry.application)(settings)
    return application


def with_resolutions(settings: Settings, letters: list[DeadLetter]) -> list[DeadLetter]:
    """The letters, each with its resolution from its service's store (letters of other consumers as they are)."""
    out = []
    for service in dict.fromkeys(letter.service for letter in letters):
        mine = [letter for letter in letters if letter.service == service]
        if service not in SERVICES or not _store_exists(settings, service):
            out += mine
            continue
        app = open_service(settings, service)
        try:
            book = app.dead_letter_book().resolved
        finally:
            app.close()
        out += [msgspec.structs.replace(letter, resolved=_words(book[letter.key])) if letter.key in book else letter
                for letter in mine]
    return sorted(out, key=lambda letter: letter.seq)


def _store_exists(settings: Settings, service: str) -> bool:
    return settings.store != "sqlite" or (Path(settings.data_dir) / f"{service}.sqlite").exists()


def _words(resolution: DeadLettersResolved) -> str:
    return f"{resolution.how} {resolution.timestamp.isoformat(timespec='seconds')}: {resolution.note}"


def list_dead_letters(settings: Settings, service: str | None = None, case: str | None = None,
                      include_resolved: bool = False) -> list[DeadLetter]:
    letters = with_resolutions(settings, asyncio.run(read_stream(settings, service)))
    return [letter for letter in letters
            if (include_resolved or letter.resolved is None) and (case is None or letter.case_id == case)]


# --- replay -----------------------------------------------------------------------------------------------------


@dataclass
class CaseReplay:
    service: str
    case_id: str
    letters: list[int]
    #: ``caught up`` / ``failed`` / ``not in the intake store``
    status: str
    applied: int = 0
    already: int = 0
    version: int = 0
    error: str | None = None
    failed_version: int | None = None


@dataclass
class ReplayReport:
    cases: list[CaseReplay] = field(default_factory=list)
    #: Dead letters without a case: only ``discard`` resolves them.
    without_case: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status in ("caught up", "would replay") for c in self.cases)


def case_positions(settings: Settings, wanted: dict[uuid.UUID, int], start: int) -> dict[tuple[uuid.UUID, int], int]:
    """The intake store positions of the wanted cases' events above the given versions, read from the store's
    own log from ``start`` (the earliest dead letter's position)."""
    from services.intake.application import build_intake

    intake = build_intake(settings)
    found: dict[tuple[uuid.UUID, int], int] = {}
    try:
        position = max(1, start)
        keys = {str(case): (case, above) for case, above in wanted.items()}
        while True:
            page = intake.recorder.select_notifications(position, 2000)
            if not page:
                return found
            for n in page:
                hit = keys.get(str(n.originator_id))
                if hit is not None and n.originator_version > hit[1]:
                    found[(hit[0], n.originator_version)] = n.id
            position = page[-1].id + 1
    finally:
        intake.close()


def intake_history(settings: Settings, case_id: uuid.UUID) -> list[CaseEvent]:
    from services.intake.application import build_intake

    intake = build_intake(settings)
    try:
        return intake.case_events(case_id)
    finally:
        intake.close()


def replay(settings: Settings, *, service: str | None = None, case: str | None = None,
           seqs: Sequence[int] = (), dry_run: bool = False) -> ReplayReport:
    """Replay the unresolved dead letters (of ``service``, ``case``, or the sequences ``seqs``); see the module
    docstring for what it does and guarantees."""
    letters = list_dead_letters(settings, service, case)
    if seqs:
        known = {letter.seq: letter for letter in with_resolutions(settings, asyncio.run(read_stream(settings)))}
        missing = [s for s in seqs if s not in known]
        if missing:
            raise DeadLetterError(f"no dead letter with sequence {', '.join(map(str, missing))} in "
                                  f"{DEAD_LETTER_STREAM}")
        done = [s for s in seqs if known[s].resolved]
        if done:
            raise DeadLetterError(f"dead letter {', '.join(map(str, done))} already resolved: "
                                  f"{known[done[0]].resolved}")
        letters = [known[s] for s in seqs]
    unknown = sorted({letter.service for letter in letters} - set(SERVICES))
    if unknown:
        raise DeadLetterError(f"dead letters of consumer(s) {', '.join(unknown)}, which no service here replays "
                              f"(known: {', '.join(SERVICES)}); pick one with --service")
    report = ReplayReport(without_case=[letter.seq for letter in letters if letter.case_id is None])
    for name in dict.fromkeys(letter.service for letter in letters):
        mine = [letter for letter in letters if letter.service == name and letter.case_id is not None]
        if mine:
            report.cases += _replay_service(settings, name, mine, dry_run)
    return report


def _replay_service(settings: Settings, service: str, letters: list[DeadLetter], dry_run: bool
                    ) -> list[CaseReplay]:
    by_case: dict[uuid.UUID, list[DeadLetter]] = {}
    for letter in letters:
        by_case.setdefault(uuid.UUID(letter.case_id or ""), []).append(letter)
    app = open_service(settings, service)
    out = []
    try:
        applied_before = {case: app.source_version(app.load(case)) for case in by_case}
        start = min((letter.position for letter in letters if letter.position), default=1)
        positions = case_positions(settings, applied_before, start)
        for case, mine in by_case.items():
            out.append(_replay_case(settings, app, service, case, mine, positions, dry_run))
    finally:
        app.close()
    return out


def _replay_case(settings: Settings, app: DerivedApplication[Any], service: str, case: uuid.UUID,
                 letters: list[DeadLetter], positions: dict[tuple[uuid.UUID, int], int], dry_run: bool
                 ) -> CaseReplay:
    seqs = [letter.seq for letter in letters]
    result = CaseReplay(service=service, case_id=str(case), letters=seqs, status="caught up")
    history = intake_history(settings, case)
    if not history:
        result.status = "not in the intake store"
        result.error = (f"the intake store holds no case {case}: nothing to re-drive; if these bytes were never an "
                        f"accepted report, resolve them with `dead-letters discard {' '.join(map(str, seqs))}`")
        return result
    applied = app.source_version(app.load(case))
    todo = [event for event in history if event.version > applied]
    result.version = history[-1].version
    if dry_run:
        result.status = "would replay"
        result.applied = len(todo)
        return result
    now = datetime.now(UTC)
    app.release(case, now)
    for event in todo:
        position = positions.get((case, event.version)) or next(
            (letter.position for letter in letters if letter.version == event.version and letter.position), 0)
        try:
            outcome = app.process(event, position, datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - the fix did not cover this event: park the case again
            app.park(case, event.version, repr(exc), datetime.now(UTC))
            result.status, result.error, result.failed_version = "failed", repr(exc), event.version
            return result
        if outcome is Outcome.APPLIED:
            result.applied += 1
        elif outcome is Outcome.DUPLICATE:
            result.already += 1  # the live consumer applied it meanwhile
        else:  # a gap in the intake store itself, or parked again by the live consumer
            result.status = "failed"
            result.failed_version = event.version
            result.error = f"version {event.version} could not be applied here ({outcome.value})"
            return result
    app.resolve_dead_letters([(letter.key, letter.seq) for letter in letters], case, "replayed",
                             f"case caught up to version {history[-1].version} from the intake store "
                             f"({result.applied} applied by the replay)", datetime.now(UTC))
    return result


def discard(settings: Settings, seqs: Iterable[int], reason: str) -> list[tuple[str, list[int]]]:
    """Resolve dead letters without replaying them; per service, the sequences resolved."""
    wanted = list(dict.fromkeys(seqs))
    known = {letter.seq: letter for letter in asyncio.run(read_stream(settings))}
    missing = [s for s in wanted if s not in known]
    if missing:
        raise DeadLetterError(f"no dead letter with sequence {', '.join(map(str, missing))} in {DEAD_LETTER_STREAM}")
    out = []
    for service in dict.fromkeys(known[s].service for s in wanted):
        mine = [s for s in wanted if known[s].service == service]
        app = open_service(settings, service)
        try:
            cases = {known[s].case_id for s in mine}
            case = uuid.UUID(cases.pop()) if len(cases) == 1 and None not in cases else None
            done = app.resolve_dead_letters([(known[s].key, s) for s in mine], case, "discarded", reason,
                                            datetime.now(UTC))
        finally:
            app.close()
        out.append((service, list(done.sequences) if done else []))
    return out


# --- the commands -----------------------------------------------------------------------------------------------

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="REINTEGRATION_DATA_DIR", help="Folder for all data.")]
Service = Annotated[str | None, typer.Option(help="Only this service's dead letters (deadlines, benefits).")]
Case = Annotated[str | None, typer.Option(help="Only this case id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings(data_dir: Path) -> Settings:
    return Settings.from_env(data_dir=data_dir)


def _case(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        errors.print(f"[red]{value!r} is not a case id[/]")
        raise typer.Exit(2) from None


def _fail(exc: DeadLetterError) -> typer.Exit:
    errors.print(f"[red]{exc}[/]")
    return typer.Exit(2)


@dead_letters_app.command("list")
def list_command(
    data_dir: DataDir = Path("data"),
    service: Service = None,
    case: Case = None,
    all_: Annotated[bool, typer.Option("--all", help="Also the resolved ones, with how and when.")] = False,
    as_json: AsJson = False,
) -> None:
    """The dead letters still to resolve, per service: original subject, case, version, error, deliveries, when."""
    try:
        letters = list_dead_letters(_settings(data_dir), service, _case(case), include_resolved=all_)
    except DeadLetterError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps([msgspec.to_builtins(letter) for letter in letters], indent=2) + "\n")
        return
    if not letters:
        console.print("no dead letters" + ("" if all_ else " to resolve"))
        return
    from .tables import Column, Row, print_table

    # the sequence (what `replay --seq` and `discard` take) and the full case id (`replay --case`) as columns; the
    # subject, the error and how it was resolved below each row
    columns = [Column("seq", right=True), Column("case"), Column("version", right=True), Column("kind"),
               Column("deliveries", right=True, spill=True), Column("when", spill=True)]
    for name in dict.fromkeys(letter.service for letter in letters):
        mine = [letter for letter in letters if letter.service == name]
        rows = [Row([str(letter.seq), letter.case_id or "-", str(letter.version or "?"), letter.kind,
                     str(letter.deliveries or "?"), letter.dead_at.isoformat(timespec="seconds") if letter.dead_at
                     else "?"],
                    below=[f"subject: {letter.original_subject}", f"error: {letter.error}",
                           *([f"resolved: {letter.resolved or '-'}"] if all_ else [])]) for letter in mine]
        print_table(console, columns, rows, title=f"{name}: {len(mine)} dead letter(s)")
    console.print("after fixing the cause: `reintegration dead-letters replay` (see `--help`)")


@dead_letters_app.command("replay")
def replay_command(
    data_dir: DataDir = Path("data"),
    service: Service = None,
    case: Case = None,
    seq: Annotated[list[int] | None, typer.Option("--seq", help="Only these dead letters (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would be replayed; change nothing.")] = False,
    as_json: AsJson = False,
) -> None:
    """After a fix: release each dead letter's case and re-drive its events from the intake store, in order, into
    the service that dead-lettered it; then mark its dead letters resolved. Exit 1 if an event fails again."""
    try:
        report = replay(_settings(data_dir), service=service, case=_case(case), seqs=seq or (), dry_run=dry_run)
    except DeadLetterError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps({"cases": [c.__dict__ for c in report.cases],
                                     "without_case": report.without_case, "ok": report.ok}, indent=2) + "\n")
        raise typer.Exit(0 if report.ok else 1)
    if not report.cases and not report.without_case:
        console.print("nothing to replay: no unresolved dead letters" + (" for that selection" if
                                                                         (service or case or seq) else ""))
        return
    for c in report.cases:
        letters = ", ".join(map(str, c.letters))
        if c.status == "caught up":
            console.print(f"[green]{c.service}[/] case {c.case_id}: caught up to version {c.version} "
                          f"({c.applied} applied, {c.already} already applied); dead letter(s) {letters} resolved")
        elif c.status == "would replay":
            console.print(f"{c.service} case {c.case_id}: would release it and apply {c.applied} event(s) up to "
                          f"version {c.version}; dead letter(s) {letters}")
        elif c.status == "failed":
            console.print(f"[red]{c.service}[/] case {c.case_id}: version {c.failed_version} fails again: {c.error}; "
                          f"the case is parked again and dead letter(s) {letters} stay unresolved")
        else:
            console.print(f"[yellow]{c.service}[/] case {c.case_id}: {c.error}")
    if report.without_case:
        console.print(f"[yellow]dead letter(s) {', '.join(map(str, report.without_case))} name no case: nothing "
                      "to re-drive; resolve them with `dead-letters discard SEQ --reason ...`[/]")
    raise typer.Exit(0 if report.ok else 1)


@dead_letters_app.command("discard")
def discard_command(
    seqs: Annotated[list[int], typer.Argument(help="Dead-letter sequences (from `list`).")],
    reason: Annotated[str, typer.Option(help="Why nothing is to be replayed (recorded with the resolution).")],
    data_dir: DataDir = Path("data"),
) -> None:
    """Resolve dead letters without replaying them (bytes that were never an accepted report)."""
    try:
        done = discard(_settings(data_dir), seqs, reason)
    except DeadLetterError as exc:
        raise _fail(exc) from None
    for service, resolved in done:
        console.print(f"{service}: discarded {', '.join(map(str, resolved)) or 'nothing (already resolved)'}")
