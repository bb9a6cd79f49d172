"""The intake application over a real event store, the same body on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from services.intake.application import build_intake
from services.intake.decide import Rejection
from shared.events import reports as r
from shared.events.replies import RejectionCode
from shared.infra.settings import Settings
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
