"""The generated AsyncAPI document describes every message: each has a payload, and every reference resolves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from reintegration.contract_docs import render_asyncapi


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_message_has_a_payload_and_every_reference_resolves() -> None:
    spec = json.loads(render_asyncapi())
    schemas = spec["components"]["schemas"]
    messages = spec["components"]["messages"]
    assert messages and all("payload" in message for message in messages.values())
    dangling = {ref for ref in _refs(spec) if ref.startswith("#/components/schemas/")
                and ref.removeprefix("#/components/schemas/") not in schemas}
    assert dangling == set()
    titles = {key.rpartition(":")[0] for key in messages}
    assert any(title.endswith(": trajectory events") for title in titles)
    assert any(title.endswith(": query") for title in titles)
