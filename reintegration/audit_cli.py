"""``reintegration audit ...``: the auditor's commands (read-only over the stores; ``seal`` and ``checkpoint`` write
only ``<data dir>/audit.sqlite``). Mounted in :mod:`reintegration.cli` as ``app.add_typer(audit_app, name="audit")``.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.infra.settings import Settings

audit_app = typer.Typer(
    help="The auditor: history, time travel, explanations, verification, tamper evidence, dossiers, impact.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="REINTEGRATION_DATA_DIR", help="Folder for all data.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CaseArg = Annotated[str, typer.Argument(help="The case id.")]


def _auditor(data_dir: Path) -> Any:
    from services.audit import AuditError, Auditor

    try:
        return Auditor(Settings.from_env(data_dir=data_dir))
    except AuditError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


def _case(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        err.print(f"[red]{value!r} is not a case id[/]")
        raise typer.Exit(2) from None


def _json(value: Any) -> None:
    import msgspec

    sys.stdout.write(json.dumps(msgspec.to_builtins(value, str_keys=True), indent=2, ensure_ascii=False) + "\n")


def _run(data_dir: Path, work: Any) -> Any:
    """Run ``work(auditor)``, turning the auditor's refusals into a message and exit code 2."""
    from services.audit import AuditError

    _record_query(data_dir)
    auditor = _auditor(data_dir)
    try:
        return work(auditor)
    except AuditError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    finally:
        auditor.close()


def _is_uuid(value: str) -> bool:
    import uuid as _uuid

    try:
        _uuid.UUID(value)
    except ValueError:
        return False
    return True


def _record_query(data_dir: Path) -> None:
    """Every auditor query leaves a disclosure record: who (``REINTEGRATION_AUDITOR`` or the login), which command
    with which ids and dates, the legal basis, when."""
    import getpass
    import uuid as _uuid

    from typer.main import get_current_context  # typer's own click

    from services.disclosures.log import AUDIT_BASIS, build_disclosures

    ctx = get_current_context()
    words = ctx.command_path.split()
    args = words[words.index("audit"):] if "audit" in words else words[1:]
    case_id = None
    for param in ctx.command.params:  # the command as asked, from its parsed parameters (not this process's argv)
        value = ctx.params.get(param.name or "")
        if param.name in {"data_dir", "out"} or value is None or value is False:
            continue
        if case_id is None and _is_uuid(str(value)):
            case_id = _uuid.UUID(str(value))
        if param.param_type_name == "argument":
            args.append(str(value))
        else:
            args.append(param.opts[0] if value is True else f"{param.opts[0]} {value}")
    who = os.environ.get("REINTEGRATION_AUDITOR") or getpass.getuser()
    now = datetime.now(UTC)
    log = build_disclosures(Settings.from_env(data_dir=data_dir))
    try:
        log.record(kind="query", who=f"auditor:{who}", what=" ".join(args), case_id=case_id,
                   legal_basis=AUDIT_BASIS, disclosed_at=now, reference=str(_uuid.uuid4()))
    finally:
        log.close()


def parse_moment(value: str) -> datetime:
    """An ISO time (``2024-08-02T12:00:00+02:00``; UTC when it has no offset), or a date: the end of that Belgian
    day (every event received on or before it)."""
    from shared.rulebook.calendar import end_of_belgian_day

    try:
        if len(value) == 10:
            return end_of_belgian_day(date.fromisoformat(value))
        moment = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"[red]{value!r} is neither an ISO time nor a date[/]")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command()
def history(case_id: CaseArg, data_dir: DataDir = Path("data"), as_json: AsJson = False) -> None:
    """A case's full history: who reported what, when it was received, its effective date and regime."""
    rows = _run(data_dir, lambda a: a.history(_case(case_id)))
    if as_json:
        _json(rows)
        return
    print_history(rows, case_id)


def print_history(rows: Any, case_id: Any) -> None:
    from .tables import Column, Row, print_table

    columns = [Column("v", right=True), Column("effective", wrap=True), Column("report"),
               Column("regime", spill=True), Column("reported by", spill=True), Column("received (UTC)", spill=True)]
    print_table(out, columns, [
        Row([str(h.version), f"{h.effective_date} ({h.effective_field})", h.type, h.regime or "-", h.reported_by,
             h.recorded_at.isoformat(timespec="seconds")]) for h in rows], title=f"History of {case_id}")


