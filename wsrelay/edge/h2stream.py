"""
One HTTP/2 stream seen as a byte stream, so that a ClientLeg runs on it
unchanged (RFC 8441: a WebSocket over one stream of an HTTP/2 connection).

The leg reads a synthesized HTTP/1.1 upgrade request and then the stream's
DATA; what it writes goes out as DATA, except its response head, which
becomes the stream's HEADERS (101 turned into 200, hop-by-hop fields
dropped). Flow control is the backpressure: DATA the leg has not consumed
(its consumer, the origin leg's socket, paused it) is not acknowledged, so
the client's window for this stream closes and only this stream stops;
what the leg writes beyond the client's window is queued, and past
HIGH_WATER the leg's producer (the origin socket) is paused until the
client opens the window again. Memory per stream is bounded by both.
"""

from collections import deque

from h2.errors import ErrorCodes
from h2.exceptions import H2Error
from twisted.internet import error
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

HIGH_WATER = 65536   # queued bytes past which the leg's producer is paused (Twisted's bufferSize)
LOW_WATER = 16384    # and below which it is resumed

# Fields of an HTTP/1.1 response head that mean nothing on an HTTP/2 stream (RFC 9113 8.2.2),
# and the handshake's own, which extended CONNECT does without (RFC 8441 5).
_DROPPED = frozenset((b"connection", b"upgrade", b"keep-alive", b"proxy-connection",
                      b"transfer-encoding", b"sec-websocket-accept", b"te"))


