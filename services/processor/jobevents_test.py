"""Durations of lifecycle events: what Duration.FromTimedelta makes, negative spans as zero."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from hypothesis import given
from hypothesis import strategies as st

from services.processor.jobevents import duration


@given(st.timedeltas(min_value=timedelta(0)))
def test_a_span_is_what_from_timedelta_makes(span: timedelta) -> None:
    expected = Duration()
    expected.FromTimedelta(span)
    assert duration(span) == expected


@given(st.timedeltas(max_value=timedelta(0)))
def test_a_negative_span_is_zero(span: timedelta) -> None:
    assert duration(span) == Duration()
