"""
TCP listeners that share their port with the other workers (SO_REUSEPORT):
the kernel spreads new connections over every worker's socket. Twisted's own
endpoints cannot set the option before bind(), so the socket is made here
and handed to the reactor with adoptStreamPort.
"""

import socket

from zope.interface import implementer

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """A TCP server endpoint whose socket has SO_REUSEADDR and SO_REUSEPORT set."""

    def __init__(self, reactor, port, backlog=50, interface=""):
        self.reactor = reactor
        self.port = port
        self.backlog = backlog
        self.interface = interface

    @classmethod
    def replacing(cls, reactor, endpoint):
        """The same listener as a tcp:/tcp6: endpoint string gave; any other kind stays as it is."""
        if isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
            # Twisted keeps these private; they are the parsed port, backlog and interface.
            return cls(reactor, endpoint._port, endpoint._backlog, endpoint._interface)
        return endpoint

    def listen(self, factory):
        interface = self.interface or ""
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((interface, self.port))
            sock.listen(self.backlog)
            sock.setblocking(False)
            port = self.reactor.adoptStreamPort(sock.fileno(), family, factory)
        except OSError as e:
            return defer.fail(CannotListenError(interface, self.port, e))
        finally:
            sock.close()  # the reactor holds its own duplicate
        return defer.succeed(port)
