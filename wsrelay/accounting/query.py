"""
Queries over the stored points, as plain functions: the CDN's rule of which
interval fits a time span, ISO 8601 times, and traffic/bandwidth series
computed from the 5-minute points (a coarser point's bandwidth is the peak of
its 5-minute points). No I/O here: callers fetch the rows.
"""

from dataclasses import dataclass
from datetime import datetime

from wsrelay.accounting.meter import BUCKET

DAY = 86400
MAX_SPAN = 92 * DAY  # "three months"
INTERVALS = (300, 3600, 86400)


KINDS = ("traffic", "connections", "statuses", "closes", "protocols")
PROTOCOLS = ("h1", "h2")  # what carried the client leg: HTTP/1.1, or a stream of an HTTP/2 connection
LEGS = ("client", "origin")
# Which traffic a query counts: WebSocket sessions, plain HTTP requests, or both.
TRAFFIC_KINDS = ("websocket", "http", "all")
DEFAULT_TRAFFIC_KIND = "websocket"
SUFFIX = {300: "5m", 3600: "1h", 86400: "1d"}


class QueryError(ValueError):
    """A refused query; str() says what is allowed (HTTP 400)."""


@dataclass(frozen=True)
class Query:
    """
    One checked query: what (`kind`), when ([start, end), epoch seconds, and
    the interval), and the filters (tuples; None: no filter). Built by
    make_query; run by fetching `tables()` and passing the rows to answer().
    """

    kind: str
    start: float
    end: float
    interval: int
    domains: tuple | None = None
    regions: tuple | None = None
    isps: tuple | None = None
    legs: tuple | None = None
    traffic_kind: str = DEFAULT_TRAFFIC_KIND

    def keeps(self, row):
        return of_traffic(row, self.traffic_kind)

    def tables(self):
        """The tables whose rows answer() needs, in order; buckets in `bounds()`."""
        if self.kind == "traffic":
            return ["traffic_5m"]
        if self.kind == "connections":
            return ["traffic_5m", "peaks_5m"]
        # plain sums: the table of the interval's own width holds them already
        return [f"{self.kind}_{SUFFIX[self.interval]}"]

    def bounds(self):
        return align(self.start, self.end, self.interval)

    def answer(self, fetched):
        """The JSON-ready answer from the rows of each of tables(), in that order."""
        fetched = [[row for row in rows if self.keeps(row)] for rows in fetched]
        if self.kind == "traffic":
            points = traffic_series(fetched[0], self.start, self.end, self.interval)
        elif self.kind == "connections":
            points = connections_series(fetched[0], fetched[1], self.start, self.end, self.interval)
        elif self.kind == "statuses":
            points = status_series(fetched[0], self.start, self.end, self.interval)
        elif self.kind == "protocols":
            points = protocol_series(fetched[0], self.start, self.end, self.interval)
        else:
            points = close_series(fetched[0], self.start, self.end, self.interval, self.legs)
        first, last = self.bounds()
        answer = {"kind": self.kind, "start": first, "end": last, "interval": self.interval,
                  "domains": _listed(self.domains), "regions": _listed(self.regions),
                  "isps": _listed(self.isps), "traffic": self.traffic_kind}
        if self.kind == "closes":
            answer["legs"] = _listed(self.legs)
        answer["points"] = points
        return answer


def _listed(values):
    return None if values is None else list(values)


def _filter(values, name):
    if not values:
        return None
    values = tuple(dict.fromkeys(v.strip() for v in values))
    for value in values:
        if not value or not value.isprintable() or len(value) > 255:
            raise QueryError(f"{name}: {value!r} is not a printable name of 1 to 255 characters")
    return values


