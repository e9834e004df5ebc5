"""
One HTTP request's exchange with its origin, for ProxyRequest (httpproxy.py): the attempts on
the chosen origins (a connection from the domain's pool, the retry of an idempotent request that
got nothing), the response streamed back, the flow control between the client's body and the
origin, and the read and body timers.
"""

from twisted.internet import error
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import http
from twisted.web.client import PotentialDataLoss, Request as OriginRequest, ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH

from wsrelay.edge.http import HOP_BY_HOP, end_to_end
from wsrelay.tls import OriginCertificateError, tls_handshake_problem
from wsrelay.edge.httpbodies import _ResponseBody

log = Logger(namespace="wsrelay.http")

# Methods a relay may send twice (RFC 9110 9.2.2): retried on the next origin when
# the first gave no byte back and no byte of a request body was sent.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

# Response headers not copied to the client: hop-by-hop, and the length (written by the relay).
RESPONSE_DROP = HOP_BY_HOP | {"content-length", "proxy-authenticate"}


def _reasons(failure):
    """The failures a twisted.web client failure wraps (ResponseNeverReceived keeps a list)."""
    found = [failure]
    for inner in getattr(failure.value, "reasons", ()) or ():
        found.extend(_reasons(inner))
    return found


class OriginExchange:
    """The origin side of a ProxyRequest (see the module's docstring); its state lives on the request."""

    # -- the origin request -----------------------------------------------------------

    def _attempt(self, index):
        self._index = index
        origin = self._candidates[index]
        self.origin_address = str(origin)
        self._timed_out = False
        pool = self.relay.http_pool(self.domain, self.scheme, self.server_name)
        self._pending = pool.connect(origin)
        self._pending.addCallbacks(self._connected, self._request_failed)

    def _connected(self, connection):
        self._pending = None
        wrapper, protocol = connection
        self._origin_conn = connection
        self._reused = wrapper.requests > 0
        wrapper.requests += 1
        wrapper.cut()  # from here on, every byte on it is this request's
        request = OriginRequest(self.method, self.target.encode("latin-1"), self.origin_headers,
                                self._body, persistent=True)
        self.origin_counters.messages_out += 1
        self._pending = protocol.request(request)
        self._pending.addCallbacks(self._answered, self._request_failed)
        if self._body is None:
            self._arm_read_timer()

    def _release_origin(self):
        """The origin connection is no longer this request's: its bytes so far are."""
        conn, self._origin_conn = self._origin_conn, None
        if conn is not None:
            sent, received = conn[0].cut()
            self.origin_counters.bytes_out += sent
            self.origin_counters.bytes_in += received

    def _answered(self, response):
        self._pending = None
        self._stop_read_timer()
        if self._gone or self._closing:
            return
        self.ttfb = self.reactor.seconds() - self.started
        self.origin_counters.messages_in += 1
        self.relay.routes[self.domain.name].opened(self._candidates[self._index])
        self._opened = True
        self.setResponseCode(response.code, response.phrase)
        pairs = [(name.decode("latin-1"), value.decode("latin-1"))
                 for name, values in response.headers.getAllRawHeaders() for value in values]
        pairs += [("Connection", value) for value in self._origin_connection_header()]
        for name, value in end_to_end(pairs, RESPONSE_DROP):
            self.responseHeaders.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        if response.code not in http.NO_BODY_CODES:
            if self.method == b"HEAD":
                length = [v for n, v in pairs if n.lower() == "content-length"]
                if length:
                    self.responseHeaders.setRawHeaders(b"Content-Length", [length[0].encode("latin-1")])
            elif response.length is not UNKNOWN_LENGTH:
                self.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % response.length])
        if not self._body_complete:
            self._close_after()  # the rest of the client's body is not read: the connection cannot carry another request
        self.status = response.code
        self.write(b"")  # the head goes out now, whatever the body does
        self._arm_read_timer()
        response.deliverBody(_ResponseBody(self))

    def _origin_connection_header(self):
        """
        The origin response's Connection values: twisted.web's client keeps
        them apart from response.headers (with the parser), yet the headers
        they name must not reach the client either (RFC 9110 7.6.1).
        """
        parser = getattr(self._origin_conn[1], "_parser", None) if self._origin_conn else None
        headers = getattr(parser, "connHeaders", None)
        values = headers.getRawHeaders(b"connection", []) if headers is not None else []
        return [value.decode("latin-1") for value in values]

    def body_started(self, transport):
        if self._gone:
            transport.stopProducing()
            return
        self._response_body = transport
        if IPushProducer.providedBy(transport) or hasattr(transport, "pauseProducing"):
            self.registerProducer(transport, True)

    def body_data(self, data):
        self._touch_read_timer()
        if not self._gone:
            self.write(data)

    def body_ended(self, reason):
        self._stop_read_timer()
        transport, self._response_body = self._response_body, None
        if self._gone or self._closing or self._ended:
            return
        if transport is not None:
            self.unregisterProducer()
        if reason.check(ResponseDone, PotentialDataLoss):
            self._closed_origin_ok()
            self.finish()
            self._end()
        else:
            self._cut("the origin broke off its response" if self._cut_reason is None else self._cut_reason)

    def _request_failed(self, failure):
        self._pending = None
        self._stop_read_timer()
        connected = self._origin_conn is not None
        self._release_origin()
        if self._gone or self._ended or self._closing or self.startedWriting:
            return
        origin = self._candidates[self._index]
        route = self.relay.routes[self.domain.name]
        reasons = _reasons(failure)
        timed_out = self._timed_out or any(r.check(error.TimeoutError) for r in reasons)
        certificate = next((r for r in reasons if r.check(OriginCertificateError)), None)
        tls_problem = next((p for p in map(tls_handshake_problem, reasons) if p is not None), None)
        if certificate is not None:
            why = f"certificate refused: {certificate.value}"
            log.warn("origin {origin} for {domain} ({server_name}): {why}", origin=str(origin),
                     domain=self.domain.name, server_name=self.server_name, why=why)
        elif tls_problem is not None:
            why = tls_problem
        elif timed_out:
            why = "timed out" if not connected else "no answer in time"
        elif not connected:
            why = f"connect failed ({failure.getErrorMessage()})"
        else:
            why = "closed the connection before answering"
        body_sent = self._body is not None and self._body.started
        # A pooled connection the origin closed while idle: the same origin once more.
        stale = (connected and self._reused and not timed_out and not body_sent and not self._reused_retry
                 and self.method in IDEMPOTENT)
        if stale:
            self._reused_retry = True
            self._attempt(self._index)
            return
        log.info("origin {origin} for {domain}: {why}", origin=str(origin), domain=self.domain.name, why=why)
        route.failed(origin, why)
        replayable = not body_sent and (not connected or self.method in IDEMPOTENT)
        if replayable and self._index + 1 < len(self._candidates):
            self._attempt(self._index + 1)
            return
        if certificate is not None:
            self._fail(502, "the origin's TLS certificate was refused")
        elif tls_problem is not None:
            self._fail(502, "the TLS handshake with the origin failed")
        elif timed_out:
            self._fail(504, "the origin did not answer in time")
        elif not connected:
            self._fail(502, "the origin refused the connection")
        else:
            self._fail(502, "the origin closed the connection without answering")

    def _closed_origin_ok(self):
        if self._opened:
            self._opened = False
            self.relay.routes[self.domain.name].closed(self._candidates[self._index])

    # -- flow control -------------------------------------------------------------------

    def body_unwanted(self):
        """The origin (or nobody yet) takes the body: stop reading the client."""
        if not self._client_paused:
            self._client_paused = True
            self._stop_body_timer()
            self._pause_client()
            if self._body is not None and self._body.started:
                self._arm_read_timer()  # the origin is not reading: it is the one to watch

    def body_wanted(self):
        if self._client_paused:
            self._client_paused = False
            if not self._body_complete:
                self._stop_read_timer()
                self._start_body_timer()
            self._resume_client()

    def body_sent(self):
        """The whole body went to the origin: now it is the origin's turn."""
        self._arm_read_timer()

    def _pause_client(self):
        transport = getattr(self.channel, "transport", None)
        if transport is not None:
            transport.pauseProducing()

    def _resume_client(self):
        transport = getattr(self.channel, "transport", None)
        if transport is not None and not self._gone:
            transport.resumeProducing()

    # -- timers ---------------------------------------------------------------------------

    def _arm_read_timer(self):
        self._stop_read_timer()
        if not self._ended:
            self._read_timer = self.reactor.callLater(self.domain.origin_read_timeout, self._read_timeout)

    def _touch_read_timer(self):
        if self._read_timer is not None and self._read_timer.active():
            self._read_timer.reset(self.domain.origin_read_timeout)

    def _stop_read_timer(self):
        if self._read_timer is not None and self._read_timer.active():
            self._read_timer.cancel()
        self._read_timer = None

    def _read_timeout(self):
        self._read_timer = None
        if self.startedWriting:
            self.relay.routes[self.domain.name].failed(self._candidates[self._index], "response timed out")
            self._cut(f"the origin sent nothing for {self.domain.origin_read_timeout:g}s")
        elif self._pending is not None:
            self._timed_out = True
            pending, self._pending = self._pending, None
            pending.cancel()

    def _start_body_timer(self):
        self._stop_body_timer()
        timeout = self.domain.client_body_timeout
        if timeout and not self._body_complete:
            self._body_timer = self.reactor.callLater(timeout, self._body_timeout)

    def _touch_body_timer(self):
        if self._body_timer is not None and self._body_timer.active():
            self._body_timer.reset(self.domain.client_body_timeout)

    def _stop_body_timer(self):
        if self._body_timer is not None and self._body_timer.active():
            self._body_timer.cancel()
        self._body_timer = None

    def _body_timeout(self):
        self._body_timer = None
        self._fail(408, f"the request body stalled for {self.domain.client_body_timeout:g}s")

    def _stop_timers(self):
        self._stop_read_timer()
        self._stop_body_timer()
