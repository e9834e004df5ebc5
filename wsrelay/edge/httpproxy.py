"""
One plain HTTP request proxied to an origin of its domain: ProxyRequest, a
twisted.web Request whose body and response stream both ways with
backpressure (never held whole), on the origin connections of a bounded pool
(wsrelay.origins.httporigin). Routing, selection, health, limits, forwarded headers
and origin TLS are the WebSocket path's. The HTTP/1.1 channel that makes these
requests is wsrelay.edge.httpserver's; an HTTP/2 stream can make them too (see
docs/http.md, "Entry point").

Errors before the response started get a status (404, 421, 426, 400, 413,
408, 429/503 from the limits, 503 no origin, 502 refused or broken, 504
silent origin); a response already started is cut, never replaced.
"""

from urllib.parse import parse_qs

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http
from twisted.web.http_headers import Headers

from wsrelay.edge.http import (
    HOP_BY_HOP, canonical, end_to_end, error_response, forwarded_headers, request_target,
    valid_header_value,
)
from wsrelay.edge.limits import Refusal
from wsrelay.origins.routing import NoOrigin
from wsrelay.selectors import Handshake
from wsrelay.tls import misdirected_request, origin_server_name
from wsrelay.edge.httpbodies import HTTPCounters, RequestBody
from wsrelay.edge.httpexchange import OriginExchange

log = Logger(namespace="wsrelay.http")


# Request headers the relay writes itself (or answers itself: Expect), never copied.
RELAY_OWNED = HOP_BY_HOP | {
    "host", "content-length", "expect", "proxy-authorization",
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded",
    "x-real-ip",
}

RETRY_AFTER = "5"
CUT_GRACE = 5.0  # seconds a cut client connection has to take what was already written


class ProxyRequest(OriginExchange, http.Request):
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
