"""How an operator command reaches NATS: once, briefly, and without nats-py's own tracebacks.

nats-py's default error callback prints a traceback for every failed connection attempt, before the command can say
in one line what went wrong and how to fix it; a command reports the failure itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared.infra.settings import Settings


async def _quiet(exc: Exception) -> None:
    """Connection errors are the command's to report (see the module docstring)."""


async def connect_once(settings: Settings, timeout: float = 3.0) -> Any:
    """A connection to ``settings``' servers with their credentials, no reconnects; raises what the attempt raised
    (or ``TimeoutError``)."""
    import nats

    return await asyncio.wait_for(
        nats.connect(settings.nats_servers, connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=1,
                     error_cb=_quiet, **settings.nats_options()),
        timeout=timeout + 2,
    )
