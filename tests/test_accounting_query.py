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


def test_connections_sum_per_point_and_coarser_peaks_take_the_highest_5_minute_point():
    from wsrelay.accounting.query import connections_series

    def row(bucket, opened, closed, ms):
        return {"bucket": bucket, "opened": opened, "closed": closed, "session_ms": ms}

    rows = [row(T0, 2, 1, 1500), row(T0, 1, 0, 500), row(T0 + 300, 0, 2, 4000)]
    peaks = [{"bucket": T0, "peak": 2}, {"bucket": T0, "peak": 1}, {"bucket": T0 + 300, "peak": 2}]
    five = connections_series(rows, peaks, T0, T0 + 600, 300)
    assert [(p["opened"], p["closed"], p["session_seconds"], p["peak_concurrent"]) for p in five] == [
        (3, 1, 2.0, 3), (0, 2, 4.0, 2)]
    (hour,) = connections_series(rows, peaks, T0, T0 + 3600, 3600)
    assert (hour["opened"], hour["closed"], hour["session_seconds"], hour["peak_concurrent"]) == (3, 3, 6.0, 3)


def test_statuses_and_closes_are_counted_per_point():
    from wsrelay.accounting.query import close_series, status_series

    statuses = [{"bucket": T0, "status": 101, "count": 5}, {"bucket": T0 + 300, "status": 101, "count": 1},
                {"bucket": T0 + 300, "status": 404, "count": 2}]
    (hour,) = status_series(statuses, T0, T0 + 3600, 3600)
    assert hour == {"start": T0, "total": 8, "statuses": {"101": 6, "404": 2}}
    closes = [{"bucket": T0, "leg": "client", "code": 1000, "closed_by": "client", "count": 3},
              {"bucket": T0, "leg": "origin", "code": 1000, "closed_by": "relay", "count": 3}]
    (point,) = close_series(closes, T0, T0 + 300, 300, legs=("origin",))
    assert point["closes"] == [{"leg": "origin", "code": 1000, "closed_by": "relay", "count": 3}]


def test_make_query_checks_every_parameter():
    from wsrelay.accounting.query import make_query

    query = make_query("statuses", "2023-11-15T00:00:00Z", "2023-11-20T00:00:00Z", "86400",
                       domains=["a.example", "a.example"])
    assert (query.start, query.interval, query.domains, query.tables()) == (
        T0, 86400, ("a.example",), ["statuses_1d"])
    for args, message in [
        (("volume", "2023-11-15T00:00:00Z", "2023-11-16T00:00:00Z"), "unknown query 'volume': use traffic"),
        (("traffic", None, "2023-11-16T00:00:00Z"), "start and end are required"),
        (("traffic", "2023-11-15T00:00:00Z", "2023-11-16T00:00:00Z", "60"), "interval: '60' is not one of"),
        (("closes", "2023-11-15T00:00:00Z", "2023-11-16T00:00:00Z", "300", None, None, None, ["edge"]),
         "leg: 'edge' is not one of client, origin"),
        (("traffic", "2023-11-15T00:00:00Z", "2023-11-16T00:00:00Z", "300", None, None, None, ["client"]),
         "leg filters close codes only"),
    ]:
        with pytest.raises(QueryError, match=message):
            make_query(*args)


def test_kind_chooses_websocket_http_or_both_and_http_rows_count_requests():
    from wsrelay.accounting.query import make_query

    def row(kind, bytes_in, messages_in):
        return {"bucket": T0, "kind": kind, "client_bytes_in": bytes_in, "client_bytes_out": 0,
                "client_messages_in": messages_in, "client_messages_out": 0}

    rows = [row("websocket", 100, 3), row("http", 40, 2), {**row("websocket", 1, 1), "kind": None}]
    del rows[2]["kind"]  # a row of a store that has no kind column: WebSocket's
    window = ("traffic", "2023-11-15T00:00:00Z", "2023-11-15T00:05:00Z")
    answers = {kind: make_query(*window, traffic=kind).answer([rows]) for kind in (None, "websocket", "http", "all")}
    assert answers[None] == answers["websocket"] and answers["websocket"]["traffic"] == "websocket"
    point = {kind: {k: a["points"][0][k] for k in ("bytes_in", "messages_in", "requests")}
             for kind, a in answers.items()}
    assert point["websocket"] == {"bytes_in": 101, "messages_in": 4, "requests": 0}
    assert point["http"] == {"bytes_in": 40, "messages_in": 0, "requests": 2}
    assert point["all"] == {"bytes_in": 141, "messages_in": 4, "requests": 2}
    with pytest.raises(QueryError, match="kind: 'https' is not one of websocket, http, all"):
        make_query(*window, traffic="https")
    with pytest.raises(QueryError, match="plain HTTP requests have no close codes"):
        make_query("closes", *window[1:], traffic="http")


def test_protocol_points_sum_their_rows_per_protocol_and_name_both():
    from wsrelay.accounting.query import make_query
    rows = [{"bucket": T0, "protocol": "h1", "opened": 2, "client_bytes_in": 10, "client_bytes_out": 20,
             "kind": "websocket"},
            {"bucket": T0 + 300, "protocol": "h2", "opened": 1, "client_bytes_in": 5, "client_bytes_out": 7,
             "kind": "websocket"},
            {"bucket": T0 + 600, "protocol": "h2", "opened": 3, "client_bytes_in": 1, "client_bytes_out": 1,
             "kind": "http"}]
    query = make_query("protocols", "2023-11-15T00:00:00Z", "2023-11-15T02:00:00Z", "3600")
    assert query.tables() == ["protocols_1h"]
    points = query.answer([rows])["points"]
    assert points[0]["protocols"] == {"h1": {"opened": 2, "bytes_in": 10, "bytes_out": 20},
                                      "h2": {"opened": 1, "bytes_in": 5, "bytes_out": 7}}
    assert points[1]["protocols"] == {"h1": {"opened": 0, "bytes_in": 0, "bytes_out": 0},
                                      "h2": {"opened": 0, "bytes_in": 0, "bytes_out": 0}}
    everything = make_query("protocols", "2023-11-15T00:00:00Z", "2023-11-15T01:00:00Z", "3600", traffic="all")
    assert everything.answer([rows])["points"][0]["protocols"]["h2"] == {"opened": 4, "bytes_in": 6, "bytes_out": 8}
