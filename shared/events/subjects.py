"""NATS subject and JetStream stream names: the one place that spells them.

Intake (core NATS request-reply; the subject is the reporting party's identity, which issue 5's credentials pin)::

    reintegration.intake.<party_kind>.<party_id>        e.g. reintegration.intake.employer.0403170701

Trajectory events (JetStream stream ``TRAJECTORY``, one subject per case so that consumers can partition by case)::

    reintegration.trajectory.<case_id>.<event type>     e.g. reintegration.trajectory.1b4e....incapacity_reported
"""

from __future__ import annotations

from uuid import UUID

from .common import Party, PartyKind

PREFIX = "reintegration"
INTAKE_PREFIX = f"{PREFIX}.intake"
INTAKE_WILDCARD = f"{INTAKE_PREFIX}.*.*"
INTAKE_QUEUE = "intake"

TRAJECTORY_STREAM = "TRAJECTORY"
TRAJECTORY_PREFIX = f"{PREFIX}.trajectory"
TRAJECTORY_SUBJECTS = f"{TRAJECTORY_PREFIX}.>"

DEADLINES_STREAM = "DEADLINES"
DEADLINES_PREFIX = f"{PREFIX}.deadlines"
BENEFITS_STREAM = "BENEFITS"
BENEFITS_PREFIX = f"{PREFIX}.benefits"
TIMERS_STREAM = "TIMERS"
TIMER_SCHEDULE_PREFIX = f"{PREFIX}.timers.schedule"
TIMER_FIRED_PREFIX = f"{PREFIX}.timers.fired"
#: Employer feed: ``reintegration.employer.<enterprise number>.<deadlines|benefits>.<case_id>``
EMPLOYER_FEED_STREAM = "EMPLOYER_FEED"
EMPLOYER_FEED_PREFIX = f"{PREFIX}.employer"
DEADLINES_SUBJECTS = [f"{DEADLINES_PREFIX}.>", f"{EMPLOYER_FEED_PREFIX}.*.deadlines.>"]
BENEFITS_SUBJECTS = [f"{BENEFITS_PREFIX}.>", f"{EMPLOYER_FEED_PREFIX}.*.benefits.>"]
#: Read-only request-reply queries: ``reintegration.query.<deadlines|benefits>``
QUERY_PREFIX = f"{PREFIX}.query"

DEAD_LETTER_STREAM = "DEAD_LETTERS"
DEAD_LETTER_PREFIX = f"{PREFIX}.dead"

#: Header carrying the event's position in the event store's notification log (the relay's resume point).
POSITION_HEADER = "Reintegration-Position"
#: Header ``i/n``: the i-th of the n messages one recorded event yields.
PART_HEADER = "Reintegration-Part"


def intake_subject(party: Party) -> str:
    return f"{INTAKE_PREFIX}.{party.kind.value}.{party.id}"


def parse_intake_subject(subject: str) -> tuple[PartyKind, str]:
    """``(kind, id)`` from an intake subject; ``ValueError`` for anything else."""
    parts = subject.split(".")
    if len(parts) != 4 or f"{parts[0]}.{parts[1]}" != INTAKE_PREFIX:
        raise ValueError(f"not an intake subject: {subject!r}")
    try:
        kind = PartyKind(parts[2])
    except ValueError:
        kinds = ", ".join(k.value for k in PartyKind)
        raise ValueError(f"unknown party kind {parts[2]!r} in subject (expected one of {kinds})") from None
    return kind, parts[3]


def employer_feed_subject(enterprise_number: str, topic: str, case_id: UUID) -> str:
    return f"{EMPLOYER_FEED_PREFIX}.{enterprise_number}.{topic}.{case_id}"


def trajectory_subject(case_id: UUID, event_type: str) -> str:
    return f"{TRAJECTORY_PREFIX}.{case_id}.{event_type.split('.')[0]}"
