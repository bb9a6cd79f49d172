"""The AsyncAPI document: FastStream generates channels and operations from the real routers; msgspec supplies
the payload schemas (FastStream's generator understands pydantic models, and our contracts are msgspec structs).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from shared.events.envelope import CaseEvent
from shared.events.replies import Reply
from shared.events.reports import AnyReport
from shared.events.subjects import TRAJECTORY_PREFIX

VERSION = "0.1.0"
TRAJECTORY_CHANNEL = "trajectory"


def _broker() -> NatsBroker:
    from services.intake.handlers import build_router

    broker = NatsBroker("nats://127.0.0.1:4222")
    broker.include_router(build_router(None))  # type: ignore[arg-type]  # introspection only: never started
    broker.publisher(
        f"{TRAJECTORY_PREFIX}.{{case_id}}.{{event_type}}",
        title=TRAJECTORY_CHANNEL,
        description=(
            "JetStream stream `TRAJECTORY` (subjects `reintegration.trajectory.>`): every recorded Case event, "
            "published by the intake's outbox relay in store order, exactly once. Headers: `Nats-Msg-Id` = event "
            "id, `Reintegration-Position` = position in the intake store's notification log (what consumers "
            "track). The payload holds medical fields (marked `x-medical`) and free text (`x-free-text`): this "
            "stream is for the services and auditors, never for employers."
        ),
    )
    return broker


def render_asyncapi() -> str:
    spec: dict[str, Any] = json.loads(
        AsyncAPI(
            _broker(),
            title="reintegration",
            version=VERSION,
            description=(
                "NATS contracts of the re-integration trajectories backend. Payloads are JSON; every message is "
                "a tagged struct (`type` for reports and replies, `envelope` for recorded events)."
            ),
        )
        .to_specification()
        .to_json()
    )
    (report_schema, reply_schema, event_schema), components = msgspec.json.schema_components(
        [AnyReport, Reply, CaseEvent], ref_template="#/components/schemas/{name}"
    )
    schemas = spec["components"].setdefault("schemas", {})
    schemas.pop("EmptyPayload", None)
    schemas.pop(f"{TRAJECTORY_CHANNEL}:Message:Payload", None)
    schemas.update(components)
    schemas["Report"] = {"title": "Report", **report_schema}
    schemas["Reply"] = {"title": "Reply", **reply_schema}
    messages = spec["components"]["messages"]
    messages["intake:SubscribeMessage"]["payload"] = {"$ref": "#/components/schemas/Report"}
    messages["intake:Reply"] = {
        "title": "intake:Reply",
        "payload": {"$ref": "#/components/schemas/Reply"},
    }
    messages[f"{TRAJECTORY_CHANNEL}:Message"]["payload"] = event_schema
    spec["operations"]["intake"]["reply"] = {
        "address": {"location": "$message.header#/reply_to"},
        "messages": [{"$ref": "#/components/messages/intake:Reply"}],
    }
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"
