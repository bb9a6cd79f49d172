"""The deadlines view says one thing: the state it shows and the explanation agree (services.deadlines.views)."""

from __future__ import annotations

from datetime import date

import pytest

from services.deadlines.views import agreeing

OPENED = ("The occupational physician's re-integration assessment (trajectory.assessment, BE-2022): 49 calendar days "
          "counted from the day after 2024-04-11, so due on 2024-05-30; open.")


def test_an_open_deadline_whose_timer_fired_is_shown_and_explained_as_missed() -> None:
    shown = agreeing({"state": "open", "explanation": OPENED}, "missed", date(2024, 5, 31))
    assert shown["shown_state"] == "missed"
    assert shown["explanation"].endswith("so due on 2024-05-30; missed: its timer fired on 2024-05-31 and no report "
                                         "had met it.")
    assert "open." not in shown["explanation"]


@pytest.mark.parametrize(("outcome", "words"), [("expired", "the window closed unused"),
                                                ("reached", "the earliest date has come"), ("reminded", "reminded")])
def test_each_outcome_replaces_open(outcome: str, words: str) -> None:
    shown = agreeing({"state": "open", "explanation": OPENED}, outcome, None)
    assert shown["shown_state"] == outcome and words in shown["explanation"] and "; open" not in shown["explanation"]


def test_a_deadline_met_late_after_its_timer_fired_is_shown_met_and_says_what_the_timer_recorded() -> None:
    met = OPENED.removesuffix("; open.") + "; met on 2024-06-03 by assessment_issued.v1 (late)."
    shown = agreeing({"state": "met", "late": True, "explanation": met}, "missed", date(2024, 5, 31))
    assert shown["shown_state"] == "met (late)"
    assert shown["explanation"] == met + " Its timer had fired on 2024-05-31 while it was open: missed."


def test_without_an_outcome_nothing_changes() -> None:
    assert agreeing({"state": "open", "explanation": OPENED}, None) == {"shown_state": "open", "explanation": OPENED}
