"""Name-based ids (RFC 4122 version 5) exactly as ``uuid.uuid5`` gives them, at less cost per call: the rule
functions derive one for every deadline and every ledger entry they compute."""

from __future__ import annotations

import hashlib
from uuid import UUID

#: The version (5) and variant (RFC 4122) bits that ``uuid.UUID(..., version=5)`` clears and sets.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (5 << 76) | (0x8000 << 48)


def uuid5(namespace: UUID, name: str) -> UUID:
    """``uuid.uuid5(namespace, name)``."""
    digest = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()
    return UUID(int=(int.from_bytes(digest[:16], "big") & _CLEAR) | _SET)