def response_head(head):
    """
    An HTTP/1.1 response head (bytes, without the blank line) as HTTP/2
    response headers: (status, [(name, value)]). 101 becomes 200, the
    success of an extended CONNECT.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 502
    if status == 101:
        status = 200
    headers = [(b":status", str(status).encode("ascii"))]
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        if colon and name and name not in _DROPPED:
            headers.append((name, value.strip()))
    return status, headers


@implementer(ITransport, IPushProducer, IConsumer)
class StreamTransport:
    """
    A stream of an H2Edge connection, as the transport of one protocol (a
    ClientLeg). It always runs over TLS (is_http2_stream: scheme https, and
    server_name for the SNI/Host check) but is not an ISSLTransport: Autobahn
    reads TLS channel bindings off those, which belong to the connection.
    """

    is_http2_stream = True
    protocol = None
    producer = None
    negotiatedProtocol = b"h2"

    def __init__(self, edge, stream_id, server_name=None):
        self.edge = edge
        self.stream_id = stream_id
        self.server_name = server_name   # bytes, as pyOpenSSL gives SNI
        self.disconnecting = False
        self.status = None          # the :status sent
        self.ended = False          # nothing more is sent on the stream (END_STREAM or RST_STREAM)
        self.lost = False           # the protocol was told connectionLost
        self._head = b""
        self._out = deque()
        self._out_size = 0
        self._in = deque()          # (data, flow-controlled length) the protocol is not taking now
        self._paused = False        # the protocol's consumer asked for no more data
        self._producer_paused = False
        self._remote_ended = False

    # -- what the edge tells the stream -------------------------------------------

    def data_received(self, data, flow_length):
        if self.lost or self.protocol is None:
            self.edge.acknowledge(self.stream_id, flow_length)
            return
        if self._paused or self._in:
            self._in.append((data, flow_length))
            return
        self.protocol.dataReceived(data)
        self.edge.acknowledge(self.stream_id, flow_length)

    def remote_ended(self):
        """The client ended its side (END_STREAM): the byte stream's end, once what it sent is read."""
        self._remote_ended = True
        if not self._in:
            self.input_ended()

    def input_ended(self):
        """Everything the client sent on the stream was read: for a WebSocket, the end of its byte stream."""
        self.loseConnection()

    def reset(self, reason):
        """The stream is gone (RST_STREAM, or the whole connection): nothing more goes either way."""
        self.ended = True
        self._out.clear()
        self._out_size = 0
        self._in.clear()
        self._lost(reason)

    def window_opened(self):
        """The client's window for this stream (or the connection's) grew: send what waits."""
        if self._out or self.disconnecting:
            self.edge.schedule(self)

    # -- sending -------------------------------------------------------------------

    def write(self, data):
        if self.ended or not data:
            return
        if self.status is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > 65536:  # a leg never writes such a head
                    self.abortConnection()
                return
            head, data = self._head[:end], self._head[end + 4:]
            self._head = b""
            self.status, headers = response_head(head)
            self.edge.send_headers(self.stream_id, headers)
            if not data:
                return
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size > HIGH_WATER and self.producer is not None and not self._producer_paused:
            self._producer_paused = True
            self.producer.pauseProducing()
        self.edge.schedule(self)

    def writeSequence(self, data):
        self.write(b"".join(data))

    def flush(self, send):
        """
        Send what the client's windows allow; `send(data)` writes one DATA frame's
        payload and returns False once the connection's window or socket is full.
        """
        while self._out and not self.ended:
            chunk = self._out.popleft()
            size = self.edge.window(self.stream_id, len(chunk))
            if size <= 0:
                self._out.appendleft(chunk)
                break
            if size < len(chunk):
                self._out.appendleft(chunk[size:])
                chunk = chunk[:size]
            self._out_size -= len(chunk)
            if not send(self.stream_id, chunk):
                break
        if self._producer_paused and self._out_size < LOW_WATER and not self.ended:
            self._producer_paused = False
            if self.producer is not None:
                self.producer.resumeProducing()
        if self.disconnecting and not self._out and not self.ended:
            self.ended = True
            if self.status is None:
                self.edge.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            else:
                self.edge.end_stream(self.stream_id)
            self.edge.later(self._lost, error.ConnectionDone("the stream ended"))

    def loseConnection(self):
        if self.disconnecting or self.lost:
            return
        self.disconnecting = True
        self.edge.schedule(self)

    def abortConnection(self):
        self.abort_with(ErrorCodes.CANCEL)

    def abort_with(self, code):
        """Reset the stream with `code`; the protocol hears of it as of a dropped connection."""
        if self.lost:
            return
        self.disconnecting = True
        if not self.ended:
            self.ended = True
            self._out.clear()
            self._out_size = 0
            self.edge.reset_stream(self.stream_id, code)
        self.edge.later(self._lost, error.ConnectionAborted("the stream was reset by the relay"))

    def _lost(self, reason):
        if self.lost:
            return
        self.lost = True
        self.edge.stream_gone(self)
        producer, self.producer = self.producer, None
        if producer is not None:  # as a socket's connectionLost does (abstract.FileDescriptor)
            producer.stopProducing()
        if self.protocol is not None:
            self.protocol.connectionLost(Failure(reason))

    # -- the leg's producer and consumer ---------------------------------------------

    def registerProducer(self, producer, streaming):
        self.producer = producer
        if self._producer_paused:
            producer.pauseProducing()

    def unregisterProducer(self):
        self.producer = None

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        while self._in and not self._paused and not self.lost:
            data, flow_length = self._in.popleft()
            if self.protocol is not None:
                self.protocol.dataReceived(data)
            self.edge.acknowledge(self.stream_id, flow_length)
        if not self._in and self._remote_ended and not self.lost:
            self.input_ended()

    def stopProducing(self):
        self.abortConnection()

    # -- what a leg asks of its transport ------------------------------------------------

    def getPeer(self):
        return self.edge.transport.getPeer()

    def getHost(self):
        return self.edge.transport.getHost()

    def getHandle(self):
        return self.edge.transport.getHandle()

    def getPeerCertificate(self):
        return self.edge.transport.getPeerCertificate()

    def setTcpNoDelay(self, enabled):
        pass  # the connection's socket has it (see H2Edge.connectionMade)

    def getTcpNoDelay(self):
        return True


def safe(call, *args):
    """Call an h2 method on a stream that may already be closed; False when it was."""
    try:
        call(*args)
    except H2Error:
        return False
    return True
