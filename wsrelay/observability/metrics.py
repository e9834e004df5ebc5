"""
The relay's Prometheus metrics, counted from what the relay already knows:
a session's counters (LegCounters, kept on the hot path anyway) are read when
it opens, when it ends and when /metrics is scraped, never per frame. Message
and byte counters are exact: the totals of the sessions that ended plus the
running counters of those still open.

Every process keeps a Metrics; snapshot() turns it into plain JSON-ready data,
so that with `workers` the admin endpoint can add up every worker's snapshot
(merge()) and serve the whole relay's numbers (collector()).

Label values come only from the configuration (domain sections, origins) and
from fixed sets (HTTP statuses 100-599, close codes, leg names, refusal
reasons), never from raw client input: a Host header naming no domain counts
under domain "-", so a flood of random names adds no series.
"""

UNKNOWN_DOMAIN = "-"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LEGS = ("client", "origin")
REFUSALS = {  # limits.Refusal reason -> the label (the config key that refused it)
    "the relay is at its connection limit": "max_connections",
    "this domain is at its connection limit": "domain_max_connections",
    "too many connections from your address": "max_connections_per_ip",
    "too many handshakes from your address": "handshake_rate_per_ip",
    "the relay is taking too many handshakes": "handshake_rate",
}


def domain_label(session):
    return session.domain.name if session.domain is not None else UNKNOWN_DOMAIN


def status_label(status):
    return str(status) if isinstance(status, int) and 100 <= status <= 599 else "other"


def code_label(code):
    """Close codes: the registered ones as they are, application codes by range (bounded)."""
    if code is None:
        return "none"
    if 1000 <= code <= 1015:
        return str(code)
    if 3000 <= code <= 3999:
        return "3xxx"
    if 4000 <= code <= 4999:
        return "4xxx"
    return "other"


def _add(table, key, value=1):
    table[key] = table.get(key, 0) + value


class Histogram:
    """Cumulative-free bucket counts, a sum and a count (what a snapshot carries)."""

    __slots__ = ("counts", "sum", "count")

    def __init__(self):
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value):
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value
        self.count += 1


class _RttObserver:
    """Heartbeat.on_rtt of one domain's sessions: each answered ping into that domain's histogram."""

    __slots__ = ("table", "domain")

    def __init__(self, table, domain):
        self.table, self.domain = table, domain

    def __call__(self, index, seconds):
        key = (self.domain, LEGS[index])
        histogram = self.table.get(key)
        if histogram is None:
            histogram = self.table[key] = Histogram()
        histogram.observe(seconds)


def _traffic(session):
    """{(leg, direction, what): value} of a session's counters."""
    found = {}
    for leg_name, leg in (("client", session.client), ("origin", session.origin)):
        counters = getattr(leg, "counters", None)
        if counters is None:
            continue
        found[(leg_name, "in", "bytes")] = counters.bytes_in
        found[(leg_name, "out", "bytes")] = counters.bytes_out
        found[(leg_name, "in", "messages")] = counters.messages_in
        found[(leg_name, "out", "messages")] = counters.messages_out
    return found


