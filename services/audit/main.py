"""Composition root of the audit service: the auditors' read-only questions over NATS request-reply.

``reintegration serve audit`` runs it. One subscriber per question (``reintegration.audit.<question>``, queue group
``audit``), each answered in a worker thread by :class:`services.audit.questions.Responder`: strict decoding, who
asked from the server's ``Nats-Request-Info`` header mapped through the parties file, the answer of
:class:`services.audit.Auditor` (stores opened read-only for each question), one disclosure record per answer. A
subject under ``reintegration.audit.`` that is no question has no responders.

Identity needs the parties file the server runs with: ``REINTEGRATION_PARTIES_FILE`` (default
``deploy/parties.dev.toml``, as ``reintegration up``). A service started without credentials
(``REINTEGRATION_NATS_CREDENTIALS`` unset) runs against an open server, has no identity to go by and records its
questions as asked by ``unauthenticated``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog
from faststream import AckPolicy, FastStream
from faststream.nats import NatsRouter
from faststream.nats.annotations import NatsMessage

from services.disclosures.log import build_disclosures
from shared.infra import telemetry
from shared.infra.clock import Clock, system_clock
from shared.infra.parties import load_identity
from shared.infra.service import raw_body, service_broker
from shared.infra.settings import Settings

from .questions import QUESTIONS, Question, Responder

log = structlog.get_logger("audit")

#: ``answer(question, body, headers, reply subject) -> reply bytes``
Answer = Callable[[str, bytes, Mapping[str, str] | None, str], Awaitable[bytes]]
QUEUE = "audit"


def attach_questions(router: NatsRouter, answer: Answer) -> None:
    """One request-reply subscriber per audit question.

    A subject under ``reintegration.audit.`` that is no question has no responders (nats-py: ``NoRespondersError``).
    A catch-all subscriber (``reintegration.audit.>``) cannot refuse it instead: when a request that crossed an
    import reaches two subscriptions of the service user, nats-server 2.15 refuses the user's reply (a permissions
    violation on the mapped ``_R_.`` subject), so the known questions would go unanswered.
    """
    for question in QUESTIONS.values():
        _attach_question(router, question, answer)


def _attach_question(router: NatsRouter, question: Question, answer: Answer) -> None:
    name = question.name

    # Core NATS request-reply, read-only: no broker acknowledgement (MANUAL: nothing acked or rejected).
    @router.subscriber(
        question.subject, queue=QUEUE, title=f"audit: {name}", ack_policy=AckPolicy.MANUAL, decoder=raw_body,
        description=f"Read-only, auditors only. {question.summary} Request: "
        f"`{question.request.__name__}`; reply: `AuditAnswer` (the answer, who asked as the server "
        "authenticated it, the disclosure record's reference) or `AuditRefusal` (`error`, `code`, "
        "`field`). Each answer leaves a disclosure record.",
    )
    async def asked(msg: NatsMessage) -> bytes:
        """Answer one auditor's question about one case."""
        raw = msg.raw_message
        return await answer(name, msg.body, raw.headers, raw.reply)


def build_app(settings: Settings, *, clock: Clock = system_clock, parties_path: Path | None = None) -> FastStream:
    """The audit service; ``clock`` dates each disclosure record its answers leave."""
    parties = load_identity(settings.nats_credentials, parties_path)
    if parties is None:
        log.warning("no NATS credentials: open server, audit questions are recorded as asked by unauthenticated")
    disclosures = build_disclosures(settings)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-store")
    broker = service_broker(settings, "audit")
    telemetry.PROCESS.check("disclosure log", telemetry.store_reachable(disclosures.recorder.max_notification_id))
    responder = Responder(settings, disclosures, parties, max_reply=lambda: broker.connection.max_payload,
                          clock=clock)

    async def answer(question: str, body: bytes, headers: Mapping[str, str] | None, reply: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(executor, responder.answer, question, body, headers,
                                                                reply)

    router = NatsRouter()
    attach_questions(router, answer)
    broker.include_router(router)
    app = FastStream(broker)

    @app.after_startup
    async def ready() -> None:
        log.info("audit service ready", subjects=[q.subject for q in QUESTIONS.values()],
                 identity="open server (unauthenticated)" if parties is None else "Nats-Request-Info account")

    @app.after_shutdown
    async def close() -> None:
        executor.shutdown(wait=True)
        disclosures.close()

    return app
