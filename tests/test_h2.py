"""
HTTP/2 pieces in memory: the config keys, ALPN by server name, the head
translations, the stream transport's flow control with a fake edge, and an
H2Edge on Twisted's StringTransport with an injected clock, spoken to by
the h2 package's own client.
"""

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, RemoteSettingsChanged, ResponseReceived
from h2.settings import SettingCodes
from OpenSSL import SSL
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface.verify import verifyObject

from tests.test_config import config_error
from wsrelay import tls
from wsrelay.config import parse_config
from wsrelay.edge.h2edge import FLOOD_INTERVAL, MAX_PINGS, H2Edge, upgrade_head
from wsrelay.edge.h2stream import HIGH_WATER, LOW_WATER, StreamTransport, response_head

CONFIG = """
[relay]
http2 = on
max_concurrent_streams = 7
[domain:a.test]
origins = 127.0.0.1:9
[domain:b.test]
origins = 127.0.0.1:9
http2 = off
"""


# -- config and ALPN ------------------------------------------------------------------

def test_http2_is_off_by_default_and_domains_inherit_the_relays():
    config = parse_config("[domain:*]\norigins = o\n", "x.ini")
    assert (config.http2, config.catch_all.http2, config.max_concurrent_streams) == (False, False, 100)
    config = parse_config(CONFIG, "x.ini")
    assert config.max_concurrent_streams == 7
    assert config.domains["a.test"].http2 and not config.domains["b.test"].http2
    assert config.http2_for("a.test") and not config.http2_for("b.test")
    assert config.http2_for(None) and config.http2_for("unknown.test")   # the relay's own setting


def test_config_mistakes_name_their_key():
    assert "'maybe'" in config_error("[relay]\nhttp2 = maybe\n[domain:*]\norigins = o\n", "relay", "http2")
    config_error("[relay]\nmax_concurrent_streams = 0\n[domain:*]\norigins = o\n", "relay", "max_concurrent_streams")
    config_error("[domain:*]\norigins = o\nhttp2 = 2\n", "domain:*", "http2")


class FakeTLSConnection:
    def __init__(self, name):
        self.name = name

    def get_servername(self):
        return self.name

    def get_certificate(self):
        return None


def test_alpn_offers_h2_first_only_for_names_with_http2_on():
    config = parse_config(CONFIG, "x.ini")
    select = tls.alpn_by_name(config.http2_for)
    browser = [b"h2", b"http/1.1"]
    assert select(FakeTLSConnection(b"a.test"), browser) == b"h2"
    assert select(FakeTLSConnection(b"b.test"), browser) == b"http/1.1"
    assert select(FakeTLSConnection(b"a.test"), [b"http/1.1"]) == b"http/1.1"   # wss:// offers only that
    assert select(FakeTLSConnection(b"a.test"), [b"acme-tls/1"]) is SSL.NO_OVERLAPPING_PROTOCOLS
    assert select(FakeTLSConnection(None), browser) == b"h2"


# -- the heads ---------------------------------------------------------------------------

