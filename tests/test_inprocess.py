"""
The relay built in-process on the real reactor, between Autobahn peers on
loopback: what needs a look at the relay's own sockets.
"""

import socket

from autobahn.twisted.websocket import (
    WebSocketClientFactory, WebSocketClientProtocol, WebSocketServerFactory, WebSocketServerProtocol,
)
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.trial import unittest

from wsrelay.config import parse_config
from wsrelay.process.service import build_service


class Echo(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


class Client(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.factory.received.callback(payload)


def nodelay(transport):
    return transport.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


class NoDelayTests(unittest.TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_both_legs_have_tcp_nodelay(self):
        """Autobahn fails to set TCP_NODELAY on Twisted; the relay sets it on both legs."""
        origin_factory = WebSocketServerFactory()
        origin_factory.protocol = Echo
        origin_port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(origin_factory)
        self.addCleanup(origin_port.stopListening)
        origin_at = origin_port.getHost().port
        config = parse_config(f"""
[relay]
listen = tcp:0:interface=127.0.0.1
[domain:*]
origins = 127.0.0.1:{origin_at}
origin_protocol = http
""", "test.ini")
        top = build_service(config, reactor)
        top.startService()
        self.addCleanup(top.stopService)
        relay_port = top.ports[0].getHost().port
        relay = top.relay

        client_factory = WebSocketClientFactory(f"ws://127.0.0.1:{relay_port}/")
        client_factory.protocol = Client
        client_factory.opened, client_factory.received = defer.Deferred(), defer.Deferred()
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", relay_port).connect(client_factory)
        client = yield client_factory.opened
        client.sendMessage(b"ping through", isBinary=True)
        self.assertEqual((yield client_factory.received), b"ping through")

        (session,) = relay.sessions
        self.assertTrue(nodelay(session.client.transport))
        self.assertTrue(nodelay(session.origin.transport))
        closed = client.is_closed
        client.sendClose(1000)
        yield closed
