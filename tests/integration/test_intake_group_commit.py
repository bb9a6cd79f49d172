"""Group commit in intake: reports that arrive together are recorded in one transaction, each still answered on
its own, over a real event store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from services.intake.application import build_intake
from services.intake.handlers import GroupCommit, handle_reports
from shared.events.codec import encode
from shared.events.replies import Accepted, Rejected, RejectionCode
from shared.events.subjects import intake_subject
from shared.infra.settings import Settings
from tests.factories import EMPLOYER_PARTY, FUND_PARTY, NOW, OHS_PARTY, assessment, incapacity, plan, request


def test_a_group_is_decided_in_order_and_recorded_at_once(settings: Settings) -> None:
    app = build_intake(settings)
    try:
        opened = app.submit(FUND_PARTY, incapacity(date(2024, 1, 10)), NOW)
        case_id = opened.case_id
        first = request(case_id, date(2024, 4, 10))
        other = incapacity(date(2024, 2, 1), insz="85073003328")
        before = app.recorder.max_notification_id()
        replies = handle_reports(app, [
            (intake_subject(EMPLOYER_PARTY), encode(first), NOW),                       # accepted: version 2
            (intake_subject(EMPLOYER_PARTY), encode(first), NOW),                       # the same report again
            (intake_subject(EMPLOYER_PARTY), encode(plan(case_id, date(2024, 1, 20))), NOW),  # refused: no plan yet
            (intake_subject(EMPLOYER_PARTY), b"{not json", NOW),                        # refused: undecodable
            (intake_subject(FUND_PARTY), encode(other), NOW),                           # a new case
        ])
        accepted, again, refused, malformed, opened_other = replies
        assert isinstance(accepted, Accepted) and accepted.version == 2 and not accepted.duplicate
        assert isinstance(again, Accepted) and again.duplicate and again.event_ids == accepted.event_ids
        assert isinstance(refused, Rejected) and refused.code is RejectionCode.INVALID_STATE
        assert isinstance(malformed, Rejected) and malformed.code is RejectionCode.MALFORMED
        assert isinstance(opened_other, Accepted) and opened_other.version == 1
        # the two accepted reports, nothing of the refused ones and nothing twice
        assert app.recorder.max_notification_id() == (before or 0) + 2
        assert [e.type for e in app.case_events(case_id)] == ["incapacity_reported.v1", "trajectory_requested.v1"]
        # a resend after the group is answered with the original acceptance
        resent = handle_reports(app, [(intake_subject(EMPLOYER_PARTY), encode(first), NOW)])[0]
        assert isinstance(resent, Accepted) and resent.duplicate and resent.version == 2
    finally:
        app.close()


def test_reports_arriving_together_form_groups_and_each_gets_its_reply(settings: Settings) -> None:
    app = build_intake(settings)
    executor = ThreadPoolExecutor(max_workers=1)
    try:
        openings = [incapacity(date(2024, 1, 10), insz=insz) for insz in
                    ("85073003328", "85073003427", "85073003526", "85073003625", "85073003724", "85073003823")]

        async def send_all() -> tuple[list[Accepted | Rejected], GroupCommit]:
            group = GroupCommit(app, executor)
            replies = await asyncio.gather(*(group.submit(intake_subject(FUND_PARTY), encode(o), NOW)
                                             for o in openings for _ in range(5)))
            return list(replies), group

        replies, group = asyncio.run(send_all())
        assert all(isinstance(reply, Accepted) for reply in replies)
        assert len({reply.case_id for reply in replies if isinstance(reply, Accepted)}) == len(openings)
        assert sum(1 for reply in replies if isinstance(reply, Accepted) and not reply.duplicate) == len(openings)
        assert app.recorder.max_notification_id() == len(openings)
        assert group.groups < len(replies) and group.largest_group > 1  # they were recorded together
    finally:
        executor.shutdown()
        app.close()


def test_a_case_remembered_by_one_intake_never_decides_against_what_another_recorded(settings: Settings) -> None:
    """Two intakes over one store. The first remembers the case at version 1 while the second records version 2.
    A report the first then refuses on its memory (an assessment with no trajectory) is decided again on the
    store and accepted; a resend of a plan the second recorded, stepped on the memory as new, conflicts and is
    answered as the duplicate it is. Nothing is recorded twice."""
    service, other = build_intake(settings), build_intake(settings)
    try:
        opening = incapacity(date(2024, 1, 10))
        (opened,) = handle_reports(service, [(intake_subject(FUND_PARTY), encode(opening), NOW)])
        assert isinstance(opened, Accepted) and opened.case_id in service._cases  # remembered at version 1
        case_id = opened.case_id
        requested = request(case_id, date(2024, 4, 10))
        assert other.submit(EMPLOYER_PARTY, requested, NOW).version == 2
        (assessed,) = handle_reports(service, [
            (intake_subject(OHS_PARTY), encode(assessment(case_id, date(2024, 5, 2), "BE-2022", "A")), NOW)])
        assert isinstance(assessed, Accepted) and assessed.version == 3 and not assessed.duplicate
        submitted = plan(case_id, date(2024, 5, 20))
        assert other.submit(EMPLOYER_PARTY, submitted, NOW).version == 4
        (resent,) = handle_reports(service, [(intake_subject(EMPLOYER_PARTY), encode(submitted), NOW)])
        assert isinstance(resent, Accepted) and resent.duplicate and resent.version == 4
        assert [e.version for e in other.case_events(case_id)] == [1, 2, 3, 4]
    finally:
        service.close()
        other.close()
