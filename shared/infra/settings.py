"""Settings from environment variables (prefix ``REINTEGRATION_``), with embedded defaults.

Nothing connects at import time: services receive a :class:`Settings` in their ``build_*`` function.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ENV_PREFIX = "REINTEGRATION_"


class SettingsError(ValueError):
    """A ``REINTEGRATION_*`` variable that cannot be used; the message names it and what it takes."""


def _number(name: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{ENV_PREFIX}{name} must be {what}, not {value!r}") from None


@dataclass(frozen=True)
class Settings:
    #: Folder holding the SQLite files and the embedded nats-server's JetStream store.
    data_dir: Path = Path("data")
    #: ``sqlite`` (default, one file per service under ``data_dir``) or ``postgres``.
    store: str = "sqlite"
    #: ``postgresql://user:password@host:port/dbname`` when ``store`` is ``postgres``.
    postgres_url: str | None = None
    #: One server, or a cluster's servers comma-separated (clients fail over between them).
    nats_url: str = "nats://127.0.0.1:4222"
    #: This process's NATS credentials file (``reintegration parties config`` writes one per party and service);
    #: ``None``: connect without credentials (an open server, as in most tests).
    nats_credentials: Path | None = None
    #: A base64 AES key (``eventsourcing.cipher.AESCipher``) to encrypt stored events at rest.
    cipher_key: str | None = None
    #: Seconds a request-reply may take before the party should retry.
    request_timeout: float = 5.0
    #: Cases kept in each service's in-memory cache.
    case_cache_size: int = 10_000
    #: Move a deadline that expires on a weekend or legal holiday to the next working day (Judicial Code art.
    #: 52-53; uncertain for these periods, so off unless a deployment decides otherwise).
    roll_forward: bool = False
    #: Employers' own policies, each ``<policy>=<enterprise numbers>`` (or ``=*``), e.g.
    #: ``flemish-government-return-coach=0316381039``: applied to that employer's cases only.
    employer_policies: tuple[str, ...] = ()
    #: Rule ids of announced, never-enacted sanctions a deployment switches on.
    enabled_announced: tuple[str, ...] = ()
    #: Rule starts this deployment moves, ``(rule id, day)`` pairs (``REINTEGRATION_RULE_STARTS``, e.g.
    #: ``return_to_work.missed_examination_reduction.2026=2026-01-01``): only a rule whose start the rulebook marks
    #: uncertain may move, and every service and command of one deployment must use the same.
    rule_starts: tuple[tuple[str, date], ...] = ()
    #: Replicas of each JetStream stream this deployment creates (3 on a 3-node cluster); an existing stream keeps
    #: the replica count it has.
    stream_replicas: int = 1
    #: ``(index, count)``: this replica of a derived service handles the cases of the TRAJECTORY partitions ``p``
    #: with ``p % count == index`` (``REINTEGRATION_PARTITION=0/2``); ``(0, 1)``: every case.
    partition: tuple[int, int] = (0, 1)
    #: The port of this process's ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``; ``None``: none served.
    metrics_port: int | None = None
    #: The address that port listens on (``0.0.0.0`` in a container; loopback on a workstation).
    metrics_address: str = "127.0.0.1"
    #: An OTLP/HTTP endpoint (``http://collector:4318``) to export traces to; ``None``: no tracing at all.
    otlp_endpoint: str | None = None
    #: The share of reports traced (0 to 1), decided from each report's trace id alike in every process. 1%: a
    #: trace costs every process it crosses (``reintegration bench telemetry``); 1 to follow every report.
    trace_sample: float = 0.01
    #: ``text`` (key=value lines) or ``json`` (one JSON object a line).
    log_format: str = "text"
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, system_file: bool | None = None,
                 **overrides: object) -> Settings:
        """The settings of ``environ`` (this process's environment by default). For an operator's command
        (``system_file``; by default when reading this process's environment) what the environment leaves unset
        comes from the :data:`SYSTEM_FILE` of a system running with data in the data folder. A service never reads
        it (``reintegration serve`` passes ``system_file=False``): its settings are its environment's alone."""
        env = dict(os.environ if environ is None else environ)
        if system_file is None:
            system_file = environ is None
        data_dir = overrides.get("data_dir") or env.get(ENV_PREFIX + "DATA_DIR") or cls.data_dir
        if system_file and (system := read_system_file(Path(str(data_dir)))) is not None and system.running:
            env = {**system.values, **env}

        def get(name: str) -> str | None:
            return env.get(ENV_PREFIX + name)

        values: dict[str, object] = {}
        if (v := get("DATA_DIR")) is not None:
            values["data_dir"] = Path(v)
        if (v := get("STORE")) is not None:
            values["store"] = v
        if (v := get("POSTGRES_URL")) is not None:
            values["postgres_url"] = v
            values.setdefault("store", "postgres")
        if (v := get("NATS_URL")) is not None:
            values["nats_url"] = v
        if (v := get("NATS_CREDENTIALS")) is not None:
            values["nats_credentials"] = Path(v) if v else None
        if (v := get("CIPHER_KEY")) is not None:
            values["cipher_key"] = v
        if (v := get("REQUEST_TIMEOUT")) is not None:
            values["request_timeout"] = _number("REQUEST_TIMEOUT", v, float)
        if (v := get("CASE_CACHE_SIZE")) is not None:
            values["case_cache_size"] = _number("CASE_CACHE_SIZE", v, int)
        if (v := get("ROLL_FORWARD")) is not None:
            values["roll_forward"] = v.lower() in {"1", "true", "yes", "on"}
        if (v := get("EMPLOYER_POLICIES")) is not None:
            values["employer_policies"] = tuple(p.strip() for p in v.split(";") if p.strip())
        if (v := get("ENABLED_ANNOUNCED")) is not None:
            values["enabled_announced"] = tuple(p for p in v.split(",") if p)
        if (v := get("RULE_STARTS")) is not None:
            values["rule_starts"] = tuple(parse_rule_starts(v).items())
        if (v := get("STREAM_REPLICAS")) is not None:
            values["stream_replicas"] = _number("STREAM_REPLICAS", v, int)
        if (v := get("PARTITION")) is not None:
            values["partition"] = parse_partition(v)
        if (v := get("METRICS_PORT")) is not None:
            values["metrics_port"] = _number("METRICS_PORT", v, int) if v else None
        if (v := get("METRICS_ADDRESS")) is not None:
            values["metrics_address"] = v
        if (v := get("OTLP_ENDPOINT")) is not None:
            values["otlp_endpoint"] = v or None
        if (v := get("TRACE_SAMPLE")) is not None:
            values["trace_sample"] = _number("TRACE_SAMPLE", v, float)
        if (v := get("LOG_FORMAT")) is not None:
            values["log_format"] = v.lower()
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.stream_replicas not in {1, 3, 5}:
            raise SettingsError(f"{ENV_PREFIX}STREAM_REPLICAS must be 1, 3 or 5, not {settings.stream_replicas}")
        if settings.metrics_port is not None and not 0 <= settings.metrics_port < 65536:
            raise SettingsError(f"{ENV_PREFIX}METRICS_PORT must be a port number (0-65535), not "
                                f"{settings.metrics_port}")
        if not 0 <= settings.trace_sample <= 1:
            raise SettingsError(f"{ENV_PREFIX}TRACE_SAMPLE must be a share from 0 to 1, not {settings.trace_sample}")
        if settings.log_format not in {"text", "json"}:
            raise SettingsError(f"{ENV_PREFIX}LOG_FORMAT must be 'text' or 'json', not {settings.log_format!r}")
        if settings.otlp_endpoint is not None and not settings.otlp_endpoint.startswith(("http://", "https://")):
            raise SettingsError(f"{ENV_PREFIX}OTLP_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP), not "
                                f"{settings.otlp_endpoint!r}")
        if settings.store not in {"sqlite", "postgres"}:
            raise SettingsError(f"{ENV_PREFIX}STORE must be 'sqlite' or 'postgres', not {settings.store!r}")
        if settings.store == "postgres" and not settings.postgres_url:
            raise SettingsError(f"{ENV_PREFIX}STORE=postgres needs {ENV_PREFIX}POSTGRES_URL")
        return settings

    def to_env(self) -> dict[str, str]:
        """The same settings as environment variables, for child processes."""
        env = {
            ENV_PREFIX + "DATA_DIR": str(self.data_dir),
            ENV_PREFIX + "STORE": self.store,
            ENV_PREFIX + "NATS_URL": self.nats_url,
            ENV_PREFIX + "REQUEST_TIMEOUT": str(self.request_timeout),
            ENV_PREFIX + "CASE_CACHE_SIZE": str(self.case_cache_size),
            ENV_PREFIX + "STREAM_REPLICAS": str(self.stream_replicas),
            ENV_PREFIX + "PARTITION": f"{self.partition[0]}/{self.partition[1]}",
        }
        if self.postgres_url:
            env[ENV_PREFIX + "POSTGRES_URL"] = self.postgres_url
        env[ENV_PREFIX + "ROLL_FORWARD"] = "yes" if self.roll_forward else "no"
        env[ENV_PREFIX + "EMPLOYER_POLICIES"] = ";".join(self.employer_policies)
        env[ENV_PREFIX + "ENABLED_ANNOUNCED"] = ",".join(self.enabled_announced)
        env[ENV_PREFIX + "RULE_STARTS"] = ",".join(f"{rule_id}={day.isoformat()}" for rule_id, day in self.rule_starts)
        env[ENV_PREFIX + "METRICS_ADDRESS"] = self.metrics_address
        env[ENV_PREFIX + "LOG_FORMAT"] = self.log_format
        if self.metrics_port is not None:
            env[ENV_PREFIX + "METRICS_PORT"] = str(self.metrics_port)
        if self.otlp_endpoint:
            env[ENV_PREFIX + "OTLP_ENDPOINT"] = self.otlp_endpoint
            env[ENV_PREFIX + "TRACE_SAMPLE"] = str(self.trace_sample)
        if self.cipher_key:
            env[ENV_PREFIX + "CIPHER_KEY"] = self.cipher_key
        if self.nats_credentials:
            env[ENV_PREFIX + "NATS_CREDENTIALS"] = str(self.nats_credentials)
        return env

    @property
    def jetstream_key(self) -> str | None:
        """The key a server this deployment starts encrypts its JetStream store with: derived from the stores'
        cipher key (one secret to keep), distinct from it."""
        if not self.cipher_key:
            return None
        import hashlib

        return hashlib.sha256(b"reintegration.jetstream:" + self.cipher_key.encode()).hexdigest()

    @property
    def nats_servers(self) -> list[str]:
        """``nats_url`` as the list ``nats.connect`` and FastStream's ``NatsBroker`` take (every node of a cluster)."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def nats_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` and FastStream's ``NatsBroker``: the nkey and the inbox prefix."""
        if self.nats_credentials is None:
            return {}
        from .parties import load_credentials

        return load_credentials(self.nats_credentials).connect_options()

    @property
    def pull_inbox_prefix(self) -> bytes:
        """``inbox_prefix=`` of pull subscribers: FastStream's default (``_INBOX.``) is outside a service's inbox."""
        if self.nats_credentials is None:
            return b"_INBOX."
        from .parties import load_credentials

        return load_credentials(self.nats_credentials).pull_inbox_prefix


def parse_rule_starts(text: str) -> dict[str, date]:
    """``<rule id>=<YYYY-MM-DD>`` pairs separated by commas (``REINTEGRATION_RULE_STARTS``); empty text gives none.
    :class:`SettingsError` on a pair that does not parse or an id given twice. Whether each rule exists and may
    move is the rulebook's to say (``Rulebook.with_rule_starts``)."""
    starts: dict[str, date] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        rule_id, sep, day = (x.strip() for x in part.partition("="))
        if not sep or not rule_id:
            raise SettingsError(f"{ENV_PREFIX}RULE_STARTS: {part!r} is not <rule id>=<YYYY-MM-DD>")
        try:
            parsed = date.fromisoformat(day)
        except ValueError:
            raise SettingsError(f"{ENV_PREFIX}RULE_STARTS: {day!r} (rule {rule_id}) is not a date YYYY-MM-DD") from None
        if rule_id in starts:
            raise SettingsError(f"{ENV_PREFIX}RULE_STARTS: rule {rule_id} is given twice")
        starts[rule_id] = parsed
    return starts


def parse_partition(value: str) -> tuple[int, int]:
    """``"i/k"`` -> ``(i, k)``: replica ``i`` (from 0) of ``k`` replicas of a derived service."""
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}PARTITION must be '<index>/<count>', e.g. '0/2', not {value!r}") from None
    if not 0 <= index < count:
        raise SettingsError(f"{ENV_PREFIX}PARTITION {value!r}: the index must be from 0 to count - 1")
    return index, count


#: The file ``up`` and ``demo`` write into their data folder while they run, and remove when they stop: the settings
#: an operator's command needs to reach that system (its NATS URL, the operator's credentials, the store). Every
#: command reads it for what its environment leaves unset; ``reintegration env`` prints it as shell exports.
SYSTEM_FILE = "reintegration.env"
#: The line :func:`mark_system_ready` appends once every service answered ready.
READY_LINE = "# ready since"


@dataclass(frozen=True)
class SystemFile:
    path: Path
    #: ``REINTEGRATION_*`` name -> value.
    values: Mapping[str, str]
    #: The process that runs the system (``up``'s or ``demo``'s).
    pid: int | None
    #: Whether every service answered ready once the system started (:func:`mark_system_ready`); until then the
    #: system is starting: its server takes connections, its services may not answer yet.
    ready: bool = False

    @property
    def running(self) -> bool:
        """Whether the process that wrote the file still runs it: that process holds a lock on the file for as long
        as it runs (a killed one, a rebooted machine or a stopped container leaves the file, never the lock; a pid
        could belong to another process by then)."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # a file system without locks: the writer cannot have one either
            return False
        finally:
            os.close(fd)  # closing releases a lock this check took
        return False


def write_system_file(settings: Settings, *, credentials: Path | None, started_by: str) -> int:
    """Write ``settings``' :data:`SYSTEM_FILE` (a shell-sourceable ``KEY=value`` file, readable by its owner only)
    with ``credentials`` as the operator's, for the system this process runs; return the descriptor that holds its
    lock while the system runs (:func:`remove_system_file` releases it)."""
    import fcntl
    import shlex
    from datetime import UTC, datetime

    values = {
        "DATA_DIR": str(settings.data_dir.resolve()),
        "NATS_URL": settings.nats_url,
        "STORE": settings.store,
    }
    if settings.postgres_url:
        values["POSTGRES_URL"] = settings.postgres_url
    if credentials is not None:
        values["NATS_CREDENTIALS"] = str(credentials.resolve())
    lines = [
        f"# written by `reintegration {started_by}` (pid {os.getpid()}) at "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}; removed when it stops.",
        "# Every reintegration command reads it for the settings its environment leaves unset;",
        f"# `reintegration env --data-dir {shlex.quote(str(settings.data_dir))}` prints it as exports.",
        f"# pid: {os.getpid()}",
    ]
    if settings.cipher_key:
        lines.append("# The stores are encrypted: their readers need REINTEGRATION_CIPHER_KEY (not kept here).")
    lines += [f"{ENV_PREFIX}{key}={shlex.quote(value)}" for key, value in values.items()]
    path = settings.data_dir / SYSTEM_FILE
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not for a moment
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
        fcntl.flock(fd, fcntl.LOCK_EX)  # held, on this file, until the system stops
        tmp.replace(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_system_file(data_dir: Path) -> SystemFile | None:
    """The :data:`SYSTEM_FILE` in ``data_dir``, or ``None`` when there is none (or it cannot be read)."""
    import shlex

    path = data_dir / SYSTEM_FILE
    try:
        text = path.read_text()
    except OSError:
        return None
    values: dict[str, str] = {}
    pid = None
    ready = False
    for line in text.splitlines():
        if line.startswith(READY_LINE):
            ready = True
        elif line.startswith("# pid: ") and line.removeprefix("# pid: ").strip().isdigit():
            pid = int(line.removeprefix("# pid: ").strip())
        elif line.startswith(ENV_PREFIX) and "=" in line:
            key, _, raw = line.partition("=")
            parts = shlex.split(raw)
            values[key] = parts[0] if parts else ""
    return SystemFile(path=path, values=values, pid=pid, ready=ready)


def mark_system_ready(lock: int) -> None:
    """Note in the :data:`SYSTEM_FILE` whose lock is ``lock`` that every service of its system answered ready
    (``reintegration env --wait`` waits for it)."""
    from datetime import UTC, datetime

    os.write(lock, f"{READY_LINE} {datetime.now(UTC).isoformat(timespec='seconds')}\n".encode())


def remove_system_file(data_dir: Path, lock: int) -> None:
    """Remove the :data:`SYSTEM_FILE` this process wrote in ``data_dir`` and release its lock (``lock``, from
    :func:`write_system_file`)."""
    (data_dir / SYSTEM_FILE).unlink(missing_ok=True)
    os.close(lock)
