"""The one process supervisor: children with their own command, environment and log file, started, watched,
restarted when they exit by themselves, and stopped in reverse order.

``reintegration up`` (:class:`reintegration.runtime.Runtime`) runs the services with it, and so does the lab (the
fault scenarios, the benchmarks, the demo)::

    supervisor = Supervisor()
    supervisor.add(Child("intake", python_module("reintegration", "serve", "intake"), log_path=logs / "intake.log"))
    supervisor.start_all()
    try:
        while running:
            supervisor.supervise_once()  # restarts what exited, a crash loop at a growing pace
            time.sleep(0.5)
    finally:
        supervisor.stop()  # reverse order: SIGCONT, SIGTERM, SIGKILL after ``stop_timeout``

A child can be kept down on purpose (:meth:`Supervisor.kill` holds it until :meth:`Supervisor.start`), paused and
continued (:meth:`Supervisor.signal`), and limited in the size of the files it writes
(:meth:`Supervisor.limit_file_size`: what a full disk does to a store). Each child runs in its own session, so a
Ctrl-C in the terminal reaches the supervisor only, which then stops the children in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import structlog

from shared.infra.retry import Backoff

log = structlog.get_logger("supervisor")

#: A child that exits within this many seconds of its start is crash-looping: its restarts wait a growing delay.
CRASH_WINDOW_S = 2.0


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs ``python -m <module> <args>`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


class ChildExitedError(RuntimeError):
    """A child that should be running has exited."""

    def __init__(self, child: Child) -> None:
        self.name = child.name
        self.code = child.exit_code
        self.log_path = child.log_path
        where = f"; see {child.log_path}" if child.log_path is not None else ""
        super().__init__(f"{child.name} exited with {child.exit_code}{where}")


@dataclass
class Child:
    """One supervised process."""

    name: str
    #: The command it runs (see :func:`python_module`).
    command: Sequence[str]
    #: Its own environment, on top of this process's.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Where its stdout and stderr go (appended across restarts); ``None``: nowhere.
    log_path: Path | None = None
    #: What it runs, when several children run the same thing (``deadlines`` for the replica ``deadlines-1``).
    service: str = ""
    #: Output through a pipe this process copies into the log: a file-size limit on the child must not also stop
    #: it writing its log.
    pipe_output: bool = False
    #: A file-size limit (bytes) set on the process as soon as it starts (and after each restart).
    fsize_limit: int | None = None
    #: The signal that asks it to stop (``SIGINT`` for a profiler that writes its output on an interrupt).
    stop_signal: signal.Signals = signal.SIGTERM
    #: Where it serves ``/metrics``, ``/healthz`` and ``/readyz`` (``None``: it serves none).
    metrics_port: int | None = None
    #: Down on purpose (a fault in progress, or stopped): :meth:`Supervisor.supervise_once` leaves it down.
    held: bool = False
    process: subprocess.Popen[bytes] | None = None
    #: How many times it was started, and restarted after exiting by itself.
    starts: int = 0
    restarts: int = 0
    started_at: float = 0.0
    _backoff: Backoff = field(default_factory=lambda: Backoff(first=1.0, cap=30.0))
    _restart_at: float | None = None
    _pump: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.service = self.service or self.name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """Its process id while it runs."""
        return self.process.pid if self.process is not None and self.running else None

    @property
    def exit_code(self) -> int | None:
        """Its exit code once it has exited (``None`` while it runs or before it started)."""
        return None if self.process is None else self.process.poll()


def stop_process(process: subprocess.Popen[bytes], timeout: float, *, name: str,
                 stop_signal: signal.Signals = signal.SIGTERM, grace: float = 0.0) -> None:
    """Stop a process this one started, by its pid: wait ``grace`` seconds for it to exit by itself, continue it
    (a paused one), send ``stop_signal``, and SIGKILL it after ``timeout`` seconds. Always reaped."""
    if process.poll() is None and grace > 0:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            process.send_signal(stop_signal)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("did not stop in time; killing it", child=name, pid=process.pid)
            process.kill()
            process.wait()


class Supervisor:
    """Children in the order they were added; each started, restarted and stopped by its pid."""

    def __init__(self, *, stop_timeout: float = 15.0, crash_window: float = CRASH_WINDOW_S,
                 state_file: Path | None = None) -> None:
        self.children: dict[str, Child] = {}
        self.stop_timeout = stop_timeout
        self.crash_window = crash_window
        #: A JSON file kept up to date with each child's state (``reintegration status`` reads it).
        self.state_file = state_file
        self._state = ""

    def state(self) -> list[dict[str, object]]:
        """Each child: name, service, pid, running, held, starts, restarts, exit code, metrics port."""
        return [{"name": c.name, "service": c.service, "pid": c.pid, "running": c.running, "held": c.held,
                 "starts": c.starts, "restarts": c.restarts, "exit_code": c.exit_code, "metrics_port": c.metrics_port}
                for c in self.children.values()]

    def write_state(self) -> None:
        """Write :meth:`state` to :attr:`state_file` when it changed (atomically: a reader never sees half)."""
        if self.state_file is None:
            return
        text = json.dumps({"supervisor_pid": os.getpid(), "children": self.state()}, indent=1)
        if text == self._state:
            return
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.state_file)
        self._state = text

    def add(self, child: Child) -> Child:
        if child.name in self.children:
            raise ValueError(f"a child named {child.name!r} is supervised already")
        self.children[child.name] = child
        return child

    def start_all(self) -> None:
        for name in self.children:
            self.start(name)

    def start(self, name: str) -> Child:
        """Start ``name`` (again) unless it runs; a held child is no longer held."""
        child = self.children[name]
        child.held = False
        child._restart_at = None
        if child.running:
            return child
        if child.log_path is not None:
            child.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **child.env}
        if child.pipe_output:
            child.process = subprocess.Popen(child.command, env=env, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        else:
            with _output(child.log_path) as out:
                child.process = subprocess.Popen(child.command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True)
        if child.fsize_limit is not None:
            self.limit_file_size(name, child.fsize_limit)
        if child.pipe_output:
            child._pump = threading.Thread(target=_pump, args=(child.process, child.log_path), daemon=True,
                                           name=f"log-{name}")
            child._pump.start()
        child.starts += 1
        child.started_at = time.monotonic()
        log.info("started", child=name, pid=child.process.pid, log=str(child.log_path))
        self.write_state()
        return child

    def kill(self, name: str, *, hold: bool = True) -> None:
        """SIGKILL ``name`` and reap it; it stays down (held) until :meth:`start`. ``hold=False``: a crash, which
        :meth:`supervise_once` restarts as it restarts any child that exited by itself."""
        child = self.children[name]
        child.held = hold
        if child.process is not None and child.running:
            os.kill(child.process.pid, signal.SIGKILL)
            child.process.wait()
        self.write_state()

    def restart(self, name: str) -> Child:
        self.kill(name)
        return self.start(name)

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to ``name`` if it runs (SIGSTOP and SIGCONT pause and continue it)."""
        pid = self.children[name].pid
        if pid is not None:
            os.kill(pid, sig)

    def limit_file_size(self, name: str, limit: int | None) -> None:
        """Set (or lift, with ``None``) the file-size limit of ``name``, now and after each restart."""
        child = self.children[name]
        child.fsize_limit = limit
        if child.pid is not None:
            value = resource.RLIM_INFINITY if limit is None else limit
            resource.prlimit(child.pid, resource.RLIMIT_FSIZE, (value, resource.RLIM_INFINITY))  # soft only

    def alive(self) -> dict[str, bool]:
        return {name: child.running for name, child in self.children.items()}

    def exited(self) -> list[Child]:
        """Children that exited by themselves (neither held nor running)."""
        return [c for c in self.children.values() if c.process is not None and not c.running and not c.held]

    def check_alive(self, names: Iterable[str] | None = None) -> None:
        """Raise :class:`ChildExitedError` for the first child (of ``names``, or any) that exited by itself."""
        wanted = set(self.children if names is None else names)
        for child in self.exited():
            if child.name in wanted:
                raise ChildExitedError(child)

    def supervise_once(self) -> list[str]:
        """Restart the children that exited by itself; their names. A child that exited within ``crash_window``
        seconds of its start is restarted after a growing delay (a crash loop does not spin); one that ran longer
        is restarted at once."""
        restarted = []
        now = time.monotonic()
        for child in self.exited():
            if child._restart_at is None:
                crashed = bool(child.started_at) and now - child.started_at < self.crash_window
                if not crashed:
                    child._backoff.reset()
                child._restart_at = now + (child._backoff.next() if crashed else 0.0)
                log.warning("exited; restarting", child=child.name, code=child.exit_code,
                            after_s=round(child._restart_at - now, 1))
            if now >= child._restart_at:
                child.restarts += 1
                self.start(child.name)
                restarted.append(child.name)
        self.write_state()
        return restarted

    def supervise_until(self, done: Callable[[], bool], interval: float = 0.5) -> None:
        """:meth:`supervise_once` every ``interval`` seconds until ``done()`` (what ``up`` does while it runs)."""
        while not done():
            self.supervise_once()
            time.sleep(interval)

    async def watch(self, interval: float = 0.5) -> None:
        """:meth:`supervise_once` every ``interval`` seconds until cancelled, beside an event loop's other work."""
        while True:
            await asyncio.to_thread(self.supervise_once)
            await asyncio.sleep(interval)

    def stop(self, names: Iterable[str] | None = None, *, grace: float = 0.0) -> None:
        """Stop the children (``names``, or all) in reverse order of their adding, each before the next: SIGCONT,
        their stop signal, SIGKILL after ``stop_timeout``. ``grace``: seconds each may take to exit by itself
        first. They stay down (held)."""
        wanted = set(self.children if names is None else names)
        stopping = [c for c in reversed(self.children.values()) if c.name in wanted]
        for child in stopping:
            child.held = True
            if child.process is not None:
                stop_process(child.process, self.stop_timeout, name=child.name, stop_signal=child.stop_signal,
                             grace=grace)
        for child in stopping:
            if child._pump is not None:
                child._pump.join(timeout=5)
                child._pump = None
        self.write_state()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[int | IO[bytes]]:
    if path is None:
        yield subprocess.DEVNULL
    else:
        with path.open("ab") as out:
            yield out


def _pump(process: subprocess.Popen[bytes], path: Path | None) -> None:
    """Copy the child's output into its log until it closes."""
    assert process.stdout is not None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(path.open("ab")) if path is not None else None
        for line in iter(process.stdout.readline, b""):
            if out is not None:
                out.write(line)
                out.flush()
    process.stdout.close()
