"""
What an HTTP request travels with besides its head: the client connection it came on (its
peer, scheme and byte counters, shared by the requests of one connection), the request body
streamed to the origin with backpressure, and the origin's response body read back.
"""

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer


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
