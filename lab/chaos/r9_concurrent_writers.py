"""R9 concurrent writers: writers with their own application (own connection, own cache) on shared cases, on
SQLite and PostgreSQL: every command applied exactly once (a conflict is answered and retried), versions without
gaps."""

from __future__ import annotations

import random
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import structlog

from lab.chaos.report import Row, scenario
from lab.chaos.system import EMPLOYER, FUND, OHS, PARTIES, datetime_now, start_postgres
from shared.events import reports as r
from shared.events.common import PartyKind
from shared.events.replies import RejectionCode
from shared.infra.retry import Backoff
from shared.infra.settings import Settings

log = structlog.get_logger("chaos.input")
# ================================================================================================ R9 concurrent writers


@dataclass
class WriterTally:
    applied: int = 0
    #: acceptances that found the report already recorded (an earlier attempt had stored it)
    already: int = 0
    #: conflicts answered to the writer (``conflict``, retried) and optimistic-write losses inside ``submit``
    conflicts: int = 0
    write_conflicts: int = 0
    unavailable: int = 0
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def concurrent_writers(settings: Settings, writers: int, commands: int, cases: int, seed: int) -> dict[str, Any]:
    """``writers`` threads, each with its own intake application (own connections, own cache: what several intake
    replicas are), send ``commands`` reports each on ``cases`` shared cases; every command is retried on a
    conflict until it is applied. Returns the figures and what the store holds."""
    from eventsourcing.persistence import IntegrityError, PersistenceError

    from lab.generator import insz
    from services.intake.application import IntakeApplication
    from services.intake.decide import Rejection
    from shared.infra.store import prepare_store

    class CountingIntake(IntakeApplication):
        """The intake application, counting the optimistic writes it loses (and then decides again)."""

        write_conflicts = 0

        def save(self, *objs: Any, **kwargs: Any) -> Any:
            try:
                return super().save(*objs, **kwargs)
            except IntegrityError:
                self.write_conflicts += 1
                raise

    rng = random.Random(seed)
    fund = PARTIES[PartyKind.HEALTH_FUND]
    now = datetime_now()
    setup = CountingIntake(env=prepare_store(settings, IntakeApplication.name))
    case_ids = []
    start = date(2024, 1, 10)
    for _ in range(cases):
        report = r.IncapacityReported(report_id=uuid.uuid4(), insz=insz(rng), enterprise_number=EMPLOYER,
                                      staff_count=120, health_fund=FUND, occupational_health_service=OHS,
                                      start_date=start, cause=r.Cause.ILLNESS)
        case_ids.append(setup.submit(fund, report, now).case_id)
    plans = [[r.ReturnToWorkExaminationMissed(report_id=uuid.uuid4(), case_id=rng.choice(case_ids),
                                              missed_on=start + timedelta(days=rng.randint(1, 500)),
                                              justified=rng.random() < 0.5)
              for _ in range(commands)] for _ in range(writers)]
    tallies = [WriterTally() for _ in range(writers)]
    barrier = __import__("threading").Barrier(writers)

    # Built one after another: built at the same moment, PostgreSQL's catalog races (see ``startup_race``).
    apps = [CountingIntake(env=prepare_store(settings, IntakeApplication.name)) for _ in range(writers)]

    def write(index: int) -> None:
        tally = tallies[index]
        app = apps[index]
        try:
            barrier.wait()
            for report in plans[index]:
                busy = Backoff(first=0.01, cap=0.5)
                for _attempt in range(200):
                    try:
                        reply = app.submit(fund, report, now)
                    except Rejection as exc:
                        if exc.code is RejectionCode.CONFLICT:
                            tally.conflicts += 1
                            continue
                        tally.refused.append(f"{report.report_id}: {exc.code} {exc.message}")
                        break
                    except PersistenceError as exc:  # the store was briefly busy: same report again
                        tally.unavailable += 1
                        if tally.unavailable <= 3:
                            log.info("store busy", error=str(exc))
                        time.sleep(busy.next())
                        continue
                    if reply.duplicate:
                        tally.already += 1
                    else:
                        tally.applied += 1
                    break
                else:
                    tally.errors.append(f"{report.report_id}: not applied after 200 attempts")
        except Exception as exc:  # noqa: BLE001 - reported in the row
            tally.errors.append(f"writer {index}: {type(exc).__name__}: {exc}")
        finally:
            tally.write_conflicts = app.write_conflicts
            app.close()

    started = time.perf_counter()
    threads = [__import__("threading").Thread(target=write, args=(i,), name=f"writer-{i}") for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    # What the store holds: every case's versions 1..n without a gap, every command's report once.
    stored: Counter[uuid.UUID] = Counter()
    gaps = 0
    for case_id in case_ids:
        events = list(setup.events.get(case_id))
        versions = [e.version for e in events]
        gaps += len(set(range(1, max(versions) + 1)) - set(versions)) + (len(versions) - len(set(versions)))
        stored.update(e.report.report_id for e in events)
    setup.close()
    sent = [report.report_id for plan in plans for report in plan]
    lost = sum(1 for rid in sent if stored[rid] == 0)
    doubled = sum(1 for rid in sent if stored[rid] > 1)
    return {
        "startup_failures": startup_race(settings, writers),
        "commands": len(sent), "applied": sum(t.applied for t in tallies), "already": sum(t.already for t in tallies),
        "conflicts": sum(t.conflicts for t in tallies), "write_conflicts": sum(t.write_conflicts for t in tallies),
        "unavailable": sum(t.unavailable for t in tallies), "refused": [x for t in tallies for x in t.refused][:10],
        "errors": [x for t in tallies for x in t.errors][:10], "lost": lost, "doubled": doubled, "gaps": gaps,
        "events": sum(stored.values()), "cases": cases, "seconds": round(elapsed, 1),
    }


def startup_race(settings: Settings, count: int) -> list[str]:
    """Start ``count`` intake applications on the same (existing) store at the same moment: what fails."""
    import threading

    from services.intake.application import build_intake

    barrier = threading.Barrier(count)
    failures: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            build_intake(settings).close()
        except Exception as exc:  # noqa: BLE001 - the figure
            failures.append(f"{type(exc).__name__}: {exc}"[:160])

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@scenario("R9", "concurrent writers")
def concurrent_writers_scenario(workdir: Path, quick: bool) -> Row:
    writers, commands, cases = (10, 20, 20) if quick else (10, 100, 20)
    shutil.rmtree(workdir / "sqlite", ignore_errors=True)
    runs: dict[str, dict[str, Any]] = {}
    runs["SQLite"] = concurrent_writers(Settings(data_dir=workdir / "sqlite"), writers, commands, cases, 9)
    note = ""
    shutil.rmtree(workdir / "pgdata", ignore_errors=True)
    server, url = start_postgres(workdir)
    if server is None:
        note = url
    else:
        try:
            runs["PostgreSQL"] = concurrent_writers(
                Settings(data_dir=workdir / "pg-files", store="postgres", postgres_url=url), writers, commands, cases,
                9)
        finally:
            server.stop()
    ok = all(not x["lost"] and not x["doubled"] and not x["gaps"] and not x["errors"] and not x["refused"]
             and x["applied"] + x["already"] == x["commands"] and x["events"] == x["commands"] + x["cases"]
             for x in runs.values())
    detail = "; ".join(
        f"{store}: {x['applied']:,}/{x['commands']:,} applied ({x['already']} found already recorded), conflicts "
        f"answered and retried {x['conflicts']:,}, optimistic writes lost and redecided {x['write_conflicts']:,}, "
        f"store busy {x['unavailable']}, gaps {x['gaps']}, lost {x['lost']}, doubled {x['doubled']}, "
        f"{x['seconds']} s"
        + (f"; {len(x['startup_failures'])} of {writers} applications started at the same moment failed "
           f"({x['startup_failures'][0]})" if x["startup_failures"] else "")
        for store, x in runs.items())
    detail = (f"{writers} writers x {commands} commands on {cases} shared cases; " + detail
              + (f"; {note}" if note else ""))
    return Row(id="R9", title="concurrent writers", faults=sum(x["write_conflicts"] + x["conflicts"]
                                                                for x in runs.values()),
               sent=sum(x["commands"] for x in runs.values()), lost=sum(x["lost"] for x in runs.values()),
               doubled=sum(x["doubled"] for x in runs.values()), recover_s=None,
               pass_figure="every command applied once or rejected with a conflict and retried; 0 gaps in versions",
               passed=ok and (server is not None or bool(note)), detail=detail,
               extra={"runs": runs, "postgres": "skipped" if server is None else "ran", "note": note})


