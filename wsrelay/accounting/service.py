"""
The shell around the meter: what the relay calls when sessions open and
end, and the timer that flushes the meter into the store every
flush_interval (and once more when the relay stops).

A batch the store could not write is kept, and retried as it is (same batch
id, so a write that did land is not counted twice) before anything newer is
taken; meanwhile the meter keeps counting in memory. The failure is logged
once, and the recovery once.
"""

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

from wsrelay.accounting.meter import H1, HTTP, LEG_FIELDS, Meter

log = Logger(namespace="wsrelay.accounting")

EXPIRE_EVERY = 3600.0   # seconds between retention passes
STOP_TIMEOUT = 10.0     # seconds the last flush may take at shutdown


def totals(session):
    """The session's (or plain HTTP request's) 12 counters (client leg, then origin leg) in meter.TRAFFIC order."""
    metered = getattr(session, "metered_totals", None)
    if metered is not None:
        return metered()
    values = []
    for leg in (session.client, session.origin):
        counters = leg.counters if leg is not None else None
        values.extend(getattr(counters, name) if counters is not None else 0 for name in LEG_FIELDS)
    return tuple(values)


def _protocol(session):
    """What carried the client leg: h1 or h2 (what has no such attribute is HTTP/1.1)."""
    return getattr(session, "protocol", None) or H1


def closes(session):
    found = []
    for side, leg in (("client", session.client), ("origin", session.origin)):
        if leg is not None:
            code, _, by = leg.close_info()
            if code is not None:
                found.append((side, code, by))
    return found


class Accounting(TimerService):
    """The meter, its store and the flush timer, on the relay's clock."""

    def __init__(self, settings, store, locator, clock, run):
        super().__init__(settings.flush_interval, self.flush)
        self.clock = clock
        self.settings = settings
        self.store = store
        self.locator = locator
        self.meter = Meter(settings.node_id, run)
        self._sessions = {}     # token -> session (the live ones)
        self._pending = None    # a Batch taken but not yet known to be written
        self._flushing = None   # the Deferred of the write in flight
        self._failing = False
        self.written_at = clock.seconds()  # the last flush that wrote (the metrics' flush lag)
        self.flush_failures = 0
        self._expired_at = None
        self._noted = {}        # domain -> (method, cycle) last noted from a config
        self._billing = []      # [(domain, method, cycle, at)] noted, not yet recorded
        self.retention = {300: settings.retention_5m, 3600: settings.retention_1h,
                          86400: settings.retention_1d}

    # -- the relay's calls (no I/O) ------------------------------------------------

    def dims(self, session):
        region, isp = self.locator.locate(session.client_ip)
        return (session.domain.name if session.domain is not None else "-", region, isp)

    def session_opened(self, session):
        session.accounting_dims = dims = self.dims(session)
        self._sessions[id(session)] = session
        self.meter.opened(id(session), dims, totals(session), self.clock.seconds(), protocol=_protocol(session))

    def session_ended(self, session):
        token = id(session)
        self._sessions.pop(token, None)
        if not self._sessions:
            self._sessions = {}  # a dict never shrinks: after a storm, its table would stay at the peak's size
        if session.client is None or session.client.counters is None or session.client.counters.bytes_in == 0:
            return  # a bare TCP probe
        dims = getattr(session, "accounting_dims", None) or self.dims(session)
        self.meter.ended(token, dims, totals(session), self.clock.seconds(),
                         status=session.status, closes=closes(session), protocol=_protocol(session))

    def request_started(self, request):
        """A plain HTTP request was admitted and goes to an origin: live (kind http) from now."""
        request.accounting_dims = dims = self.dims(request)
        self._sessions[id(request)] = request
        self.meter.opened(id(request), dims, totals(request), self.clock.seconds(), status=None, kind=HTTP,
                          protocol=_protocol(request))

    def request_ended(self, request):
        """A plain HTTP request is over (answered, refused, cut or abandoned): its status and last bytes."""
        token = id(request)
        self._sessions.pop(token, None)
        dims = request.accounting_dims or self.dims(request)
        request.connection.last_dims = dims
        self.meter.ended(token, dims, totals(request), self.clock.seconds(), status=request.status, kind=HTTP,
                         protocol=_protocol(request))

    def http_leftover(self, connection, received, sent):
        """Bytes of a client connection that no request took (a partial head, say): traffic of its last domain."""
        dims = getattr(connection, "last_dims", None)
        if dims is None:
            dims = ("-", *self.locator.locate(connection.peer))
        values = (received, sent) + (0,) * 10
        self.meter.ended(object(), dims, values, self.clock.seconds(), kind=HTTP)

    def note_billing(self, config):
        """
        Note each domain's billing method and cycle as of now (startup,
        reload); the store records it with the next flush when it differs
        from the last setting recorded, which is how a change is dated.
        """
        now = self.clock.seconds()
        for domain in config.each_domain():
            setting = (domain.billing.method, domain.billing.cycle)
            if self._noted.get(domain.name) != setting:
                self._noted[domain.name] = setting
                self._billing.append((domain.name, *setting, now))

    # -- the flush ---------------------------------------------------------------------

    def flush(self):
        """Fold the live sessions and write one batch; a Deferred fired once this flush is over."""
        if self._flushing is not None:
            return self._flushing
        now = self.clock.seconds()
        self.meter.fold_all(lambda token: totals(self._sessions[token]), now)
        if self._pending is None:
            self._pending = self.meter.take()
        if not self._pending and not self._billing and self._expire_due(now) is False:
            self._pending = None
            return defer.succeed(None)
        return self._write(self._pending, now)

    def _expire_due(self, now):
        return self._expired_at is None or now - self._expired_at >= EXPIRE_EVERY

    def _write(self, batch, now):
        d = self._flushing = defer.Deferred()
        if batch:
            d.addCallback(lambda _: self.store.write(batch))
        billing = list(self._billing)
        if billing:
            d.addCallback(lambda _: self.store.record_billing(self.meter.node, billing))
            d.addCallback(lambda _: self._billing.__delitem__(slice(0, len(billing))))
        if self._expire_due(now):
            d.addCallback(lambda _: self.store.expire(now, self.retention))
            d.addCallback(lambda _: setattr(self, "_expired_at", now))

        def written(_):
            self._pending = None
            self.written_at = self.clock.seconds()
            self._flushing = None
            if self._failing:
                self._failing = False
                log.info("statistics are written again (batch {seq})", seq=batch.seq)

        def failed(failure):
            self._flushing = None
            self.flush_failures += 1
            if not self._failing:
                self._failing = True
                log.failure("cannot write the statistics; counting on in memory and retrying "
                            "every {interval:g}s", failure, interval=self.step)
            return None

        d.addCallbacks(written, failed)
        d.callback(None)
        return d

    def stopService(self):
        """Stop the timer, fold everything, write it (bounded by STOP_TIMEOUT), close the store."""
        super().stopService()
        d = defer.Deferred()
        if self._flushing is not None:
            self._flushing.addBoth(lambda result: d.callback(None) or result)
        else:
            d.callback(None)
        d.addCallback(lambda _: self.flush())
        # a batch kept from a failed write goes first; what the meter holds now, second
        d.addCallback(lambda _: self.flush() if self._pending is None and len(self.meter) else None)
        d.addTimeout(STOP_TIMEOUT, self.clock)
        d.addErrback(lambda f: log.failure("the last statistics flush did not finish", f))
        d.addBoth(lambda _: self.store.close())
        d.addErrback(lambda f: log.failure("closing the statistics store failed", f))
        return d
