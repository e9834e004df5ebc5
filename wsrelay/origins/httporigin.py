"""
Origin connections for plain HTTP: twisted.web's HTTPConnectionPool per
domain and origin TLS name, each connection dialled through the WebSocket
path's origin endpoint (TLS, SNI, certificate checks, connect timeout) and
wrapped so that its bytes are counted exactly; a request takes its share of
them (cut) while it owns the connection.

The pool keeps at most `origin_keepalive` idle connections per origin, like
nginx's upstream `keepalive`; busy ones are not limited here (the limits
bound requests). Twisted's own automatic retry is off: the request retries
itself (wsrelay.edge.httpproxy), so it knows which origin answered.
"""

from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

IDLE_TIMEOUT = 30.0  # seconds an idle origin connection is kept (origins often close theirs after 60 s or less)


class CountingWrapper(ProtocolWrapper):
    """Counts the bytes of one origin connection each way; `requests` it carried so far."""

    def __init__(self, factory, wrappedProtocol):
        super().__init__(factory, wrappedProtocol)
        self.bytes_in = self.bytes_out = 0
        self.requests = 0
        self._cut = (0, 0)

    def makeConnection(self, transport):
        try:  # a request head and a small body are separate writes: Nagle would hold the second
            transport.setTcpNoDelay(True)
        except Exception:  # not TCP (a TLS wrapper passes it on, a test transport may not have it)
            pass
        super().makeConnection(transport)

    def write(self, data):
        self.bytes_out += len(data)
        self.transport.write(data)

    def writeSequence(self, data):
        for piece in data:
            self.write(piece)

    def dataReceived(self, data):
        self.bytes_in += len(data)
        self.wrappedProtocol.dataReceived(data)

    def cut(self):
        """(bytes sent, bytes received) since the last cut."""
        out, inn = self._cut
        self._cut = (self.bytes_out, self.bytes_in)
        return self.bytes_out - out, self.bytes_in - inn


class _CountingFactory(WrappingFactory):
    protocol = CountingWrapper
    noisy = False


class _CountingEndpoint:
    """An endpoint whose connections are CountingWrappers around what `inner` connects."""

    def __init__(self, inner):
        self.inner = inner

    def connect(self, factory):
        return self.inner.connect(_CountingFactory(factory)).addCallback(lambda wrapper: wrapper.wrappedProtocol)


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False  # no "Starting factory" line per origin connection


class OriginPool:
    """The persistent origin connections of one domain for one scheme and TLS name."""

    def __init__(self, relay, domain, scheme, server_name, keepalive):
        self.relay = relay
        self.domain = domain
        self.scheme = scheme
        self.server_name = server_name
        self.pool = HTTPConnectionPool(relay.reactor, persistent=True)
        self.pool.maxPersistentPerHost = keepalive
        self.pool.cachedConnectionTimeout = IDLE_TIMEOUT
        self.pool.retryAutomatically = False
        self.pool._factory = _QuietFactory

    def connect(self, origin):
        """A Deferred firing (CountingWrapper, HTTP11ClientProtocol) owned by one request until its response ends."""
        port = origin.port_for(self.scheme)
        endpoint = _CountingEndpoint(self.relay.origin_endpoint(
            origin, self.scheme, self.relay.config.origin_connect_timeout, self.domain, self.server_name))
        d = self.pool.getConnection((self.scheme, origin.host, port), endpoint)
        return d.addCallback(lambda protocol: (protocol.transport, protocol))

    def close(self):
        return self.pool.closeCachedConnections()
