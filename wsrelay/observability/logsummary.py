"""
Quiet logs. A refused handshake or a session the relay closed for a protocol
violation is logged as its own session line at most `limit` times per client
address per `interval`; past that it is only counted, and when the interval
ends each such address gets one summary line (how many, of which statuses or
codes). One misbehaving client, or a flood of them, cannot fill the journal:
the lines per interval are bounded by limit x addresses tracked, and the
addresses tracked by MAX_ADDRESSES (the rest share one "other addresses" line).

Also the periodic records of `log_interval`: every session still open, with
its running counters, so that long sessions show up before they end.
"""

from twisted.logger import Logger

log = Logger(namespace="wsrelay.session")

VIOLATIONS = frozenset({1002, 1007, 1008, 1009})  # close codes the relay sends a client for a broken protocol
MAX_ADDRESSES = 1000   # client addresses counted one by one per interval
OTHERS = "other addresses"


def kind_of(record):
    """'refused', 'violation' or None (an ordinary session) for a session record (Session.record())."""
    if record.get("status") != 101:
        return "refused"
    if record.get("client_close_code") in VIOLATIONS and record.get("client_closed_by") == "relay":
        return "violation"
    return None


def what_of(record, kind):
    """The label a suppressed line is counted under: its status, or its close code."""
    if kind == "refused":
        return str(record.get("status") or "-")
    return str(record.get("client_close_code"))


class LogGate:
    """Decides which refusal/violation lines are written; summarises the others per address and interval."""

    def __init__(self, clock, limit, interval):
        self.clock = clock
        self.limit = limit
        self.interval = interval
        self._seen = {}       # address -> lines written this interval
        self._held = {}       # address -> {(kind, what): count} not written
        self._timer = None

    def configure(self, limit, interval):
        self.limit, self.interval = limit, interval

    def admit(self, record):
        """Whether this session's line is to be written (ordinary sessions always are)."""
        kind = kind_of(record)
        if kind is None:
            return True
        address = record.get("client_ip") or "-"
        if self._timer is None:
            self._timer = self.clock.callLater(self.interval, self.flush)
        seen = self._seen.get(address)
        if seen is None and len(self._seen) >= MAX_ADDRESSES:
            address = OTHERS
            seen = self._seen.get(address)
        if address != OTHERS and (seen or 0) < self.limit:
            self._seen[address] = (seen or 0) + 1
            return True
        self._seen.setdefault(address, seen or 0)
        held = self._held.setdefault(address, {})
        key = (kind, what_of(record, kind))
        held[key] = held.get(key, 0) + 1
        return False

    def flush(self):
        """The interval is over: one line per address with lines held back; counting starts again."""
        self._timer = None
        held, self._held, self._seen = self._held, {}, {}
        for address, counts in held.items():
            refused = {what: n for (kind, what), n in counts.items() if kind == "refused"}
            violations = {what: n for (kind, what), n in counts.items() if kind == "violation"}
            parts = []
            if refused:
                parts.append(f"{sum(refused.values())} refused handshakes ({_listing(refused)})")
            if violations:
                parts.append(f"{sum(violations.values())} sessions closed for protocol violations "
                             f"({_listing(violations)})")
            log.info("{client_ip}: {summary} in the last {interval:g}s, not logged one by one",
                     event="session_summary", client_ip=address, summary=" and ".join(parts),
                     interval=self.interval, refused=refused, violations=violations,
                     count=sum(counts.values()))

    def stop(self):
        """Write what is held now (the relay is stopping)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.flush()


def _listing(counts):
    return ", ".join(f"{what}: {n}" for what, n in sorted(counts.items()))


class OpenSessionLog:
    """Every `interval` seconds, one record per open session with its running counters (log_interval)."""

    def __init__(self, relay):
        self.relay = relay
        self._timer = None

    def start(self):
        self.schedule()

    def schedule(self):
        interval = self.relay.config.log_interval
        if interval > 0 and self._timer is None:
            self._timer = self.relay.reactor.callLater(interval, self.tick)

    def tick(self):
        self._timer = None
        for session in list(self.relay.sessions):
            if session.status == 101 and not session.ended:
                record = dict(session.record(), event="session_open")
                log.info("{client_ip} {domain} \"{path}\" open {origin} "
                         "in={client_messages_in}/{client_bytes_in}B out={client_messages_out}/{client_bytes_out}B "
                         "{duration:.3f}s so far", **record)
        self.schedule()

    def stop(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
