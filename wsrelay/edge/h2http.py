"""
Plain HTTP requests on HTTP/2 streams, for domains with `http = on`: each
stream is the channel of one wsrelay.edge.httpproxy.ProxyRequest, the HTTP
pass-through's own request (routing, limits, origin pool with HTTP/1.1 to
the origin, errors, access log, statistics), as twisted.web's H2Stream
would drive it.

What differs from HTTP/1.1 is only here: the head arrives as HEADERS (with
`:authority` as Host), the response head leaves as HEADERS, the body's
backpressure is the stream's flow-control window (wsrelay.edge.h2stream), and a
response that must be cut resets its stream, not the connection.
"""

from h2.errors import ErrorCodes

from wsrelay.edge.h2stream import _DROPPED, StreamTransport

_NOT_FORWARDED = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                            b"upgrade", b"te", b"host"))


def head_size(pairs):
    """The size of a head as its HTTP/1.1 text would count it (name: value CRLF each)."""
    return sum(len(name) + len(value) + 4 for name, value in pairs) + 2


class RequestStream(StreamTransport):
    """One request's stream as its ProxyRequest's channel (and transport)."""

    def __init__(self, edge, stream_id, server_name, connection, method, path):
        super().__init__(edge, stream_id, server_name)
        self.connection = connection     # this stream's own httpproxy.ClientConnection: its bytes
        self.method = method
        self.path = path
        self.request = None
        self.transport = self            # Request.transport; cutting it resets the stream

    # -- what twisted.web's Request asks of its channel ---------------------------------------

    def writeHeaders(self, version, code, reason, headers):
        pairs = [(name.lower(), value) for name, values in headers.getAllRawHeaders() for value in values]
        pairs = [(name, value) for name, value in pairs if name not in _DROPPED]
        self.status = int(code)
        self.connection.bytes_out += head_size(pairs) + len(b"HTTP/1.1 %s \r\n" % code) + len(reason)
        self.edge.send_headers(self.stream_id, [(b":status", code)] + pairs)

    def write(self, data):
        self.connection.bytes_out += len(data)
        super().write(data)

    def requestDone(self, request):
        self.protocol = None             # the request is over: a later reset is not its business
        self.loseConnection()            # END_STREAM once the body is out

    def isSecure(self):
        return True

    # -- the client's side of the stream ----------------------------------------------------

    def input_ended(self):
        if self.request is not None and not self.request.received:
            self.request.requestReceived(self.method, self.path, b"HTTP/2")



class _Body:
    """The stream's protocol: its DATA is the request body, its loss the client leaving."""

    def __init__(self, request, connection):
        self.request = request
        self.connection = connection

    def dataReceived(self, data):
        self.connection.bytes_in += len(data)
        self.request.handleContentChunk(data)

    def connectionLost(self, reason):
        if not self.request.finished:
            self.request.connectionLost(reason)


def proxy_request(edge, stream_id, server_name, pseudo, regular, ended):
    """Start proxying the request of a HEADERS frame; returns its RequestStream."""
    from wsrelay.edge.httpbodies import ClientConnection
    from wsrelay.edge.httpproxy import ProxyRequest

    class H2ProxyRequest(ProxyRequest):
        def cut_client(self):
            stream.abort_with(ErrorCodes.INTERNAL_ERROR)

        def _pause_client(self):
            stream.pauseProducing()      # DATA no longer acknowledged: the client's window closes

        def _resume_client(self):
            if not stream.lost:
                stream.resumeProducing()

    relay = edge.relay
    method = pseudo.get(b":method", b"GET")
    path = pseudo.get(b":path", b"/")
    authority = pseudo.get(b":authority")
    connection = ClientConnection(relay, edge.transport, edge.peer_host(), "https")
    stream = RequestStream(edge, stream_id, server_name, connection, method, path)
    connection.transport = stream        # the SNI/Host check (421) per stream, coalescing included
    request = H2ProxyRequest(stream, False, connection)
    request.protocol = "h2"
    stream.request = request
    stream.protocol = _Body(request, connection)
    length = 0 if ended else None
    host = authority
    for name, value in regular:
        if name == b"host":
            host = host or value
        if name == b"content-length" and value.isdigit() and not ended:
            length = int(value)
        if name not in _NOT_FORWARDED:
            request.requestHeaders.addRawHeader(name, value)
    request.requestHeaders.setRawHeaders(b"host", [host or b""])
    connection.bytes_in += head_size(regular) + len(method) + len(path) + len(b"  HTTP/1.1\r\n")
    edge.streams[stream_id] = stream
    request.gotLength(length)
    request.head_received(method, path, b"HTTP/2")
    if ended:
        stream.remote_ended()
    return stream
