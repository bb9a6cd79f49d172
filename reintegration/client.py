"""A party's ready client, to embed or to run as ``reintegration submit``.

:func:`submit` sends a health fund's, an occupational health service's or an employer's reports (JSON lines, one
report each) to intake with the parties' retry rule: on a timeout, on no responder, or on a rejection that says
``retry: true``, the SAME bytes are sent again after a growing delay (same report id: intake answers a resend with
the original acceptance, so a retry never records a report twice), until a final reply or the attempts run out. A
report id is never invented: a line without one is refused before anything is sent. Reports go in file order, one
at a time, because a case's reports must arrive in order (its opening report first)::

    import asyncio
    from reintegration.client import submit
    from shared.infra.parties import connect_as, load_credentials

    async def main():
        creds = load_credentials("health_fund-100.creds")
        nc = await connect_as(creds, "nats://127.0.0.1:4222")
        try:
            results = await submit(nc, creds.party, open("reports.jsonl").read().splitlines())
        finally:
            await nc.close()
        print(summarise(results))

:func:`request` is the retry rule for one report; the demo, the benchmarks and the fault scenarios report through it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
import nats.errors

from shared.events.replies import REPLY_DECODER, Accepted, Rejected
from shared.events.subjects import INTAKE_PREFIX
from shared.infra.retry import Backoff

#: Errors after which a party sends the same report again: no answer in time, or nobody answering yet.
NO_ANSWER: tuple[type[Exception], ...] = (nats.errors.TimeoutError, nats.errors.NoRespondersError)
_REPLY_JSON = msgspec.json.Encoder()
#: Attempts per report by default: with the backoff (0.2 s doubling to 2 s) and a 5 s timeout, about a minute.
ATTEMPTS = 10


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
                  retried: Callable[[Rejected | None], None] = lambda _: None, cap: float = 1.0) -> Answer:
    """Send ``payload`` on ``subject`` until a final reply, at most ``attempts`` times; ``retried`` hears of each
    retry (the retry-later rejection, or ``None`` for no answer). Raises :class:`NoFinalAnswerError`."""
    backoff = Backoff(first=0.2, cap=cap)
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        try:
            msg = await nc.request(subject, payload, timeout=timeout)
        except NO_ANSWER:
            retried(None)
            if attempt < attempts:
                await asyncio.sleep(backoff.next())
            continue
        reply = REPLY_DECODER.decode(msg.data)
        if isinstance(reply, Rejected) and reply.retry:
            retried(reply)
            if attempt < attempts:
                await asyncio.sleep(backoff.next())
            continue
        return Answer(reply, attempt, time.perf_counter() - started)
    raise NoFinalAnswerError(f"no final answer from {subject} after {attempts} attempts")


def intake_subject_of(party: str) -> str:
    """The intake subject of a party named as in its credentials file (``health_fund:100``)."""
    role, sep, party_id = party.partition(":")
    if not sep or role not in {"health_fund", "occupational_health_service", "employer"}:
        raise ValueError(f"{party} reports nothing: only health funds, occupational health services and employers "
                         "send reports")
    return f"{INTAKE_PREFIX}.{role}.{party_id}"


@dataclass(frozen=True)
class Submitted:
    """What became of one line of the file."""

    #: The line's number in the file (from 1).
    line: int
    report_id: str | None
    #: ``accepted``, ``duplicate`` (answered with the original acceptance), ``rejected``, ``unanswered`` (no final
    #: answer: send the file again later) or ``not_sent`` (not a report: not JSON, or no report id).
    outcome: str
    reply: Accepted | Rejected | None = None
    attempts: int = 0
    #: Why a line was not sent or not answered.
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """One line of ``--replies``: the line, the report id, the outcome, the attempts and intake's reply as it
        was sent (or the local error)."""
        reply = None if self.reply is None else json.loads(_REPLY_JSON.encode(self.reply))
        return {"line": self.line, "report_id": self.report_id, "outcome": self.outcome, "attempts": self.attempts,
                "reply": reply, "error": self.error}


def _report_id(line: str) -> tuple[str | None, str | None]:
    """The line's report id, or why it is not a report that can be sent as it is."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(data, dict):
        return None, "not a JSON object (one report per line)"
    report_id = data.get("report_id")
    if not isinstance(report_id, str) or not report_id:
        return None, ("no report_id: every report needs its own id, kept when it is sent again (the sender never "
                      "makes up a new one)")
    return report_id, None


async def submit(nc: nats.NATS, party: str, lines: Iterable[str], *, timeout: float = 5.0,
                 attempts: int = ATTEMPTS, done: Callable[[Submitted], None] = lambda _: None) -> list[Submitted]:
    """Send each non-blank line of ``lines`` (one report each) as ``party`` (``health_fund:100``), in order, with
    the retry rule (module docstring); ``done`` hears of each line as it ends. Blank lines and lines starting with
    ``#`` are skipped. A line that is not a report is ``not_sent`` and the rest still go: each report stands on its
    own at intake (a later report of a case whose opening was refused is refused in turn, naming the case)."""
    subject = intake_subject_of(party)
    results: list[Submitted] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        report_id, problem = _report_id(text)
        if problem is not None:
            result = Submitted(line=number, report_id=report_id, outcome="not_sent", error=problem)
        else:
            try:
                answer = await request(nc, subject, text.encode(), timeout=timeout, attempts=attempts, cap=2.0)
            except NoFinalAnswerError as exc:
                result = Submitted(line=number, report_id=report_id, outcome="unanswered", attempts=attempts,
                                   error=str(exc))
            else:
                reply = answer.reply
                outcome = ("rejected" if isinstance(reply, Rejected) else
                           "duplicate" if reply.duplicate else "accepted")
                result = Submitted(line=number, report_id=report_id, outcome=outcome, reply=reply,
                                   attempts=answer.attempts)
        results.append(result)
        done(result)
    return results


def summarise(results: Iterable[Submitted]) -> dict[str, Any]:
    """Counts by outcome, and the rejections by code with their field, rule and regime."""
    results = list(results)
    outcomes = Counter(r.outcome for r in results)
    rejections: Counter[tuple[str, str | None, str | None, str | None]] = Counter()
    for r in results:
        if isinstance(r.reply, Rejected):
            rejections[(r.reply.code.value, r.reply.field, r.reply.rule, r.reply.regime)] += 1
    return {
        "lines": len(results),
        **{name: outcomes.get(name, 0) for name in ("accepted", "duplicate", "rejected", "unanswered", "not_sent")},
        "retried": sum(1 for r in results if r.attempts > 1),
        "rejections": [{"code": code, "field": field, "rule": rule, "regime": regime, "reports": n}
                       for (code, field, rule, regime), n in sorted(rejections.items(), key=lambda kv: -kv[1])],
    }


__all__ = ["ATTEMPTS", "NO_ANSWER", "Answer", "NoFinalAnswerError", "Submitted", "intake_subject_of", "request",
           "submit", "summarise"]
