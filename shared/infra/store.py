"""The event store: eventsourcing's recorders with a msgspec mapper, on SQLite (default) or PostgreSQL.

The mapper stores the contract structs' own JSON bytes (optionally encrypted with eventsourcing's cipher), so the
store, the wire and the auditor read the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    StoredEvent,
    TrackingRecorder,
    Transcoder,
)
from eventsourcing.sqlite import SQLiteAggregateRecorder
from eventsourcing.utils import get_topic, resolve_topic

from .retry import retry_on_conflict, sleep_backoff
from .settings import Settings


@functools.cache
def _decoder(topic: str) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(resolve_topic(topic))


_ENCODER = msgspec.json.Encoder()


class MsgspecMapper(Mapper[Any]):
    """Maps msgspec-struct domain events to stored events and back."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = _ENCODER.encode(domain_event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return _decoder(stored_event.topic).decode(self.plaintext(stored_event))

    def plaintext(self, stored_event: StoredEvent) -> bytes:
        state = stored_event.state
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return state


class NullTranscoder(Transcoder):
    """The msgspec mapper encodes by itself; eventsourcing still wants a transcoder object."""

    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError("MsgspecMapper does not use a transcoder")

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError("MsgspecMapper does not use a transcoder")


def postgres_env_from_url(url: str, *, dbname: str | None = None) -> dict[str, str]:
    """eventsourcing settings from a ``postgresql://`` URL.

    Accepts ``postgresql://user:password@host:port/dbname`` (also the
    ``postgres://`` scheme).  User, password and database name are
    percent-decoded.  A unix-socket directory can be given as
    ``postgresql://user@/dbname?host=/run/postgresql``.  The port defaults to
    5432 and the password to ``""``.

    Args:
        url: The server URL, e.g. the value of ``REINTEGRATION_TEST_POSTGRES_URL``.
        dbname: Use this database instead of the one in the URL.

    Raises:
        ValueError: for another scheme, or if no host or database is given.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        msg = f"not a postgresql:// URL: {parts.scheme!r}"
        raise ValueError(msg)
    query = parse_qs(parts.query)
    host = unquote(parts.hostname or "") or (query.get("host") or [""])[0]
    if not host:
        msg = "PostgreSQL URL has no host (and no ?host= socket directory)"
        raise ValueError(msg)
    name = dbname or unquote(parts.path.lstrip("/"))
    if not name:
        msg = "PostgreSQL URL has no database name"
        raise ValueError(msg)
    port = parts.port or int((query.get("port") or ["5432"])[0])
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": name,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or "") or (query.get("user") or ["postgres"])[0],
        "POSTGRES_PASSWORD": unquote(parts.password or "") or (query.get("password") or [""])[0],
    }


def postgres_env(url: str) -> dict[str, str]:
    """eventsourcing's settings for the store at ``url``, with the pool and timeouts the services use."""
    return {
        **postgres_env_from_url(url),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_POOL_SIZE": "5",
        "POSTGRES_MAX_OVERFLOW": "10",
        "POSTGRES_LOCK_TIMEOUT": "5",
        "APPLICATION_RECORDER_TOPIC": "shared.infra.postgres:UnpipelinedPostgresRecorder",
    }


def store_env(settings: Settings, service: str) -> dict[str, str]:
    """eventsourcing environment for ``service``'s own store (one SQLite file, or one PostgreSQL schema)."""
    env: dict[str, str] = {
        "MAPPER_TOPIC": get_topic(MsgspecMapper),
        "TRANSCODER_TOPIC": get_topic(NullTranscoder),
        "AGGREGATE_CACHE_MAXSIZE": str(settings.case_cache_size),
        # Aggregates are immutable structs: no need to copy them out of the cache.
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }
    if settings.store == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env.update(
            {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(settings.data_dir / f"{service}.sqlite"),
                "SQLITE_LOCK_TIMEOUT": "5",
            }
        )
    else:
        assert settings.postgres_url
        env.update(postgres_env(settings.postgres_url))
        env["POSTGRES_SCHEMA"] = service
    if settings.cipher_key:
        env["CIPHER_TOPIC"] = "eventsourcing.cipher:AESCipher"
        env["CIPHER_KEY"] = settings.cipher_key
    return env


def read_only_env(settings: Settings, service: str) -> dict[str, str] | None:
    """eventsourcing settings that open ``service``'s store read-only (adding to the environment
    :func:`store_env` gives); ``None`` when its SQLite file does not exist. A PostgreSQL schema without tables
    opens as an empty store (:func:`events_table_exists`); :func:`store_exists` tells the two apart."""
    env = {"CREATE_TABLE": "n"}
    if settings.store == "sqlite":
        path = (settings.data_dir / f"{service}.sqlite").resolve()
        if not path.exists():
            return None
        env["SQLITE_DBNAME"] = f"{path.as_uri()}?mode=ro"
    return env


def store_exists(settings: Settings, service: str) -> bool:
    """Whether ``service`` has a store to read: its SQLite file, or a PostgreSQL schema with tables."""
    if settings.store == "sqlite":
        return (settings.data_dir / f"{service}.sqlite").exists()
    with _connect(settings) as conn:
        found = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s", (service,)).fetchone()
    return found is not None


