"""
Passive health counts only what the origin did, and the panic threshold:
the board and the route on explicit times, then the relay in memory
(MemoryReactorClock) dialling origins that refuse, time out on time, time
out because the relay's own loop was late, or cannot be dialled for want of
descriptors.
"""

import errno
import re

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectBindError, ConnectError, ConnectionRefusedError
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from wsrelay.config import ConfigError, HealthConfig, Origin, parse_config
from wsrelay.origins.health import HealthBoard
from wsrelay.edge.http import accept_for
from wsrelay.origins.routing import NoOrigin, Routes
from wsrelay.selectors import Handshake
from wsrelay.process.service import RelayFactory
from wsrelay.process.relay import Relay

A, B, C, D = (Origin(f"10.0.0.{i}", 8000) for i in range(1, 5))
HS = Handshake("chat.test", "/", {}, {}, "192.0.2.7")


def eject(board, origin):
    for _ in range(board.config.eject_after):
        board.connect_failed(origin, 0.0, "refused")


# -- the panic threshold ---------------------------------------------------------------

def test_under_the_panic_threshold_every_origin_is_a_candidate():
    board = HealthBoard((A, B, C, D), HealthConfig())             # panic_threshold 50 by default
    eject(board, A)
    eject(board, B)
    assert board.available == (C, D) and board.candidates == (C, D) and not board.panic   # 50 %: not under
    eject(board, C)
    assert board.available == (D,) and board.candidates == (A, B, C, D) and board.panic
    eject(board, D)
    assert board.available == () and board.candidates == (A, B, C, D)
    board.cooldown_over(A, 30.0)
    board.cooldown_over(B, 30.0)
    assert board.candidates == (A, B) and not board.panic


def test_panic_threshold_zero_never_doubts_the_verdicts_and_100_always_does():
    never = HealthBoard((A, B), HealthConfig(panic_threshold=0))
    eject(never, A)
    eject(never, B)
    assert never.candidates == () and not never.panic
    always = HealthBoard((A, B), HealthConfig(panic_threshold=100))
    eject(always, A)
    assert always.candidates == (A, B) and always.panic


@pytest.fixture
def logged():
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    yield lambda namespace: [e for e in observer if e.get("log_namespace") == namespace]
    globalLogPublisher.removeObserver(observer)


def test_route_balances_over_all_in_panic_and_logs_it_once_each_way(logged):
    clock = MemoryReactorClock()
    routes = Routes(parse_config("[domain:chat.test]\norigins = 10.0.0.1:8000 10.0.0.2:8000 10.0.0.3:8000\n"
                                 "eject_after = 1\neject_for = 30\n", "test.ini"), clock)
    route = routes["chat.test"]
    route.failed(A, "connect Connection was refused")
    clock.advance(1)
    route.failed(B, "connect Connection was refused")
    route.failed(C, "connect Connection was refused")            # every origin out: none refused
    firsts = set()
    for _ in range(6):
        box = []
        route.choose(HS).addBoth(box.append)
        assert not isinstance(box[0], Failure), box[0]
        firsts.add(box[0][0])
    assert firsts == {A, B, C}                                     # round-robin over all three
    panic = [e for e in logged("wsrelay.health") if "panic_threshold" in e["log_format"]]
    assert len(panic) == 1 and panic[0]["log_level"].name == "warn"
    assert (panic[0]["out"], panic[0]["total"], panic[0]["threshold"]) == (2, 3, 50)
    assert not [e for e in logged("wsrelay.health") if "handshakes get 503" in e["log_format"]]
    clock.advance(29)                                              # A back: 1 of 3, still in panic
    assert route.board.panic and sum("panic_threshold" in e["log_format"] for e in logged("wsrelay.health")) == 1
    clock.advance(1)                                               # B and C back
    texts = [e["log_format"] for e in logged("wsrelay.health")]
    assert sum("panic_threshold" in t for t in texts) == 2
    assert sum("enough origins in rotation again" in t for t in texts) == 1 and not route.board.panic


def test_panic_threshold_is_parsed_per_domain_with_or_without_percent_sign():
    config = parse_config("[relay]\npanic_threshold = 30%\n[domain:a.test]\norigins = o\n"
                          "[domain:b.test]\norigins = o\npanic_threshold = 0\n", "x.ini")
    assert config.domains["a.test"].health.panic_threshold == 30
    assert config.domains["b.test"].health.panic_threshold == 0
    for bad in ("101", "-1", "half", "50.5"):
        with pytest.raises(ConfigError, match=r"\[domain:a.test\] panic_threshold: .* whole percentage from 0 to 100"):
            parse_config(f"[domain:a.test]\norigins = o\npanic_threshold = {bad}\n", "x.ini")


