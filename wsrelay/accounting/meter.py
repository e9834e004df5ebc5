"""
The meter: exact per-domain counters folded into 5-minute UTC buckets, in
memory, with no I/O. The relay tells it when a session opens and ends; the
flush folds the live sessions' growth since the last fold into the bucket
current at that moment (so a long session's bytes land in the buckets where
they flowed, late by at most one flush interval) and takes everything as one
Batch for the store. Memory is bounded by the number of distinct
(domain, bucket, region, isp) keys, never by the number of messages.

Two kinds of traffic are metered apart: `websocket` (a token is a session)
and `http` (a token is one plain HTTP request: `opened` counts requests,
messages are requests and responses, frames stay 0). A Batch carries them
in separate tables with the same keys.

Each session and request is also counted by the protocol that carried its
client leg (`h1`: HTTP/1.1, `h2`: a stream of an HTTP/2 connection): sessions
opened and client bytes each way, folded with the traffic so that the
protocols' points of a bucket add up exactly to its traffic point.

Everything here takes `now` (seconds since the epoch); nothing reads a clock.
"""

from dataclasses import dataclass, field

BUCKET = 300  # seconds in a point of the finest granularity
LEGS = ("client", "origin")
LEG_FIELDS = ("bytes_in", "bytes_out", "frames_in", "frames_out", "messages_in", "messages_out")
TRAFFIC = tuple(f"{leg}_{name}" for leg in LEGS for name in LEG_FIELDS)
COUNTS = TRAFFIC + ("opened", "closed", "session_ms")  # additive columns of a traffic point
_OPENED, _CLOSED, _SESSION_MS = len(TRAFFIC), len(TRAFFIC) + 1, len(TRAFFIC) + 2
ZERO = (0,) * len(TRAFFIC)
WEBSOCKET, HTTP = "websocket", "http"
KINDS = (WEBSOCKET, HTTP)
H1, H2 = "h1", "h2"
PROTOCOLS = (H1, H2)
PROTOCOL_COUNTS = ("opened", "client_bytes_in", "client_bytes_out")  # columns of a protocol point
_BYTES_IN, _BYTES_OUT = TRAFFIC.index("client_bytes_in"), TRAFFIC.index("client_bytes_out")