def missing_store(settings: Settings, service: str) -> str:
    """What to tell an operator whose folder holds no ``service`` store: the file looked for, and a folder below
    that holds one (``demo`` writes ``data/demo``), if any."""
    if settings.store != "sqlite":
        return f"no {service} store in the PostgreSQL database (schema {service!r} has no tables): has the service run?"
    path = settings.data_dir / f"{service}.sqlite"
    found = sorted(p.parent for p in settings.data_dir.glob(f"*/{service}.sqlite"))
    hint = (f"; {found[0]} holds one: --data-dir {found[0]} (or REINTEGRATION_DATA_DIR)" if found else
            "; give the folder `up` or `demo` writes with --data-dir (or REINTEGRATION_DATA_DIR)")
    return f"no {service} store at {path}{hint}"


def _connect(settings: Settings) -> Any:
    import psycopg

    params = postgres_env(settings.postgres_url or "")
    return psycopg.connect(
        dbname=params["POSTGRES_DBNAME"],
        host=params["POSTGRES_HOST"],
        port=params["POSTGRES_PORT"],
        user=params["POSTGRES_USER"],
        password=params["POSTGRES_PASSWORD"] or None,
        connect_timeout=5,
        autocommit=True,
    )


@contextlib.contextmanager
def setup_lock(settings: Settings, service: str) -> Iterator[None]:
    """Hold while a service's application is constructed (it creates its schema's tables): PostgreSQL's
    ``CREATE ... IF NOT EXISTS`` races between replicas that start together (duplicate key in the catalog, "tuple
    concurrently updated"), so one replica at a time creates, the others find the tables there. SQLite: nothing."""
    if settings.store != "postgres":
        yield
        return
    key = zlib.crc32(f"reintegration.store.{service}".encode())
    with _connect(settings) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def tracking_recorder(app: Any, settings: Settings | None = None, service: str = "",
                      attempts: int = 5) -> TrackingRecorder:
    """``app``'s tracking recorder (for a relay or a timer writer), whose construction creates the tracking table.
    Replicas starting together race there: on PostgreSQL one at a time creates it (:func:`setup_lock`, given the
    settings); on SQLite both may find no table, and the second one's migration record then collides
    (``IntegrityError``); it is built again, after a short backoff, and finds the table made."""
    lock = setup_lock(settings, f"{service}.tracking") if settings is not None else contextlib.nullcontext()
    with lock:
        recorder: TrackingRecorder = retry_on_conflict(
            app.factory.tracking_recorder, attempts=attempts, what=f"{service or 'the'} tracking table",
            pause=sleep_backoff(first=0.05, cap=0.5),
        )
        return recorder


def prepare_store(settings: Settings, service: str) -> dict[str, str]:
    """Create what the store needs before eventsourcing builds its tables; return the environment. Construct the
    application inside :func:`setup_lock`."""
    env = store_env(settings, service)
    if settings.store == "postgres":
        with setup_lock(settings, f"{service}.schema"), _connect(settings) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{service}"')
    return env


class StoreKeyError(Exception):
    """A store's events cannot be read with this process's cipher key: it has none and they are encrypted, or its
    key is not the one they were written with. The message says which and what to set."""


def check_cipher(app: Any) -> None:
    """Raise :class:`StoreKeyError` when ``app``'s store cannot be read with its cipher key: its first, middle and
    last stored events all fail to decrypt (one readable event shows the key is right: an unreadable single event is
    damage, which ``audit verify`` names, not a wrong key). A store without events or tables passes."""
    try:
        last = app.recorder.max_notification_id() or 0
    except Exception:  # noqa: BLE001 - no table yet (a store opened without creating one): nothing to read
        return
    failed = 0
    for position in sorted({1, (last + 1) // 2, last} - {0}):
        notifications = app.recorder.select_notifications(position, 1)
        if not notifications:
            continue
        try:
            msgspec.json.decode(app.mapper.plaintext(notifications[0]))
            return
        except Exception:  # noqa: BLE001 - any failure to decrypt or parse counts against the key
            failed += 1
    if not failed:
        return
    if app.mapper.cipher is None:
        raise StoreKeyError(f"the {app.name} store's events are encrypted (or unreadable): set "
                            "REINTEGRATION_CIPHER_KEY to the key the deployment writes them with")
    raise StoreKeyError(f"REINTEGRATION_CIPHER_KEY does not decrypt the {app.name} store's events: they were written "
                        "with another key, or without one")


def logged_events(app: Any, start: int = 1, batch: int = 1000) -> Iterator[tuple[int, Any]]:
    """``(position, domain event)`` of an application's notification log from ``start``, in order, read in pages of
    ``batch``: what every reader of a whole store's log (rebuild, checks, benchmarks) walks through."""
    position = start
    while notifications := app.recorder.select_notifications(position, batch):
        for notification in notifications:
            yield notification.id, app.mapper.to_domain_event(notification)
        position = notifications[-1].id + 1


def events_table_exists(recorder: ApplicationRecorder) -> bool:
    """Whether ``recorder``'s table of stored events exists: a store opened without creating its tables
    (``CREATE_TABLE=n``, as the auditor opens them) has none until its service first ran."""
    if isinstance(recorder, SQLiteAggregateRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                           (recorder.events_table_name,))
            return cursor.fetchone() is not None
    from eventsourcing.postgres import PostgresAggregateRecorder  # psycopg: only for PostgreSQL stores

    if isinstance(recorder, PostgresAggregateRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                           (recorder.datastore.schema, recorder.events_table_name))
            return cursor.fetchone() is not None
    return True  # a store without tables to create (in memory)
