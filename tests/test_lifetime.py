"""
max_session_duration on an injected clock with in-memory transports: a
session is closed with 1001 and a reason on both legs at a point in the last
drain_window of its duration, however busy it is; sessions opened together
end spread out. Plus the config key.
"""

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.test_legs import Harness, client_frame, origin_frame, parse_masked, request
from wsrelay.config import ConfigError, parse_config
from wsrelay.edge.timers import lifetime
from websockets.frames import Opcode

CONFIG = """
[relay]
drain_window = 10
heartbeat_interval = 0
connection_timeout = 0
max_session_duration = 7200
[domain:chat.test]
origins = 10.0.0.5:8000
origin_protocol = http
[domain:short.test]
origins = 10.0.0.5:8000
origin_protocol = http
max_session_duration = 60
[domain:forever.test]
origins = 10.0.0.5:8000
origin_protocol = http
max_session_duration = 0
"""

CLOSE_1001 = b"\x03\xe9session reached its maximum duration"


def open_session(host, draw):
    h = Harness(CONFIG)
    h.relay.random = lambda: draw
    h.send(request(host=host))
    origin, origin_wire = h.connect_origin()
    h.answer(origin, origin_wire)
    h.client_wire.clear()
    origin_wire.clear()
    return h, origin, origin_wire


def test_lifetime_is_a_random_point_in_the_last_window_and_never_longer():
    assert lifetime(0, 10, lambda: 0.5) is None
    assert lifetime(7200, 10, lambda: 0.0) == 7200
    assert lifetime(7200, 10, lambda: 0.999) == pytest.approx(7190.01)
    assert lifetime(60, 100, lambda: 0.5) == 45  # the window is at most half the duration


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.99])
def test_a_busy_session_is_closed_with_1001_on_both_legs_at_its_lifetime(draw):
    h, origin, origin_wire = open_session("short.test", draw)
    ends = 60 - draw * 10
    while h.reactor.seconds() + 1 < ends:
        h.reactor.advance(1)
        h.send(client_frame(Opcode.TEXT, b"busy"))  # data either way does not postpone it
        origin.dataReceived(origin_frame(Opcode.TEXT, b"busy too"))
    h.client_wire.clear()
    origin_wire.clear()
    h.reactor.advance(ends - h.reactor.seconds() - 0.001)
    assert h.client_wire.value() == b"" and origin_wire.value() == b""
    h.reactor.advance(0.002)
    assert h.client_wire.value() == origin_frame(Opcode.CLOSE, CLOSE_1001)
    assert parse_masked(origin_wire.value()) == (Opcode.CLOSE, CLOSE_1001)
    session = next(iter(h.relay.sessions))
    assert session.first_closer == "relay"


def test_the_relay_default_applies_and_a_domain_may_turn_it_off():
    h, origin, origin_wire = open_session("chat.test", 0.25)
    h.reactor.advance(7200 - 2.5 - 0.01)
    assert h.client_wire.value() == b""
    h.reactor.advance(0.02)
    assert h.client_wire.value() == origin_frame(Opcode.CLOSE, CLOSE_1001)

    h, origin, origin_wire = open_session("forever.test", 0.25)
    h.reactor.advance(10 * 86400)
    assert h.client_wire.value() == b"" and h.reactor.getDelayedCalls() == []


def test_a_session_that_ends_first_leaves_no_timer_behind():
    h, origin, origin_wire = open_session("short.test", 0.5)
    h.send(client_frame(Opcode.CLOSE, b"\x03\xe8"))
    origin.dataReceived(origin_frame(Opcode.CLOSE, b"\x03\xe8"))
    assert [c for c in h.reactor.getDelayedCalls() if c.active() and c.getTime() >= 50] == []


def test_sessions_opened_together_end_spread_over_the_window():
    """Each session draws its own point: a burst of opens becomes closes spread over the last drain_window."""
    draws = iter([i / 20 for i in range(20)])
    h = Harness(CONFIG)
    h.relay.random = lambda: next(draws)
    clients = []
    for _ in range(20):
        client = h.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 50000))
        wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
        client.makeConnection(wire)
        client.dataReceived(request(host="short.test"))
        origin, origin_wire = h.connect_origin()
        h.answer(origin, origin_wire)
        wire.clear()
        clients.append(wire)
    closed_at = {}
    for step in range(1, 121):
        h.reactor.advance(0.5)
        for i, wire in enumerate(clients):
            if i not in closed_at and wire.value():
                closed_at[i] = h.reactor.seconds()
    times = sorted(closed_at.values())
    assert len(times) == 20 and times[0] >= 50 and times[-1] <= 60
    assert times[-1] - times[0] >= 9  # spread over the window, not one burst


def test_the_key_is_checked():
    with pytest.raises(ConfigError) as e:
        parse_config(CONFIG.replace("max_session_duration = 60", "max_session_duration = 2h"), "r.ini")
    assert str(e.value).startswith("r.ini: [domain:short.test] max_session_duration: '2h' is not a number")
    assert parse_config(CONFIG, "r.ini").domain_for("short.test").max_session_duration == 60
    assert parse_config(CONFIG, "r.ini").domain_for("chat.test").max_session_duration == 7200
