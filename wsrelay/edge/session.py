"""
A session: one client connection, the origin connection made for it, the
clocks that watch them, the counters that meter them, and the single record
logged when both are gone.
"""

from twisted.logger import Logger

from wsrelay.edge.closing import (
    EXPIRED, IDLE, PEER_CLOSED, PEER_DEAD, PEER_GONE, RELOAD, SHUTDOWN, close_for_other_leg,
)
from wsrelay.edge.timers import Heartbeat, IdleTimer, lifetime

log = Logger(namespace="wsrelay.session")


class LegCounters:
    """Exact per-leg counts; plain attribute increments on the hot path."""

    __slots__ = ("bytes_in", "bytes_out", "frames_in", "frames_out", "messages_in", "messages_out")

    def __init__(self):
        self.bytes_in = self.bytes_out = 0
        self.frames_in = self.frames_out = 0
        self.messages_in = self.messages_out = 0

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


class Reading:
    """
    One leg's transport as the producer of the other leg's: paused and
    resumed by it, never stopped. A transport stops its producer when its own
    connection ends, and stopping a TCP transport closes it: the surviving
    leg would be hung up on right after its Close frame, before its peer's
    reply is read (and counted). The session closes it itself.
    """

    __slots__ = ("transport",)

    def __init__(self, transport):
        self.transport = transport

    def pauseProducing(self):
        self.transport.pauseProducing()

    def resumeProducing(self):
        self.transport.resumeProducing()

    def stopProducing(self):
        pass


