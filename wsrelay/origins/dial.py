"""
Dialling the origin for one handshake: the origins the domain's route
chooses, the endpoint (TLS with SNI and a checked certificate for https),
the deadline, the one retry on the next origin (after a failed connect, or
when the origin closed or reset the connection before sending a byte: an
upgrade GET is idempotent, like nginx's `proxy_next_upstream error`), the
HTTP status the client gets when it fails, and what the route hears about each attempt (opened, or
failed) for its selector and its health board.
"""

import errno

from twisted.internet import defer, error
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from wsrelay.edge.deflate import accept_origin_response, origin_offers
from wsrelay.origins.endpoint import origin_endpoint
from wsrelay.origins.health import probe
from wsrelay.edge.http import forwarded_headers, new_key, origin_request, response_headers
from wsrelay.edge.legs import OriginLeg, Refused
from wsrelay.origins.routing import NoOrigin
from wsrelay.selectors import Handshake
from wsrelay.tls import OriginCertificateError, check_server_name, origin_server_name, tls_handshake_problem

log = Logger(namespace="wsrelay.origin")

# A deadline that fires this many seconds late says the relay's own event loop was
# too busy to judge the origin: such a timeout does not count against its health.
LATE = 0.25
# Connect errors that are the relay's own (out of descriptors, memory or ports),
# not the origin's: they do not count against its health either.
RELAY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL})


def origin_probe(reactor, domain, tls):
    """
    wsrelay.origins.health.origin_probe with the domain's origin TLS (origin_ca,
    origin_verify) and SNI (origin_sni, origin_host, else the domain's name).
    """
    health = domain.health
    scheme = "https" if domain.origin_protocol == "https" else "http"

    def check(origin):
        endpoint = origin_endpoint(reactor, origin, scheme, health.timeout,
                                   sni=check_server_name(domain, origin), tls=tls)
        return probe(reactor, endpoint, health.check, health.path, domain.origin_host or str(origin),
                     health.timeout)

    return check


class _LegFactory(Factory):
    """Hands the one prepared OriginLeg to the endpoint; quiet, unlike connectProtocol's."""

    noisy = False

    def __init__(self, leg):
        self.leg = leg

    def buildProtocol(self, addr):
        return self.leg