def bucket_of(now):
    """The start of the 5-minute UTC bucket holding `now`."""
    return int(now // BUCKET) * BUCKET


def split_ms(start_ms, end_ms):
    """[(bucket, milliseconds)] of the interval [start_ms, end_ms) cut at bucket boundaries."""
    parts = []
    step = BUCKET * 1000
    while start_ms < end_ms:
        bucket_end = (start_ms // step + 1) * step
        stop = min(bucket_end, end_ms)
        parts.append((start_ms // step * BUCKET, stop - start_ms))
        start_ms = stop
    return parts


@dataclass
class Batch:
    """
    One flush: what the store adds in one transaction, under its batch id
    (node, run, seq) so that a retried batch is never counted twice.
    Keys are (domain, bucket, region, isp); statuses add the status, closes
    add (leg, code, closed_by); peaks are this node's peak live sessions.
    The http_* tables hold plain HTTP requests the same way (no closes).
    protocols (http_protocols) key (domain, bucket, region, isp, protocol) to
    PROTOCOL_COUNTS.
    """

    node: str
    run: str
    seq: int
    traffic: dict = field(default_factory=dict)
    peaks: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    closes: dict = field(default_factory=dict)
    http_traffic: dict = field(default_factory=dict)
    http_peaks: dict = field(default_factory=dict)
    http_statuses: dict = field(default_factory=dict)
    protocols: dict = field(default_factory=dict)
    http_protocols: dict = field(default_factory=dict)

    def __bool__(self):
        return bool(self.traffic or self.peaks or self.statuses or self.closes
                    or self.http_traffic or self.http_peaks or self.http_statuses
                    or self.protocols or self.http_protocols)

    def total(self, column, kind=WEBSOCKET):
        index = COUNTS.index(column)
        return sum(row[index] for row in self.tables(kind)[0].values())

    def tables(self, kind):
        """(traffic, peaks, statuses, closes) of one kind; plain HTTP has no closes."""
        if kind == HTTP:
            return self.http_traffic, self.http_peaks, self.http_statuses, {}
        return self.traffic, self.peaks, self.statuses, self.closes

    def protocol_table(self, kind):
        """The points of one kind by carrying protocol (see PROTOCOL_COUNTS)."""
        return self.http_protocols if kind == HTTP else self.protocols


class _Live:
    __slots__ = ("dims", "totals", "ms", "kind", "protocol")

    def __init__(self, dims, totals, ms, kind, protocol):
        self.dims, self.totals, self.ms, self.kind, self.protocol = dims, totals, ms, kind, protocol


class Meter:
    """The counters of one relay process since the last batch was taken."""

    def __init__(self, node, run):
        self.node, self.run = node, run
        self.seq = 0
        self._live = {}          # token -> _Live
        self._concurrent = {}    # (domain, region, isp, kind) -> live sessions (requests) now
        # made once and emptied by each take(): tables made anew at every flush would, after a
        # flush during a connection storm, sit in the storm's small-object arenas and pin them
        self._tables = {kind: ({}, {}, {}, {}) for kind in KINDS}  # traffic, peaks, statuses, closes
        self._protocols = {kind: {} for kind in KINDS}

    def _reset(self):
        for tables in self._tables.values():
            for table in tables:
                table.clear()
        for table in self._protocols.values():
            table.clear()

    def __len__(self):
        """Keys held (what bounds the memory)."""
        return (sum(len(t[0]) + len(t[2]) + len(t[3]) for t in self._tables.values())
                + sum(map(len, self._protocols.values())))

    # -- what the relay reports --------------------------------------------------

    def opened(self, token, dims, totals, now, status=101, kind=WEBSOCKET, protocol=H1):
        """
        A session answered 101 (or a plain HTTP request began, kind http, its
        status counted when it ends): it is live from `now`; `totals` are its
        counters so far; `protocol` carried its client leg (h1 or h2).
        """
        ms = _ms(now)
        self._live[token] = _Live(dims, ZERO, ms, kind, protocol)
        row = self._row(dims, now, kind)
        row[_OPENED] += 1
        self._protocol_row(dims, now, kind, protocol)[0] += 1
        if status is not None:
            self._count(self._tables[kind][2], (*self._key(dims, now), status))
        live = self._concurrent.get((*dims, kind), 0) + 1
        self._concurrent[(*dims, kind)] = live
        self._peak(dims, now, live, kind)
        self.fold(token, totals, now)

    def fold(self, token, totals, now):
        """Add a live session's growth since its last fold to the bucket of `now`."""
        live = self._live.get(token)
        if live is None:
            return
        row = self._row(live.dims, now, live.kind)
        before = live.totals
        for i, value in enumerate(totals):
            row[i] += value - before[i]
        by_protocol = self._protocol_row(live.dims, now, live.kind, live.protocol)
        by_protocol[1] += totals[_BYTES_IN] - before[_BYTES_IN]
        by_protocol[2] += totals[_BYTES_OUT] - before[_BYTES_OUT]
        live.totals = tuple(totals)
        ms = max(_ms(now), live.ms)
        for bucket, part in split_ms(live.ms, ms):
            self._row(live.dims, bucket, live.kind)[_SESSION_MS] += part
        live.ms = ms

    def ended(self, token, dims, totals, now, status=None, closes=(), kind=WEBSOCKET, protocol=H1):
        """
        A session (or request) is over. A live one is folded a last time and
        closed (a request's status counted now); one that never opened (a
        refused or failed handshake, bytes no request took) is counted whole,
        with its status if any, under `protocol`. `closes`: (leg, code,
        closed_by) per leg that closed.
        """
        live = self._live.get(token)
        if live is not None:
            self.fold(token, totals, now)
            del self._live[token]
            if not self._live:
                self._live = {}  # a dict never shrinks: after a storm, its table would stay at the peak's size
            dims, kind = live.dims, live.kind
            row = self._row(dims, now, kind)
            row[_CLOSED] += 1
            key = (*dims, kind)
            count = self._concurrent.get(key, 0)
            self._peak(dims, now, count, kind)
            if count <= 1:
                self._concurrent.pop(key, None)
            else:
                self._concurrent[key] = count - 1
            if kind == HTTP and status is not None:
                self._count(self._tables[kind][2], (*self._key(dims, now), status))
        else:
            row = self._row(dims, now, kind)
            for i, value in enumerate(totals):
                row[i] += value
            by_protocol = self._protocol_row(dims, now, kind, protocol)
            by_protocol[1] += totals[_BYTES_IN]
            by_protocol[2] += totals[_BYTES_OUT]
            if status is not None:
                self._count(self._tables[kind][2], (*self._key(dims, now), status))
        for leg, code, closed_by in closes:
            self._count(self._tables[kind][3], (*self._key(dims, now), leg, code, closed_by or "none"))

    # -- the flush -------------------------------------------------------------

    def fold_all(self, totals_of, now):
        """Fold every live session (`totals_of(token)` gives its counters) and note the live peaks."""
        for token in list(self._live):
            self.fold(token, totals_of(token), now)
        for key, count in self._concurrent.items():
            self._peak(key[:3], now, count, key[3])

    def take(self):
        """Everything counted since the last take, as the next Batch; the meter starts again at zero."""
        self.seq += 1
        traffic, peaks, statuses, closes = self._tables[WEBSOCKET]
        http_traffic, http_peaks, http_statuses, _ = self._tables[HTTP]
        batch = Batch(self.node, self.run, self.seq,
                      {key: tuple(row) for key, row in traffic.items()}, dict(peaks), dict(statuses), dict(closes),
                      {key: tuple(row) for key, row in http_traffic.items()}, dict(http_peaks), dict(http_statuses),
                      *({key: tuple(row) for key, row in self._protocols[kind].items()} for kind in KINDS))
        self._reset()
        return batch

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _key(dims, now):
        domain, region, isp = dims
        return domain, bucket_of(now), region, isp

    def _row(self, dims, now, kind=WEBSOCKET):
        key = self._key(dims, now)
        traffic = self._tables[kind][0]
        row = traffic.get(key)
        if row is None:
            row = traffic[key] = [0] * len(COUNTS)
        return row

    def _protocol_row(self, dims, now, kind, protocol):
        key = (*self._key(dims, now), protocol)
        table = self._protocols[kind]
        row = table.get(key)
        if row is None:
            row = table[key] = [0] * len(PROTOCOL_COUNTS)
        return row

    def _peak(self, dims, now, count, kind=WEBSOCKET):
        key = self._key(dims, now)
        peaks = self._tables[kind][1]
        if count > peaks.get(key, 0):
            peaks[key] = count

    @staticmethod
    def _count(table, key):
        table[key] = table.get(key, 0) + 1


def _ms(now):
    return int(round(now * 1000))
