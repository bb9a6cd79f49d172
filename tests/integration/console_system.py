"""A running system for the console's browser tests: a real nats-server with the generated parties' accounts, the
recorded cases in SQLite stores (sealed into hash chains), the audit service, and consoles served by uvicorn, each
with one party's credentials. Everything asynchronous runs on its own thread's event loop, so the tests drive the
browser with Playwright's synchronous API."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import uvicorn

from lab.probes import System, start_system
from reintegration.console.app import build_console
from reintegration.console.asking import AuditLink
from services.audit import Auditor
from services.audit.main import build_app
from shared.infra.settings import Settings
from tests.integration.test_audit_nats import parties_toml, recorded_settings

CHROMIUM = Path(os.environ.get("REINTEGRATION_CHROMIUM", "/usr/bin/chromium"))
#: Debian's Chromium, as root, on a machine without a network beyond loopback
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("REINTEGRATION_TEST_ARTIFACTS", "test-artifacts")) / "console"


class LoopThread:
    """An event loop on a thread of its own; ``run`` hands it a coroutine and waits for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Console:
    """One console served on 127.0.0.1 by uvicorn, on a thread of its own."""

    link: AuditLink
    server: uvicorn.Server = field(init=False)
    thread: threading.Thread = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(build_console(self.link), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        assert self.server.started, "the console did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Running:
    settings: Settings
    cases: dict[str, uuid.UUID]
    system: System
    audit_loop: LoopThread
    audit_app: Any
    consoles: dict[str, Console]

    def console(self, party: str, url: str | None = None) -> Console:
        """The console of ``party`` (``auditor:inspectorate``), asking ``url`` (default: the system's server)."""
        key = f"{party}@{url or ''}"
        if key not in self.consoles:
            self.consoles[key] = Console(AuditLink(self.system.credentials[party], url or self.system.url,
                                                   timeout=10, connect_timeout=1))
        return self.consoles[key]

    def stop(self) -> None:
        for console in self.consoles.values():
            console.stop()
        self.audit_loop.run(self.audit_app.stop())
        self.audit_loop.stop()
        self.system.server.stop()


def start(directory: Path) -> Running:
    """The recorded cases of ``tests.integration.test_audit.record_cases`` (applied by both derived services and
    sealed), a nats-server with the probe parties' accounts and the audit service connected as ``service:audit``."""
    settings, cases = recorded_settings(directory)
    with Auditor(settings) as auditor:
        auditor.seal()
    system = start_system(directory)
    service = replace(settings, nats_url=system.url, nats_credentials=system.credentials["service:audit"])
    loop = LoopThread()
    app = build_app(service, parties_path=parties_toml(directory / "parties.toml"))
    loop.run(app.start())
    return Running(settings, cases, system, loop, app, {})
