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

:func:`follow` is an employer's follower of its own feed: every message once and in stream order, acknowledged
only after the caller's handler returned, resuming after the last one handled (``reintegration follow``).

:func:`ask` asks the audit service (an auditor) or a query subject one question about one case (``reintegration
ask``).

:func:`request` is the retry rule for one report; the demo, the benchmarks and the fault scenarios report through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
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


# --- an employer's follower of its own feed -------------------------------------------------------------------


@dataclass(frozen=True)
class FeedDelivery:
    """One message of an employer's feed, as :func:`follow` hands it over."""

    #: ``DEADLINES`` or ``BENEFITS``, and the message's sequence in it: with the stream, the follower's position.
    stream: str
    sequence: int
    subject: str
    #: When the stream stored it (RFC 3339, UTC).
    time: str
    #: The message's headers: ``Nats-Msg-Id`` (the key to deduplicate by) and the ``Reintegration-*`` ones.
    headers: dict[str, str]
    #: The feed message (``feed.deadline.v1``, ``feed.benefit.v1``) as JSON.
    message: Any

    def as_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "sequence": self.sequence, "subject": self.subject, "time": self.time,
                "headers": self.headers, "message": self.message}


class FollowState:
    """The last sequence handled in each stream, kept in a small JSON file (replaced atomically after each message):
    where the next :func:`follow` starts."""

    def __init__(self, path: Path | None, enterprise: str, *, resume: bool = True) -> None:
        """``resume``: start from the positions ``path`` holds (``False``: from none, as a replay does; ``path`` is
        written all the same)."""
        self.path, self.enterprise = path, enterprise
        self.last: dict[str, int] = {}
        if resume and path is not None and path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("enterprise") != enterprise:
                raise ValueError(f"{path} is the follow state of employer {data.get('enterprise')}, not {enterprise}")
            self.last = {str(k): int(v) for k, v in data.get("streams", {}).items()}

    def at_least(self, last: dict[str, int]) -> None:
        """Take the higher of each stream's position (e.g. what an output file shows was written)."""
        for stream, sequence in last.items():
            self.last[stream] = max(self.last.get(stream, 0), sequence)

    def advance(self, stream: str, sequence: int) -> None:
        self.last[stream] = sequence
        if self.path is None:
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as f:
            json.dump({"enterprise": self.enterprise, "streams": self.last}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)


def written_positions(out: Path) -> dict[str, int]:
    """The last sequence of each stream in a follower's output file (JSON lines of :meth:`FeedDelivery.as_json`); a
    last line cut short by a crash is not counted (it is written again)."""
    last: dict[str, int] = {}
    if not out.exists():
        return last
    with out.open(encoding="utf-8") as f:
        for text in f:
            try:
                record = json.loads(text)
                stream, sequence = record["stream"], int(record["sequence"])
            except (ValueError, KeyError, TypeError):
                continue
            last[stream] = max(last.get(stream, 0), sequence)
    return last


def _delivery(stream: str, msg: Any) -> FeedDelivery:
    meta = msg.metadata
    try:
        message = json.loads(msg.data)
    except ValueError:
        message = msg.data.decode("utf-8", "replace")
    stamp = meta.timestamp
    return FeedDelivery(stream=stream, sequence=meta.sequence.stream, subject=msg.subject,
                        time=stamp.astimezone(UTC).isoformat() if isinstance(stamp, datetime) else str(stamp),
                        headers=dict(msg.headers or {}), message=message)


