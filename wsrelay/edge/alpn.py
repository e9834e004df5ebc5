"""
Which protocol a TLS connection speaks, as its client chose by ALPN: HTTP/1.1
(a ClientLeg, as on any listener) or HTTP/2 (an H2Edge). Kept apart from
h2edge.py, which is HTTP/2 itself.
"""

from twisted.internet import error
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from wsrelay.edge.h2edge import H2Edge


class _Chooser(Protocol):
    """
    Until the client's first bytes, a TLS connection is a ClientLeg (its
    handshake timer runs from the accept); then, if ALPN chose h2, the leg
    is dropped unseen and an H2Edge takes the connection. The chooser then
    steps out of the path (the TLS layer talks to the chosen protocol).
    """

    def __init__(self, factory, addr):
        self.factory = factory
        self.addr = addr
        self.chosen = None

    def makeConnection(self, transport):
        self.transport = transport
        self.chosen = self.factory.wrapped.buildProtocol(self.addr)
        self.chosen.makeConnection(transport)

    def dataReceived(self, data):
        chosen = self.chosen
        if getattr(self.transport, "negotiatedProtocol", None) == b"h2" and not isinstance(chosen, H2Edge):
            chosen.connectionLost(Failure(error.ConnectionDone("replaced by HTTP/2")))
            chosen = self.chosen = H2Edge(self.factory.wrapped, self.addr)
            chosen.makeConnection(self.transport)
        if getattr(self.transport, "wrappedProtocol", None) is self:
            self.transport.wrappedProtocol = chosen
        chosen.dataReceived(data)

    def connectionLost(self, reason):
        self.chosen.connectionLost(reason)


class ALPNFactory(Factory):
    """Wraps a listener's RelayFactory: HTTP/1.1 (a ClientLeg) or HTTP/2 (an H2Edge), by ALPN."""

    noisy = False

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.relay = wrapped.relay

    def buildProtocol(self, addr):
        return _Chooser(self, addr)

