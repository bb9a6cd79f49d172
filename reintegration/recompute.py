"""``reintegration deadlines recompute``: every schedule brought under the rulebook and policy now deployed.

A deadline schedule is the pure function of its case's history under a rulebook and a policy; each step records
what changed. A release with a changed rulebook, or a changed roll-forward or employer policy, would leave the open
deadlines of every case as computed before until that case's next report. This command recomputes each case's
deadlines over the history its schedule applied and records the differences as one ``ScheduleRecomputed`` per
case (rulebook and policy named): the service's outbox publishes them as ``recomputed`` (``opened``,
``withdrawn``) deadline events and its timer writer re-arms or purges their timers, like any other step. Safe
beside the running service (an optimistic write per case, retried) and idempotent (a second run records nothing).
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from shared.infra.settings import Settings
from shared.infra.store import logged_events

console = Console(stderr=True)


def case_ids(settings: Settings) -> list[uuid.UUID]:
    """Every case the intake store holds, in the order they were opened."""
    from services.intake.application import build_intake

    intake = build_intake(settings)
    try:
        return [event.case_id for _position, event in logged_events(intake) if event.version == 1]
    finally:
        intake.close()


def recompute_deadlines(settings: Settings, *, cases: list[uuid.UUID] | None = None, dry_run: bool = True) -> int:
    """Recompute (or, with ``dry_run``, only count) the schedules that differ from the rules now in force; prints
    a summary and returns how many cases changed (or would).

    The policy is this process's settings (``REINTEGRATION_ROLL_FORWARD``, ``REINTEGRATION_EMPLOYER_POLICIES``):
    run it with the deployment's, or every case flips to another policy and back at its next report. So a dry run
    is the default and says which policy it used; recording needs the caller's explicit ``dry_run=False``."""
    from services.deadlines.application import build_deadlines

    app = build_deadlines(settings)
    changed_cases = 0
    changes: Counter[str] = Counter()
    try:
        ids = cases if cases is not None else case_ids(settings)
        rulebook, policy = f"{app.rulebook.country} {app.rulebook.version}", app.policy.id
        columns = (TextColumn("recomputing deadlines"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("cases", total=len(ids))
            for case_id in ids:
                made = app.recompute(case_id, datetime.now(UTC), record=not dry_run)
                if made:
                    changed_cases += 1
                    changes.update(change.change for change in made)
                progress.advance(task)
    finally:
        app.close()
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(changes.items())) or "no change"
    verb = "would change" if dry_run else "changed"
    console.print(f"{len(ids)} case(s) examined under rulebook {rulebook}, policy {policy}: {changed_cases} {verb} "
                  f"({kinds})")
    if dry_run:
        employers = "; ".join(settings.employer_policies) or "none"
        console.print(
            f"nothing recorded (a dry run). The policy comes from this shell: REINTEGRATION_ROLL_FORWARD="
            f"{'yes' if settings.roll_forward else 'no'}, REINTEGRATION_EMPLOYER_POLICIES={employers}; when they are "
            "the deployment's, run again with --yes to record the changes")
    elif changed_cases:
        console.print("recorded: the deadlines service publishes the changes and re-arms their timers")
    return changed_cases
