"""The intake application over a real event store, the same body on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import msgspec
import pytest

from services.intake.application import build_intake
from services.intake.decide import Rejection
from shared.events import reports as r
from shared.events.replies import RejectionCode
from shared.infra.postgres import UnpipelinedPostgresRecorder
from shared.infra.settings import Settings
from shared.infra.store import read_only_env
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, NOW, OHS_PARTY, assessment, incapacity, plan, request, rid


def test_reports_are_recorded_and_the_case_rebuilds(settings: Settings) -> None:
    app = build_intake(settings)
    opened = app.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), NOW)
    case_id = opened.case_id
    app.submit(EMPLOYER_PARTY, request(case_id, date(2024, 4, 10)), NOW)
    app.submit(OHS_PARTY, assessment(case_id, date(2024, 5, 2), "BE-2022", "A"), NOW)
    accepted = app.submit(EMPLOYER_PARTY, plan(case_id, date(2024, 6, 3)), NOW)
    assert (accepted.version, accepted.regime) == (4, "BE-2022")
    app.close()

    reopened = build_intake(settings)  # a restarted intake: everything comes back from the store
    case = reopened.get_case(case_id)
    assert case.version == 4
    assert case.trajectory is not None and case.trajectory.plan_kind == "plan"
    assert [e.type for e in reopened.case_events(case_id)] == [
        "incapacity_reported.v1", "trajectory_requested.v1", "assessment_issued.v1", "plan_submitted.v1",
    ]
    assert reopened.get_case(case_id, version=2).trajectory.assessment is None  # type: ignore[union-attr]
    reopened.close()


def test_a_rejected_report_changes_nothing(settings: Settings) -> None:
    app = build_intake(settings)
    case_id = app.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), NOW).case_id
    before = app.recorder.max_notification_id()
    with pytest.raises(Rejection) as caught:
        app.submit(EMPLOYER_PARTY, plan(case_id, date(2024, 2, 1)), NOW)
    assert caught.value.code is RejectionCode.INVALID_STATE
    assert app.recorder.max_notification_id() == before
    assert app.get_case(case_id).version == 1
    app.close()


def test_the_same_report_twice_is_stored_once(settings: Settings) -> None:
    app = build_intake(settings)
    opening = incapacity(date(2024, 1, 10))
    first = app.submit(FUND_PARTY, opening, NOW)
    step = request(first.case_id, date(2024, 4, 10))
    accepted = app.submit(EMPLOYER_PARTY, step, NOW)
    again = app.submit(EMPLOYER_PARTY, step, NOW)
    assert again.duplicate and (again.event_ids, again.version) == (accepted.event_ids, accepted.version)
    assert app.submit(FUND_PARTY, opening, NOW).duplicate
    assert app.recorder.max_notification_id() == 2
    other = r.TrajectoryRequested(report_id=step.report_id, case_id=first.case_id,
                                  initiator=r.Initiator.EMPLOYER, received_on=date(2024, 4, 11))
    with pytest.raises(Rejection) as caught:
        app.submit(EMPLOYER_PARTY, other, NOW)
    assert caught.value.code is RejectionCode.REPORT_ID_REUSED
    with pytest.raises(Rejection) as exists:
        app.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), NOW)  # same incapacity, new report id
    assert exists.value.code is RejectionCode.CASE_EXISTS
    app.close()


def test_a_report_id_is_unique_per_party_across_all_its_cases(settings: Settings) -> None:
    """A corrected resend of an opening report under its first report id (another start date, another national
    number) is refused naming the original case and version instead of opening a second case; so is a report id of
    one case used on another; another party's report ids are its own; all of it holds after a restart and across
    a group commit, and a store written before the index is indexed when intake opens it."""
    app = build_intake(settings)
    if settings.store == "postgres":  # the project's recorder, never eventsourcing's pipelined one
        assert isinstance(app.recorder, UnpipelinedPostgresRecorder)
    opening = incapacity(date(2024, 1, 10))
    first = app.submit(FUND_PARTY, opening, NOW)
    corrected = msgspec.structs.replace(opening, start_date=date(2024, 1, 11))
    with pytest.raises(Rejection) as caught:
        app.submit(FUND_PARTY, corrected, NOW)
    assert caught.value.code is RejectionCode.REPORT_ID_REUSED and caught.value.field == "$.report_id"
    assert f"version 1 of case {first.case_id}" in caught.value.message
    other_worker = msgspec.structs.replace(opening, insz="90020199760")
    with pytest.raises(Rejection):
        app.submit(FUND_PARTY, other_worker, NOW)
    second = app.submit(FUND_PARTY, incapacity(date(2024, 3, 1)), NOW)  # another case, its own report id
    step = request(first.case_id, date(2024, 4, 10))
    app.submit(EMPLOYER_PARTY, step, NOW)
    elsewhere = r.TrajectoryRequested(report_id=step.report_id, case_id=second.case_id,
                                      initiator=r.Initiator.EMPLOYER, received_on=date(2024, 4, 10))
    with pytest.raises(Rejection) as reused:
        app.submit(EMPLOYER_PARTY, elsewhere, NOW)
    assert reused.value.code is RejectionCode.REPORT_ID_REUSED
    assert f"version 2 of case {first.case_id}" in reused.value.message
    # Another party may use the same id: report ids are each party's own.
    by_ohs = r.TrajectoryRequested(report_id=step.report_id, case_id=second.case_id,
                                   initiator=r.Initiator.WORKER, received_on=date(2024, 4, 12))
    assert not app.submit(OHS_PARTY, by_ohs, NOW).duplicate
    assert app.submit(FUND_PARTY, opening, NOW).duplicate  # the original resent is still its duplicate
    stored = app.recorder.max_notification_id()
    app.close()

    reopened = build_intake(settings)  # the index is in the store
    with pytest.raises(Rejection):
        reopened.submit(FUND_PARTY, corrected, NOW)
    # In one group commit: the second use of a report id in the batch is refused, the first recorded.
    third, fourth = incapacity(date(2024, 6, 3)), incapacity(date(2024, 7, 1))
    clash = msgspec.structs.replace(fourth, report_id=third.report_id)
    results = reopened.submit_batch([(FUND_PARTY, third, NOW), (FUND_PARTY, clash, NOW)])
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], Rejection) and results[1].code is RejectionCode.REPORT_ID_REUSED
    assert reopened.recorder.max_notification_id() == stored + 1
    reopened.close()


def test_a_store_written_before_the_report_index_is_indexed_when_intake_opens_it(tmp_path: Path) -> None:
    import sqlite3

    settings = Settings(data_dir=tmp_path)
    app = build_intake(settings)
    opening = incapacity(date(2024, 1, 10))
    first = app.submit(FUND_PARTY, opening, NOW)
    app.close()
    with sqlite3.connect(tmp_path / "intake.sqlite") as db:  # as an intake of the previous release left it
        db.execute("DELETE FROM report_ids")
    reader = build_intake(settings, **read_only_env(settings, "intake") or {})  # a reader writes nothing
    assert reader.get_case(first.case_id).version == 1
    reader.close()
    with sqlite3.connect(tmp_path / "intake.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM report_ids").fetchone() == (0,)
    reopened = build_intake(settings)
    with pytest.raises(Rejection) as caught:
        reopened.submit(FUND_PARTY, msgspec.structs.replace(opening, start_date=date(2024, 1, 12)), NOW)
    assert caught.value.code is RejectionCode.REPORT_ID_REUSED and str(first.case_id) in caught.value.message
    reopened.close()


def test_concurrent_writers_on_one_case_apply_each_report_once(settings: Settings) -> None:
    """Several intake instances (threads here, each its own application) race on one case."""
    setup = build_intake(settings)
    case_id = setup.submit(FUND_PARTY, incapacity(date(2020, 1, 6)), NOW).case_id
    setup.submit(FUND_PARTY, r.VocationalRehabilitationProposed(report_id=rid(), case_id=case_id,
                                                                proposed_on=date(2021, 1, 4)), NOW)
    setup.submit(FUND_PARTY, r.VocationalRehabilitationApproved(report_id=rid(), case_id=case_id,
                                                                approved_on=date(2021, 1, 5)), NOW)
    writers = [build_intake(settings) for _ in range(4)]
    results: list[str] = []
    lock = threading.Lock()

    def write(app: object, n: int) -> None:
        for i in range(10):
            report = r.TrainingHoursAttended(report_id=rid(), case_id=case_id, period_start=date(2021, 2, 1 + i),
                                             period_end=date(2021, 2, 1 + i), hours=r.TrainingHours("2"))
            for _ in range(20):
                try:
                    app.submit(FUND_PARTY, report, NOW)  # type: ignore[attr-defined]
                    with lock:
                        results.append("ok")
                    break
                except Rejection as exc:
                    assert exc.code is RejectionCode.CONFLICT
            else:
                raise AssertionError("never applied")

    threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = setup.case_events(case_id)
    assert len(results) == 40
    assert [e.version for e in events] == list(range(1, 44))  # no gaps, no doubles
    assert len({e.report.report_id for e in events}) == 43
    for app in (setup, *writers):
        app.close()