class OriginDial:
    """One handshake's attempt(s) to reach an origin; `result` fires (subprotocol, headers)."""

    def __init__(self, relay, session, request):
        self.relay = relay
        self.session = session
        self.domain = session.domain
        self.scheme = self.domain.origin_scheme(session.scheme)
        self.route = relay.routes[self.domain.name]
        self.handshake = Handshake(self.domain.name, request.path, request.params, request.headers,
                                   session.client_ip)
        self.candidates = ()
        client_host = request.headers.get("host", "")
        self.host_header = self.domain.origin_host or client_host
        self.server_name = origin_server_name(self.domain, self.host_header)  # SNI, for https
        self.protocols = list(request.protocols or ())
        self.client_headers = request.headers
        self.forwarded = forwarded_headers(
            session.peer, request.headers.get("x-forwarded-for"), session.client_ip,
            relay.config.is_trusted_proxy(session.peer), session.scheme, client_host)
        self.result = defer.Deferred(canceller=self._cancel)
        self._choosing = None
        self._leg = None
        self._connecting = None
        self._timer = None
        self._timed_out = False
        self._cancelled = False

    def start(self):
        self._choosing = self.route.choose(self.handshake)
        self._choosing.addCallbacks(self._chosen, self._not_chosen)
        return self.result

    def _chosen(self, origins):
        self._choosing = None
        if not self._cancelled:
            self.candidates = origins
            self._attempt(0)

    def _not_chosen(self, failure):
        self._choosing = None
        if self._cancelled:
            return
        if failure.check(NoOrigin):
            self._fail(503, str(failure.value), [("Retry-After", str(failure.value.retry_after))])
        else:
            log.failure("choosing an origin for {domain} failed", failure, domain=self.domain.name)
            self._fail(503, "no origin available")

    def _attempt(self, index):
        self._index = index
        origin = self.candidates[index]
        key = new_key()
        offers = origin_offers() if self.domain.origin_compression else []
        request = origin_request(
            self.session.path, self.host_header, key, self.client_headers,
            self.forwarded, self.protocols,
            ", ".join(offer.get_extension_string() for offer in offers))
        leg = OriginLeg(self.session, request, key)
        leg.factory = self.relay.origin_factory(self.protocols)
        leg.maxMessagePayloadSize = self.domain.max_message_size
        leg.perMessageCompressionOffers = offers
        leg.perMessageCompressionAccept = accept_origin_response
        self._leg, self._origin = leg, origin
        timeout = self.relay.config.origin_connect_timeout
        self._timed_out = False
        self._grace = False
        self._deadline_at = self.relay.reactor.seconds() + timeout
        self._timer = self.relay.reactor.callLater(timeout, self._deadline)
        self._dialled_at = self.relay.reactor.seconds()
        endpoint = self.relay.origin_endpoint(origin, self.scheme, timeout, self.domain, self.server_name)
        self._connecting = endpoint.connect(_LegFactory(leg))
        self._connecting.addCallbacks(self._connected, self._connect_failed, errbackArgs=(index,))

    def _deadline(self):
        self._timer = None
        if not self._grace:
            # One more turn of the event loop first: a busy reactor runs its timers
            # before it reads, so an answer already received would be lost to a timeout.
            self._grace = True
            self._timer = self.relay.reactor.callLater(0, self._deadline)
            return
        self._timed_out = True
        if self._connecting is not None:
            self._connecting.cancel()
        else:
            self._leg.abort()

    def _stop_timer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _connected(self, leg):
        self._connecting = None
        self.session.connect_time = self.relay.reactor.seconds() - self._dialled_at  # for the metrics
        leg.answered.addCallbacks(self._answered, self._handshake_failed)

    def _connect_failed(self, failure, index):
        self._connecting = None
        self._stop_timer()
        if self._cancelled:
            return
        timed_out = self._timed_out or failure.check(error.TimeoutError)
        why = "timed out" if timed_out else failure.getErrorMessage()
        log.info("origin {origin} for {domain}: connect failed ({why})",
                 origin=str(self._origin), domain=self.domain.name, why=why)
        if timed_out:
            self._judge_timeout(f"connect {why}")
        elif failure.check(error.ConnectBindError) or (
                failure.check(error.ConnectError) and failure.value.osError in RELAY_ERRNOS):
            self.route.failed_here(self._origin, f"connect {why}")
        else:
            self.route.failed(self._origin, f"connect {why}")
        if index + 1 < len(self.candidates):
            self._attempt(index + 1)
        elif timed_out:
            self._fail(504, "the origin did not answer in time")
        else:
            self._fail(502, "the origin refused the connection")

    def _answered(self, response):
        self._stop_timer()
        if self._cancelled:
            return
        leg, session = self._leg, self.session
        self.route.opened(self._origin)
        session.routed = (self.route, self._origin)  # the session reports its end there
        session.origin = leg
        session.origin_address = str(self._origin)
        session.subprotocol = response.protocol
        headers = {}
        for name, value in response_headers(leg.http_response_data, refusal=False):
            headers.setdefault(name, []).append(value)
        self.result.callback((response.protocol, headers))

    def _handshake_failed(self, failure):
        self._stop_timer()
        if self._cancelled:
            return
        leg = self._leg
        if self._timed_out:
            self._judge_timeout("no handshake answer in time")
            self._fail(504, "the origin did not finish its handshake in time")
        elif leg.refusal is not None:
            status, reason = leg.refusal
            headers = ()
            if status != 502:  # the origin answered for its application: it is not failing
                headers = response_headers(leg.http_response_data, refusal=True)
                reason = f"the origin answered {status}"
            else:
                log.info("origin {origin} for {domain}: bad handshake answer ({reason})",
                         origin=str(self._origin), domain=self.domain.name, reason=reason)
                self.route.failed(self._origin, f"bad handshake answer: {reason}")
                reason = "the origin gave an invalid WebSocket handshake"
            self._fail(status, reason, headers)
        elif failure.check(OriginCertificateError):
            # Logged as a warning: a wrong certificate may be an attack as much as a mistake.
            self._tls_failed(log.warn, f"certificate refused: {failure.value}",
                             "the origin's TLS certificate was refused")
        elif (why := tls_handshake_problem(failure)) is not None:
            self._tls_failed(log.info, why, "the TLS handshake with the origin failed", retry=True)
        else:
            how = "reset" if failure.check(error.ConnectionLost) else "closed"
            why = f"{how} the connection during the handshake"
            if self._retried(why):
                return
            self.route.failed(self._origin, why)
            self._fail(502, "the origin closed the connection during the handshake")

    def _judge_timeout(self, why):
        """A timeout counts against the origin unless the relay itself was too late to judge it."""
        late = self.relay.reactor.seconds() - self._deadline_at
        if late > LATE:
            log.info("origin {origin} for {domain}: {why}, not counted against it: the relay's event loop "
                     "was {late:.2f}s late", origin=str(self._origin), domain=self.domain.name, why=why, late=late)
            self.route.failed_here(self._origin, why)
        else:
            self.route.failed(self._origin, why)

    def _retried(self, why):
        """
        Try the next candidate when this origin sent nothing at all (so nothing of
        its answer can have reached the client): True if a retry was started.
        """
        leg = self._leg
        if self._index + 1 >= len(self.candidates) or (leg.counters is not None and leg.counters.bytes_in):
            return False
        log.info("origin {origin} for {domain}: {why} before sending a byte; trying {next}",
                 origin=str(self._origin), domain=self.domain.name, why=why,
                 next=str(self.candidates[self._index + 1]))
        self.route.failed(self._origin, why)
        self._attempt(self._index + 1)
        return True

    def _tls_failed(self, emit, why, reason, retry=False):
        emit("origin {origin} for {domain} ({server_name}): {why}", origin=str(self._origin),
             domain=self.domain.name, server_name=self.server_name, why=why)
        if retry and self._retried(why):
            return
        self.route.failed(self._origin, why)
        self._fail(502, reason)

    def _fail(self, status, reason, headers=()):
        self.result.errback(Refused(status, reason, headers))

    def _cancel(self, result):
        self._cancelled = True
        self._stop_timer()
        if self._choosing is not None:
            self._choosing.cancel()
        elif self._connecting is not None:
            self._connecting.cancel()
        elif self._leg is not None:
            self._leg.abort()
