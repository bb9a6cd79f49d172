"""How an operator command reaches NATS: once, briefly, and without nats-py's own tracebacks.

nats-py's default error callback prints a traceback for every failed connection attempt, before the command can say
in one line what went wrong and how to fix it; a command reports the failure itself (:mod:`reintegration.errors`).
What the server said meanwhile is kept here for that: a refused permission reaches the client only through the
error callback, while the request that it refused just times out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared.infra.settings import Settings

_seen: dict[str, str | None] = {"url": None, "refusal": None}
_connecting = False


async def _keep(exc: Exception) -> None:
    """The command reports connection errors itself; a permission the server refused is kept for it."""
    if "permissions violation" in str(exc).lower():
        _seen["refusal"] = str(exc).removeprefix("nats: ")


def refusal() -> str | None:
    """The last permission the server refused to this process's operator connections, if any."""
    return _seen["refusal"]


def last_url() -> str | None:
    return _seen["url"]


def connecting() -> bool:
    """Whether the last connection attempt failed (no connection was made)."""
    return _connecting


async def connect_once(settings: Settings, timeout: float = 3.0, **options: Any) -> Any:
    """A connection to ``settings``' servers with their credentials, no reconnects; raises what the attempt raised
    (or ``TimeoutError``)."""
    import nats

    global _connecting
    _seen["url"] = settings.nats_url
    _connecting = True
    nc = await asyncio.wait_for(
        nats.connect(settings.nats_servers, connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=1,
                     error_cb=_keep, **settings.nats_options(), **options),
        timeout=timeout + 2,
    )
    _connecting = False
    return nc


async def connect_party(credentials: Any, url: str, timeout: float = 3.0) -> Any:
    """A party's connection (``credentials``: its file or :class:`~shared.infra.parties.Credentials`) to ``url``,
    reconnecting after a short outage (a party's client outlives a server restart), without nats-py's tracebacks;
    raises what the first attempt raised (or ``TimeoutError``)."""
    from shared.infra.parties import connect_as

    global _connecting
    _seen["url"] = url
    _connecting = True
    nc = await asyncio.wait_for(
        connect_as(credentials, url, connect_timeout=timeout, error_cb=_keep, max_reconnect_attempts=60,
                   reconnect_time_wait=1),
        timeout=timeout + 2,
    )
    _connecting = False
    return nc
