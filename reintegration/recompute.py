"""``reintegration deadlines|benefits recompute``: every schedule or ledger brought under the rules now deployed.

A deadline schedule is the pure function of its case's history under a rulebook and a policy; each step records
what changed. A release with a changed rulebook, or a changed roll-forward or employer policy, would leave the open
deadlines of every case as computed before until that case's next report. This command recomputes each case's
deadlines over the history its schedule applied and records the differences as one ``ScheduleRecomputed`` per
case (rulebook and policy named): the service's outbox publishes them as ``recomputed`` (``opened``,
``withdrawn``) deadline events and its timer writer re-arms or purges their timers, like any other step. Safe
beside the running service (an optimistic write per case, retried) and idempotent (a second run records nothing).
Ledgers likewise: one ``LedgerRecomputed`` per case (new entries and reversals, never edits, with the premium
register's change in the same transaction), published like any ledger step.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.benefits.application import BenefitsApplication
from services.deadlines.application import DeadlinesApplication
from services.deadlines.schedule import DeadlineChange
from shared.infra.settings import Settings
from shared.infra.store import logged_events
from shared.rulebook.benefits import LedgerEntry

console = Console(stderr=True)


def case_ids(settings: Settings) -> list[uuid.UUID]:
    """Every case the intake store holds, in the order they were opened."""
    from services.intake.application import build_intake

    intake = build_intake(settings)
    try:
        return [event.case_id for _position, event in logged_events(intake) if event.version == 1]
    finally:
        intake.close()


def recompute(settings: Settings, service: str, *, cases: list[uuid.UUID] | None = None, dry_run: bool = True) -> int:
    """Recompute (or, with ``dry_run``, only count) the schedules (``deadlines``) or ledgers (``benefits``) that
    differ from the rules now in force; prints a summary and returns how many cases changed (or would).

    The policy and options are this process's settings (``REINTEGRATION_ROLL_FORWARD``,
    ``REINTEGRATION_EMPLOYER_POLICIES``, ``REINTEGRATION_ENABLED_ANNOUNCED``, ``REINTEGRATION_RULE_STARTS``): run it
    with the deployment's, or every case flips to other settings and back at its next report. So a dry run is the
    default and says which settings it used; recording needs the caller's explicit ``dry_run=False``."""
    app = _open(settings, service)
    changed_cases = 0
    changes: Counter[str] = Counter()
    try:
        ids = cases if cases is not None else case_ids(settings)
        rulebook = app.rulebook.label
        columns = (TextColumn(f"recomputing {service}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("cases", total=len(ids))
            for case_id in ids:
                made = _kinds(app.recompute(case_id, datetime.now(UTC), record=not dry_run))
                if made:
                    changed_cases += 1
                    changes.update(made)
                progress.advance(task)
    finally:
        app.close()
    kinds = ", ".join(f"{count} {name}" for name, count in sorted(changes.items())) or "no change"
    verb = "would change" if dry_run else "changed"
    console.print(f"{service}: {len(ids)} case(s) examined under rulebook {rulebook}, {_under(app)}: "
                  f"{changed_cases} {verb} ({kinds})")
    if dry_run:
        shell = (f"REINTEGRATION_ROLL_FORWARD={'yes' if settings.roll_forward else 'no'}, "
                 f"REINTEGRATION_EMPLOYER_POLICIES={'; '.join(settings.employer_policies) or 'none'}"
                 if service == "deadlines" else
                 f"REINTEGRATION_ENABLED_ANNOUNCED={','.join(settings.enabled_announced) or 'none'}")
        starts = ",".join(f"{rule_id}={day.isoformat()}" for rule_id, day in settings.rule_starts) or "none"
        shell += f", REINTEGRATION_RULE_STARTS={starts}"
        console.print(f"nothing recorded (a dry run). The settings come from this shell: {shell}; when they are "
                      "the deployment's, run again with --yes to record the changes")
    elif changed_cases:
        console.print(f"recorded: the {service} service publishes the changes"
                      + (" and re-arms their timers" if service == "deadlines" else ""))
    return changed_cases


def _open(settings: Settings, service: str) -> DeadlinesApplication | BenefitsApplication:
    from services.benefits.application import build_benefits
    from services.deadlines.application import build_deadlines

    return build_deadlines(settings) if service == "deadlines" else build_benefits(settings)


def _kinds(made: Sequence[DeadlineChange] | Sequence[LedgerEntry]) -> list[str]:
    """What each change is: a deadline's change (``recomputed``, ``opened``, ...) or a ledger entry's kind."""
    return [str(change.change) if isinstance(change, DeadlineChange) else str(change.kind) for change in made]


def _under(app: DeadlinesApplication | BenefitsApplication) -> str:
    """The settings the recomputation ran under: the deadline policy, or the announced rules enabled."""
    if isinstance(app, DeadlinesApplication):
        return f"policy {app.policy.id}"
    return f"announced rules enabled: {', '.join(sorted(app.options.enabled_announced)) or 'none'}"
