"""
One listener for WebSocket and plain HTTP. Front reads a connection's first
request head and decides: a WebSocket upgrade, or any request for a known domain
without `http = on`, goes to the WebSocket relay (wsrelay.edge.legs.ClientLeg,
which answers 426/404/431/... as ever); a plain request for a domain with
`http = on` goes to ProxyChannel, twisted.web's HTTP/1.1 server channel whose
requests are wsrelay.edge.httpproxy.ProxyRequests. A WebSocket upgrade arriving
later on that keep-alive connection hands the transport and the bytes
already read over to a ClientLeg, as if it had been the first request.

Bytes are counted where they are parsed (every byte once): the channel's
share goes to its requests, a ClientLeg counts its own.
"""

from twisted.internet.protocol import Protocol
from twisted.web import http
from zope.interface import directlyProvides, providedBy

from wsrelay.edge.http import check_request_head, error_response
from wsrelay.edge.httpbodies import ClientConnection
from wsrelay.edge.httpproxy import ProxyRequest

MAX_HEAD = 16384  # the request head limit of both paths (legs.MAX_HEAD)


def wants_http(head, config):
    """Whether a complete request head goes to the HTTP proxy: not an upgrade, for a domain with http = on."""
    if check_request_head(head) is not None:
        return False  # the WebSocket path answers 400 for it
    host = None
    upgrade = False
    for line in head[:-4].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"host" and host is None:
            host = value.strip().decode("latin-1")
        elif name == b"upgrade" and b"websocket" in value.lower():
            upgrade = True
    if upgrade:
        return False
    domain = config.domain_for(host)
    return domain is None or domain.http  # an unknown name gets the HTTP path's 404


def is_upgrade(lines):
    """Whether request head lines (no delimiters) ask for a WebSocket upgrade."""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


class CountingTransport:
    """The client transport as the HTTP channel sees it: every byte written is counted, all else is the real one's."""

    def __init__(self, transport, connection):
        self._transport = transport
        self._connection = connection
        directlyProvides(self, providedBy(transport))

    def write(self, data):
        self._connection.bytes_out += len(data)
        self._transport.write(data)

    def writeSequence(self, data):
        data = b"".join(data)
        self._connection.bytes_out += len(data)
        self._transport.write(data)

    def __getattr__(self, name):
        return getattr(self._transport, name)