def make_query(kind, start, end, interval="300", domains=None, regions=None, isps=None, legs=None,
               traffic=None):
    """
    A Query from text (a URL's parameters, a command line): `start`, `end`
    ISO 8601 with a zone, `interval` 300, 3600 or 86400 fitting the span,
    repeated filters, `traffic` websocket (the default), http or all.
    QueryError says what is wrong and what is allowed.
    """
    traffic = parse_traffic_kind(traffic)
    if kind not in KINDS:
        raise QueryError(f"unknown query {kind!r}: use {', '.join(KINDS)}")
    if start is None or end is None:
        raise QueryError("start and end are required (ISO 8601 with a zone, e.g. 2024-05-01T00:00:00Z)")
    first, last = parse_time(start, "start"), parse_time(end, "end")
    text = str(interval if interval is not None else "300").strip()
    if text not in tuple(map(str, INTERVALS)):
        raise QueryError(f"interval: {text!r} is not one of {', '.join(map(str, INTERVALS))}")
    check_query(first, last, int(text))
    legs = _filter(legs, "leg")
    if kind != "closes" and legs is not None:
        raise QueryError("leg filters close codes only")
    for leg in legs or ():
        if leg not in LEGS:
            raise QueryError(f"leg: {leg!r} is not one of {', '.join(LEGS)}")
    if kind == "closes" and traffic == "http":
        raise QueryError("plain HTTP requests have no close codes: use kind websocket or all")
    return Query(kind, first, last, int(text), _filter(domains, "domain"), _filter(regions, "region"),
                 _filter(isps, "isp"), legs, traffic)


def of_traffic(row, traffic_kind):
    """Whether a stored row is of the traffic asked for (rows before schema 3 are WebSocket's)."""
    return traffic_kind == "all" or row.get("kind", "websocket") == traffic_kind


