"""
max_memory: the decision (pure numbers), the guard on an injected clock with
sessions holding unsent data in fake transports, admission refused while it
says so, and the config key.
"""

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.test_legs import Harness, parse_masked, request
from wsrelay.config import ConfigError, parse_config
from wsrelay.process.overload import LOW_WATER, MIN_SHED, Overload, OverloadGuard, Verdict, pick_largest, unsent
from websockets.frames import Opcode

MiB = 1 << 20


def test_over_the_limit_refuses_and_picks_the_largest_until_the_excess_is_covered():
    state = Overload()
    held = [("a", 100_000), ("b", 3 * MiB), ("c", 1 * MiB), ("d", 2 * MiB), ("idle", 0)]
    limit = 100 * MiB
    verdict = state.assess(limit, 102 * MiB, held)
    # the excess over the low water mark: 102 - 95 = 7 MiB -> b (3) + d (2) + c (1) + a is not enough -> all that hold
    assert verdict.refuse
    assert verdict.shed == ("b", "d", "c", "a")
    verdict = state.assess(limit, 100 * MiB, held)
    assert verdict.shed == ("b", "d")  # 5 MiB: two are enough
    verdict = state.assess(limit, 100 * MiB + 1, held)
    assert verdict.shed == ("b", "d", "c")


def test_nothing_under_min_shed_is_closed_and_off_means_off():
    state = Overload()
    assert pick_largest([("x", MIN_SHED - 1)], 10 * MiB) == ()
    assert state.assess(0, 10**12, [("x", MiB)]) == Verdict(False, ())


def test_refusing_lasts_until_under_the_low_water_mark():
    state = Overload()
    limit = 100 * MiB
    assert not state.assess(limit, 99 * MiB, []).refuse          # under: nothing
    assert state.assess(limit, 100 * MiB, []).refuse             # at the limit
    assert state.assess(limit, 97 * MiB, []).refuse              # under it, not under the low water mark
    # still refusing: what is over the low water mark is shed (95 MiB + 2 MiB: a, then b)
    assert state.assess(limit, 97 * MiB, [("a", 3 * MiB), ("b", 1 * MiB), ("c", MiB)]).shed == ("a",)
    assert not state.assess(limit, int(limit * LOW_WATER) - 1, []).refuse
    assert not state.assess(limit, 97 * MiB, []).refuse          # and stays so until the limit again


class Buffered:
    """A transport with unsent data, as Twisted's TCP transport keeps it."""

    def __init__(self, size, under=None):
        self.dataBuffer = b"x" * size
        self.offset = 0
        self._tempDataLen = 0
        self.transport = under


def test_unsent_counts_the_tcp_buffer_and_a_tls_layer_above_it():
    tcp = Buffered(1000)
    tcp.offset = 200
    tcp._tempDataLen = 50
    tls = type("TLS", (), {"_appSendBuffer": [b"a" * 30], "transport": tcp})()
    assert unsent(tcp) == 850 and unsent(tls) == 880 and unsent(None) == 0


def open_session(h):
    """One more session through the Harness relay: (client, its wire, origin, its wire)."""
    client = h.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 50000))
    wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
    client.makeConnection(wire)
    client.dataReceived(request())
    origin, origin_wire = h.connect_origin()
    h.answer(origin, origin_wire)
    wire.clear()
    origin_wire.clear()
    return client, wire, origin, origin_wire


CONFIG = """
[relay]
max_memory = 100M
heartbeat_interval = 0
[domain:chat.test]
origins = 10.0.0.5:8000
origin_protocol = http
"""


def test_the_guard_refuses_handshakes_closes_the_largest_with_1013_and_recovers():
    h = Harness(CONFIG)
    rss = [50 * MiB]
    released = []
    guard = OverloadGuard(h.relay, h.reactor, read_rss=lambda: rss[0], release=lambda: released.append(1))
    h.relay.overload = guard
    guard.startService()
    sessions = [open_session(h) for _ in range(3)]
    # the first client stopped reading: 4 MiB wait in its transport; the second holds 1 MiB
    sessions[0][1].dataBuffer, sessions[0][1].offset, sessions[0][1]._tempDataLen = b"x" * (4 * MiB), 0, 0
    sessions[1][1].dataBuffer, sessions[1][1].offset, sessions[1][1]._tempDataLen = b"x" * MiB, 0, 0
    # (StringTransport keeps what was written in io, not dataBuffer: these are what the guard reads)

    rss[0] = 101 * MiB
    h.reactor.advance(1)
    assert guard.refusing
    # the excess over 95 MiB is 6 MiB: both sessions holding data are closed (5 MiB), the idle one is not
    for client, wire, origin, origin_wire in sessions[:2]:
        assert wire.disconnecting  # the stalled leg is dropped (its buffer freed at once)
        assert parse_masked(origin_wire.value()) == (Opcode.CLOSE, b"\x03\xf5the relay is short of memory")
    assert sessions[2][3].value() == b"" and not sessions[2][1].disconnecting
    for client, wire, origin, origin_wire in sessions[:2]:
        h.settle(client, wire)  # the connectionLost a socket delivers after abortConnection
    assert released == []
    h.reactor.advance(0.1)  # once the dropped connections are gone
    assert released == [1]

    late = h.factory.buildProtocol(IPv4Address("TCP", "192.0.2.8", 50000))
    late_wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.8", 50000))
    late.makeConnection(late_wire)
    dials = len(h.reactor.tcpClients)
    late.dataReceived(request())
    head = late_wire.value()
    assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in head and b"short of memory" in head
    assert len(h.reactor.tcpClients) == dials  # nothing dialled

    rss[0] = 96 * MiB            # under the limit, not under 95 %: still refusing, the idle one stays
    h.reactor.advance(1)
    assert guard.refusing and sessions[2][3].value() == b""
    assert released == [1, 1]    # while refusing, freed memory is given back before each sample
    rss[0] = 90 * MiB
    h.reactor.advance(1)
    assert not guard.refusing and released == [1, 1, 1]
    h.reactor.advance(1)
    assert released == [1, 1, 1]  # not any more
    client, wire, origin, origin_wire = open_session(h)
    assert client.state == client.STATE_OPEN  # handshakes are taken again


def test_the_guard_samples_only_while_max_memory_is_set():
    h = Harness(CONFIG.replace("max_memory = 100M", "max_memory = 0"))
    reads = []
    guard = OverloadGuard(h.relay, h.reactor, read_rss=lambda: reads.append(1) or 0)
    guard.startService()
    h.reactor.advance(10)
    assert reads == [] and h.reactor.getDelayedCalls() == []
    h.relay.config = parse_config(CONFIG, "r.ini")  # a reload turns it on
    guard.configure()
    for _ in range(3):
        h.reactor.advance(1)
    assert len(reads) == 4  # once at once, then every second
    guard.stopService()
    assert h.reactor.getDelayedCalls() == []


@pytest.mark.parametrize("text, expected", [("0", 0), ("1048576", MiB), ("512M", 512 * MiB),
                                            ("2G", 2 << 30), ("64k", 64 << 10), ("3MiB", 3 * MiB)])
def test_max_memory_takes_bytes_with_a_unit(text, expected):
    assert parse_config(CONFIG.replace("100M", text), "r.ini").max_memory == expected


def test_a_bad_max_memory_names_file_section_and_key():
    with pytest.raises(ConfigError) as e:
        parse_config(CONFIG.replace("100M", "lots"), "r.ini")
    assert str(e.value) == ("r.ini: [relay] max_memory: 'lots' is not a size in bytes "
                            "(a whole number, or with K, M or G after it)")
