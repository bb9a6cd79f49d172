"""The services' clock, passed in: every composition root takes a :data:`Clock` and hands it to what reads the time.

Production runs :func:`system_clock`. :func:`clock_from_env` gives an offset clock when
``REINTEGRATION_CHAOS_CLOCK_FILE`` names a file holding an offset in seconds (the clock-skew fault scenario, R11,
writes it and changes it while the process runs); the file is read again whenever it changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: A clock: the current time, timezone-aware UTC.
Clock = Callable[[], datetime]
#: Environment variable naming a file that holds this process's clock offset in seconds (fault scenario R11).
CLOCK_FILE_ENV = "REINTEGRATION_CHAOS_CLOCK_FILE"


def system_clock() -> datetime:
    return datetime.now(UTC)


class OffsetClock:
    """The system clock shifted by the offset (seconds) held in ``path``; re-read when the file changes. A file
    that is missing or unreadable keeps the last offset read (0 at first)."""

    def __init__(self, path: str | os.PathLike[str], base: Clock = system_clock) -> None:
        self.path = Path(path)
        self.base = base
        self._stamp: int | None = None
        self._offset = 0.0

    def offset(self) -> float:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return self._offset
        if stamp != self._stamp:
            try:
                self._offset = float(self.path.read_text().strip() or 0)
                self._stamp = stamp
            except (OSError, ValueError):
                pass
        return self._offset

    def __call__(self) -> datetime:
        return self.base() + timedelta(seconds=self.offset())


def clock_from_env(environ: Mapping[str, str] | None = None) -> Clock:
    """The clock a process runs with: the system clock, or an :class:`OffsetClock` where
    ``REINTEGRATION_CHAOS_CLOCK_FILE`` is set."""
    path = (os.environ if environ is None else environ).get(CLOCK_FILE_ENV)
    return OffsetClock(path) if path else system_clock