@audit_app.command()
def asof(
    case_id: CaseArg,
    at: Annotated[str | None, typer.Option("--time", help="ISO time, or a date (end of that Belgian day).")] = None,
    version: Annotated[int | None, typer.Option("--version", help="The case as of this version.")] = None,
    data_dir: DataDir = Path("data"),
    as_json: AsJson = False,
) -> None:
    """What the system knew at a time (events recorded by then) or at a version: state, deadlines, ledger."""
    if (at is None) == (version is None):
        err.print("[red]give --time or --version[/]")
        raise typer.Exit(2)
    moment = parse_moment(at) if at else None
    view = _run(data_dir, lambda a: a.as_of(_case(case_id), time=moment, version=version))
    if as_json:
        _json(view)
        return
    print_as_of(view)


def print_as_of(view: Any) -> None:
    from .operate import print_deadlines, print_ledger

    _say(view.question, style="bold")
    _say(f"case {view.case_id}: version {view.version} of {view.latest_version}")
    if view.case:
        c = view.case
        _say(f"employer {c['enterprise_number']}, fund {c['health_fund']}, trajectories {len(c['trajectories'])}, "
             f"closed {c.get('closed_on') or '-'}", indent=2)
    print_deadlines(view.deadlines, f"Deadlines (open: {len(view.open_deadlines)})", to=out)
    events = {h.event_id: {"version": h.version, "type": h.type, "effective_date": h.effective_date}
              for h in view.events}
    print_ledger(view.ledger, "Ledger in force", events=events, to=out)
    agree = "agree" if view.recorded["agree"] else "differ"
    _say(f"recorded by the services at that version: deadlines v{view.recorded['deadlines_version']}, "
         f"ledger v{view.recorded['ledger_version']}: {agree}", style="green" if view.recorded["agree"] else "red")
    for d in view.recorded["differences"]:
        _say(f"{d['store']} {d.get('item')}: {d['message']}", indent=2, style="red")
    for note in view.notes:
        _say(note, indent=2, style="yellow")


@audit_app.command()
def applied(
    case_id: CaseArg,
    on: Annotated[str | None, typer.Option("--on", help="A date: which facts had happened / were known by then.")
                  ] = None,
    data_dir: DataDir = Path("data"),
    as_json: AsJson = False,
) -> None:
    """The law that applied: each event under the regime in force on its effective date."""
    day = None
    if on:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            err.print(f"[red]{on!r} is not a date[/]")
            raise typer.Exit(2) from None
    view = _run(data_dir, lambda a: a.applied(_case(case_id), day))
    if as_json:
        _json(view)
        return
    print_applied(view, day)


def print_applied(view: Any, day: date | None) -> None:
    from .tables import Column, Row, print_table

    _say(f"{view.question} (rulebook {view.rulebook})", style="bold")
    if day:
        _say(f"On {day} the regime in force was {view.regime_on or 'none'}.")
    columns = [Column("v", right=True), Column("effective"), Column("report"), Column("regime then", wrap=True),
               Column("recorded regime", wrap=True, spill=True),
               *([Column("happened by D", wrap=True, spill=True), Column("known by D", wrap=True, spill=True)]
                 if day else []),
               Column("regime when received", wrap=True, spill=True), Column("received (UTC)", spill=True),
               Column("reported by", spill=True)]
    rows = []
    for e in view.events:
        by_then = ["yes" if e.effective_by_then else "no", "yes" if e.known_by_then else "no"] if day else []
        rows.append(Row([str(e.version), str(e.effective_date), e.type, e.regime or "-", e.recorded_regime or "-",
                         *by_then, e.regime_when_received or "-", e.recorded_at.isoformat(timespec="seconds"),
                         e.reported_by]))
    print_table(out, columns, rows)


@audit_app.command()
def explain(case_id: CaseArg, item_id: Annotated[str, typer.Argument(help="A deadline or ledger entry id (or a "
            "prefix of at least 4 characters).")], data_dir: DataDir = Path("data"), as_json: AsJson = False) -> None:
    """One deadline or ledger entry: rule, legal basis, regime, inputs, causing events, explanation."""
    view = _run(data_dir, lambda a: a.explain(_case(case_id), item_id))
    if as_json:
        _json(view)
        return
    print_explanation(view)


def print_explanation(view: dict[str, Any]) -> None:
    if view["item"] == "deadline":  # the state shown and the explanation agree, as in `reintegration deadlines`
        from services.deadlines.views import agreeing

        fired = view["outcome"]
        shown = agreeing(view, fired and fired["outcome"],
                         date.fromisoformat(fired["fired_at"][:10]) if fired else None)
        view = {**view, "state": shown["shown_state"], "explanation": shown["explanation"]}
    for key, value in view.items():
        if key == "caused_by":
            for c in value:
                _say(f"{c['role']} by: {c['type']} (version {c['version']}, effective {c['effective_date']}, "
                     f"reported by {c['reported_by']} at {c['recorded_at']}, regime {c['regime']})", hanging=4)
        elif value not in (None, [], {}):
            _say(f"{key}: {value}", hanging=4)


