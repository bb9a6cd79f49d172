"""The one backoff and the one optimistic-write retry of the code base.

* :class:`Backoff`: exponential delays (``first``, doubled each time, at most ``cap``) for waiting on something
  that is briefly unavailable (a store, a stream, a consumer), and :func:`backoff_delay` for the n-th delay of a
  redelivery.
* :func:`retry_on_conflict`: an optimistic write (load, decide, save) tried again when another writer recorded
  first (eventsourcing's ``IntegrityError`` on the aggregate's next version).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from eventsourcing.persistence import IntegrityError

T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential delays: ``next()`` gives ``first``, then twice that, ... never more than ``cap``."""

    first: float = 0.1
    cap: float = 5.0
    factor: float = 2.0
    _current: float | None = field(default=None, init=False, repr=False)

    def next(self) -> float:
        """The delay to wait now; the following one grows."""
        delay = self.first if self._current is None else self._current
        self._current = min(delay * self.factor, self.cap)
        return min(delay, self.cap)

    def reset(self) -> None:
        """Back to ``first`` (what was waited for came back)."""
        self._current = None


def backoff_delay(attempt: int, *, first: float, cap: float, factor: float = 2.0) -> float:
    """The delay before attempt ``attempt`` (1 for the first retry): ``first * factor ** (attempt - 1)``, at most
    ``cap``."""
    exponent = max(attempt - 1, 0)
    if first * factor ** min(exponent, 64) >= cap:
        return cap
    return first * factor**exponent


class WriteConflictError(RuntimeError):
    """An optimistic write lost to other writers on every attempt."""


def retry_on_conflict(attempt: Callable[[], T], *, attempts: int, what: str,
                      pause: Callable[[int], None] | None = None) -> T:
    """``attempt()`` (load, decide, save) until it saves without an ``IntegrityError``: another writer recorded the
    same aggregate version first, so the next attempt loads again and decides on what is there now. ``pause(n)``
    runs between attempts (none by default: a conflict means the other writer is done). Raises
    :class:`WriteConflictError` naming ``what`` after ``attempts`` conflicts."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except IntegrityError:
            if pause is not None and number < attempts:
                pause(number)
    raise WriteConflictError(f"{what}: another writer recorded first on each of {attempts} attempts")


def sleep_backoff(first: float, cap: float) -> Callable[[int], None]:
    """A ``pause`` for :func:`retry_on_conflict` that sleeps :func:`backoff_delay` seconds."""
    return lambda number: time.sleep(backoff_delay(number, first=first, cap=cap))
