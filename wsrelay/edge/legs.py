"""
The two Autobahn protocols of a session: ClientLeg faces the browser,
OriginLeg faces the origin. They only move bytes and report events to their
Session; what to do about an event is decided there and in wsrelay.edge.closing.

Plain text/binary frames of an open session go through the legs' own frame
pump (FrameCopy.dataReceived, edge/copying.py): forwarded byte for byte, without Autobahn's per-frame
callbacks. Everything else is copied as it arrives through Autobahn's
streaming API: a frame's header is written as soon as it is read, and its
payload as each piece comes in. Either way no message is ever held whole, and
while a frame is being written onto a leg, control frames for that leg (pongs,
pings, close) wait until it ends. See docs/wire.md.
"""

from autobahn.twisted.websocket import WebSocketClientProtocol, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from OpenSSL.SSL import Error as SSLError
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsrelay.edge.atrest import OPTIONS, compact, release, settle_class
from wsrelay.edge.closing import PEER_CLOSED, PEER_ERROR, encode_reason
from wsrelay.edge.deflate import accept_client_offer, refuse_offers
from wsrelay.edge.http import check_request_head, error_response, request_target, status_of
from wsrelay.edge.lazyformat import quiet_autobahn_pformat
from wsrelay.edge.limits import PingLimit, Refusal
from wsrelay.edge.session import LegCounters, Session
from wsrelay.tls import misdirected_request
from wsrelay.edge.copying import CONNECTING, FrameCopy, OPEN, _IDLE, _PLAIN_TCP, _STREAM

log = Logger(namespace="wsrelay.legs")


MAX_HEAD = 16384          # request/response head limit (HAProxy's tune.bufsize default)
CLOSE_TIMEOUT = 5.0       # a closing handshake must end the TCP connection within this
RETRY_AFTER = "5"         # Retry-After of a 503 given because the relay is stopping or reloading


quiet_autobahn_pformat()


UPGRADE_TEXT = "This is a WebSocket relay: connect with a WebSocket client (Upgrade: websocket)."


class Refused(ConnectionDeny):
    """A handshake refusal with an HTTP status and optional response headers."""

    def __init__(self, code, reason, headers=()):
        super().__init__(code, reason)
        self.headers = list(headers)


def unsent(transport):
    """Bytes written to a transport and not yet on the wire (a TLS layer and the TCP one under it)."""
    total, depth = 0, 0
    while transport is not None and depth < 4:
        data = getattr(transport, "dataBuffer", None)
        if data is not None:
            total += len(data) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)
        pending = getattr(transport, "_appSendBuffer", None)
        if pending:
            total += sum(len(piece) for piece in pending)
        transport, depth = getattr(transport, "transport", None), depth + 1
    return total


def unsent_plain(transport):
    """
    Bytes waiting in a plain TCP transport's own buffer (0 for TLS, whose
    buffers hold ciphertext): what abortConnection() throws away unsent.
    """
    data = getattr(transport, "dataBuffer", None)
    if data is None:
        return 0
    return len(data) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)


class Quiet:
    """
    Autobahn's logger for a connection whose handshake failed: its per-connection
    info and warning lines ("failing WebSocket opening handshake", "dropping
    connection") go, since the relay's own line tells the event; errors stay.
    """

    def __init__(self, log):
        self._log = log

    def __getattr__(self, name):
        if name in ("trace", "debug", "info", "warn"):
            return _nothing
        return getattr(self._log, name)


def _nothing(*args, **kwargs):
    pass