class Metrics:
    """One process's counters; the relay calls opened(), ended() and refused()."""

    def __init__(self, relay):
        self.relay = relay
        self.handshakes = {}   # (domain, status) -> count
        self.traffic = {}      # (domain, leg, direction, what) -> total of the sessions that ended
        self.closes = {}       # (domain, leg, code, who) -> count
        self.refusals = {}     # reason -> count
        self.connect = {}      # domain -> Histogram of origin connect times
        self.rtt = {}          # (domain, leg) -> Histogram of ping round trips
        self._live = set()     # sessions counted as open
        self._observers = {}   # domain -> its _RttObserver

    def opened(self, session):
        domain = domain_label(session)
        self._live.add(session)
        _add(self.handshakes, (domain, "101"))
        connect = getattr(session, "connect_time", None)
        if connect is not None:
            self.connect.setdefault(domain, Histogram()).observe(connect)
        beat = getattr(session.client, "heartbeat", None)
        if beat is not None:
            observer = self._observers.get(domain)  # one per domain, shared: nothing more per session
            if observer is None:
                observer = self._observers[domain] = _RttObserver(self.rtt, domain)
            beat.on_rtt = observer

    def ended(self, session):
        counters = getattr(getattr(session, "client", None), "counters", None)
        if counters is None or counters.bytes_in == 0:
            self._live.discard(session)
            return  # a bare TCP probe
        domain = domain_label(session)
        was_live = session in self._live
        self._live.discard(session)
        if not self._live:
            self._live = set()  # a set never shrinks: after a storm, its table would stay at the peak's size
        if not was_live and session.status is not None:
            _add(self.handshakes, (domain, status_label(session.status)))
        for (leg, direction, what), value in _traffic(session).items():
            _add(self.traffic, (domain, leg, direction, what), value)
        if was_live:
            for leg_name, leg in (("client", session.client), ("origin", session.origin)):
                if leg is not None:
                    code, _, who = leg.close_info()
                    _add(self.closes, (domain, leg_name, code_label(code), who or "none"))

    def refused(self, refusal):
        _add(self.refusals, REFUSALS.get(refusal.reason, "other"))

    # -- reading -------------------------------------------------------------

    def snapshot(self, now):
        """Everything, as JSON-ready data, with the open sessions' running counters added."""
        traffic = dict(self.traffic)
        open_sessions = {}
        for session in self._live:
            domain = domain_label(session)
            _add(open_sessions, (domain,))
            for (leg, direction, what), value in _traffic(session).items():
                _add(traffic, (domain, leg, direction, what), value)
        for domain in self._domains():
            open_sessions.setdefault((domain,), 0)
        origins = {}
        for route in self.relay.routes:
            for origin in route.origins:
                origins[(route.name, str(origin))] = 1 if origin in route.board.available else 0
        accounting = self.relay.accounting
        flush = {}
        if accounting is not None:
            flush = {"lag": max(0.0, now - accounting.written_at), "failures": accounting.flush_failures}
        return {
            "sessions_open": _rows(open_sessions),
            "handshakes": _rows(self.handshakes),
            "traffic": _rows(traffic),
            "closes": _rows(self.closes),
            "refusals": _rows({(k,): v for k, v in self.refusals.items()}),
            "origin_up": _rows(origins),
            "connect": [[domain, h.counts, h.sum, h.count] for domain, h in self.connect.items()],
            "rtt": [[domain, leg, h.counts, h.sum, h.count] for (domain, leg), h in self.rtt.items()],
            "flush": flush,
        }

    def _domains(self):
        return [domain.name for domain in self.relay.config.each_domain()]


def _rows(table):
    return [list(key) + [value] for key, value in table.items()]


def merge(snapshots):
    """One snapshot adding up several processes' (the workers of one relay)."""
    total = {"sessions_open": {}, "handshakes": {}, "traffic": {}, "closes": {}, "refusals": {},
             "origin_up": {}, "connect": {}, "rtt": {}, "flush": {}}
    for snap in snapshots:
        for name in ("sessions_open", "handshakes", "traffic", "closes", "refusals"):
            for row in snap[name]:
                _add(total[name], tuple(row[:-1]), row[-1])
        for row in snap["origin_up"]:  # each worker checks on its own: up when any worker has it up
            key = tuple(row[:-1])
            total["origin_up"][key] = max(total["origin_up"].get(key, 0), row[-1])
        for name, width in (("connect", 1), ("rtt", 2)):
            for row in snap[name]:
                key = tuple(row[:width])
                counts, sum_, count = row[width:]
                held = total[name].get(key)
                if held is None:
                    total[name][key] = [list(counts), sum_, count]
                else:
                    held[0] = [a + b for a, b in zip(held[0], counts)]
                    held[1] += sum_
                    held[2] += count
        if snap["flush"]:
            flush = total["flush"]
            flush["lag"] = max(flush.get("lag", 0.0), snap["flush"]["lag"])
            flush["failures"] = flush.get("failures", 0) + snap["flush"]["failures"]
    merged = {name: _rows(total[name]) for name in ("sessions_open", "handshakes", "traffic", "closes",
                                                      "refusals", "origin_up")}
    merged["connect"] = [list(key) + value for key, value in total["connect"].items()]
    merged["rtt"] = [list(key) + value for key, value in total["rtt"].items()]
    merged["flush"] = total["flush"]
    return merged


