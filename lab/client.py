"""A party's side of intake's request-reply, with the parties' retry rule: on a timeout, no responders or a
retryable rejection (``retry: true``), the SAME bytes are sent again after a growing delay, until a final reply.
The demo, the benchmarks and the fault scenarios report through it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import nats
import nats.errors

from shared.events.replies import REPLY_DECODER, Accepted, Rejected
from shared.infra.retry import Backoff

#: Errors after which a party sends the same report again: no answer in time, or nobody answering yet.
NO_ANSWER: tuple[type[Exception], ...] = (nats.errors.TimeoutError, nats.errors.NoRespondersError)


class NoFinalAnswerError(TimeoutError):
    """Every attempt timed out, found no responder or was told to retry later."""


@dataclass(frozen=True)
class Answer:
    reply: Accepted | Rejected
    #: Attempts it took (1: answered the first time).
    attempts: int
    #: Seconds the answered request took.
    seconds: float


async def request(nc: nats.NATS, subject: str, payload: bytes, *, timeout: float, attempts: int = 5,
                  retried: Callable[[Rejected | None], None] = lambda _: None) -> Answer:
    """Send ``payload`` on ``subject`` until a final reply, at most ``attempts`` times; ``retried`` hears of each
    retry (the retry-later rejection, or ``None`` for no answer). Raises :class:`NoFinalAnswerError`."""
    backoff = Backoff(first=0.2, cap=1.0)
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        try:
            msg = await nc.request(subject, payload, timeout=timeout)
        except NO_ANSWER:
            retried(None)
            await asyncio.sleep(backoff.next())
            continue
        reply = REPLY_DECODER.decode(msg.data)
        if isinstance(reply, Rejected) and reply.retry:
            retried(reply)
            await asyncio.sleep(backoff.next())
            continue
        return Answer(reply, attempt, time.perf_counter() - started)
    raise NoFinalAnswerError(f"no final answer from {subject} after {attempts} attempts")
