"""Settings from environment variables (prefix ``REINTEGRATION_``), with embedded defaults.

Nothing connects at import time: services receive a :class:`Settings` in their ``build_*`` function.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "REINTEGRATION_"


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
    #: Replicas of each JetStream stream this deployment creates (3 on a 3-node cluster); an existing stream keeps
    #: the replica count it has.
    stream_replicas: int = 1
    #: ``(index, count)``: this replica of a derived service handles the cases of the TRAJECTORY partitions ``p``
    #: with ``p % count == index`` (``REINTEGRATION_PARTITION=0/2``); ``(0, 1)``: every case.
    partition: tuple[int, int] = (0, 1)
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ

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
            values["request_timeout"] = float(v)
        if (v := get("CASE_CACHE_SIZE")) is not None:
            values["case_cache_size"] = int(v)
        if (v := get("ROLL_FORWARD")) is not None:
            values["roll_forward"] = v.lower() in {"1", "true", "yes", "on"}
        if (v := get("EMPLOYER_POLICIES")) is not None:
            values["employer_policies"] = tuple(p.strip() for p in v.split(";") if p.strip())
        if (v := get("ENABLED_ANNOUNCED")) is not None:
            values["enabled_announced"] = tuple(p for p in v.split(",") if p)
        if (v := get("STREAM_REPLICAS")) is not None:
            values["stream_replicas"] = int(v)
        if (v := get("PARTITION")) is not None:
            values["partition"] = parse_partition(v)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.stream_replicas not in {1, 3, 5}:
            raise ValueError(f"{ENV_PREFIX}STREAM_REPLICAS must be 1, 3 or 5, not {settings.stream_replicas}")
        if settings.store not in {"sqlite", "postgres"}:
            raise ValueError(f"{ENV_PREFIX}STORE must be 'sqlite' or 'postgres', not {settings.store!r}")
        if settings.store == "postgres" and not settings.postgres_url:
            raise ValueError(f"{ENV_PREFIX}STORE=postgres needs {ENV_PREFIX}POSTGRES_URL")
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


def parse_partition(value: str) -> tuple[int, int]:
    """``"i/k"`` -> ``(i, k)``: replica ``i`` (from 0) of ``k`` replicas of a derived service."""
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}PARTITION must be '<index>/<count>', e.g. '0/2', not {value!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"{ENV_PREFIX}PARTITION {value!r}: the index must be from 0 to count - 1")
    return index, count
