"""NATS subject and JetStream stream names: the one place that spells them.

Intake (core NATS request-reply; the subject is the reporting party's identity, which issue 5's credentials pin)::

    reintegration.intake.<party_kind>.<party_id>        e.g. reintegration.intake.employer.0403170701

Trajectory events (JetStream stream ``TRAJECTORY``, one subject per case so that consumers can partition by case)::

    reintegration.trajectory.<case_id>.<event type>     e.g. reintegration.trajectory.1b4e....incapacity_reported

The relay publishes on that subject; the stream stores it with a fifth token, the case's partition (one of
:data:`PARTITIONS`, a hash of the case id: :data:`TRAJECTORY_TRANSFORM`)::

    reintegration.trajectory.<case_id>.<event type>.<partition>

so that the replicas of a derived service share the cases, each consuming its own partitions
(:func:`partition_filters`), every case always in one replica and in order. Messages stored before the transform
(four tokens) are consumed by replica 0.
"""

from __future__ import annotations

from uuid import UUID

from nats.js import api

from .common import Party, PartyKind

PREFIX = "reintegration"
INTAKE_PREFIX = f"{PREFIX}.intake"
INTAKE_WILDCARD = f"{INTAKE_PREFIX}.*.*"
INTAKE_QUEUE = "intake"

TRAJECTORY_STREAM = "TRAJECTORY"
TRAJECTORY_PREFIX = f"{PREFIX}.trajectory"
TRAJECTORY_SUBJECTS = f"{TRAJECTORY_PREFIX}.>"
#: The number of partitions of the TRAJECTORY stream: fixed, as it decides where every stored case lives. Up to
#: this many replicas of a derived service share the work.
PARTITIONS = 8
#: The stream's subject transform: the published subject plus the case's partition (a hash of the case id).
TRAJECTORY_TRANSFORM = api.SubjectTransform(
    src=f"{TRAJECTORY_PREFIX}.*.*",
    dest=f"{TRAJECTORY_PREFIX}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{partition({PARTITIONS},1)}}}}",
)

DEADLINES_STREAM = "DEADLINES"
DEADLINES_PREFIX = f"{PREFIX}.deadlines"
BENEFITS_STREAM = "BENEFITS"
BENEFITS_PREFIX = f"{PREFIX}.benefits"
TIMERS_STREAM = "TIMERS"
TIMER_SCHEDULE_PREFIX = f"{PREFIX}.timers.schedule"
TIMER_FIRED_PREFIX = f"{PREFIX}.timers.fired"
#: Employer feed: ``reintegration.employer.<enterprise number>.<deadlines|benefits>.<case_id>``
EMPLOYER_FEED_PREFIX = f"{PREFIX}.employer"
DEADLINES_SUBJECTS = [f"{DEADLINES_PREFIX}.>", f"{EMPLOYER_FEED_PREFIX}.*.deadlines.>",
                      f"{EMPLOYER_FEED_PREFIX}.*.trajectory.>"]
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


def query_subject(service: str) -> str:
    """The read-only query subject of a derived service: ``reintegration.query.<service>``."""
    return f"{QUERY_PREFIX}.{service}"


def employer_feed_subject(enterprise_number: str, topic: str, case_id: UUID) -> str:
    return f"{EMPLOYER_FEED_PREFIX}.{enterprise_number}.{topic}.{case_id}"


def trajectory_subject(case_id: UUID, event_type: str) -> str:
    return f"{TRAJECTORY_PREFIX}.{case_id}.{event_type.split('.')[0]}"


def trajectory_case(subject: str) -> UUID | None:
    """The case id of a TRAJECTORY subject, as published (4 tokens) or as stored (5, with the partition)."""
    parts = subject.split(".")
    if len(parts) not in (4, 5) or f"{parts[0]}.{parts[1]}" != TRAJECTORY_PREFIX:
        return None
    try:
        return UUID(parts[2])
    except ValueError:
        return None


def trajectory_partition(subject: str) -> int | None:
    """The partition token of a stored TRAJECTORY subject; ``None`` for one stored without it."""
    parts = subject.split(".")
    if len(parts) != 5 or trajectory_case(subject) is None or not parts[4].isdigit():
        return None
    return int(parts[4])


def owned_partitions(index: int, count: int) -> list[int]:
    """The partitions replica ``index`` of ``count`` replicas consumes: ``p % count == index``."""
    if not 1 <= count <= PARTITIONS:
        raise ValueError(f"{count} replicas: a derived service runs 1 to {PARTITIONS} replicas (the TRAJECTORY "
                         f"stream has {PARTITIONS} partitions)")
    if not 0 <= index < count:
        raise ValueError(f"replica {index} of {count}: the index must be from 0 to {count - 1}")
    return [p for p in range(PARTITIONS) if p % count == index]


def partition_filters(index: int, count: int) -> list[str]:
    """The TRAJECTORY filter subjects of replica ``index`` of ``count``. One replica takes everything; otherwise
    each its partitions, and replica 0 also the messages stored before the partition token existed."""
    partitions = owned_partitions(index, count)
    if count == 1:
        return [TRAJECTORY_SUBJECTS]
    filters = [f"{TRAJECTORY_PREFIX}.*.*.{p}" for p in partitions]
    if index == 0:
        filters.append(f"{TRAJECTORY_PREFIX}.*.*")
    return filters


def consumer_name(service: str, index: int, count: int) -> str:
    """The durable TRAJECTORY consumer of one replica: ``deadlines`` alone, ``deadlines-p0of2`` with replicas."""
    owned_partitions(index, count)
    return service if count == 1 else f"{service}-p{index}of{count}"


def consumer_names(service: str) -> list[str]:
    """Every durable consumer name a service's replicas may use (their permissions)."""
    return [consumer_name(service, i, k) for k in range(1, PARTITIONS + 1) for i in range(k)]