def test_a_101_becomes_200_without_the_handshake_fields():
    status, headers = response_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: abc=\r\nSec-WebSocket-Protocol: chat\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate")
    assert status == 200
    assert headers == [(b":status", b"200"), (b"sec-websocket-protocol", b"chat"),
                       (b"sec-websocket-extensions", b"permessage-deflate")]
    status, headers = response_head(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close")
    assert (status, headers) == (503, [(b":status", b"503"), (b"retry-after", b"5")])


def test_the_upgrade_request_carries_the_streams_fields():
    head = upgrade_head(b"/chat?x=1", b"a.test", [
        (b"sec-websocket-version", b"13"), (b"origin", b"https://a.test"),
        (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"host", b"evil.test")])
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET /chat?x=1 HTTP/1.1"
    assert b"Host: a.test" in lines and b"Upgrade: websocket" in lines and b"Connection: Upgrade" in lines
    assert b"sec-websocket-version: 13" in lines and b"origin: https://a.test" in lines
    assert b"cookie: a=1; b=2" in lines
    assert not any(line.startswith(b"host:") for line in lines)
    assert head.endswith(b"\r\n\r\n")
    assert upgrade_head(b"/", b"a.test", [(b"x-evil", b"a\r\nInjected: 1")]) is None


# -- the stream transport with a fake edge ---------------------------------------------------

class FakeEdge:
    def __init__(self, window=0):
        self.window_left = window
        self.acknowledged = 0
        self.sent = []
        self.headers = []
        self.ended = []
        self.resets = []
        self.scheduled = 0
        self.later_calls = []

    def acknowledge(self, stream_id, length):
        self.acknowledged += length

    def schedule(self, stream):
        self.scheduled += 1

    def window(self, stream_id, wanted):
        return min(wanted, self.window_left)

    def send(self, stream_id, data):
        self.window_left -= len(data)
        self.sent.append(data)
        return True

    def send_headers(self, stream_id, headers):
        self.headers.append(headers)

    def end_stream(self, stream_id):
        self.ended.append(stream_id)

    def reset_stream(self, stream_id, code):
        self.resets.append(code)

    def later(self, call, *args):
        self.later_calls.append((call, args))

    def stream_gone(self, stream):
        pass


class Leg:
    def __init__(self):
        self.received = []
        self.lost = None

    def dataReceived(self, data):
        self.received.append(data)

    def connectionLost(self, reason):
        self.lost = reason


class Producer:
    paused = False
    stopped = False

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False

    def stopProducing(self):
        self.stopped = True


def stream_on(edge):
    stream = StreamTransport(edge, 1, b"a.test")
    stream.protocol = Leg()
    return stream


def test_the_stream_transport_provides_what_a_leg_needs():
    stream = stream_on(FakeEdge())
    for interface in (ITransport, IPushProducer, IConsumer):
        assert verifyObject(interface, stream)
    assert tls.server_name_of(stream) == "a.test"


def test_data_a_paused_leg_does_not_take_is_not_acknowledged():
    edge = FakeEdge()
    stream = stream_on(edge)
    stream.data_received(b"one", 3)
    assert (stream.protocol.received, edge.acknowledged) == ([b"one"], 3)
    stream.pauseProducing()   # the origin's socket is full
    stream.data_received(b"two", 3)
    stream.data_received(b"three", 5)
    assert (stream.protocol.received, edge.acknowledged) == ([b"one"], 3)   # the client's window closes
    stream.resumeProducing()
    assert (stream.protocol.received, edge.acknowledged) == ([b"one", b"two", b"three"], 11)


def test_writes_beyond_the_clients_window_pause_the_origin_until_it_opens():
    edge = FakeEdge(window=0)
    stream = stream_on(edge)
    producer = Producer()
    stream.registerProducer(producer, True)
    stream.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert edge.headers == [[(b":status", b"200")]]
    for _ in range(5):
        stream.write(b"x" * 16384)
    assert producer.paused   # 80 KiB queued, nothing may go out
    stream.flush(edge.send)
    assert edge.sent == [] and producer.paused
    edge.window_left = 65536 - LOW_WATER
    stream.flush(edge.send)
    assert sum(map(len, edge.sent)) == 65536 - LOW_WATER and producer.paused   # still above LOW_WATER
    edge.window_left = 65536
    stream.flush(edge.send)
    assert sum(map(len, edge.sent)) == 5 * 16384 and not producer.paused
    assert HIGH_WATER < 5 * 16384


def test_a_reset_stream_is_the_client_leaving():
    edge = FakeEdge(window=100)
    stream = stream_on(edge)
    producer = Producer()
    stream.registerProducer(producer, True)
    stream.reset(ConnectionError("reset"))
    assert stream.protocol.lost is not None and producer.stopped   # as a socket's connectionLost does
    stream.write(b"late")
    assert edge.sent == [] and edge.headers == []


def test_losing_the_connection_sends_what_is_queued_then_end_stream():
    edge = FakeEdge(window=1000)
    stream = stream_on(edge)
    stream.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    stream.loseConnection()
    stream.flush(edge.send)
    assert edge.headers == [[(b":status", b"403"), (b"content-length", b"2")]]
    assert edge.sent == [b"no"] and edge.ended == [1]
    call, args = edge.later_calls[-1]
    call(*args)
    assert stream.protocol.lost is not None


# -- the edge on a StringTransport, with an h2 client -------------------------------------------

class FakeRelay:
    def __init__(self, config, clock):
        self.config = config
        self.reactor = clock
        self.draining = False
        self.h2_connections = set()


class FakeFactory:
    def __init__(self, relay):
        self.relay = relay


class FakeTLS(StringTransport):
    def getHandle(self):
        return FakeTLSConnection(b"a.test")


def edge_and_client():
    clock = Clock()
    config = parse_config(CONFIG, "x.ini")
    edge = H2Edge(FakeFactory(FakeRelay(config, clock)), None)
    transport = FakeTLS()
    edge.makeConnection(transport)
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    edge.dataReceived(client.data_to_send())
    return clock, edge, transport, client


def answer(client, transport):
    data = transport.value()
    transport.clear()
    return client.receive_data(data)


def test_the_edge_advertises_extended_connect_and_its_limits():
    clock, edge, transport, client = edge_and_client()
    events = answer(client, transport)
    assert any(isinstance(e, RemoteSettingsChanged) for e in events)
    assert client.remote_settings.enable_connect_protocol == 1
    assert client.remote_settings.max_concurrent_streams == 7
    assert client.remote_settings.max_header_list_size == 16384
    assert client.outbound_flow_control_window >= 7 * 65535   # the connection's window covers every stream's


def test_a_plain_request_gets_426_and_an_unknown_name_404():
    clock, edge, transport, client = edge_and_client()
    answer(client, transport)
    for stream_id, authority in ((1, b"a.test"), (3, b"nowhere.test")):
        client.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"),
                                        (b":authority", authority), (b":path", b"/")], end_stream=True)
    edge.dataReceived(client.data_to_send())
    clock.advance(0)
    statuses = {e.stream_id: dict(e.headers)[b":status"] for e in answer(client, transport)
                if isinstance(e, ResponseReceived)}
    assert statuses == {1: b"426", 3: b"404"}