class _Leg(FrameCopy):
    """What both legs share: byte counting, frame copying, close bookkeeping."""

    side = None
    session = None
    other = None
    heartbeat = None
    counters = None
    close_sent = None         # (code, reason) of the close frame this leg sent
    close_received = None     # (code, reason) of the close frame its peer sent
    lost = False
    aborted = False           # abort() was called: nothing more is written (or counted) on this leg
    joined = True             # the session counts this leg as its own
    _forward = False          # the incoming message is copied to the other leg
    _sink = _IDLE             # state of the frame being written onto this leg
    _held = None
    _masker = None
    _next_opcode = 0
    _frame_fin = True
    _close_timer = None
    _sock = None              # the socket, when the transport is plain TCP: written to directly
    _pass_left = 0            # payload bytes of a pumped frame still to pass through to the other leg
    _in_mask = 0              # the MASK bit frames from this leg's peer must carry (0x80 from clients)
    # Autobahn's _connectionMade copies each of these options into the protocol (hasattr, then getattr:
    # two misses through __getattr__ per option per leg, 6 % of a connect); they are read from the factory.
    CONFIG_ATTRS = ()

    def connectionMade(self):
        self.counters = LegCounters()
        super().connectionMade()
        transport = self.transport
        try:  # Autobahn never manages to set it itself (see docs/wire.md)
            transport.setTcpNoDelay(True)
        except Exception:
            pass
        if type(transport) in _PLAIN_TCP and not transport.TLS:
            self._sock = transport.socket

    def __getattr__(self, name):
        """Autobahn's options, read from the factory rather than copied into every leg."""
        if name in OPTIONS:
            factory = self.__dict__.get("factory")
            if factory is not None:
                return getattr(factory, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def compact(self):
        """The session is open: keep only what an open leg needs (wsrelay/edge/atrest.py)."""
        compact(self)

    def release(self):
        """The session has ended: break this leg's reference cycles (wsrelay/edge/atrest.py)."""
        release(self)

    def registerProducer(self, producer, streaming):
        self.transport.registerProducer(producer, streaming)
        self._registered = True

    def unregisterProducer(self):
        # Autobahn calls this on every drop, registered or not.
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    # -- receiving: every frame goes straight on to the other leg --------------

    # -- sending: frames copied from the other leg ------------------------------

    # -- closing ---------------------------------------------------------------

    def onPong(self, payload):
        if self.heartbeat is not None:
            self.heartbeat.pong(self._beat_index)

    _pings = None

    def onPing(self, payload):
        """Answered here, never forwarded; a peer pinging faster than max_ping_rate is closed with 1008."""
        if self.state != OPEN or self.session is None:
            return
        now = self.session.clock.seconds()
        if self._pings is None:
            self._pings = PingLimit(self.session.config.max_ping_rate, now)
        if not self._pings.allow(now):
            self._fail_connection(1008, "too many pings")
            return
        self.sendPong(payload)

    def onCloseFrame(self, code, reasonRaw):
        was_open = self.state == OPEN
        stop = super().onCloseFrame(code, reasonRaw)
        if not self.failedByMe and self.close_received is None:
            self.close_received = (self.remoteCloseCode, self.remoteCloseReason)
            if was_open and self.session is not None:
                self.session.leg_event(self.side, PEER_CLOSED, self.remoteCloseCode, self.remoteCloseReason)
        return stop

    def _fail_connection(self, code=1001, reason="going away"):
        first = self.state == OPEN and not self.failedByMe
        super()._fail_connection(code, reason)
        if first and self.session is not None:
            self.session.leg_event(self.side, PEER_ERROR, code, reason)

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        if self.state == OPEN and self.close_sent is None:
            self.close_sent = (code, reasonUtf8.decode("utf-8") if reasonUtf8 else None)
            self._close_timer = self.factory.reactor.callLater(CLOSE_TIMEOUT, self.abort)
        super().sendCloseFrame(code, reasonUtf8, isReply)

    def close_with(self, code, reason, hold):
        """
        Close this leg with (code, reason). A frame still being copied onto it
        is finished first when its source is alive (hold), else the
        connection is dropped: a half-written frame cannot be ended cleanly.
        """
        if self.lost or self.close_sent is not None:
            return
        if self.state != OPEN or (self._sink == _STREAM and not hold):
            self.abort()
            return
        self.sendCloseFrame(code, encode_reason(reason))

    def abort(self):
        if not self.lost and self.transport is not None:
            if not self.aborted:  # what is still buffered is thrown away with the connection: never sent
                self.counters.bytes_out -= unsent_plain(self.transport)
            self.aborted = True
            self.transport.abortConnection()

    def close_info(self):
        """(code, reason, closed_by) of this leg's closing handshake."""
        if self.close_sent is not None and (self.close_received is None or self.closedByMe):
            return self.close_sent[0], self.close_sent[1], "relay"
        if self.close_received is not None:
            return self.close_received[0], self.close_received[1], self.side
        if self.counters is None or self.state == CONNECTING:
            return None, None, None
        return 1006, None, ("relay" if self.droppedByMe else self.side)

    def connectionLost(self, reason):
        self.lost = True
        if self._close_timer is not None:
            if self._close_timer.active():
                self._close_timer.cancel()
            self._close_timer = None
        if self.heartbeat is not None:
            self.heartbeat.stop()
        # Autobahn's own connectionLost only adds logging, at error level for every
        # failed TLS handshake (scanners, old clients); the relay logs those at info.
        if isinstance(reason.value, SSLError) and self.counters.bytes_in == 0:
            log.info("TLS handshake with {peer} failed: {why}", peer=self.peer, why=str(reason.value))
        self._connectionLost(reason)
        if self.session is not None and self.joined:
            self.session.leg_lost(self.side)


settle_class(_Leg)


class ClientLeg(_Leg, WebSocketServerProtocol):
    """The browser's side: holds its 101 until the origin has said 101."""

    side = "client"
    _beat_index = 0
    _masks = False
    _in_mask = 0x80
    _awaiting_origin = False
    _refusal_headers = ()

    def connectionMade(self):
        super().connectionMade()
        relay = self.factory.relay
        self.config = relay.config  # until its request is read; then the config of that moment
        peer = self.transport.getPeer()
        self.session = Session(
            relay, self.config, self, getattr(peer, "host", str(peer)),
            relay.scheme_of(self.transport), relay.reactor.seconds())
        relay.session_started(self.session)
        self._head_timer = relay.reactor.callLater(self.config.handshake_timeout, self._head_timed_out)

    def _head_timed_out(self):
        self.session.status = 408
        self.session.reason = "no complete request in time"
        self.abort()

    def processHandshake(self):
        if self._awaiting_origin:
            if len(self.data) > MAX_HEAD:  # nothing may follow the request before the 101
                self.abort()
            return
        end = self.data.find(b"\r\n\r\n")
        if end < 0 or end + 4 > MAX_HEAD:
            if len(self.data) > MAX_HEAD:
                self._stop_head_timer()
                self.failHandshake("request header fields too large", 431)
            return
        self._stop_head_timer()
        problem = check_request_head(self.data[:end + 4])
        if problem:
            self.failHandshake(problem, 400)
            return
        super().processHandshake()

    def _stop_head_timer(self):
        if self._head_timer is not None:
            if self._head_timer.active():
                self._head_timer.cancel()
            self._head_timer = None

    def onConnect(self, request):
        try:
            return self._route(request)
        except Refused as e:
            self._refusal_headers = e.headers
            raise

    def _route(self, request):
        self._awaiting_origin = True
        session = self.session
        relay = self.factory.relay
        if relay.draining:
            raise Refused(503, "the relay is shutting down", [("Retry-After", RETRY_AFTER)])
        # The request is read: the session keeps the config of this moment for its whole life.
        self.config = session.config = relay.config
        session.path = request_target(self.http_request_uri)  # in the session line of a refusal too
        headers = request.headers
        session.host = headers.get("host")
        domain = self.config.domain_for(session.host)
        if domain is None:
            raise Refused(404, "no such domain on this relay")
        session.domain = domain
        misdirected = misdirected_request(self.config, self.transport, domain)
        if misdirected:  # SNI and Host name different domains
            raise Refused(421, misdirected)
        if not domain.websocket:
            raise Refused(403, "WebSocket is turned off for this domain")
        if not domain.origin_allowed(headers.get("origin")):
            raise Refused(403, "this Origin may not open WebSocket connections here")
        if session.path is None:
            raise Refused(400, "bad request target")
        self.maxMessagePayloadSize = domain.max_message_size
        self.perMessageCompressionAccept = accept_client_offer if domain.compression else refuse_offers
        session.client_ip = relay.client_address(session.peer, headers.get("x-forwarded-for"))
        admitted = relay.admit(session, domain)
        if isinstance(admitted, Refusal):  # nothing is dialled
            raise Refused(admitted.status, admitted.reason, [("Retry-After", str(admitted.retry_after))])
        session.admitted = admitted
        d = relay.connect_origin(session, request)
        session.pending = d

        def refused(failure):
            session.pending = None
            if isinstance(failure.value, defer.CancelledError):
                if session.stopping:
                    failure = Failure(Refused(503, session.stopping, [("Retry-After", RETRY_AFTER)]))
                else:
                    failure = Failure(Refused(499, "client went away"))
            if isinstance(failure.value, Refused):
                self._refusal_headers = failure.value.headers
            return failure

        def accepted(result):
            session.pending = None
            return result

        return d.addCallbacks(accepted, refused)

    def succeedHandshake(self, res):
        if self.lost:  # the client left while the origin was answering
            self.session.origin.close_with(1001, "client gone", hold=False)
            return
        super().succeedHandshake(res)

    def failHandshake(self, reason, code=400, responseHeaders=None):
        session = self.session
        if session.path is None:  # refused before routing: the target as read, when it was
            session.path = request_target(getattr(self, "http_request_uri", None) or "")
        self.log = Quiet(self.log)  # the session line tells the refusal; Autobahn's lines would repeat it
        super().failHandshake(reason, code, responseHeaders)

    def sendHttpErrorResponse(self, code, reason, responseHeaders=None):
        self.session.status = code
        self.session.reason = reason
        headers = list(responseHeaders or ()) + list(self._refusal_headers)
        body = "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in reason)[:200]
        if code == 426:
            headers.append(("Upgrade", "websocket"))
            body = UPGRADE_TEXT
        self.sendData(error_response(code, body, headers))

    def onOpen(self):
        self._awaiting_origin = False
        self.session.open()

    def connectionLost(self, reason):
        self._stop_head_timer()
        super().connectionLost(reason)


def _is_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class OriginLeg(_Leg, WebSocketClientProtocol):
    """The origin's side: sends the relay's own request, reports how it was answered."""

    side = "origin"
    _beat_index = 1
    _masks = True
    refusal = None
    joined = False            # until it answers 101: a failed attempt is not the session's leg

    def __init__(self, session, request, key):
        super().__init__()
        self.session = session
        self._request = request
        self.websocket_key = key
        self.answered = defer.Deferred()
        self._client_open = defer.Deferred()

    def startHandshake(self):
        self.http_request_data = self._request
        self.sendData(self._request)

    def processHandshake(self):
        end = self.data.find(b"\r\n\r\n")
        if end < 0 and len(self.data) > MAX_HEAD:
            self.failHandshake("origin response head too large")
            return
        if end >= 0 and not _is_utf8(self.data[:end]):
            # Autobahn decodes the head as UTF-8 for a debug line and would raise (found by fuzz/fuzz_http.py)
            self.failHandshake("origin response head is not UTF-8")
            return
        super().processHandshake()

    def failHandshake(self, reason):
        self.log = Quiet(self.log)  # the origin failure and the session line tell it
        status = status_of(getattr(self, "http_status_line", None) or "")
        if status is None or status < 200:
            status = 502
        self.refusal = (status, reason)
        super().failHandshake(reason)

    def onConnect(self, response):
        # Hold the origin's first frames until the client has its 101.
        self.transport.pauseProducing()
        self.joined = True
        answered, self.answered = self.answered, None
        answered.callback(response)
        return self._client_open

    def client_opened(self):
        self._client_open.callback(None)

    def onOpen(self):
        self.transport.resumeProducing()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if self.answered is not None:
            answered, self.answered = self.answered, None
            answered.errback(reason)
