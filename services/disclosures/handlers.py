"""The disclosures service's edge: records every message the employer feeds carry, from the DEADLINES and BENEFITS
streams.

A durable consumer per stream, filtered on ``reintegration.employer.>``: each feed message becomes one disclosure
record keyed by its ``Nats-Msg-Id`` (so a redelivery records nothing twice), in the same order as delivered.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC
from typing import Any

import msgspec
import structlog
from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from nats.js import api

from shared.events.feed import AnyFeedMessage, FeedTrajectory
from shared.events.subjects import BENEFITS_STREAM, DEADLINES_STREAM, EMPLOYER_FEED_PREFIX
from shared.infra.clock import Clock, system_clock

from .log import EMPLOYER_BASIS, DisclosureLog

log = structlog.get_logger("disclosures")
_DECODER = msgspec.json.Decoder(AnyFeedMessage)


def describe(message: Any, subject: str) -> str:
    """What was disclosed, in words: the feed type and its item, never a free-text or medical field."""
    if isinstance(message, FeedTrajectory):  # a plan update: the step, the case version that recorded it
        return f"FeedTrajectory {message.step} version {message.case_version} on {subject}"
    item = getattr(message, "deadline_id", None) or getattr(message, "entry_id", None)
    kind = getattr(message, "change", None) or getattr(message, "kind", "")
    return f"{type(message).__name__} {kind} {getattr(message, 'rule', '')} item {item} on {subject}"


def record_delivery(app: DisclosureLog, raw: Msg, clock: Clock = system_clock) -> bool:
    """Record one feed message as delivered when the stream stored it (``clock``'s time if the message has no
    stream metadata); ``False`` when it was recorded before."""
    message = _DECODER.decode(raw.data)
    published = raw.metadata.timestamp if raw.metadata is not None else clock()
    return app.record(
        kind="delivery",
        who=f"employer:{message.enterprise_number}",
        what=describe(message, raw.subject),
        case_id=message.case_id,
        legal_basis=f"{getattr(message, 'legal_basis', '')}; {EMPLOYER_BASIS}",
        disclosed_at=published if published.tzinfo else published.replace(tzinfo=UTC),
        reference=(raw.headers or {}).get("Nats-Msg-Id") or f"{raw.subject}:{raw.metadata.sequence.stream}",
    )


def record_undecodable(app: DisclosureLog, raw: Msg, clock: Clock = system_clock) -> bool:
    """Record a feed message that could not be decoded: delivered all the same, its content unknown."""
    return app.record(
        kind="delivery", who=f"employer:{raw.subject.split('.')[2]}", what=f"undecodable message on {raw.subject}",
        case_id=None, legal_basis=EMPLOYER_BASIS, disclosed_at=clock(),
        reference=(raw.headers or {}).get("Nats-Msg-Id") or raw.subject,
    )


def attach_feed_recorders(router: NatsRouter, app: DisclosureLog, executor: Executor,
                          inbox_prefix: bytes = b"_INBOX.", *, clock: Clock = system_clock) -> None:
    for stream in (DEADLINES_STREAM, BENEFITS_STREAM):
        name = f"disclosures-{stream.lower()}"

        @router.subscriber(
            f"{EMPLOYER_FEED_PREFIX}.>",
            stream=JStream(stream, declare=False),
            durable=name,
            pull_sub=PullSub(batch_size=200, timeout=0.2, batch=True),
            inbox_prefix=inbox_prefix,
            ack_policy=AckPolicy.MANUAL,
            config=api.ConsumerConfig(durable_name=name, deliver_policy=api.DeliverPolicy.ALL,
                                      ack_policy=api.AckPolicy.EXPLICIT, ack_wait=30, max_deliver=-1,
                                      filter_subject=f"{EMPLOYER_FEED_PREFIX}.>"),
            title=f"disclosures: employer feed in {stream}",
            description="Records each message delivered to an employer's feed (who, what, legal basis, when).",
        )
        async def recorded(msg: NatsMessage) -> None:
            """Record every employer feed message once."""
            loop = asyncio.get_running_loop()
            for raw in msg.raw_message:  # type: ignore[attr-defined]
                try:
                    await loop.run_in_executor(executor, record_delivery, app, raw, clock)
                except msgspec.MsgspecError as exc:
                    log.error("feed message not understood; recorded as such", subject=raw.subject, error=str(exc))
                    await loop.run_in_executor(executor, record_undecodable, app, raw, clock)
                await raw.ack()