async def follow(nc: nats.NATS, enterprise: str, handle: Callable[[FeedDelivery], Awaitable[None] | None], *,
                 state: FollowState, stop: asyncio.Event, start_time: datetime | None = None,
                 until_caught_up: bool = False, batch: int = 100, wait: float = 1.0,
                 streams: tuple[str, ...] | None = None) -> int:
    """Hand every message of ``enterprise``'s feed to ``handle``, in stream order, each once, until ``stop`` is set
    (or, with ``until_caught_up``, until nothing is left); returns how many were handled.

    Each stream's durable consumer (``employer-<enterprise>``) is opened anew from the position ``state`` holds (the
    message after the last one handled), from ``start_time`` (a replay: ``state`` should be empty), or from the
    start. A message is acknowledged, and ``state`` advanced, only after ``handle`` returned: a follower killed in
    between gets the message again at its next start, and one that ``handle`` failed on (it raised) is not
    acknowledged and stops the follower."""
    from shared.infra.parties import FEED_STREAMS, open_feed

    subs = {}
    for stream in streams or FEED_STREAMS:
        last = state.last.get(stream)
        if start_time is not None:
            subs[stream] = await open_feed(nc, enterprise, stream, consumer="live", start_time=start_time, reset=True)
        elif last:
            subs[stream] = await open_feed(nc, enterprise, stream, consumer="live", start_sequence=last + 1,
                                           reset=True)
        else:
            subs[stream] = await open_feed(nc, enterprise, stream, consumer="live", deliver="all", reset=True)
    handled = 0
    while not stop.is_set():
        got = 0
        for stream, sub in subs.items():
            try:
                msgs = await sub.fetch(batch, timeout=max(0.1, wait / len(subs)))
            except TimeoutError:  # nothing waiting (nats-py raises its own or asyncio's, both TimeoutErrors)
                continue
            for msg in msgs:
                sequence = msg.metadata.sequence.stream
                if sequence <= state.last.get(stream, 0):
                    await msg.ack()  # handled before a crash, not acknowledged then
                    continue
                done = handle(_delivery(stream, msg))
                if done is not None:
                    await done
                state.advance(stream, sequence)
                await msg.ack()
                handled += 1
                got += 1
                if stop.is_set():
                    break
        if until_caught_up and not got:
            break
    return handled


# --- an auditor's (and a party's) questions ----------------------------------------------------------------------

#: The auditor's questions (``reintegration.audit.<question>``) and the read-only queries
#: (``reintegration.query.<question>``).
AUDIT_QUESTIONS: tuple[str, ...] = ("history", "asof", "applied", "explain", "verify", "dossier", "disclosures")
QUERY_QUESTIONS: tuple[str, ...] = ("deadlines", "benefits")


class AskRefused(Exception):
    """The service refused the question: ``refusal`` is its reply (``error``, and for an audit question ``code``,
    ``field`` and ``retry``)."""

    def __init__(self, refusal: dict[str, Any]) -> None:
        super().__init__(refusal.get("error", "refused"))
        self.refusal = refusal


async def ask(nc: nats.NATS, question: str, body: dict[str, Any], *, timeout: float = 10.0,
              attempts: int = 3) -> dict[str, Any]:
    """Ask ``question`` about one case (``body``: ``{"case_id", ...}`` as the subject's contract says) and return
    the reply: for an audit question ``{"question", "asked_by", "disclosure", "answered_at", "answer"}``, for a query
    the case's deadlines or ledger. A refusal raises :class:`AskRefused`; a timeout, or a refusal that says
    ``retry``, is asked again (a question changes nothing, so asking twice is harmless)."""
    from shared.events.subjects import QUERY_PREFIX
    from shared.infra.parties import AUDIT_PREFIX

    if question in AUDIT_QUESTIONS:
        subject = f"{AUDIT_PREFIX}.{question}"
    elif question in QUERY_QUESTIONS:
        subject = f"{QUERY_PREFIX}.{question}"
    else:
        raise ValueError(f"unknown question {question!r}: ask one of "
                         f"{', '.join((*AUDIT_QUESTIONS, *QUERY_QUESTIONS))}")
    payload = json.dumps(body).encode()
    backoff = Backoff(first=0.3, cap=2.0)
    for attempt in range(1, attempts + 1):
        try:
            msg = await nc.request(subject, payload, timeout=timeout)
        except NO_ANSWER:
            if attempt == attempts:
                raise
            await asyncio.sleep(backoff.next())
            continue
        reply = json.loads(msg.data)
        if isinstance(reply, dict) and "error" in reply:
            if reply.get("retry") and attempt < attempts:
                await asyncio.sleep(backoff.next())
                continue
            raise AskRefused(reply)
        return dict(reply)
    raise NoFinalAnswerError(f"no final answer from {subject} after {attempts} attempts")


__all__ = [
    "ATTEMPTS", "AUDIT_QUESTIONS", "NO_ANSWER", "QUERY_QUESTIONS", "Answer", "AskRefused", "FeedDelivery",
    "FollowState", "NoFinalAnswerError", "Submitted", "ask", "follow", "intake_subject_of", "request", "submit",
    "summarise", "written_positions"
]
