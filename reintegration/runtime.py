"""The embedded runtime: a nats-server from the wheel, the event store under one data folder, and the services.

``Runtime`` starts the server with the accounts of a parties file (``deploy/parties.dev.toml`` by default; each
service connects with its own credentials from ``<data dir>/parties``), prepares the streams, starts each service as
its own process (the same commands a cluster deployment runs, see compose.yaml), restarts a service that dies, and
stops everything in reverse order. The audit service also gets the parties file (``REINTEGRATION_PARTIES_FILE``), to
map the account the server names in a request to the auditor who asked.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nats
import structlog

from shared.events.codec import encode
from shared.events.replies import REPLY_DECODER, Rejected
from shared.events.subjects import INTAKE_PREFIX, TRAJECTORY_STREAM, TRAJECTORY_SUBJECTS
from shared.infra.natsserver import EmbeddedNatsServer, NatsServerConfig
from shared.infra.parties import DEV_PARTIES_FILE, PARTIES_FILE_ENV, generate, load_parties
from shared.infra.relay import ensure_stream
from shared.infra.settings import Settings

log = structlog.get_logger("runtime")

#: The services ``up`` runs, each as ``python -m reintegration <args>``.
SERVICES: dict[str, list[str]] = {
    "intake": ["serve", "intake"],
    "relay": ["relay"],
    "deadlines": ["serve", "deadlines"],
    "benefits": ["serve", "benefits"],
    "disclosures": ["serve", "disclosures"],
    "feeds": ["serve", "feeds"],
    "audit": ["serve", "audit"],
}


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0


@dataclass
class Runtime:
    settings: Settings
    nats_port: int = 4222
    services: tuple[str, ...] = tuple(SERVICES)
    #: The parties whose accounts the server runs with; ``None`` runs an open server (no credentials at all).
    parties_file: Path | None = DEV_PARTIES_FILE
    #: Party name -> credentials file (under ``<data dir>/parties``, kept across restarts).
    credentials: dict[str, Path] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    server: EmbeddedNatsServer | None = None

    @property
    def logs_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    def start(self) -> Settings:
        """Start the server and the services; return the settings the services run with."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        accounts = ""
        if self.parties_file is not None:
            accounts, self.credentials = generate(load_parties(self.parties_file), self.settings.data_dir / "parties")
            missing = [s for s in ("runtime", *self.services) if f"service:{s}" not in self.credentials]
            if missing:
                raise ValueError(f"{self.parties_file} lists no service {', '.join(missing)}")
        self.server = EmbeddedNatsServer(
            NatsServerConfig(store_dir=self.settings.data_dir / "nats", port=self.nats_port, http_port=None,
                             extra=accounts),
            run_dir=self.settings.data_dir / "nats-run",
        )
        self.server.start()
        self.settings = replace(self.settings, nats_url=self.server.url,
                                nats_credentials=self.credentials.get("service:runtime"))
        asyncio.run(self._prepare_streams())
        for name in self.services:
            child = Child(name=name, args=SERVICES[name], log_path=self.logs_dir / f"{name}.log")
            self.children[name] = child
            self._spawn(child)
        return self.settings

    async def _prepare_streams(self) -> None:
        nc = await nats.connect(self.settings.nats_servers, **self.settings.nats_options())
        try:
            await ensure_stream(nc.jetstream(), TRAJECTORY_STREAM, [TRAJECTORY_SUBJECTS])
        finally:
            await nc.close()

    def _spawn(self, child: Child) -> None:
        env = {**os.environ, **self.settings.to_env()}
        if self.credentials:  # each service as itself; the audit service maps accounts to auditors with the file
            env["REINTEGRATION_NATS_CREDENTIALS"] = str(self.credentials[f"service:{child.name}"])
            env[PARTIES_FILE_ENV] = str(Path(self.parties_file or DEV_PARTIES_FILE).resolve())
        with child.log_path.open("ab") as out:
            child.process = subprocess.Popen(
                [sys.executable, "-m", "reintegration", *child.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child.started_at = time.monotonic()
        log.info("service started", service=child.name, pid=child.process.pid, log=str(child.log_path))

    def supervise_once(self) -> list[str]:
        """Restart services that exited; return their names."""
        restarted = []
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None:
                code = child.process.returncode
                log.warning("service exited; restarting", service=child.name, code=code)
                if time.monotonic() - child.started_at < 2:
                    time.sleep(1)  # crash loop: do not spin
                child.restarts += 1
                self._spawn(child)
                restarted.append(child.name)
        return restarted

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until intake answers a request (a deliberately empty report gets a rejection)."""
        asyncio.run(wait_for_intake(self.settings.nats_url, timeout, **self.settings.nats_options()))

    def stop(self) -> None:
        """Stop the services in reverse order of their start, each before the next, then the server."""
        for child in reversed(list(self.children.values())):
            if child.process is None or child.process.poll() is not None:
                continue
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("service did not stop in time; killing it", service=child.name)
                child.process.kill()
                child.process.wait()
        if self.server is not None:
            self.server.stop()


async def wait_for_intake(nats_url: str, timeout: float, **options: Any) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            nc = await asyncio.wait_for(
                nats.connect(nats_url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1, **options),
                timeout=3,
            )
        except Exception as exc:  # noqa: BLE001 - keep trying until the deadline
            last_error = exc
            await asyncio.sleep(0.2)
            continue
        try:
            msg = await nc.request(f"{INTAKE_PREFIX}.health_fund.100", encode({}), timeout=1)
            reply = REPLY_DECODER.decode(msg.data)
            if isinstance(reply, Rejected):
                return
        except Exception as exc:  # noqa: BLE001
            last_error = exc
            await asyncio.sleep(0.2)
        finally:
            await nc.close()
    raise TimeoutError(f"intake did not answer within {timeout:.0f} s ({last_error!r})")