def _histogram(name, documentation, labels, rows, width):
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, documentation, labels=labels)
    for row in rows:
        key, counts, sum_, count = row[:width], row[width], row[width + 1], row[width + 2]
        buckets, running = [], 0
        for bound, n in zip(list(BUCKETS) + [float("inf")], counts):
            running += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        family.add_metric(list(key), buckets, sum_)
    return family


def families(snap):
    """The prometheus_client metric families of a (merged) snapshot."""
    # imported at the first scrape: a relay (or a worker) without an admin endpoint never pays for it
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def fill(family, rows):
        for row in rows:
            family.add_metric([str(v) for v in row[:-1]], row[-1])
        return family

    yield fill(GaugeMetricFamily("wsrelay_sessions_open", "Sessions open now (both handshakes done)",
                                 labels=["domain"]), snap["sessions_open"])
    yield fill(CounterMetricFamily("wsrelay_handshakes", "Client handshakes answered, by HTTP status",
                                   labels=["domain", "status"]), snap["handshakes"])
    messages = CounterMetricFamily("wsrelay_messages", "WebSocket data messages, per leg and direction "
                                   "(in: received by the relay on that leg)", labels=["domain", "leg", "direction"])
    octets = CounterMetricFamily("wsrelay_bytes", "Bytes on the wire (handshakes included, before TLS), "
                                 "per leg and direction", labels=["domain", "leg", "direction"])
    for domain, leg, direction, what, value in snap["traffic"]:
        (messages if what == "messages" else octets).add_metric([domain, leg, direction], value)
    yield messages
    yield octets
    yield fill(CounterMetricFamily("wsrelay_closes", "Closed legs of opened sessions: close code and who "
                                   "sent the first Close (1006: none)", labels=["domain", "leg", "code", "who"]),
               snap["closes"])
    yield fill(CounterMetricFamily("wsrelay_limit_refusals", "Handshakes refused by a limit (429/503)",
                                   labels=["reason"]), snap["refusals"])
    yield fill(GaugeMetricFamily("wsrelay_origin_up", "1 while the origin is in rotation",
                                 labels=["domain", "origin"]), snap["origin_up"])
    yield _histogram("wsrelay_origin_connect_seconds", "Origin TCP (and TLS) connect time of opened sessions",
                     ["domain"], snap["connect"], 1)
    yield _histogram("wsrelay_ping_rtt_seconds", "Heartbeat ping round trip, per leg",
                     ["domain", "leg"], snap["rtt"], 2)
    if snap["flush"]:
        yield GaugeMetricFamily("wsrelay_accounting_flush_lag_seconds",
                                "Seconds since the statistics were last written to the store",
                                value=snap["flush"]["lag"])
        yield CounterMetricFamily("wsrelay_accounting_flush_failures", "Statistics flushes that failed",
                                  value=snap["flush"]["failures"])


class SnapshotCollector:
    """A prometheus_client collector over a function returning a (merged) snapshot."""

    def __init__(self, snapshot):
        self.snapshot = snapshot

    def collect(self):
        yield from families(self.snapshot())


class WorkersProcessCollector:
    """prometheus_client's process collector for each worker's pid, as one family per metric with a `worker` label."""

    def __init__(self, pids):
        from prometheus_client import ProcessCollector

        self.inner = [(str(worker), ProcessCollector(pid=lambda pid=pid: pid, registry=None))
                      for worker, pid in pids]

    def collect(self):
        families = {}
        for worker, collector in self.inner:
            for family in collector.collect():
                held = families.setdefault(family.name, family)
                for sample in family.samples:
                    sample.labels["worker"] = worker
                if held is not family:
                    held.samples.extend(family.samples)
        yield from families.values()
