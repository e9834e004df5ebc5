"""The query rules as plain functions: times with zones, the interval/span rule at its boundaries, bandwidth."""

import pytest

from wsrelay.accounting.query import QueryError, check_query, parse_time, traffic_series

DAY = 86400
T0 = 1_700_006_400  # a UTC midnight


def test_times_need_a_zone():
    assert parse_time("2023-11-15T00:00:00Z", "start") == T0
    assert parse_time("2023-11-15T02:00:00+02:00", "start") == T0
    with pytest.raises(QueryError, match="start: .* has no zone"):
        parse_time("2023-11-15T00:00:00", "start")
    with pytest.raises(QueryError, match="not an ISO 8601 time"):
        parse_time("yesterday", "start")


@pytest.mark.parametrize("span, allowed", [
    (3 * DAY, (300, 3600)),
    (3 * DAY + 300, (3600, 86400)),
    (31 * DAY, (3600, 86400)),
    (31 * DAY + 3600, (86400,)),
    (92 * DAY, (86400,)),
])
def test_the_interval_must_fit_the_span(span, allowed):
    for interval in (300, 3600, 86400):
        if interval in allowed:
            check_query(T0, T0 + span, interval)
        else:
            with pytest.raises(QueryError, match=f"interval {interval} is not allowed .*use "
                                                 + " or ".join(map(str, allowed)) + "$"):
                check_query(T0, T0 + span, interval)


def test_more_than_three_months_is_refused():
    with pytest.raises(QueryError, match="at most 92 days"):
        check_query(T0, T0 + 92 * DAY + 1, 86400)
    with pytest.raises(QueryError, match="end must be after start"):
        check_query(T0, T0, 300)


def test_bandwidth_is_bytes_x8_over_300_and_coarser_points_take_the_peak():
    def row(bucket, out, region="US"):
        return {"bucket": bucket, "region": region, "client_bytes_in": 0, "client_bytes_out": out,
                "client_messages_in": 0, "client_messages_out": 1}

    rows = [row(T0, 3000), row(T0, 750, "DE"), row(T0 + 300, 1500), row(T0 + 3600, 300)]
    five = traffic_series(rows, T0, T0 + 600, 300)
    assert [(p["bytes_out"], p["bandwidth_out"]) for p in five] == [(3750, 100.0), (1500, 40.0)]
    hours = traffic_series(rows, T0, T0 + 2 * 3600, 3600)
    assert [(p["start"], p["bytes_out"], p["bandwidth_out"]) for p in hours] == [
        (T0, 5250, 100.0), (T0 + 3600, 300, 8.0)]
