"""Name-based ids (RFC 4122 version 5) exactly as ``uuid.uuid5`` gives them, at less cost per call: the rule
functions derive one for every deadline and every ledger entry they compute."""

from __future__ import annotations

import hashlib
from uuid import UUID, SafeUUID

#: The version (5) and variant (RFC 4122) bits that ``uuid.UUID(..., version=5)`` clears and sets.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (5 << 76) | (0x8000 << 48)
_new = object.__new__
_set = object.__setattr__
_sha1 = hashlib.sha1
_from_bytes = int.from_bytes
_UNKNOWN = SafeUUID.unknown


def uuid5(namespace: UUID, name: str) -> UUID:
    """``uuid.uuid5(namespace, name)``: the same value, built without ``UUID.__init__``'s argument checks (the
    value is a 128-bit integer by construction)."""
    value = (_from_bytes(_sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()[:16])
             & _CLEAR) | _SET
    made = _new(UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _UNKNOWN)
    return made
