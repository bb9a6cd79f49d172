"""What the deadlines service shows of a case: its query answer and ``reintegration deadlines <case>``."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from shared.rulebook.calendar import belgian_date

from .schedule import DeadlineSchedule

#: What a fired timer's outcome says of a deadline still open when it fired, after the deadline's own explanation.
OUTCOME_WORDS = {
    "missed": "missed: its timer fired{on} and no report had met it",
    "expired": "expired: its timer fired{on}, the window closed unused",
    "reminded": "reminded: its timer fired{on}",
    "reached": "reached: its timer fired{on}, the earliest date has come",
}


def agreeing(row: dict[str, Any], outcome: str | None, fired_on: date | None = None) -> dict[str, str]:
    """The state a person reads for the deadline ``row`` (as builtins) and an explanation that agrees with it.

    The explanation is written when the deadline is computed ("...; open."); once its timer fired while it was open,
    the deadline is shown as the outcome (missed, expired, ...) and the explanation ends with that outcome instead.
    One met or cancelled after its timer fired is shown as such, its explanation saying what the timer recorded."""
    state, explanation = str(row["state"]), str(row["explanation"])
    on = f" on {fired_on}" if fired_on else ""
    if outcome and state == "open":
        words = OUTCOME_WORDS.get(outcome, outcome + ": its timer fired{on}").format(on=on)
        if explanation.endswith("; open."):
            return {"shown_state": outcome, "explanation": explanation.removesuffix("; open.") + f"; {words}."}
        return {"shown_state": outcome, "explanation": f"{explanation} {words[0].upper()}{words[1:]}."}
    shown = state + (" (late)" if row.get("late") else "") + (" (early)" if row.get("early") else "")
    if outcome:
        explanation += f" Its timer had fired{on} while it was open: {outcome}."
    return {"shown_state": shown, "explanation": explanation}


def schedule_view(schedule: DeadlineSchedule) -> dict[str, Any]:
    """The case's deadlines by due date, each with its explanation and, once its timer fired for the date it is due
    on now, its outcome; ``shown_state`` and ``explanation`` agree (open, missed, met (late), ...)."""
    rows = []
    for deadline in sorted(schedule.deadlines.values(), key=lambda d: (d.due_on, d.rule)):
        recorded = schedule.outcomes.get(deadline.id)
        # an outcome recorded for an earlier due date (the deadline was recomputed since) is not this one's
        fired = recorded if recorded and recorded.deadline.due_on == deadline.due_on else None
        row = {
            **msgspec.to_builtins(deadline),
            "outcome": fired.outcome if fired else None,
            "fired_at": fired.fired_at.isoformat() if fired else None,
            "timer_lag_seconds": fired.lag_seconds if fired else None,
            "timer_sequence": fired.timer_sequence if fired else None,
        }
        row.update(agreeing(row, row["outcome"], belgian_date(fired.fired_at) if fired else None))
        if recorded and not fired:
            row["explanation"] += (f" (Its timer had fired for the earlier due date {recorded.deadline.due_on}: "
                                   f"{recorded.outcome}.)")
        rows.append(row)
    return {"case_id": str(schedule.case_id), "version": schedule.version,
            "source_version": schedule.source_version, "deadlines": rows}