def parse_traffic_kind(text):
    """websocket, http or all (None: websocket); QueryError otherwise."""
    value = (text if text is not None else DEFAULT_TRAFFIC_KIND).strip().lower()
    if value not in TRAFFIC_KINDS:
        raise QueryError(f"kind: {text!r} is not one of {', '.join(TRAFFIC_KINDS)}")
    return value


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
    WebSocket messages, plain HTTP requests, and bandwidth in bit/s (5 minutes:
    bytes x 8 / 300; coarser: the peak of its 5-minute points).
    """
    fine = {}
    for row in rows:
        sums = fine.setdefault(row["bucket"], [0, 0, 0, 0, 0])
        sums[0] += row["client_bytes_in"]
        sums[1] += row["client_bytes_out"]
        if row.get("kind", "websocket") == "http":
            sums[4] += row["client_messages_in"]  # an HTTP row's messages are requests and responses
        else:
            sums[2] += row["client_messages_in"]
            sums[3] += row["client_messages_out"]
    first, last = align(start, end, interval)
    points = []
    for at in range(first, last, interval):
        point = {"start": at, "bytes_in": 0, "bytes_out": 0, "messages_in": 0, "messages_out": 0,
                 "requests": 0, "bandwidth_in": 0.0, "bandwidth_out": 0.0}
        for bucket in range(at, at + interval, BUCKET):
            sums = fine.get(bucket)
            if sums is None:
                continue
            point["bytes_in"] += sums[0]
            point["bytes_out"] += sums[1]
            point["messages_in"] += sums[2]
            point["messages_out"] += sums[3]
            point["requests"] += sums[4]
            point["bandwidth_in"] = max(point["bandwidth_in"], sums[0] * 8 / BUCKET)
            point["bandwidth_out"] = max(point["bandwidth_out"], sums[1] * 8 / BUCKET)
        points.append(point)
    return points


def _starts(start, end, interval):
    first, last = align(start, end, interval)
    return range(first, last, interval)


def connections_series(rows, peaks, start, end, interval):
    """
    Points of `interval` seconds from 5-minute traffic rows and 5-minute
    peak rows (peaks_5m: one per key and node): sessions `opened` and
    `closed`, `session_seconds` (live time elapsed in the point) and
    `peak_concurrent`: per 5-minute point the sum of the matching keys' and
    nodes' peaks (an upper bound when they peak at different moments); a
    coarser point's is the highest of its 5-minute points.
    """
    fine = {}
    for row in rows:
        sums = fine.setdefault(row["bucket"], [0, 0, 0])
        sums[0] += row["opened"]
        sums[1] += row["closed"]
        sums[2] += row["session_ms"]
    peak = {}
    for row in peaks:
        peak[row["bucket"]] = peak.get(row["bucket"], 0) + row["peak"]
    points = []
    for at in _starts(start, end, interval):
        point = {"start": at, "opened": 0, "closed": 0, "session_seconds": 0.0, "peak_concurrent": 0}
        ms = 0
        for bucket in range(at, at + interval, BUCKET):
            sums = fine.get(bucket)
            if sums is not None:
                point["opened"] += sums[0]
                point["closed"] += sums[1]
                ms += sums[2]
            point["peak_concurrent"] = max(point["peak_concurrent"], peak.get(bucket, 0))
        point["session_seconds"] = ms / 1000
        points.append(point)
    return points


def _bucketed(rows, start, end, interval, key):
    """{point start: {key(row): summed count}} of rows at any width <= interval."""
    first, last = align(start, end, interval)
    found = {}
    for row in rows:
        at = row["bucket"] // interval * interval
        if first <= at < last:
            counts = found.setdefault(at, {})
            k = key(row)
            counts[k] = counts.get(k, 0) + row["count"]
    return found


def status_series(rows, start, end, interval):
    """
    Points of `interval` seconds from handshake status rows (statuses_*):
    `statuses` maps each HTTP status (as a string, JSON keys being strings)
    to how many handshakes got it, and `total` is their sum.
    """
    found = _bucketed(rows, start, end, interval, lambda row: str(row["status"]))
    points = []
    for at in _starts(start, end, interval):
        counts = found.get(at, {})
        points.append({"start": at, "total": sum(counts.values()),
                       "statuses": {k: counts[k] for k in sorted(counts, key=int)}})
    return points


def protocol_series(rows, start, end, interval):
    """
    Points of `interval` seconds from protocol rows (protocols_*): per
    carrying protocol (h1, h2; both always present) the sessions (or plain
    HTTP requests) `opened` and the client leg's `bytes_in` and `bytes_out`.
    Summed over the protocols they equal the traffic and connections points'
    bytes and `opened` of the same filters.
    """
    first, last = align(start, end, interval)
    found = {}
    for row in rows:
        at = row["bucket"] // interval * interval
        if first <= at < last:
            sums = found.setdefault((at, row["protocol"]), [0, 0, 0])
            sums[0] += row["opened"]
            sums[1] += row["client_bytes_in"]
            sums[2] += row["client_bytes_out"]
    points = []
    for at in _starts(start, end, interval):
        names = sorted(set(PROTOCOLS) | {p for a, p in found if a == at})
        points.append({"start": at, "protocols": {
            name: dict(zip(("opened", "bytes_in", "bytes_out"), found.get((at, name), (0, 0, 0))))
            for name in names}})
    return points


def close_series(rows, start, end, interval, legs=None):
    """
    Points of `interval` seconds from close code rows (closes_*): `closes`
    lists {leg, code, closed_by, count} (legs: client, origin; closed_by:
    client, origin, relay, or none when the connection ended without a Close
    frame), in that order; `legs` keeps only the given legs.
    """
    found = _bucketed([r for r in rows if legs is None or r["leg"] in legs], start, end, interval,
                      lambda row: (row["leg"], row["code"], row["closed_by"]))
    points = []
    for at in _starts(start, end, interval):
        counts = found.get(at, {})
        points.append({"start": at, "total": sum(counts.values()), "closes": [
            {"leg": leg, "code": code, "closed_by": by, "count": counts[(leg, code, by)]}
            for leg, code, by in sorted(counts)]})
    return points
