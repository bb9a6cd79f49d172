"""The AsyncAPI document: FastStream generates channels and operations from the real routers; msgspec supplies
the payload schemas (FastStream's generator understands pydantic models, and our contracts are msgspec structs).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from faststream.nats import NatsBroker, NatsRouter
from faststream.specification import AsyncAPI

from services.registry import DERIVED
from shared.events import subjects as s
from shared.events.envelope import CaseEvent
from shared.events.feed import FeedDeadline, FeedLedgerEntry, FeedRefusal, FeedReply, FeedRequest, FeedTrajectory
from shared.events.replies import Reply
from shared.events.reports import AnyReport
from shared.infra.parties import FEED_PREFIX

VERSION = "0.2.0"

#: Published channels (title, subject, description) and the contract of their payload.
PUBLISHED: list[tuple[str, str, str, Any]] = [
    ("trajectory", f"{s.TRAJECTORY_PREFIX}.{{case_id}}.{{event_type}}",
     "Stream TRAJECTORY: every recorded Case event, published by the intake's outbox relay in store order, exactly "
     "once (`Nats-Msg-Id` = event id, `Reintegration-Position` = intake store position, which consumers track). "
     "Holds medical fields (`x-medical`) and free text (`x-free-text`): for services and auditors, never employers.",
     CaseEvent),
    ("deadline events", f"{s.DEADLINES_PREFIX}.{{case_id}}.{{change}}",
     "Stream DEADLINES: each change of a case's deadlines (opened, met, cancelled, recomputed, changed, withdrawn, "
     "and the outcome of a fired timer: missed, expired, reminded, reached), with its rule, regime, legal basis, "
     "calendar, policy and the events that started and stopped it.", "DeadlineEvent"),
    ("ledger entries", f"{s.BENEFITS_PREFIX}.{{case_id}}.{{kind}}",
     "Stream BENEFITS: each new ledger entry (reductions, restorations, premiums, reimbursements, contributions, "
     "exemptions, reversals) with its rule, legal basis, regime and causing events. Entries are never edited.",
     "LedgerEntry"),
    ("employer feed: deadlines", f"{s.EMPLOYER_FEED_PREFIX}.{{enterprise_number}}.deadlines.{{case_id}}",
     "The deadlines that concern one employer (plan due, answer due, its own overdue plan, 2026 work-potential "
     "request), data-minimised: the feed types hold no medical or free-text field by construction.", FeedDeadline),
    ("employer feed: benefits", f"{s.EMPLOYER_FEED_PREFIX}.{{enterprise_number}}.benefits.{{case_id}}",
     "The ledger entries that concern one employer (its premium, its contribution, fines, guaranteed-wage "
     "exemption), data-minimised like the deadlines feed.", FeedLedgerEntry),
    ("employer feed: plan updates", f"{s.EMPLOYER_FEED_PREFIX}.{{enterprise_number}}.trajectory.{{case_id}}",
     "Stream DEADLINES: each step of a case's trajectory the law lets the employer know (requested, the "
     "assessment's decision and what it means for the employer, the plan's due date, submitted, accepted, refused "
     "or unanswered, ended; medical force majeure started and decided; partial resumption authorised, ended, "
     "failed), with its regime and legal basis, in case order after the deadlines of the same step; data-minimised "
     "like the other feeds.", FeedTrajectory),
    ("timers", f"{s.TIMER_SCHEDULE_PREFIX}.{{deadline_id}}",
     "Stream TIMERS (schedules allowed, apart from every other stream): one JetStream scheduled message per open "
     "deadline (`Nats-Schedule: @at <UTC>`, target `reintegration.timers.fired.<deadline_id>`); replaced when the "
     "deadline moves, purged when it is met or cancelled.", "Timer"),
    ("dead letters", f"{s.DEAD_LETTER_PREFIX}.{{consumer}}",
     "Stream DEAD_LETTERS: a message a consumer could not apply after its delivery budget (or one queued behind it "
     "in a parked case), unchanged, with `Reintegration-Error`, `-Deliveries` and `-Original-Subject` headers.",
     CaseEvent),
]


#: The headers of every employer feed message (docs/contracts.md says how to use them).
FEED_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["Nats-Msg-Id"],
    "properties": {
        "Nats-Msg-Id": {"type": "string", "description": "The message's id: a redelivery or a replay carries the "
                        "same; deduplicate on it."},
        "Reintegration-Position": {"type": "string", "description": "The intake store position of the Case event "
                                   "behind it (a decimal integer)."},
        "Reintegration-Part": {"type": "string", "description": "`i/n`: this message's place among those one "
                               "recorded step published."},
    },
}


def _broker() -> NatsBroker:
    from services.deadlines.handlers import FiredTimers
    from services.intake.handlers import build_router
    from shared.infra.consumer import TrajectoryConsumer
    from shared.infra.service import attach_query

    broker = NatsBroker("nats://127.0.0.1:4222")
    broker.include_router(build_router(None))  # type: ignore[arg-type]  # introspection only: never started
    executor = ThreadPoolExecutor(max_workers=1)
    for name in DERIVED:
        router = NatsRouter()
        TrajectoryConsumer(name=name, apply=None, park=None, executor=executor).attach(router)  # type: ignore[arg-type]
        attach_query(router, name, s.query_subject(name), executor, lambda q: None)
        if name == "deadlines":
            FiredTimers(None, executor).attach(router)  # type: ignore[arg-type]
        broker.include_router(router)
    from services.disclosures.handlers import attach_feed_recorders

    recorders = NatsRouter()
    attach_feed_recorders(recorders, None, executor)  # type: ignore[arg-type]
    broker.include_router(recorders)
    from services.audit.main import attach_questions

    audit = NatsRouter()
    attach_questions(audit, None)  # type: ignore[arg-type]
    broker.include_router(audit)
    executor.shutdown()
    feeds = NatsRouter()

    @feeds.subscriber(f"{FEED_PREFIX}.*", title="feeds: open a consumer", description=(
        "An employer asks for a pull consumer on its own feed in DEADLINES or BENEFITS (the enterprise number is "
        "the subject's last token, pinned by the employer's import); the reply says which consumer to pull from "
        "and through which API prefix (docs/parties.md)."))
    async def _open_feed_consumer(body: bytes) -> bytes:  # documents the feeds service's responder; never run
        return body

    broker.include_router(feeds)
    for title, subject, description, _payload in PUBLISHED:
        broker.publisher(subject, title=title, description=description)
    return broker


def _payload_types() -> dict[str, Any]:
    from services.deadlines.timers import Timer
    from shared.events.deadlines import DeadlineEvent
    from shared.rulebook.benefits import LedgerEntry

    named = {"DeadlineEvent": DeadlineEvent, "LedgerEntry": LedgerEntry, "Timer": Timer}
    return {title: named.get(payload, payload) if isinstance(payload, str) else payload
            for title, _subject, _description, payload in PUBLISHED}


def render_asyncapi() -> str:
    """The document: FastStream's channels and operations, with msgspec's schemas as their payloads."""
    spec: dict[str, Any] = json.loads(
        AsyncAPI(
            _broker(),
            title="reintegration",
            version=VERSION,
            description=(
                "NATS contracts of the re-integration trajectories backend. Payloads are JSON; every message is "
                "a tagged struct (`type` for reports, replies, feed messages and deadline events, `envelope` for "
                "recorded events)."
            ),
        )
        .to_specification()
        .to_json()
    )
    from services.audit.questions import QUESTIONS, AuditAnswer, AuditRefusal

    published = _payload_types()
    audit_types = [t for q in QUESTIONS.values() for t in (q.request, q.answer)]
    types: list[Any] = [AnyReport, Reply, CaseEvent, *published.values(), AuditAnswer, AuditRefusal, *audit_types,
                        FeedRequest, FeedReply, FeedRefusal]
    schemas_list, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    by_type = dict(zip([id(t) for t in types], schemas_list, strict=True))
    schemas = spec["components"].setdefault("schemas", {})
    for key in [k for k in schemas if k == "EmptyPayload" or k.endswith(":Payload")]:
        del schemas[key]
    schemas.update(components)
    schemas["Report"] = {"title": "Report", **by_type[id(AnyReport)]}
    schemas["Reply"] = {"title": "Reply", **by_type[id(Reply)]}
    messages = spec["components"]["messages"]
    for key, message in messages.items():
        payload = _payload(key.rpartition(":")[0], published, by_type)
        if payload is not None:
            message["payload"] = payload
    _audit_replies(spec, components, by_type)
    messages["intake:Reply"] = {"title": "intake:Reply", "payload": {"$ref": "#/components/schemas/Reply"}}
    spec["operations"]["intake"]["reply"] = {"messages": [{"$ref": "#/components/messages/intake:Reply"}]}
    feed = "feeds: open a consumer"
    messages[f"{feed}:SubscribeMessage"]["payload"] = by_type[id(FeedRequest)]
    messages[f"{feed}:Reply"] = {"title": f"{feed}:Reply",
                                 "payload": {"anyOf": [by_type[id(FeedReply)], by_type[id(FeedRefusal)]]}}
    feed_reply = f"#/components/messages/{feed}:Reply".replace(" ", "%20")
    spec["operations"][feed]["reply"] = {"messages": [{"$ref": feed_reply}]}
    for title in ("employer feed: deadlines", "employer feed: benefits", "employer feed: plan updates"):
        messages[f"{title}:Message"]["headers"] = FEED_HEADERS
    # A party sends the report, question or request alone: NATS request-reply carries the reply subject itself, and
    # no header is needed (FastStream's own correlation_id is not part of the contract).
    for message in messages.values():
        message.pop("correlationId", None)
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def _payload(title: str, published: dict[str, Any], by_type: dict[int, Any]) -> Any:
    """The schema of the payload of the channel ``title``; ``None``: FastStream's own stays."""
    if title == "intake":
        return {"$ref": "#/components/schemas/Report"}
    if title in published:
        return by_type[id(published[title])]
    if title.startswith("disclosures: employer feed"):
        return {"anyOf": [by_type[id(published["employer feed: deadlines"])],
                          by_type[id(published["employer feed: benefits"])]]}
    if title.endswith(": trajectory events"):
        return by_type[id(CaseEvent)]
    if title.endswith(": fired timers"):
        return by_type[id(published["timers"])]
    if title.endswith(": query"):
        return {
            "type": "object", "required": ["case_id"],
            "properties": {"case_id": {"type": "string", "format": "uuid"},
                           "version": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
        }
    return None


def _audit_replies(spec: dict[str, Any], components: dict[str, Any], by_type: dict[int, Any]) -> None:
    """Each audit question's request payload and its reply: its answer or a refusal."""
    from services.audit.questions import QUESTIONS, AuditRefusal

    messages = spec["components"]["messages"]
    for question in QUESTIONS.values():
        title = f"audit: {question.name}"
        messages[f"{title}:SubscribeMessage"]["payload"] = by_type[id(question.request)]
        reply = {**components["AuditAnswer"], "title": f"AuditAnswer ({question.name})",
                 "properties": {**components["AuditAnswer"]["properties"], "answer": by_type[id(question.answer)]}}
        messages[f"{title}:Reply"] = {"title": f"{title}:Reply",
                                      "payload": {"anyOf": [reply, by_type[id(AuditRefusal)]]}}
        spec["operations"][title]["reply"] = {
            "messages": [{"$ref": f"#/components/messages/{title}:Reply".replace(" ", "%20")}],
        }
