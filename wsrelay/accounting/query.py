"""
Queries over the stored points, as plain functions: the CDN's rule of which
interval fits a time span, ISO 8601 times, and traffic/bandwidth series
computed from the 5-minute points (a coarser point's bandwidth is the peak of
its 5-minute points). No I/O here: callers fetch the rows.
"""

from datetime import datetime

from wsrelay.accounting.meter import BUCKET

DAY = 86400
MAX_SPAN = 92 * DAY  # "three months"
INTERVALS = (300, 3600, 86400)


class QueryError(ValueError):
    """A refused query; str() says what is allowed (HTTP 400)."""


def parse_time(text, name):
    """ISO 8601 with a zone ('2024-05-01T00:00:00Z', '...+02:00') -> epoch seconds."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except (AttributeError, ValueError):
        raise QueryError(f"{name}: {text!r} is not an ISO 8601 time like 2024-05-01T00:00:00Z")
    if when.tzinfo is None:
        raise QueryError(f"{name}: {text!r} has no zone: add Z or an offset like +02:00")
    return when.timestamp()


def allowed_intervals(span):
    """The intervals a span (seconds) allows: <= 3 days 300/3600, <= 31 days 3600/86400, else 86400."""
    if span <= 3 * DAY:
        return (300, 3600)
    if span <= 31 * DAY:
        return (3600, 86400)
    return (86400,)


def check_query(start, end, interval):
    """Raise QueryError unless [start, end) and interval make an allowed query."""
    span = end - start
    if span <= 0:
        raise QueryError("end must be after start")
    if span > MAX_SPAN:
        raise QueryError(f"a query spans at most 92 days (three months); this one spans {span / DAY:g} days")
    allowed = allowed_intervals(span)
    if interval not in allowed:
        raise QueryError(f"interval {interval} is not allowed for a span of {span / DAY:g} days: "
                         f"use {' or '.join(map(str, allowed))}")


def align(start, end, interval):
    """[start, end) widened to whole intervals (UTC)."""
    first = int(start // interval) * interval
    last = -int(-end // interval) * interval
    return first, last


def traffic_series(rows, start, end, interval):
    """
    Points of `interval` seconds from 5-minute traffic rows (dicts, any mix of
    keys: they are summed per bucket first): bytes each way on the client leg,
    messages, and bandwidth in bit/s (5 minutes: bytes x 8 / 300; coarser: the
    peak of its 5-minute points).
    """
    fine = {}
    for row in rows:
        sums = fine.setdefault(row["bucket"], [0, 0, 0, 0])
        sums[0] += row["client_bytes_in"]
        sums[1] += row["client_bytes_out"]
        sums[2] += row["client_messages_in"]
        sums[3] += row["client_messages_out"]
    first, last = align(start, end, interval)
    points = []
    for at in range(first, last, interval):
        point = {"start": at, "bytes_in": 0, "bytes_out": 0, "messages_in": 0, "messages_out": 0,
                 "bandwidth_in": 0.0, "bandwidth_out": 0.0}
        for bucket in range(at, at + interval, BUCKET):
            sums = fine.get(bucket)
            if sums is None:
                continue
            point["bytes_in"] += sums[0]
            point["bytes_out"] += sums[1]
            point["messages_in"] += sums[2]
            point["messages_out"] += sums[3]
            point["bandwidth_in"] = max(point["bandwidth_in"], sums[0] * 8 / BUCKET)
            point["bandwidth_out"] = max(point["bandwidth_out"], sums[1] * 8 / BUCKET)
        points.append(point)
    return points
