"""
The plain HTTP proxy in memory: Twisted's fakes for both sockets and an
injected clock for its timers (origin_read_timeout, client_body_timeout, the
drain), no sleeping. The behaviour over real sockets is in
test_httpproxy_loopback.py.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from wsrelay.config import parse_config
from wsrelay.edge.httpserver import Front, wants_http
from wsrelay.edge.legs import ClientLeg
from wsrelay.process.service import RelayFactory
from wsrelay.process.relay import Relay

CONFIG = """
[relay]
accounting = off
[domain:app.test]
origins = 10.0.0.5:8000
origin_protocol = http
http = on
{extra}
[domain:ws.test]
origins = 10.0.0.5:8000
"""


class Harness:
    def __init__(self, extra=""):
        self.reactor = MemoryReactorClock()
        self.relay = Relay(parse_config(CONFIG.format(extra=extra), "test.ini"), self.reactor)
        self.factory = RelayFactory(self.relay)

    def client(self, ip="192.0.2.7"):
        address = IPv4Address("TCP", ip, 50000)
        front = self.factory.buildProtocol(address)
        wire = StringTransport(peerAddress=address)
        front.makeConnection(wire)
        return front, wire

    def origin(self, index=-1):
        """The origin connection the relay dialled last, connected to a fake wire."""
        host, port, factory, *_ = self.reactor.tcpClients[index]
        proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        wire = StringTransport()
        proto.makeConnection(wire)
        return proto, wire

    @staticmethod
    def lose(proto, wire):
        if wire.disconnecting:
            proto.connectionLost(Failure(ConnectionDone()))


def status(wire):
    line = wire.value().split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line else None


def test_the_first_head_decides_between_the_websocket_relay_and_the_proxy():
    h = Harness()
    config = h.relay.config
    assert wants_http(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", config)
    assert wants_http(b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n", config)  # 404 from the proxy
    assert not wants_http(b"GET / HTTP/1.1\r\nHost: ws.test\r\n\r\n", config)  # http = off: 426 as ever
    assert not wants_http(b"GET / HTTP/1.1\r\nHost: app.test\r\nUpgrade: WebSocket\r\n\r\n", config)
    assert not wants_http(b"GET / HTTP/1.1\r\nHost: app.test\r\nBad\r\n\r\n", config)  # the relay's 400
    front, wire = h.client()
    assert isinstance(front, Front)
    front.dataReceived(b"GET / HTTP/1.1\r\nHost: ws.test\r\n\r\n")
    assert isinstance(front.delegate, ClientLeg) and status(wire) == 426
    ws_only = Relay(parse_config("[relay]\naccounting = off\n[domain:*]\norigins = o:1\n", "t.ini"), h.reactor)
    assert isinstance(RelayFactory(ws_only).buildProtocol(None), ClientLeg)  # nothing in front: as before


def test_a_silent_origin_gets_504_at_origin_read_timeout_and_a_stalled_response_is_cut():
    h = Harness("origin_read_timeout = 60")
    front, wire = h.client()
    front.dataReceived(b"GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n")
    origin, origin_wire = h.origin()
    assert origin_wire.value().startswith(b"GET /slow HTTP/1.1\r\n")
    h.reactor.advance(59.9)
    assert wire.value() == b""
    h.reactor.advance(0.2)
    h.lose(origin, origin_wire)
    assert status(wire) == 504 and not wire.disconnecting  # nothing was read from the origin: keep-alive

    wire.clear()
    front.dataReceived(b"GET /stall HTTP/1.1\r\nHost: app.test\r\n\r\n")
    origin, origin_wire = h.origin()
    origin.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
    assert status(wire) == 200 and wire.value().endswith(b"first")
    h.reactor.advance(59)
    origin.dataReceived(b"second")  # every piece restarts the clock
    h.reactor.advance(59)
    assert not wire.disconnecting
    h.reactor.advance(2)
    assert wire.disconnecting and wire.value().count(b"HTTP/1.1") == 1  # cut, never a second response
    assert wire.value().endswith(b"firstsecond") and origin_wire.disconnecting


def test_a_body_that_stops_coming_gets_408_at_client_body_timeout():
    h = Harness("client_body_timeout = 30")
    front, wire = h.client()
    front.dataReceived(b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nabcd")
    origin, origin_wire = h.origin()
    h.reactor.advance(29)
    front.dataReceived(b"ef")  # a piece restarts the clock
    h.reactor.advance(29)
    assert wire.value() == b""
    h.reactor.advance(2)
    assert status(wire) == 408 and b"Connection: close" in wire.value() and wire.disconnecting


def test_drain_closes_idle_connections_and_waits_for_requests_in_flight():
    h = Harness()
    idle, idle_wire = h.client("192.0.2.1")
    idle.dataReceived(b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n")
    origin, origin_wire = h.origin()
    origin.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert status(idle_wire) == 200
    busy, busy_wire = h.client("192.0.2.2")
    origin_wire.clear()
    busy.dataReceived(b"GET /b HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert origin_wire.value().startswith(b"GET /b ")  # on the pooled origin connection
    assert len(h.relay.requests) == 1
    done = h.relay.drain()
    assert idle_wire.disconnecting and not busy_wire.disconnecting and not done.called
    busy.dataReceived(b"GET /late HTTP/1.1\r\nHost: app.test\r\n\r\n")  # pipelined behind it: never served
    origin.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert status(busy_wire) == 200 and busy_wire.value().count(b"HTTP/1.1") == 1 and busy_wire.disconnecting
    assert done.called  # the drain waited for the request in flight, and no longer
