"""The console's one way out: the audit questions over NATS, asked with the auditor's own credentials.

The server's permissions decide who may ask (an employer's credentials may not publish on ``reintegration.audit.>``:
the server answers with a permissions violation, which nats-py hands to the error callback while the request itself
would only time out), and the audit service records each answer in the disclosure log. Every failure is a typed
error the pages say in words: :class:`Unreachable`, :class:`ServerRefused`, :class:`NoAnswer`, :class:`Refused`.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from shared.infra.parties import AUDIT_PREFIX, Credentials, load_credentials

# nats-py lower-cases the server's -ERR text: 'nats: permissions violation for publish to "<subject>"'
_VIOLATION = re.compile(r'permissions violation for (\w+) to "([^"]*)"')


class AskError(Exception):
    """A question that got no answer; ``str()`` says why, for the page."""


class Unreachable(AskError):
    pass


class ServerRefused(AskError):
    """The server refused these credentials the subject (a permissions violation)."""

    def __init__(self, party: str, subject: str, said: str) -> None:
        super().__init__(f"the server refused {party} to publish on {subject}: {said}")
        self.party, self.subject, self.said = party, subject, said


class NoAnswer(AskError):
    pass


class Refused(AskError):
    """The audit service refused the question: ``refusal`` is its reply (``error``, ``code``, ``field``)."""

    def __init__(self, refusal: dict[str, Any]) -> None:
        super().__init__(str(refusal.get("error", "refused")))
        self.refusal = refusal

    @property
    def code(self) -> str:
        return str(self.refusal.get("code") or "")


class AuditLink:
    """One connection to the server as the auditor of ``creds``, made on the first question and made again after
    it was lost; questions are asked once (a page is asked again by reloading it)."""

    def __init__(self, creds: Path | Credentials, url: str, *, timeout: float = 10.0,
                 connect_timeout: float = 2.0) -> None:
        self.credentials = creds if isinstance(creds, Credentials) else load_credentials(creds)
        self.url, self.timeout, self.connect_timeout = url, timeout, connect_timeout
        self._nc: Any = None
        self._lock = asyncio.Lock()
        self._waiting: dict[str, list[asyncio.Future[str]]] = {}

    @property
    def party(self) -> str:
        return self.credentials.party

    async def _on_error(self, error: Exception) -> None:
        if (match := _VIOLATION.search(str(error))) is not None:
            for future in self._waiting.get(match[2], []):
                if not future.done():
                    future.set_result(str(error).removeprefix("nats: "))

    async def _connection(self) -> Any:
        import nats.errors

        from shared.infra.parties import connect_as

        async with self._lock:
            if self._nc is not None and self._nc.is_connected:
                return self._nc
            if self._nc is not None:
                await self._nc.close()
                self._nc = None
            try:
                self._nc = await asyncio.wait_for(connect_as(
                    self.credentials, self.url, connect_timeout=self.connect_timeout, allow_reconnect=False,
                    max_reconnect_attempts=1, reconnect_time_wait=0.1, error_cb=self._on_error),
                    timeout=self.connect_timeout + 2)
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                raise Unreachable(f"the NATS server at {self.url} cannot be reached "
                                  f"({type(exc).__name__}: {exc or 'no answer'})") from exc
            return self._nc

    async def ask(self, question: str, body: dict[str, Any]) -> dict[str, Any]:
        """The reply to ``reintegration.audit.<question>`` (``{"question", "asked_by", "disclosure",
        "answered_at", "answer"}``), or one of this module's errors."""
        import nats.errors

        nc = await self._connection()
        subject = f"{AUDIT_PREFIX}.{question}"
        refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(subject, []).append(refused)
        request = asyncio.ensure_future(nc.request(subject, json.dumps(body).encode(), timeout=self.timeout))
        try:
            await asyncio.wait({request, refused}, return_when=asyncio.FIRST_COMPLETED)
            if refused.done():
                request.cancel()
                raise ServerRefused(self.party, subject, refused.result())
            try:
                msg = request.result()
            except nats.errors.NoRespondersError:
                raise NoAnswer(f"no audit service answers on {subject} at {self.url}: it is not running") from None
            except (nats.errors.TimeoutError, TimeoutError):
                raise NoAnswer(f"no answer on {subject} within {self.timeout:g} s: the audit service is not "
                               "running or is busy; reload the page to ask again") from None
            except (nats.errors.ConnectionClosedError, nats.errors.StaleConnectionError, OSError) as exc:
                raise Unreachable(f"the connection to {self.url} was lost ({type(exc).__name__})") from None
        finally:
            self._waiting[subject].remove(refused)
        reply = json.loads(msg.data)
        if not isinstance(reply, dict):
            raise NoAnswer(f"{subject} answered something that is not a reply: {msg.data[:80]!r}")
        if "error" in reply:
            raise Refused(reply)
        return reply

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = None
