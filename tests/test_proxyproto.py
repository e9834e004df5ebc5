"""
PROXY protocol v1 and v2: the parser on bytes, the wrapper on in-memory
transports, the listen option in the config. No sockets.
"""

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher

from wsrelay.config import ConfigError, parse_config, proxy_protocol_of, split_listener
from wsrelay.edge.proxyproto import LOCAL, PROXY, Header, ProxyHeaderError, parse_header, v1_header, v2_header
from wsrelay.edge.proxywrap import ProxyProtocolFactory

CLIENT, RELAY = ("203.0.113.7", 51000), ("192.0.2.1", 443)
CLIENT6, RELAY6 = ("2001:db8::7", 51000), ("2001:db8::1", 443)


# -- the parser ---------------------------------------------------------------------

def test_v1_tcp4_and_tcp6():
    data = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n"
    assert parse_header(data) == Header(1, PROXY, CLIENT, RELAY, 44)
    assert data[44:].startswith(b"GET")
    header = parse_header(v1_header(CLIENT6, RELAY6))
    assert (header.source, header.destination, header.family) == (CLIENT6, RELAY6, "TCP6")


def test_v1_unknown_keeps_the_connections_own_addresses():
    assert parse_header(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == Header(1, PROXY, None, None, 35)
    assert parse_header(b"PROXY UNKNOWN\r\n").source is None


def test_every_prefix_of_a_header_waits_for_more():
    for header in (v1_header(CLIENT, RELAY), v2_header(CLIENT6, RELAY6, tlvs=b"\x04\x00\x01x")):
        for cut in range(len(header)):
            assert parse_header(header[:cut]) is None, cut
        assert parse_header(header).length == len(header)


@pytest.mark.parametrize("data, reason", [
    (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
    (b"\x16\x03\x01\x02\x00", "no PROXY protocol header"),  # a TLS ClientHello
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 51000\r\n", "malformed PROXY v1"),
    (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "malformed PROXY v1"),
    (b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n", "'::1' is not an IPv4 address"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "'1.2.3.4' is not an IPv6 address"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "'01' is not a port"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n", "'65536' is not a port"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "not ended by CRLF"),
    (b"PROXY " + b"x" * 120, "too long"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c" + bytes(12), "unknown version 1"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x22\x11\x00\x0c" + bytes(12), "unknown command 2"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x0c" + bytes(12), "unsupported address family/protocol 0x12"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x31\x00\x0c" + bytes(12), "0x31"),
    (b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x0c" + bytes(12), "12 address bytes, TCP over IPv6 needs 36"),
])
def test_malformed_headers_say_why(data, reason):
    with pytest.raises(ProxyHeaderError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_header(data)


def test_v2_tcp4_tcp6_with_tlvs_skipped():
    header = parse_header(v2_header(CLIENT, RELAY, tlvs=b"\x01\x00\x02h2") + b"\x16\x03\x01")
    assert header == Header(2, PROXY, CLIENT, RELAY, 16 + 12 + 5)
    assert parse_header(v2_header(CLIENT6, RELAY6)) == Header(2, PROXY, CLIENT6, RELAY6, 16 + 36)


def test_v2_local_and_unspec_keep_the_connections_own_addresses():
    assert parse_header(v2_header(local=True)) == Header(2, LOCAL, None, None, 16)
    # LOCAL with an address block: the addresses are ignored
    local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x11\x00\x0c" + bytes(12)
    assert parse_header(local) == Header(2, LOCAL, None, None, 28)
    assert parse_header(v2_header()) == Header(2, PROXY, None, None, 16)


# -- the wrapper ------------------------------------------------------------------------

class Recorder(Protocol):
    def __init__(self):
        self.received = b""
        self.made = False
        self.lost = False

    def connectionMade(self):
        self.made = True
        self.peer = self.transport.getPeer()
        self.host = self.transport.getHost()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = True


class Logged:
    def __init__(self):
        self.events = []

    def __enter__(self):
        globalLogPublisher.addObserver(self.events.append)
        return self

    def __exit__(self, *exc):
        globalLogPublisher.removeObserver(self.events.append)

    def refusals(self):
        return [e for e in self.events if e.get("log_namespace") == "wsrelay.proxy"]


def wrapped(trusted=("10.0.0.9",), timeout=5.0):
    reactor = MemoryReactorClock()
    inner = Factory.forProtocol(Recorder)
    factory = ProxyProtocolFactory(inner, lambda a: a in trusted, reactor, lambda: timeout, listener="tcp:80")
    return reactor, factory


def connect(factory, peer="10.0.0.9"):
    protocol = factory.buildProtocol(IPv4Address("TCP", peer, 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000),
                                hostAddress=IPv4Address("TCP", "10.0.0.1", 80))
    protocol.makeConnection(transport)
    return protocol, transport


def test_the_header_is_consumed_and_its_addresses_become_the_peer():
    reactor, factory = wrapped()
    protocol, transport = connect(factory)
    inner = protocol.wrappedProtocol
    for byte in v1_header(CLIENT, RELAY):  # one byte at a time
        assert not inner.made
        protocol.dataReceived(bytes([byte]))
    protocol.dataReceived(b"GET / HTTP/1.1\r\n")
    assert inner.made and inner.received == b"GET / HTTP/1.1\r\n"
    assert (inner.peer.host, inner.peer.port, inner.host.host, inner.host.port) == (*CLIENT, *RELAY)
    assert not reactor.getDelayedCalls()  # the header timer is gone
    inner.transport.write(b"HTTP/1.1 101")
    assert transport.value() == b"HTTP/1.1 101"


def test_header_and_data_in_one_segment_and_v2_local():
    _, factory = wrapped()
    protocol, _ = connect(factory)
    protocol.dataReceived(v2_header(CLIENT6, RELAY6) + b"\x16\x03\x01hello")
    inner = protocol.wrappedProtocol
    assert inner.received == b"\x16\x03\x01hello" and inner.peer.host == CLIENT6[0]
    protocol, _ = connect(factory)
    protocol.dataReceived(v2_header(local=True))
    assert protocol.wrappedProtocol.made and protocol.wrappedProtocol.peer.host == "10.0.0.9"


def test_an_untrusted_peer_is_closed_unanswered_and_logged_once():
    _, factory = wrapped()
    with Logged() as logged:
        for _ in range(3):
            protocol, transport = connect(factory, peer="10.0.0.66")
            inner = protocol.wrappedProtocol
            assert transport.disconnecting and transport.value() == b""
            protocol.dataReceived(v1_header(CLIENT, RELAY) + b"GET /")
            assert not inner.made and inner.received == b""
            protocol.connectionLost(None)
            assert not inner.lost
    [event] = logged.refusals()
    assert (event["peer"], event["why"], event["log_level"].name) == (
        "10.0.0.66", "not a trusted proxy (trusted_proxies)", "info")


def test_a_malformed_or_missing_header_closes_unanswered():
    reactor, factory = wrapped(timeout=4.0)
    with Logged() as logged:
        protocol, transport = connect(factory)
        protocol.dataReceived(b"GET / HTTP/1.1\r\n")
        assert transport.disconnecting and transport.value() == b""
        assert not protocol.wrappedProtocol.made
        _, factory = wrapped(timeout=4.0)
        reactor = factory.reactor
        protocol, transport = connect(factory)
        protocol.dataReceived(b"PROXY TCP4 ")
        reactor.advance(3.9)
        assert not transport.disconnecting
        reactor.advance(0.2)
        assert transport.disconnecting and not protocol.wrappedProtocol.made
    assert [e["why"] for e in logged.refusals()] == ["no PROXY protocol header", "no header in time"]


# -- config -------------------------------------------------------------------------------

def listen_config(listen, trusted="10.0.0.0/8"):
    return parse_config(f"[relay]\nlisten = {listen}\ntrusted_proxies = {trusted}\n[domain:*]\norigins = o\n", "x.ini")


def test_the_listen_option():
    config = listen_config("tcp:80:proxy_protocol=on tcp:81 tcp:82:proxy_protocol=off:interface=127.0.0.1")
    assert [proxy_protocol_of(d) for d in config.listen] == [True, False, False]
    assert split_listener("tcp:82:proxy_protocol=off:interface=127.0.0.1") == ("tcp:82:interface=127.0.0.1", "off")
    assert split_listener(r"tcp:80:interface=\:\:1:proxy_protocol=on") == (r"tcp:80:interface=\:\:1", "on")


@pytest.mark.parametrize("listen, trusted, message", [
    ("tcp:80:proxy_protocol=maybe", "10.0.0.1", "proxy_protocol=maybe is not on or off"),
    ("tcp:80:proxy_protocol=on:proxy_protocol=on", "10.0.0.1", "proxy_protocol= is given twice"),
    ("tcp:80:proxy_protocol=on", "", "proxy_protocol=on takes the PROXY header only from trusted_proxies"),
    ("tcp:80:proxy=on", "10.0.0.1", "is not a Twisted server endpoint string"),
])
def test_listen_option_mistakes_name_file_section_and_key(listen, trusted, message):
    with pytest.raises(ConfigError, match=r"x.ini: \[relay\] listen: .*" + message):
        listen_config(listen, trusted)
