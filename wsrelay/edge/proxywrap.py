"""
The shell around proxyproto: a wrapping factory for listeners with
`proxy_protocol=on`. The header is read and consumed before the wrapped
protocol (TLS, then Autobahn) is even connected, so it never sees a byte of
it; the addresses the header names then become the connection's getPeer()
and getHost(). A peer that is not a trusted proxy, a malformed header or
none within handshake_timeout: the connection is closed without an answer,
and logged at info once per peer address (the last LOGGED_PEERS of them).
"""

from collections import OrderedDict

from zope.interface import directlyProvides, providedBy

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from wsrelay.edge.proxyproto import ProxyHeaderError, parse_header

log = Logger(namespace="wsrelay.proxy")

LOGGED_PEERS = 1024  # peers remembered as logged already, so a flood is one line per address


class ProxyProtocolWrapper(ProtocolWrapper):
    """One connection: the header first, then everything else goes to the wrapped protocol."""

    _buffer = b""
    _timer = None
    header = None       # the proxyproto.Header once read
    _peer = _host = None

    def connectionMade(self):
        self.peer_address = getattr(self.transport.getPeer(), "host", None)
        if not self.factory.trusted(self.peer_address):
            self._refuse("not a trusted proxy (trusted_proxies)")
            return
        self._timer = self.factory.reactor.callLater(self.factory.timeout(), self._refuse, "no header in time")

    def dataReceived(self, data):
        if self.header is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.disconnecting:
            return
        self._buffer += data
        try:
            header = parse_header(self._buffer)
        except ProxyHeaderError as e:
            self._refuse(str(e))
            return
        if header is None:
            return
        self._cancel_timer()
        self.header = header
        rest, self._buffer = self._buffer[header.length:], b""
        if header.source is not None:
            self._peer = _address(header.source)
            self._host = _address(header.destination)
        self.wrappedProtocol.makeConnection(self)
        if rest and not self.disconnecting:
            self.wrappedProtocol.dataReceived(rest)

    def makeConnection(self, transport):
        # ProtocolWrapper's, minus connecting the wrapped protocol: that waits for the header.
        directlyProvides(self, providedBy(transport))
        self.factory.registerProtocol(self)
        self.transport = transport
        self.connected = 1
        self.connectionMade()

    def getPeer(self):
        return self._peer if self._peer is not None else self.transport.getPeer()

    def getHost(self):
        return self._host if self._host is not None else self.transport.getHost()

    def _refuse(self, why):
        self._cancel_timer()
        self.factory.refused(self.peer_address, why)
        self.disconnecting = 1
        self.transport.abortConnection()

    def _cancel_timer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason):
        self._cancel_timer()
        if self.header is not None:
            super().connectionLost(reason)
        else:
            self.factory.unregisterProtocol(self)
            self.wrappedProtocol = None


def _address(pair):
    host, port = pair
    return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)


class ProxyProtocolFactory(WrappingFactory):
    """
    Wraps a listener's factory. `trusted(address) -> bool` says which peers
    may send a header; `timeout()` (seconds) bounds the wait for it, on
    `reactor`. Both are asked anew for each connection, so they follow reloads.
    """

    protocol = ProxyProtocolWrapper

    def __init__(self, wrapped, trusted, reactor, timeout, listener=""):
        super().__init__(wrapped)
        self.trusted = trusted
        self.reactor = reactor
        self.timeout = timeout
        self.listener = listener
        self._logged = OrderedDict()

    def refused(self, peer, why):
        """Log a refused connection at info, once per peer address."""
        if peer in self._logged:
            self._logged.move_to_end(peer)
            return
        self._logged[peer] = True
        if len(self._logged) > LOGGED_PEERS:
            self._logged.popitem(last=False)
        log.info("PROXY protocol listener {listener}: connection from {peer} closed: {why} "
                 "(logged once per address)", listener=self.listener, peer=peer, why=why)