class ProxyChannel(http.HTTPChannel):
    """twisted.web's HTTP/1.1 server channel, making ProxyRequests and watching for an upgrade."""

    MAX_LENGTH = MAX_HEAD
    totalHeadersSize = MAX_HEAD + 1  # the relay answers 431 itself first

    def __init__(self, connection, front):
        super().__init__()
        self.connection = connection
        self.front = front
        relay = connection.relay
        self.callLater = relay.reactor.callLater
        self.timeOut = relay.config.http_keepalive_timeout
        self.requestFactory = lambda channel, queued: ProxyRequest(channel, queued, connection)
        self._lines = []
        self._head_size = 0
        self._done_early = False   # a request ended before its body was read: nothing more is parsed

    # -- counting what is parsed (each byte once, replays included) ---------------------

    def lineReceived(self, line):
        if self._done_early:
            return True
        self.connection.bytes_in += len(line) + 2
        if not self._lines and not line:
            return super().lineReceived(line)  # a stray blank line between requests
        self._lines.append(line)
        self._head_size += len(line) + 2
        if self._head_size > MAX_HEAD:
            return self._head_too_large()
        if line:
            return super().lineReceived(line)
        lines, self._lines, self._head_size = self._lines, [], 0
        if is_upgrade(lines):
            return self._upgrade(lines)
        return super().lineReceived(line)

    def lineLengthExceeded(self, line):
        self.connection.bytes_in += len(line)
        return self._head_too_large()

    def rawDataReceived(self, data):
        if self._done_early:
            return
        if not self._handlingRequest:
            self.connection.bytes_in += len(data)  # the body decoder's; a surplus is given back below
        super().rawDataReceived(data)

    def _finishRequestBody(self, data):
        self.connection.bytes_in -= len(data)  # parsed again as the next request
        super()._finishRequestBody(data)

    # -- requests ----------------------------------------------------------------------

    def allHeadersReceived(self):
        request = self.requests[-1]
        self.persistent = self.checkPersistence(request, self._version)
        if self.timeOut:  # the keep-alive timeout is for idle connections; bodies have client_body_timeout
            self._savedTimeOut = self.setTimeout(None)
        request.gotLength(self.length)
        request.head_received(self._command, self._path, self._version)

    def allContentReceived(self):
        if not self._done_early:
            super().allContentReceived()

    def requestDone(self, request):
        if request.received:
            super().requestDone(request)
            return
        # Answered before its body was read (413, 408, an early origin answer): the connection ends.
        self._done_early = True
        if request in self.requests:
            self.requests.remove(request)
        self.loseConnection()

    def _respondToBadRequestAndDisconnect(self):
        if self.requests:
            self.requests[-1].status = 400  # for its access log line and the statistics
        super()._respondToBadRequestAndDisconnect()

    def _head_too_large(self):
        request = self.requests[-1] if self.requests else None
        if request is not None:
            request.status = 431
        self.setTimeout(None)
        self.transport.write(error_response(431, "request header fields too large"))
        self._done_early = True
        self.loseConnection()
        return True

    def _upgrade(self, lines):
        """A WebSocket handshake on this connection: the transport and the bytes read go to a ClientLeg."""
        head = b"\r\n".join(lines[:-1]) + b"\r\n\r\n"  # lines end with the blank one
        rest, self._buffer = self._buffer, b""
        self.connection.bytes_in -= len(head)  # the session counts them
        if self.requests:
            self.requests.pop()  # the request object twisted.web made for this head: never used
        self.setTimeout(None)
        self._done_early = True
        self.front.upgrade(head + rest)
        return True

    def connectionLost(self, reason):
        left = len(self._buffer) + sum(map(len, self._dataBuffer))  # read, never parsed: still the client's bytes
        self.connection.bytes_in += left
        super().connectionLost(reason)
        self.connection.relay.http_connection_closed(self.connection)


class Front(Protocol):
    """
    The protocol of every connection to a listener serving some `http = on`
    domain: holds the first request head, then passes everything on to the
    ClientLeg or the ProxyChannel chosen for it (and to a ClientLeg after an
    upgrade on a keep-alive connection).
    """

    def __init__(self, factory, addr):
        self.factory = factory
        self.addr = addr
        self.relay = factory.relay
        self.delegate = None
        self._buffer = b""
        self._timer = None

    def connectionMade(self):
        try:  # a response head and its body are separate writes: Nagle would hold the body
            self.transport.setTcpNoDelay(True)
        except Exception:
            pass
        self._timer = self.relay.reactor.callLater(self.relay.config.handshake_timeout, self._timed_out)

    def _timed_out(self):
        self._timer = None
        if self.delegate is None:
            self.transport.abortConnection()

    def _stop_timer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def dataReceived(self, data):
        if self.delegate is not None:
            self.delegate.dataReceived(data)
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 and len(self._buffer) <= MAX_HEAD:
            return
        self._stop_timer()
        data, self._buffer = self._buffer, b""
        if 0 <= end and end + 4 <= MAX_HEAD and wants_http(data[:end + 4], self.relay.config):
            self._serve_http(data)
        else:
            self.upgrade(data)

    def _serve_http(self, data):
        transport = self.transport
        peer = transport.getPeer()
        connection = ClientConnection(self.relay, transport, getattr(peer, "host", str(peer)),
                                      self.relay.scheme_of(transport))
        channel = ProxyChannel(connection, self)
        self.delegate = channel
        self.relay.http_connection_opened(connection, channel)
        channel.makeConnection(CountingTransport(transport, connection))
        channel.dataReceived(data)

    def upgrade(self, data):
        """From now on a ClientLeg has this connection; `data` is what it reads first."""
        previous = self.delegate
        if previous is not None:
            self.transport.unregisterProducer()  # the channel's
            self.relay.http_connection_closed(previous.connection)
        leg = self.factory.build_leg(self.addr)
        self.delegate = leg
        leg.makeConnection(self.transport)
        if data:
            leg.dataReceived(data)

    def connectionLost(self, reason):
        self._stop_timer()
        if self.delegate is not None:
            self.delegate.connectionLost(reason)