def test_pings_are_counted_over_the_flood_interval():
    clock, edge, transport, client = edge_and_client()
    client.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"),
                            (b":path", b"/")], end_stream=True)   # a request: the idle timeout is 75 s now
    edge.dataReceived(client.data_to_send())
    answer(client, transport)
    for round_ in range(3):   # the limit each interval, for several intervals: fine
        for i in range(MAX_PINGS):
            client.ping(b"%08d" % i)
        edge.dataReceived(client.data_to_send())
        assert not any(isinstance(e, ConnectionTerminated) for e in answer(client, transport))
        clock.advance(FLOOD_INTERVAL)
    for i in range(MAX_PINGS + 1):
        client.ping(b"%08d" % i)
    edge.dataReceived(client.data_to_send())
    ended = [e for e in answer(client, transport) if isinstance(e, ConnectionTerminated)]
    assert ended and ended[0].error_code == 11   # ENHANCE_YOUR_CALM
    assert transport.disconnecting


def test_a_connection_without_a_request_is_closed_after_handshake_timeout():
    clock, edge, transport, client = edge_and_client()
    answer(client, transport)
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    ended = [e for e in answer(client, transport) if isinstance(e, ConnectionTerminated)]
    assert ended and ended[0].error_code == 0 and transport.disconnecting


def test_an_idle_connection_is_closed_after_its_last_request():
    clock, edge, transport, client = edge_and_client()
    client.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"),
                            (b":path", b"/")], end_stream=True)
    edge.dataReceived(client.data_to_send())
    clock.advance(74)
    assert not transport.disconnecting
    clock.advance(1.1)
    ended = [e for e in answer(client, transport) if isinstance(e, ConnectionTerminated)]
    assert ended and ended[0].error_code == 0 and transport.disconnecting


@pytest.mark.parametrize("setting", [SettingCodes.INITIAL_WINDOW_SIZE])
def test_settings_floods_end_the_connection(setting):
    clock, edge, transport, client = edge_and_client()
    answer(client, transport)
    for i in range(101):
        client.update_settings({setting: 65535 + i % 2})
    edge.dataReceived(client.data_to_send())
    ended = [e for e in answer(client, transport) if isinstance(e, ConnectionTerminated)]
    assert ended and ended[0].error_code == 11


def test_a_drain_sends_goaway_and_closes_an_idle_connection():
    clock, edge, transport, client = edge_and_client()
    answer(client, transport)
    assert edge.relay.h2_connections == {edge}
    edge.drain()
    ended = [e for e in answer(client, transport) if isinstance(e, ConnectionTerminated)]
    assert ended and ended[0].error_code == 0 and transport.disconnecting
    edge.connectionLost(None)
    assert edge.relay.h2_connections == set()
