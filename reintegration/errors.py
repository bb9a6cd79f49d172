"""Expected failures of an operator command, each said in one line with what to do and a documented exit code.

A command that meets a missing or wrong setting, an unreachable server or database, a refused permission, a missing
or wrong cipher key, or a store it cannot read ends with one line on stderr and one of :data:`EXIT_CODES`;
``reintegration --debug ...`` (or ``REINTEGRATION_DEBUG=1``) shows the whole traceback instead. Anything else is a
defect and keeps its traceback.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from shared.infra.parties import PartiesError
from shared.infra.settings import SettingsError
from shared.infra.store import StoreKeyError
from shared.rulebook.model import RuleStartError

from . import connect

#: Exit codes of every command (README, "Exit codes").
OK, NEGATIVE, USAGE, UNREACHABLE, REFUSED, CIPHER, STORE, DEFECT = 0, 1, 2, 3, 4, 5, 6, 70
EXIT_CODES: Final = {
    OK: "done",
    NEGATIVE: "done, and the answer is negative: differences, rejections, nothing recorded, parked cases",
    USAGE: "a usage error, a setting that cannot be used, or no data where the command looked",
    UNREACHABLE: "the NATS server or the database cannot be reached",
    REFUSED: "the NATS server refused the credentials or the permission",
    CIPHER: "the stores' cipher key is missing or is not the one they were written with",
    STORE: "a store that another version of reintegration wrote, or no reintegration store at all",
    DEFECT: "a defect: the traceback says where (please report it with the command that led to it)",
}

#: Where the operator's settings of a running system are (``up`` and ``demo`` write them).
FIND_SETTINGS: Final = "`reintegration env --data-dir DIR` prints the settings of the system running with data in DIR"


def describe(exc: BaseException) -> tuple[str, int] | None:
    """What to tell the operator about ``exc`` and the exit code, or ``None`` when it is not an expected failure."""
    import nats.errors

    if isinstance(exc, StoreKeyError):
        return str(exc), CIPHER
    if isinstance(exc, SettingsError):
        return f"{exc}" + (" (README, Settings)" if str(exc).startswith("REINTEGRATION_") else ""), USAGE
    if isinstance(exc, RuleStartError):
        return f"REINTEGRATION_RULE_STARTS: {exc} (README, Settings)", USAGE
    if isinstance(exc, PartiesError):
        return str(exc), USAGE
    if isinstance(exc, FileNotFoundError) and str(exc.filename or "").endswith(".creds"):
        return (f"no credentials file {exc.filename}: set REINTEGRATION_NATS_CREDENTIALS to the operator's; "
                f"{FIND_SETTINGS}"), USAGE
    refused = connect.refusal()
    if isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in str(exc).lower():
        return (f"the NATS server refused these credentials: set REINTEGRATION_NATS_CREDENTIALS to the operator's; "
                f"{FIND_SETTINGS}"), REFUSED
    if refused is not None and isinstance(exc, TimeoutError | nats.errors.TimeoutError | nats.errors.Error):
        return (f"the NATS server refused: {refused}. Operator commands connect with the operator's credentials "
                f"(REINTEGRATION_NATS_CREDENTIALS); {FIND_SETTINGS}"), REFUSED
    if isinstance(exc, nats.errors.NoServersError | ConnectionRefusedError) or (
            isinstance(exc, TimeoutError | OSError) and connect.connecting()):
        return (f"cannot reach NATS at {connect.last_url() or 'the configured URL'}: start the system "
                f"(`reintegration up`) or point REINTEGRATION_NATS_URL at it; {FIND_SETTINGS}"), UNREACHABLE
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc)
        if "no such column" in text or "no such table" in text or "not a database" in text:
            return f"the SQLite store cannot be read ({text}): another version of reintegration wrote it", STORE
        if "unable to open" in text:
            return f"the SQLite store cannot be opened ({text}): check REINTEGRATION_DATA_DIR", USAGE
    store = _postgres(exc)
    if store is not None:
        return store
    return None


def _postgres(exc: BaseException) -> tuple[str, int] | None:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(exc, psycopg.errors.UndefinedColumn | psycopg.errors.UndefinedTable):
        return f"the PostgreSQL store cannot be read ({exc}): another version of reintegration wrote it", STORE
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (f"cannot reach the PostgreSQL store ({first}): check REINTEGRATION_POSTGRES_URL; "
                f"{FIND_SETTINGS}"), UNREACHABLE
    return None
