"""Pure query building: paging tokens, ListJobs filters -> parameterised SQL, ListEvents filters,
HTTP parameter parsing. No servers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import struct_pb2
from hypothesis import given
from hypothesis import strategies as st
from observatory.events.v1 import event_pb2
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from services.read_model import event_query, job_query, paging
from services.read_model.errors import InvalidArgumentError
from services.read_model.http_api import payload_filter

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_page_size_defaults_and_caps() -> None:
    assert paging.page_size(0) == 50
    assert paging.page_size(7) == 7
    assert paging.page_size(10_000) == 500
    with pytest.raises(InvalidArgumentError, match="page_size"):
        paging.page_size(-1)


@given(st.lists(st.one_of(st.text(), st.integers()), min_size=2, max_size=2), st.text())
def test_tokens_round_trip(key: list[object], fingerprint: str) -> None:
    token = paging.encode_token(key, fingerprint)
    assert paging.decode_token(token, fingerprint, key_length=2) == key


@pytest.mark.parametrize("token", ["!!!", "bm90IGpzb24", paging.encode_token(["only-one"], "f")])
def test_malformed_tokens_name_page_token(token: str) -> None:
    with pytest.raises(InvalidArgumentError, match="page_token") as error:
        paging.decode_token(token, "f", key_length=2)
    assert error.value.field == "page_token"


def test_a_token_only_works_with_its_filters() -> None:
    first = rm.ListJobsRequest(types=["email"], page_size=2)
    other = rm.ListJobsRequest(types=["resize"], page_size=2)
    # Page size is not a filter: changing it between pages is fine.
    resized = rm.ListJobsRequest(types=["email"], page_size=9)
    assert paging.filters_fingerprint(first) == paging.filters_fingerprint(resized)
    token = paging.encode_token([T0.isoformat(), "00000000-0000-0000-0000-000000000001"], "x")
    other.page_token = paging.encode_token(
        [T0.isoformat(), "00000000-0000-0000-0000-000000000001"], paging.filters_fingerprint(first)
    )
    with pytest.raises(InvalidArgumentError, match="different filters"):
        job_query.build(other)
    with pytest.raises(InvalidArgumentError, match="page_token"):
        job_query.build(rm.ListJobsRequest(page_token=token))


def test_filters_become_parameters_never_sql_text() -> None:
    request = rm.ListJobsRequest(
        statuses=[job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_DEAD_LETTERED],
        types=["email'; DROP TABLE jobs; --"],
        page_size=10,
    )
    request.created.start_time.FromDatetime(T0)
    request.payload_filters.add(key="customer.id", value=struct_pb2.Value(number_value=42))
    query = job_query.build(request)
    assert "DROP" not in query.sql
    assert query.sql.count("%s") == len(query.params)
    assert query.params[0] == ["failed", "dead_lettered"]
    assert query.params[1] == ["email'; DROP TABLE jobs; --"]
    assert query.params[2] == T0
    assert query.params[3].obj == {"customer": {"id": 42}}
    assert query.params[-1] == 11  # one extra row says whether there is a next page
    assert "ORDER BY created_at DESC, id DESC" in query.sql


def test_bad_filters_name_their_field() -> None:
    with pytest.raises(InvalidArgumentError, match="statuses"):
        job_query.build(rm.ListJobsRequest(statuses=[job_pb2.JOB_STATUS_UNSPECIFIED]))
    bad_key = rm.ListJobsRequest()
    bad_key.payload_filters.add(key="a..b", value=struct_pb2.Value(string_value="x"))
    with pytest.raises(InvalidArgumentError, match=r"payload_filters\.key"):
        job_query.build(bad_key)
    no_value = rm.ListJobsRequest()
    no_value.payload_filters.add(key="a")
    with pytest.raises(InvalidArgumentError, match=r"payload_filters\.value"):
        job_query.build(no_value)
    with pytest.raises(InvalidArgumentError, match="event_types"):
        event_query.build(rm.ListEventsRequest(event_types=[event_pb2.EVENT_TYPE_UNSPECIFIED]))


def test_event_filters_and_order() -> None:
    request = rm.ListEventsRequest(
        job_id="j1", event_types=[event_pb2.EVENT_TYPE_JOB_FAILED], newest_first=True
    )
    request.occurred.end_time.FromDatetime(T0)
    query = event_query.build(request)
    assert {"jobId": "j1"} in query.filter["$and"]
    assert {"eventType": {"$in": ["EVENT_TYPE_JOB_FAILED"]}} in query.filter["$and"]
    assert {"occurredAt": {"$lt": T0}} in query.filter["$and"]
    assert query.sort == [("sortKey", -1)]


def test_http_payload_parameters_are_json_values() -> None:
    assert payload_filter("customer.id=42").value.number_value == 42
    assert payload_filter('customer.id="42"').value.string_value == "42"
    assert payload_filter("region=eu-west").value.string_value == "eu-west"
    assert payload_filter("flag=true").value.bool_value is True
    with pytest.raises(InvalidArgumentError, match="payload"):
        payload_filter("no-equals-sign")