def _say(text: str, *, indent: int = 0, hanging: int = 0, style: str | None = None) -> None:
    """One message wrapped to the console's width (never inside an id, a date or an amount)."""
    from .tables import print_paragraph

    print_paragraph(out, text, indent=indent, hanging=hanging, style=style)


def print_verdict(v: Any) -> None:
    colour = {"verified": "green", "behind": "yellow"}.get(v.status, "red")
    _say(f"case {v.case_id}: {v.status} ({v.intake_version} events; deadlines applied {v.deadlines_applied}, "
         f"benefits applied {v.benefits_applied})", style=colour)
    for d in v.differences:
        _say(f"{d.store} {d.item or ''}{' ' + d.rule if d.rule else ''}: {d.message}", indent=2, style="red")
    for c in v.chains:
        if c.broken:
            _say(f"broken chain ({c.store}): {c.broken.message}", indent=2, style="red")
    for note in v.notes:
        _say(note, indent=2, style="yellow")


@audit_app.command()
def verify(
    case_id: Annotated[str | None, typer.Argument(help="One case; all cases when left out.")] = None,
    data_dir: DataDir = Path("data"),
    as_json: AsJson = False,
    digest: Annotated[str | None, typer.Option("--checkpoint", help="A checkpoint digest held outside: check "
                                                  "it against the recorded ones.")] = None,
) -> None:
    """Recompute deadlines and ledgers from the recorded histories and check every hash chain; exit 1 on any
    difference, broken chain or parked case."""
    if case_id is not None:
        verdict = _run(data_dir, lambda a: a.verify(_case(case_id)))
        _json(verdict) if as_json else print_verdict(verdict)
        raise typer.Exit(1 if verdict.status in ("parked", "different", "broken") else 0)

    def everything(auditor: Any) -> Any:
        columns = (TextColumn("verifying cases"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=as_json) as progress:
            task = progress.add_task("verify", total=None)
            return auditor.verify_all(lambda done, total: progress.update(task, completed=done, total=total), digest)

    report = _run(data_dir, everything)
    if as_json:
        import msgspec

        _json({"ok": report.ok, **msgspec.to_builtins(report, str_keys=True)})
        raise typer.Exit(0 if report.ok else 1)
    for v in report.verdicts:
        if v.status in ("parked", "different", "broken"):
            print_verdict(v)
    for c in report.other_chains:
        if c.broken:
            _say(f"broken chain: {c.broken.message}", style="red")
    for d in report.other_differences:
        _say(f"{d.store} {d.item}: {d.message}", style="red")
    for e in report.epochs:  # a rebuilt derived store: its chains sealed anew, the old ones kept as history
        if e.message:
            _say(e.message, style="yellow" if e.pending else None)
        for problem in e.problems:
            _say(problem, style="red")
    table = Table("verified", "behind", "parked", "different", "broken", "cases", "seconds", title="Verification")
    c = report.counts
    table.add_row(str(c["verified"]), str(c["behind"]), str(c["parked"]), str(c["different"]), str(c["broken"]),
                  str(report.cases), f"{report.seconds:.2f}")
    out.print(table)
    cp = report.checkpoints
    if cp.latest is None:
        _say("no checkpoint recorded yet: run `reintegration audit checkpoint`", style="yellow")
    else:
        _say(f"latest checkpoint #{cp.latest.number} ({cp.latest.created_at:%Y-%m-%d %H:%M} UTC): {cp.latest.digest}")
    for message in cp.messages:
        _say(message, style="red")
    if report.counts["parked"]:
        _say(f"{report.counts['parked']} parked case(s): a service could not apply an accepted report (see "
             "`reintegration dead-letters`)", style="red")
    out.print("[green]everything verifies[/]" if report.ok else "[red]verification found problems: see above[/]")
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command()
def seal(data_dir: DataDir = Path("data"),
         full: Annotated[bool, typer.Option(help="Look at every aggregate again, not only the new events.")] = False
         ) -> None:
    """Extend every hash chain with the events stored since the last seal (into audit.sqlite); a derived store
    rebuilt since begins a new epoch of its chains."""
    report = _run(data_dir, lambda a: a.seal(full=full))
    out.print(f"seal #{report.seal_id}: {report.events} new event(s) sealed in {report.chains} chain(s)")
    _print_epochs(report)
    for anomaly in report.anomalies:  # a store left unsealed among them: named, with why (not markup)
        _say(anomaly, style="yellow")
    raise typer.Exit(1 if report.anomalies else 0)


def _print_epochs(report: Any) -> None:
    """The epochs a seal began: a derived store rebuilt since the last seal, sealed anew from its start."""
    for e in report.epochs:
        rebuilt = f"rebuilt on {e.rebuilt_at:%Y-%m-%d %H:%M} UTC by {e.rebuilt_by}" if e.rebuilt_at else "rebuilt"
        kept = (f"; epoch {e.number - 1} ({e.closed_chains} chains, {e.closed_events} events) kept as history"
                if e.number > 1 else "")
        _say(f"{e.store}: epoch {e.number} begins (the store was {rebuilt}){kept}")


@audit_app.command()
def checkpoint(data_dir: DataDir = Path("data"), as_json: AsJson = False) -> None:
    """Seal, then record and print one digest over every chain head: hand it to an outside party."""
    report, cp = _run(data_dir, lambda a: a.checkpoint())
    if as_json:
        _json({"seal": report, "checkpoint": cp})
    else:
        out.print(f"seal #{report.seal_id}: {report.events} new event(s) sealed")
        _print_epochs(report)
        for anomaly in report.anomalies:
            _say(anomaly, style="yellow")
        out.print(f"checkpoint #{cp.number} at {cp.created_at.isoformat(timespec='seconds')} over {cp.chains} chains "
                  f"({cp.events} events)")
        out.print(f"digest sha256:{cp.digest}")
        out.print(f"[dim]chained: sha256(previous {cp.previous[:16]}... || digest) = {cp.link}[/]")
    raise typer.Exit(1 if report.anomalies else 0)


@audit_app.command()
def dossier(
    case_id: CaseArg,
    out_file: Annotated[Path, typer.Option("--out", help="The file to write.")],
    as_html: Annotated[bool, typer.Option("--html", help="A readable HTML page instead of JSON.")] = False,
    data_dir: DataDir = Path("data"),
) -> None:
    """Export a case's dossier: history, deadlines and ledger with explanations, the verification result."""
    from services.audit.dossier import render_html, to_json

    doc = _run(data_dir, lambda a: a.dossier(_case(case_id)))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(render_html(doc) if as_html else to_json(doc), encoding="utf-8")
    out.print(f"wrote {out_file} ({doc['verification']['status']})")


def print_impact(report: Any) -> None:
    """The changes counted by rule, then each affected case's changes: the item's short id (what ``audit explain``
    takes), its rule whole, and what would change below it."""
    from collections import Counter

    from .operate import short_id
    from .tables import Column, Row, print_table

    if not report.affected:
        return
    counts = Counter((c.rule, c.item.replace("_", " "), c.change) for case in report.affected for c in case.changes)
    print_table(out, [Column("rule"), Column("item"), Column("change"), Column("items", right=True)],
                [Row([rule, item, change, str(n)]) for (rule, item, change), n in sorted(counts.items())],
                title="changes by rule", blank_lines=False)
    for case in report.affected:
        print_table(out, [Column("id"), Column("item"), Column("change"), Column("rule", spill=True)],
                    [Row([short_id(c.id), c.item.replace("_", " "), c.change, c.rule], below=[c.summary])
                     for c in case.changes], title=f"case {case.case_id}")


@audit_app.command()
def impact(
    draft: Annotated[Path, typer.Argument(help="The draft rulebook's main file (its -*.toml rule files beside it).")],
    data_dir: DataDir = Path("data"),
    as_json: AsJson = False,
) -> None:
    """Replay every open case under a draft rulebook: which deadlines and ledger entries would change, and how."""
    from shared.rulebook.model import Rulebook, load_rule_kinds

    load_rule_kinds()
    try:  # with the rule starts the deployment moved, as the current rulebook has them
        rulebook = Rulebook.from_path(draft).with_rule_starts(dict(Settings.from_env(data_dir=data_dir).rule_starts))
    except (OSError, ValueError) as exc:
        err.print(f"[red]{draft}: {exc}[/]")
        raise typer.Exit(2) from None
    def replay(auditor: Any) -> Any:
        columns = (TextColumn("replaying open cases"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("impact", total=None)
            return auditor.impact(rulebook, str(draft), lambda done, total: progress.update(task, completed=done,
                                                                                          total=total))

    report = _run(data_dir, replay)
    if as_json:
        _json(report)
        return
    from .tables import print_paragraph

    print_paragraph(out, f"draft {report.draft} (version {rulebook.version}) against {report.current}: "
                         f"{len(report.affected)} of {report.open_cases} open case(s) affected")
    print_impact(report)
    for message in report.unreadable:
        out.print(f"[red]{message}[/]")
