"""What the deadlines service shows of a case: its query answer and ``reintegration deadlines <case>``."""

from __future__ import annotations

from typing import Any

import msgspec

from .schedule import DeadlineSchedule


def schedule_view(schedule: DeadlineSchedule) -> dict[str, Any]:
    """The case's deadlines by due date, each with its explanation and, once its timer fired, its outcome."""
    rows = []
    for deadline in sorted(schedule.deadlines.values(), key=lambda d: (d.due_on, d.rule)):
        fired = schedule.outcomes.get(deadline.id)
        rows.append({
            **msgspec.to_builtins(deadline),
            "outcome": fired.outcome if fired else None,
            "fired_at": fired.fired_at.isoformat() if fired else None,
            "timer_lag_seconds": fired.lag_seconds if fired else None,
            "timer_sequence": fired.timer_sequence if fired else None,
        })
    return {"case_id": str(schedule.case_id), "version": schedule.version,
            "source_version": schedule.source_version, "deadlines": rows}
