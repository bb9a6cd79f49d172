"""The one "wait until caught up" poller: ask a question until its answer is yes, or give up naming what was awaited.

Readiness of a server, a service's consumer, every store holding every event: each is a check polled with a
deadline, never a bare ``sleep``::

    wait_until(lambda: store.count() >= expected, timeout=60, what="intake store holds every event")
    await until(consumer_exists, timeout=30, interval=0.05, what="the deadlines consumer")

The check's answer is returned once it is truthy, or once ``ready(answer)`` where the answer is an observation
(levels, a reply or the error that came instead), ``times`` in a row for a state that must hold, not flicker. On
the deadline :class:`WaitTimeoutError` (a :class:`TimeoutError`) names ``what`` and carries the last answer seen.
A check may raise to stop the wait early (a child process that died, a task that failed).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """``what`` was not reached within ``timeout`` seconds; ``last`` is the check's last answer."""

    def __init__(self, what: str, timeout: float, last: Any) -> None:
        self.what = what
        self.timeout = timeout
        self.last = last
        super().__init__(f"{what}: not reached within {timeout:g} s (last seen: {last!r})")


class _Streak:
    """Counts truthy answers in a row."""

    def __init__(self, times: int) -> None:
        if times < 1:
            raise ValueError("times: at least 1")
        self.times = times
        self.count = 0

    def holds(self, answer: object) -> bool:
        self.count = self.count + 1 if answer else 0
        return self.count >= self.times


def wait_until(check: Callable[[], T], *, timeout: float, interval: float = 0.2, what: str, times: int = 1,
               ready: Callable[[T], object] = bool) -> T:
    """``check()`` every ``interval`` seconds until ``ready(answer)`` (by default: the answer is truthy) ``times`` in
    a row; that answer. Raises :class:`WaitTimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    streak = _Streak(times)
    while True:
        answer = check()
        if streak.holds(ready(answer)):
            return answer
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(what, timeout, answer)
        time.sleep(interval)


@overload
async def until(check: Callable[[], Awaitable[T]], *, timeout: float, interval: float = 0.2, what: str,
                times: int = 1, ready: Callable[[T], object] = bool) -> T: ...


@overload
async def until(check: Callable[[], T], *, timeout: float, interval: float = 0.2, what: str, times: int = 1,
                ready: Callable[[T], object] = bool) -> T: ...


async def until(check: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str, times: int = 1,
                ready: Callable[[Any], object] = bool) -> Any:
    """:func:`wait_until` inside an event loop: ``check`` may be a coroutine function; the loop runs meanwhile."""
    deadline = time.monotonic() + timeout
    streak = _Streak(times)
    while True:
        answer = check()
        if inspect.isawaitable(answer):
            answer = await answer
        if streak.holds(ready(answer)):
            return answer
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(what, timeout, answer)
        await asyncio.sleep(interval)
