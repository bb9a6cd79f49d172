"""The employer feed's schema holds no medical or free-text field, whichever report type a feed message came from."""

from __future__ import annotations

import msgspec
import pytest

from lab.chaos.s2_medical_data_to_employers import (
    feed_field_names,
    restricted_leaf_names,
    schema_check,
    schema_markers,
)
from shared.events import reports as r
from shared.events.common import restricted_fields
from shared.events.feed import FEED_TYPES, AnyFeedMessage


@pytest.mark.parametrize("feed_type", FEED_TYPES, ids=lambda t: t.__name__)
def test_a_feed_type_has_no_restricted_field_by_type_or_by_schema(feed_type: type[msgspec.Struct]) -> None:
    assert restricted_fields(feed_type) == frozenset()
    assert schema_markers(msgspec.json.schema(feed_type)) == []


@pytest.mark.parametrize("report_type", r.REPORT_TYPES, ids=r.tag_of)
def test_no_restricted_field_of_a_report_type_is_a_feed_field(report_type: type[r.Report]) -> None:
    names = restricted_leaf_names(report_type)
    # The walker sees the markers where the report has them (nested plan measures included) ...
    assert bool(names) == bool(restricted_fields(report_type)) == bool(schema_markers(msgspec.json.schema(report_type)))
    # ... and none of those fields exists in what an employer receives.
    assert names.isdisjoint(feed_field_names())


def test_the_feed_union_schema_and_the_whole_check() -> None:
    assert schema_markers(msgspec.json.schema(AnyFeedMessage)) == []
    check = schema_check()
    assert check.ok, check
    assert len(check.report_types_restricted) == 7
