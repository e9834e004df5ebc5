"""
One plain HTTP request proxied to an origin of its domain: ProxyRequest, a
twisted.web Request whose body and response stream both ways with
backpressure (never held whole), on the origin connections of a bounded pool
(wsrelay.httporigin). Routing, selection, health, limits, forwarded headers
and origin TLS are the WebSocket path's. The HTTP/1.1 channel that makes these
requests is wsrelay.httpserver's; an HTTP/2 stream can make them too (see
docs/http.md, "Entry point").

Errors before the response started get a status (404, 421, 426, 400, 413,
408, 429/503 from the limits, 503 no origin, 502 refused or broken, 504
silent origin); a response already started is cut, never replaced.
"""

from urllib.parse import parse_qs

from twisted.internet import defer, error
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.client import (
    PotentialDataLoss, Request as OriginRequest, ResponseDone, ResponseFailed, ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from wsrelay.http import (
    HOP_BY_HOP, canonical, end_to_end, error_response, forwarded_headers, request_target,
    valid_header_value,
)
from wsrelay.limits import Refusal
from wsrelay.routing import NoOrigin
from wsrelay.selectors import Handshake
from wsrelay.tls import OriginCertificateError, misdirected_request, origin_server_name, tls_handshake_problem

log = Logger(namespace="wsrelay.http")

# Methods a relay may send twice (RFC 9110 9.2.2): retried on the next origin when
# the first gave no byte back and no byte of a request body was sent.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

# Request headers the relay writes itself (or answers itself: Expect), never copied.
RELAY_OWNED = HOP_BY_HOP | {
    "host", "content-length", "expect", "proxy-authorization",
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded",
    "x-real-ip",
}
# Response headers not copied to the client: hop-by-hop, and the length (written by the relay).
RESPONSE_DROP = HOP_BY_HOP | {"content-length", "proxy-authenticate"}

RETRY_AFTER = "5"
CUT_GRACE = 5.0  # seconds a cut client connection has to take what was already written


class ClientConnection:
    """
    What the requests of one client connection share: the relay, the peer, the
    scheme and the raw bytes each way, which each request takes its share of
    (cut) when it ends, so that every byte of the connection is counted once.
    """

    def __init__(self, relay, transport, peer, scheme):
        self.relay = relay
        self.transport = transport  # the real one (SNI, TLS)
        self.peer = peer
        self.scheme = scheme
        self.bytes_in = 0
        self.bytes_out = 0
        self._cut_in = 0
        self._cut_out = 0

    def cut(self):
        """(bytes in, bytes out) since the last cut."""
        taken = (self.bytes_in - self._cut_in, self.bytes_out - self._cut_out)
        self._cut_in, self._cut_out = self.bytes_in, self.bytes_out
        return taken


class HTTPCounters:
    """A request's metered counts, in the order of the session's LegCounters (frames stay 0)."""

    __slots__ = ("bytes_in", "bytes_out", "frames_in", "frames_out", "messages_in", "messages_out")

    def __init__(self):
        self.bytes_in = self.bytes_out = 0
        self.frames_in = self.frames_out = 0
        self.messages_in = self.messages_out = 0


@implementer(IBodyProducer)
class RequestBody:
    """
    The client's request body as the origin request's IBodyProducer: pieces go
    on as they arrive; while the origin reads slower than the client sends,
    the client's connection stops being read (backpressure), so at most one
    read is held.
    """

    def __init__(self, request, length):
        self.request = request
        self.length = UNKNOWN_LENGTH if length is None else length
        self.started = False       # the origin request began taking the body: it cannot be sent again
        self.sent = 0
        self.complete = False
        self.stopped = False
        self._held = []
        self._consumer = None
        self._done = None

    def startProducing(self, consumer):
        self.started = True
        self._consumer = consumer
        self._done = done = defer.Deferred()
        held, self._held = self._held, []
        for data in held:
            self._write(data)
        if self.complete:
            self._finish()
        else:
            self.request.body_wanted()
        return done

    def feed(self, data):
        if self.stopped:
            return
        if self._consumer is None:
            self._held.append(data)
            self.request.body_unwanted()  # nobody reads it yet: stop the client until the origin does
        else:
            self._write(data)

    def _write(self, data):
        self.sent += len(data)
        self._consumer.write(data)

    def end(self):
        self.complete = True
        if self._consumer is not None and not self.stopped:
            self._finish()

    def _finish(self):
        done, self._done = self._done, None
        if done is not None:
            done.callback(None)
            self.request.body_sent()

    def pauseProducing(self):
        self.request.body_unwanted()

    def resumeProducing(self):
        self.request.body_wanted()

    def stopProducing(self):
        self.stopped = True
        self._held = []
        self.request.body_wanted()  # what is left of it is read and dropped
        done, self._done = self._done, None
        if done is not None:
            done.errback(Failure(defer.CancelledError()))


class _ResponseBody:
    """Copies the origin's response body to the client as it arrives; the client's pace sets the origin's."""

    def __init__(self, request):
        self.request = request
        self.transport = None

    def makeConnection(self, transport):
        self.transport = transport
        self.request.body_started(transport)

    def dataReceived(self, data):
        self.request.body_data(data)

    def connectionLost(self, reason):
        self.request.body_ended(reason)


def _reasons(failure):
    """The failures a twisted.web client failure wraps (ResponseNeverReceived keeps a list)."""
    found = [failure]
    for inner in getattr(failure.value, "reasons", ()) or ():
        found.extend(_reasons(inner))
    return found


class ProxyRequest(http.Request):
    """
    One request from a client, proxied. twisted.web's channel (HTTP/1.1 here,
    an HTTP/2 stream later) calls gotLength, then head_received once the head
    is read, handleContentChunk per body piece, requestReceived at the body's
    end and connectionLost if the client goes. Nothing is buffered whole.
    """

    def __init__(self, channel, queued=http._QUEUED_SENTINEL, connection=None):
        super().__init__(channel, queued)
        self.connection = connection
        self.relay = connection.relay
        self.reactor = self.relay.reactor
        self.config = self.relay.config
        self.started = self.reactor.seconds()
        self.domain = None
        self.host = None
        self.target = None
        self.client_ip = connection.peer
        self.status = None
        self.origin_address = None
        self.ttfb = None
        self.counters = HTTPCounters()          # the client leg
        self.origin_counters = HTTPCounters()   # the origin leg
        self.accounting_dims = None
        self.protocol = "h1"        # what carries the request: h1 (HTTP/1.x) or h2 (an HTTP/2 stream)
        self._announced = None      # the body length the head announced (None: chunked)
        self._body = None           # RequestBody while the client still sends one
        self._body_complete = False
        self._body_seen = 0
        self._admitted = None
        self._candidates = ()
        self._index = 0
        self._reused_retry = False
        self._pending = None        # the Deferred of the origin connection or response in flight
        self._origin_conn = None    # (wrapper, protocol) of the origin connection in use
        self._response_body = None  # the origin body's transport (a producer) while it streams
        self._read_timer = None
        self._body_timer = None
        self._client_paused = False
        self.received = False       # the channel read the whole request (requestReceived)
        self._head = False          # head_received was called: method, uri and clientproto are the client's
        self._finish_held = False
        self._ended = False
        self._gone = False
        self._closing = False       # the relay gave up on the origin request (error, cut)
        self._timed_out = False
        self._reused = False
        self._opened = False
        self._cut_reason = None

    # -- what the channel calls -------------------------------------------------------

    def gotLength(self, length):
        """The body length the head announced; the body is streamed, never stored (no self.content)."""
        self._announced = length
        self._body_complete = length == 0

    def handleContentChunk(self, data):
        self._body_seen += len(data)
        limit = self.domain.max_body_size if self.domain is not None else 0
        if limit and self._body_seen > limit:
            self._fail(413, f"the request body is larger than {limit} bytes")
            return
        self._touch_body_timer()
        if self._body is not None:
            self._body.feed(data)

    def requestReceived(self, command, path, version):
        """The body's end (twisted.web calls this once the whole request is read)."""
        self.received = True
        self._body_complete = True
        self._stop_body_timer()
        if self._body is not None:
            self._body.end()
        if self._finish_held:
            self._finish_held = False
            super().finish()

    def finish(self):
        """
        An answer given while the channel is still reading the head (an error
        for a request without a body) is finished once the channel has called
        requestReceived, right after: twisted.web's channel expects it so.
        """
        if not self.received and self._body_complete:
            self._finish_held = True
            return
        super().finish()

    def head_received(self, command, uri, version):
        """The head is read: route it, check it and start the origin request."""
        self._head = True
        self.method, self.uri, self.clientproto = command, uri, version
        self.path = uri.split(b"?", 1)[0]
        try:
            self._route()
        except _Answer as answer:
            self._respond_error(answer.status, answer.text, answer.headers)

    def connectionLost(self, reason):
        self._gone = True
        super().connectionLost(reason)
        self._stop_timers()
        if self._body is not None:
            self._body.stopped = True
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if self._response_body is not None:
            self._response_body.stopProducing()
        if self.status is None:
            self.status = 499
        self._end()

    # -- routing ------------------------------------------------------------------

    def _route(self):
        relay, headers = self.relay, self.requestHeaders
        host = (headers.getRawHeaders(b"host") or [b""])[0].decode("latin-1")
        self.host = host
        if relay.draining:
            raise _Answer(503, "the relay is shutting down", [("Retry-After", RETRY_AFTER)])
        domain = self.config.domain_for(host)
        if domain is None:
            raise _Answer(404, "no such domain on this relay")
        self.domain = domain
        misdirected = misdirected_request(self.config, self.connection.transport, domain)
        if misdirected:
            raise _Answer(421, misdirected)
        if not domain.http:
            raise _Answer(426, None, [("Upgrade", "websocket")])
        target = request_target(self.uri.decode("latin-1"))
        if target is None or not valid_header_value(target) or " " in target:
            raise _Answer(400, "bad request target")
        self.target = target
        length = self._announced
        if domain.max_body_size and length is not None and length > domain.max_body_size:
            raise _Answer(413, f"the request body is larger than {domain.max_body_size} bytes")
        forwarded_for = _joined(headers, b"x-forwarded-for")
        self.client_ip = relay.client_address(self.connection.peer, forwarded_for)
        admitted = relay.admit_request(self.client_ip, domain)
        if isinstance(admitted, Refusal):
            raise _Answer(admitted.status, admitted.reason, [("Retry-After", str(admitted.retry_after))])
        self._admitted = admitted
        relay.request_started(self)  # metered live from here (refusals are counted when they end)
        self.scheme = domain.origin_scheme(self.connection.scheme)
        self.host_header = domain.origin_host or host
        self.server_name = origin_server_name(domain, self.host_header)
        self.origin_headers = self._origin_headers(host, forwarded_for)
        if length != 0:
            self._body = RequestBody(self, length)
            self._start_body_timer()
        expect = headers.getRawHeaders(b"expect")
        if expect and expect[0].lower() == b"100-continue" and not self._body_complete:
            send = getattr(self.channel, "_send100Continue", None)
            if send is not None and self.clientproto == b"HTTP/1.1":
                send()  # the relay reads the body, so it invites it
        path, _, query = target.partition("?")
        handshake = Handshake(domain.name, path, parse_qs(query), _header_dict(headers), self.client_ip)
        self._pending = relay.routes[domain.name].choose(handshake)
        self._pending.addCallbacks(self._chosen, self._not_chosen)

    def _origin_headers(self, host, forwarded_for):
        pairs = []
        for name, values in self.requestHeaders.getAllRawHeaders():
            name = name.decode("latin-1")
            pairs.extend((name, value.decode("latin-1")) for value in values)
        kept = [(n, v) for n, v in end_to_end(pairs, RELAY_OWNED) if valid_header_value(v)]
        forwarded = forwarded_headers(
            self.connection.peer, forwarded_for, self.client_ip,
            self.config.is_trusted_proxy(self.connection.peer), self.connection.scheme, host)
        headers = Headers()
        headers.addRawHeader(b"Host", self.host_header.encode("latin-1"))
        for name, value in kept + forwarded:
            headers.addRawHeader(canonical(name).encode("latin-1"), value.encode("latin-1"))
        return headers

    def _chosen(self, origins):
        self._pending = None
        self._candidates = list(origins)
        self._attempt(0)

    def _not_chosen(self, failure):
        self._pending = None
        if failure.check(defer.CancelledError):
            return
        if failure.check(NoOrigin):
            self._fail(503, str(failure.value), [("Retry-After", str(failure.value.retry_after))])
        else:
            log.failure("choosing an origin for {domain} failed", failure, domain=self.domain.name)
            self._fail(503, "no origin available")

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

    # -- endings --------------------------------------------------------------------------

    def _fail(self, status, text, headers=()):
        """A status for the client when nothing was sent yet; else the response is cut."""
        if self._ended or self._gone:
            return
        if self.startedWriting:
            self._cut(text)
            return
        self._abandon_origin()
        self._respond_error(status, text, headers)

    def _abandon_origin(self):
        self._closing = True
        self._stop_timers()
        if self._body is not None:
            self._body.stopped = True
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if self._response_body is not None:
            transport, self._response_body = self._response_body, None
            self.unregisterProducer()
            transport.stopProducing()
        if self._origin_conn is not None:
            self._origin_conn[1].abort()  # half a request or half a response on it: never reused
        self._closed_origin_ok()

    def _respond_error(self, status, text, headers=()):
        self.status = status
        raw = error_response(status, text if status != 426 else UPGRADE_TEXT, headers)
        head, body = raw.split(b"\r\n\r\n", 1)
        self.setResponseCode(status)
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b": ")
            if name.lower() != b"connection":
                self.responseHeaders.addRawHeader(name, value)
        if not self._body_complete or status in (408, 413, 431):
            self._close_after()
        if self._client_paused:
            self.body_wanted()
        self.write(body)
        self.finish()
        self._end()

    def _close_after(self):
        """This response is the connection's last (the client's body was not read to its end)."""
        self.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        if hasattr(self.channel, "persistent"):
            self.channel.persistent = False

    def _cut(self, why):
        """A started response cannot become another: the client's connection is cut."""
        self._abandon_origin()
        if self.status is None:
            self.status = 502
        self._cut_reason = why
        log.info("{domain} {method} {path}: response cut ({why})", domain=self.domain.name if self.domain else None,
                 method=self.method.decode("latin-1") if self._head else None, path=self.target, why=why)
        self.cut_client()
        self._end()

    def cut_client(self):
        """
        End the client's connection where the response stands, so it is seen
        incomplete (no final chunk, fewer bytes than Content-Length); dropped
        outright if its peer does not take what is left within CUT_GRACE. An
        HTTP/2 stream handler resets the stream instead.
        """
        transport = getattr(self.channel, "transport", None)
        if transport is not None:
            transport.loseConnection()
            self.reactor.callLater(CUT_GRACE, transport.abortConnection)

    def _end(self):
        if self._ended:
            return
        self._ended = True
        self._stop_timers()
        if self._admitted is not None:
            self._admitted.release()
            self._admitted = None
        self._closed_origin_ok()
        self._release_origin()
        self.counters.messages_in = 1 if self._head else 0
        self.counters.messages_out = 1 if self.startedWriting else 0
        self.relay.request_ended(self)

    def metered_totals(self):
        """The 12 counters of the meter (client leg, origin leg), bytes not yet taken from the connections included."""
        conn = self.connection
        client_in = self.counters.bytes_in + (0 if self._ended else conn.bytes_in - conn._cut_in)
        client_out = self.counters.bytes_out + (0 if self._ended else conn.bytes_out - conn._cut_out)
        origin_in, origin_out = self.origin_counters.bytes_in, self.origin_counters.bytes_out
        if self._origin_conn is not None:
            wrapper = self._origin_conn[0]
            origin_out += wrapper.bytes_out - wrapper._cut[0]
            origin_in += wrapper.bytes_in - wrapper._cut[1]
        requests = 1 if self._head else 0
        responses = 1 if self.startedWriting else 0
        return (client_in, client_out, 0, 0, requests, responses,
                origin_in, origin_out, 0, 0, self.origin_counters.messages_in, self.origin_counters.messages_out)

    def take_client_bytes(self):
        """This request's share of its connection's bytes (called once, when it ends)."""
        received, sent = self.connection.cut()
        self.counters.bytes_in += received
        self.counters.bytes_out += sent

    def log_access(self):
        """The access log line: one per request, in the same log as the session lines."""
        record = self.record()
        log.info(
            "{client_ip} {domain} \"{method} {path}\" {status} {origin} "
            "in={client_bytes_in}B out={client_bytes_out}B ttfb={ttfb_text} {duration:.3f}s"
            + (" cut: {cut}" if record["cut"] else "")
            + " proto={protocol}"
            + (" worker={worker}" if record["worker"] is not None else ""),
            ttfb_text="-" if record["ttfb"] is None else f"{record['ttfb']:.3f}s", **record)

    def record(self):
        """The access log record: flat, JSON-friendly fields."""
        now = self.reactor.seconds()
        return {
            "event": "http",
            "domain": self.domain.name if self.domain else None,
            "host": self.host,
            "client_ip": self.client_ip,
            "peer": self.connection.peer,
            "scheme": self.connection.scheme,
            "method": self.method.decode("latin-1") if self._head else None,
            "path": self.target if self.target is not None else self.uri.decode("latin-1") if self._head else None,
            "status": self.status,
            "origin": self.origin_address,
            "client_bytes_in": self.counters.bytes_in,
            "client_bytes_out": self.counters.bytes_out,
            "origin_bytes_in": self.origin_counters.bytes_in,
            "origin_bytes_out": self.origin_counters.bytes_out,
            "ttfb": self.ttfb,
            "duration": now - self.started,
            "cut": self._cut_reason,
            "protocol": self.protocol,
            "worker": getattr(self.relay, "worker", None),
        }


UPGRADE_TEXT = ("This domain serves WebSocket only (http = off): connect with a WebSocket client "
                "(Upgrade: websocket).")


class _Answer(Exception):
    def __init__(self, status, text, headers=()):
        super().__init__(status, text)
        self.status, self.text, self.headers = status, text, list(headers)


def _joined(headers, name):
    values = headers.getRawHeaders(name)
    return ", ".join(v.decode("latin-1") for v in values) if values else None


def _header_dict(headers):
    """{lower-case name: value} with repeated headers joined by ', ' (what selectors get on the WebSocket path)."""
    found = {}
    for name, values in headers.getAllRawHeaders():
        found[name.decode("latin-1").lower()] = ", ".join(v.decode("latin-1") for v in values)
    return found