# -- the relay in memory: what counts against an origin ----------------------------------

class MemoryRelay:
    """The relay on MemoryReactorClock; each handshake's dials are in clock.tcpClients."""

    def __init__(self, extra=""):
        self.clock = MemoryReactorClock()
        self.relay = Relay(parse_config(
            "[relay]\norigin_connect_timeout = 3\n[domain:chat.test]\n"
            "origins = 10.0.0.1:8000 10.0.0.2:8000\norigin_protocol = http\n"
            f"eject_after = 1\neject_for = 600\npanic_threshold = 0\n{extra}", "test.ini"), self.clock)
        self.factory = RelayFactory(self.relay)
        self.board = self.relay.routes["chat.test"].board

    def handshake(self):
        client = self.factory.buildProtocol(None)
        wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
        client.makeConnection(wire)
        client.dataReceived(b"GET / HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        return wire

    def dials(self):
        return len(self.clock.tcpClients)

    def fail_dial(self, failure):
        self.clock.tcpClients[-1][2].clientConnectionFailed(None, Failure(failure))


def test_a_refused_connect_counts_against_the_origin():
    relay = MemoryRelay()
    wire = relay.handshake()
    relay.fail_dial(ConnectionRefusedError())
    relay.fail_dial(ConnectionRefusedError())
    assert wire.value().startswith(b"HTTP/1.1 502 ")
    assert relay.board.available == ()                            # both ejected (eject_after = 1)
    assert relay.handshake().value().startswith(b"HTTP/1.1 503 ")


def test_a_timeout_on_time_counts_one_fired_late_by_a_busy_relay_does_not(logged):
    relay = MemoryRelay()
    wire = relay.handshake()
    relay.clock.advance(4.0)                    # the loop woke 1 s after A's deadline: the relay was busy
    assert relay.dials() == 2                   # retried on B
    relay.clock.advance(3.0)                    # B's deadline, on time
    assert wire.value().startswith(b"HTTP/1.1 504 ")
    assert relay.board.available == (Origin("10.0.0.1", 8000),)   # only B is ejected
    late = [e for e in logged("wsrelay.origin") if "not counted against it" in e["log_format"]]
    assert len(late) == 1 and late[0]["origin"] == "10.0.0.1:8000" and late[0]["late"] == pytest.approx(1.0)

    for _ in range(5):                          # however often: a relay too busy ejects nothing
        wire = relay.handshake()
        relay.clock.advance(4.0)
        assert wire.value().startswith(b"HTTP/1.1 504 ")
    assert relay.board.available == (Origin("10.0.0.1", 8000),)


@pytest.mark.parametrize("failure", [
    ConnectBindError(errno.EMFILE, "Too many open files"),        # no socket for the dial at all
    ConnectError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),   # out of ephemeral ports
    ConnectError(errno.ENOBUFS, "No buffer space available"),
])
def test_the_relay_out_of_descriptors_or_ports_ejects_nothing(failure):
    relay = MemoryRelay()
    for _ in range(3):
        wire = relay.handshake()
        relay.fail_dial(failure)
        relay.fail_dial(failure)
        assert wire.value().startswith(b"HTTP/1.1 502 ")
    assert len(relay.board.available) == 2
    assert relay.dials() == 6


class TurnByTurnClock(MemoryReactorClock):
    """
    Runs, per advance, only the calls that were due when it began: a real reactor
    runs its due timers, then reads its sockets, then runs what those scheduled.
    """

    def advance(self, amount):
        self.rightNow += amount
        self._sortCalls()
        for call in [c for c in self.calls if c.getTime() <= self.rightNow]:
            if call in self.calls:                      # not cancelled by an earlier one
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


def test_an_answer_already_received_when_the_deadline_fires_is_read_not_timed_out():
    relay = MemoryRelay()
    relay.clock = TurnByTurnClock()
    relay.relay = Relay(relay.relay.config, relay.clock)
    relay.factory = RelayFactory(relay.relay)
    wire = relay.handshake()
    _host, _port, factory, _timeout, _bind = relay.clock.tcpClients[-1]
    origin = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 8000))
    origin_wire = StringTransport()
    origin.makeConnection(origin_wire)
    key = re.search(rb"Sec-WebSocket-Key: (\S+)\r\n", origin_wire.value(), re.I).group(1)

    relay.clock.advance(3.0)                  # the deadline's turn: the 101 is in the socket, not yet read
    assert wire.value() == b""                # no 504 yet: one more turn first
    origin.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept_for(key).encode() + b"\r\n\r\n")
    relay.clock.advance(0)
    assert wire.value().startswith(b"HTTP/1.1 101 ")
    assert relay.relay.routes["chat.test"].board.available == (A, B)