class Session:
    """Joins a ClientLeg and an OriginLeg for the life of one relayed connection."""

    # Slots: a session's 31 attributes in a dict cost ~1.3 KiB more (over 30 keys a dict is not
    # key-sharing). __dict__ stays for attributes other modules add; it is only made if one does.
    __slots__ = (
        "relay", "config", "clock", "client", "origin", "peer", "client_ip", "scheme", "protocol", "started",
        "domain", "host", "path", "subprotocol", "origin_address", "routed", "status", "opened_at",
        "first_closer", "pending", "stopping", "reason", "admitted", "ended", "accounting_dims", "connect_time",
        "_idle", "_heartbeats", "_expiry", "_client_lost", "_origin_lost", "__dict__", "__weakref__")

    def __init__(self, relay, config, client, peer, scheme, now):
        self.relay = relay
        self.config = config
        self.clock = relay.reactor
        self.client = client
        self.origin = None
        self.peer = peer
        self.client_ip = peer
        self.scheme = scheme
        self.protocol = "h1"      # what carries the client leg: h1 (HTTP/1.1 upgrade) or h2 (RFC 8441 stream)
        self.started = now
        self.domain = None
        self.host = None
        self.path = None
        self.subprotocol = None
        self.origin_address = None
        self.routed = None        # (route, origin) once the origin said 101: told when the session ends
        self.status = None
        self.opened_at = None
        self.first_closer = None
        self.pending = None
        self.stopping = None      # why the relay ends this session itself (shutdown, reload): its 503 text
        self.reason = None        # why the handshake was refused (the error response's text)
        self.admitted = None      # the limits' ticket while this session counts against them
        self.ended = False
        self.accounting_dims = None  # (domain, region, isp) the meter counts this session under
        self.connect_time = None  # seconds the origin took to answer (wsrelay.origins.dial)
        self._idle = None
        self._heartbeats = ()
        self._expiry = None       # max_session_duration's timer
        self._client_lost = False
        self._origin_lost = False

    # -- life cycle ------------------------------------------------------------

    def open(self):
        """Both handshakes are done: join the legs and start the clocks."""
        client, origin = self.client, self.origin
        self.status = 101
        self.opened_at = self.clock.seconds()
        client.other, origin.other = origin, client
        # A full write buffer on one leg stops reading on the other (portforward.py).
        client.registerProducer(Reading(origin.transport), True)
        origin.registerProducer(Reading(client.transport), True)
        domain = self.domain
        wheel = self.relay.wheel  # the relay's one timer for every session's clocks
        self._idle = IdleTimer(wheel, domain.connection_timeout, self.idle)
        self._idle.start()
        if domain.heartbeat_interval > 0:  # one timer for both legs; nothing at all when off
            beat = Heartbeat(wheel, domain.heartbeat_interval, domain.heartbeat_timeout,
                             (client.sendPing, origin.sendPing), self._leg_dead)
            self._heartbeats = (beat,)
            client.heartbeat = origin.heartbeat = beat
            beat.start()
        left = lifetime(domain.max_session_duration, self.config.drain_window, self.relay.random)
        if left is not None:
            self._expiry = self.clock.callLater(left, self._close_both, EXPIRED)
        self.relay.session_opened(self)
        origin.client_opened()
        client.compact()
        origin.compact()

    def _leg_dead(self, index):
        self.leg_event(("client", "origin")[index], PEER_DEAD)

    def touch(self):
        """A data message started on either leg."""
        self._idle.last = self.clock.seconds()

    def idle(self):
        self._close_both(IDLE)

    def shutdown(self):
        """The relay is stopping: 1001 on both legs."""
        self._end_by_relay(SHUTDOWN, "the relay is shutting down")

    def restart(self):
        """A reloaded config changed or removed this session's route: 1012 on both legs."""
        self._end_by_relay(RELOAD, "the relay configuration changed")

    def shed(self, code, reason, holding):
        """
        Overload (max_memory): `code` on each leg, but a leg `holding(leg)`
        unsent data its peer is not reading is dropped, which frees it at once.
        """
        if self.ended or self.status != 101:
            return
        if self.first_closer is None:
            self.first_closer = "relay"
        self._stop_clocks()
        legs = (self.client, self.origin)
        dropped = [leg for leg in legs if holding(leg)]
        for leg in legs:
            if leg not in dropped:
                leg.close_with(code, reason, hold=False)
        for leg in dropped:
            leg.abort()

    def close_by_operator(self, client_code, origin_code, reason):
        """The admin API closes this session: each leg gets its code, the same reason."""
        if self.ended or self.status != 101:
            return
        if self.first_closer is None:
            self.first_closer = "relay"
        self._stop_clocks()
        self.client.close_with(client_code, reason, hold=True)
        self.origin.close_with(origin_code, reason, hold=True)

    def _end_by_relay(self, event, why):
        if self.ended:
            return
        self.stopping = why
        if self.status == 101:
            self._close_both(event)
        elif self.pending is not None:
            self.pending.cancel()  # the client gets 503 with Retry-After
        else:
            self.client.abort()

    def _close_both(self, event):
        if self.first_closer is None:
            self.first_closer = "relay"
        self._stop_clocks()
        code, reason = close_for_other_leg("relay", event)
        for leg in (self.client, self.origin):
            leg.close_with(code, reason, hold=True)

    def leg_event(self, side, event, code=None, reason=None):
        """Something ended `side`'s leg; tell the other leg what it needs to hear."""
        if self.first_closer is None:
            self.first_closer = side if event in (PEER_CLOSED, PEER_GONE) else "relay"
        self._stop_clocks()
        leg, other = (self.client, self.origin) if side == "client" else (self.origin, self.client)
        if event == PEER_DEAD:
            leg.abort()
        if other is None or other.close_sent is not None or other.lost:
            return
        code, reason = close_for_other_leg(
            side, event, code, reason, self.config.origin_gone_close_code)
        other.close_with(code, reason, hold=event == PEER_CLOSED)

    def leg_lost(self, side):
        """A leg's TCP connection is gone; end the session once both are."""
        if side == "client":
            self._client_lost = True
            if self.pending is not None:
                self.pending.cancel()
            if self.status == 101 and not self._origin_lost and self.origin.close_received is None:
                if self.client.close_received is None:
                    self.leg_event("client", PEER_GONE)
        else:
            self._origin_lost = True
            if self.status == 101 and not self._client_lost and self.client.close_sent is None:
                self.leg_event("origin", PEER_GONE)
        if self._client_lost and (self._origin_lost or self.origin is None):
            self.end()

    def _stop_clocks(self):
        if self._idle is not None:
            self._idle.stop()
        for beat in self._heartbeats:
            beat.stop()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()

    def end(self):
        if self.ended:
            return
        self.ended = True
        self._stop_clocks()
        try:
            self._report()
        finally:
            self.release()

    def release(self):
        """
        Ended and reported: break the reference cycles between this session, its legs, their
        transports and timers, so that refcounting frees them now instead of a full collection
        later (an idle relay may not run one for hours). What the session reports stays readable
        from it (its legs' counters and closes).
        """
        self._idle = None
        self._heartbeats = ()
        self._expiry = None
        for leg in (self.client, self.origin):
            if leg is not None and leg.lost:
                leg.release()

    def _report(self):
        self.relay.session_ended(self)
        if self.admitted is not None:
            self.admitted.release()
            self.admitted = None
        if self.routed is not None:
            route, origin = self.routed
            route.closed(origin)
        if self.client.counters.bytes_in == 0:
            return  # a bare TCP probe (load balancer health check): nothing to report
        record = self.record()
        gate = getattr(self.relay, "log_gate", None)
        if gate is not None and not gate.admit(record):
            return  # counted in the client address's summary line instead
        worker = " worker={worker}" if self.relay.worker is not None else ""
        if self.status != 101:
            log.info("{line}" + worker, line=refusal_line(record), **record)
            return
        log.info(
            "{client_ip} {domain} \"{path}\" {status} {origin} "
            "in={client_messages_in}/{client_bytes_in}B out={client_messages_out}/{client_bytes_out}B "
            "{duration:.3f}s close client={client_close_code} origin={origin_close_code} first={first_closer}"
            " proto={protocol}" + worker,
            **record,
        )

    # -- reporting -------------------------------------------------------------

    def record(self):
        """The session's log record: flat, JSON-friendly fields."""
        now = self.clock.seconds()
        fields = {
            "event": "session",
            "domain": self.domain.name if self.domain else None,
            "host": self.host,
            "client_ip": self.client_ip,
            "peer": self.peer,
            "scheme": self.scheme,
            "protocol": self.protocol,
            "path": self.path,
            "subprotocol": self.subprotocol,
            "origin": self.origin_address,
            "status": self.status,
            "reason": self.reason,
            "duration": now - self.started,
            "first_closer": self.first_closer,
            "worker": getattr(self.relay, "worker", None),
        }
        for side, leg in (("client", self.client), ("origin", self.origin)):
            counters = leg.counters.as_dict() if leg is not None and leg.counters else {}
            for name in ("bytes_in", "bytes_out", "frames_in", "frames_out", "messages_in", "messages_out"):
                fields[f"{side}_{name}"] = counters.get(name, 0)
            code, reason, by = leg.close_info() if leg is not None else (None, None, None)
            fields[f"{side}_close_code"] = code
            fields[f"{side}_close_reason"] = reason
            fields[f"{side}_closed_by"] = by
        return fields


def refusal_line(record):
    """The text of a refused handshake's session line: what was asked, the status and why."""
    def shown(value):
        return "-" if value is None else value
    return (f"{record['client_ip']} {shown(record['domain'])} \"{shown(record['path'])}\" "
            f"{shown(record['status'])} refused: {shown(record['reason'])} "
            f"in={record['client_bytes_in']}B out={record['client_bytes_out']}B {record['duration']:.3f}s"
            f" proto={shown(record.get('protocol'))}")
