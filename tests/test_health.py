"""
Origin health without sockets: the state machine on explicit times, the
per-domain route on MemoryReactorClock (cool-downs, log lines once per
change), the active checks and their probe on in-memory transports, and the
relay answering 503 at once when every origin is out.
"""

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from wsrelay.config import HealthConfig, Origin, parse_config
from wsrelay.origins.health import (
    DOWN, EJECTED, RETRYING, UP, CheckProtocol, HealthBoard, HealthChecks, ProbeFailed, check_request, probe,
)
from wsrelay.edge.http import accept_for
from wsrelay.origins.routing import NoOrigin, Routes
from wsrelay.selectors import Handshake
from wsrelay.process.service import RelayFactory, build_service
from wsrelay.process.relay import Relay

A, B, C = (Origin(f"10.0.0.{i}", 8000) for i in range(1, 4))


# -- the state machine ----------------------------------------------------------------

def test_three_failed_connects_in_a_row_eject_for_the_cool_down():
    board = HealthBoard((A, B, C), HealthConfig())
    assert board.connect_failed(A, 100.0, "refused") is None
    assert board.connect_failed(A, 101.0, "refused") is None
    change = board.connect_failed(A, 102.0, "refused")
    assert (change.origin, change.state) == (A, EJECTED)
    assert "3 failed connects in a row" in change.reason and "refused" in change.reason
    assert board.available == (B, C)
    assert board.connect_failed(A, 103.0, "refused") is None      # already out: no second change
    assert board.cooldown_over(A, 131.9) is None                  # a timer that fires early does nothing
    change = board.cooldown_over(A, 132.0)
    assert change.state == RETRYING and board.available == (A, B, C)


def test_a_session_in_between_resets_the_count():
    board = HealthBoard((A, B), HealthConfig())
    for _ in range(5):
        board.connect_failed(A, 0.0, "refused")
        board.connect_failed(A, 0.0, "refused")
        assert board.connect_succeeded(A) is None
    assert board.available == (A, B)


def test_after_the_cool_down_one_more_failure_ejects_again_and_a_session_ends_probation():
    board = HealthBoard((A, B), HealthConfig(eject_after=3, eject_for=10))
    for _ in range(3):
        board.connect_failed(A, 0.0, "refused")
    board.cooldown_over(A, 10.0)
    change = board.connect_failed(A, 11.0, "refused")
    assert change.state == EJECTED and "failed again after its cool-down" in change.reason
    board.cooldown_over(A, 21.0)
    assert board.state_of(A) == RETRYING
    change = board.connect_succeeded(A)
    assert change.state == UP and board.state_of(A) == UP
    assert board.connect_failed(A, 22.0, "refused") is None       # a full count again


def test_eject_after_zero_never_ejects():
    board = HealthBoard((A,), HealthConfig(eject_after=0))
    assert all(board.connect_failed(A, 0.0, "refused") is None for _ in range(50))
    assert board.available == (A,)


def test_failed_checks_take_out_and_passed_checks_put_back():
    board = HealthBoard((A, B), HealthConfig(interval=5, fall=2, rise=3))
    assert board.check_failed(A, "refused") is None
    board.check_passed(A)                                          # a pass in between: start over
    assert board.check_failed(A, "refused") is None
    change = board.check_failed(A, "refused")
    assert change.state == DOWN and board.available == (B,)
    assert board.check_failed(A, "refused") is None
    assert board.check_passed(A) is None and board.check_passed(A) is None
    change = board.check_passed(A)
    assert change.state == UP and board.available == (A, B)
    assert board.check_passed(A) is None


def test_passed_checks_end_a_passive_ejection_early():
    board = HealthBoard((A, B), HealthConfig(interval=5, rise=2, eject_for=300))
    for _ in range(3):
        board.check_passed(A)                                      # passes before the ejection do not count
    for _ in range(3):
        board.connect_failed(A, 0.0, "refused")
    assert board.available == (B,)
    assert board.check_passed(A) is None
    assert board.check_passed(A).state == UP and board.available == (A, B)
    assert board.cooldown_over(A, 300.0) is None                   # the stale cool-down timer


def test_cool_down_of_an_origin_the_checks_hold_down_changes_nothing_visible():
    board = HealthBoard((A, B), HealthConfig(interval=5, fall=1))
    for _ in range(2):
        board.connect_failed(A, 0.0, "refused")
    board.check_failed(A, "refused")
    assert board.connect_failed(A, 0.0, "refused") is None        # out already: not counted
    assert board.available == (B,)


def test_retry_after_is_the_soonest_return():
    board = HealthBoard((A, B), HealthConfig(eject_for=30, interval=4, rise=2, fall=1))
    for _ in range(3):
        board.connect_failed(A, 10.0, "refused")
    board.check_failed(B, "refused")
    assert board.retry_after(20.5) == 8                            # B could be back after 2 checks
    assert board.retry_after(38.5) == 2                            # A's cool-down ends at 40


# -- the route: timers and log lines -------------------------------------------------------

@pytest.fixture
def logged():
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    yield lambda: [e for e in observer if e.get("log_namespace") == "wsrelay.health"]
    globalLogPublisher.removeObserver(observer)


def routes_for(text):
    clock = MemoryReactorClock()
    return Routes(parse_config(text, "test.ini"), clock), clock


HS = Handshake("chat.test", "/", {}, {}, "192.0.2.7")


def chosen(route):
    box = []
    route.choose(HS).addBoth(box.append)
    return box[0]


def test_route_logs_each_change_once_and_ends_the_cool_down_on_its_clock(logged):
    routes, clock = routes_for("[domain:chat.test]\norigins = 10.0.0.1:8000 10.0.0.2:8000\neject_for = 30\n")
    route = routes["chat.test"]
    for _ in range(20):
        route.failed(A, "connect Connection was refused")
    events = logged()
    assert len(events) == 1
    assert events[0]["state"] == EJECTED and events[0]["origin"] == "10.0.0.1:8000"
    assert events[0]["domain"] == "chat.test" and "refused" in events[0]["reason"]
    assert events[0]["log_level"].name == "warn"
    assert [chosen(route)[0] for _ in range(4)] == [B] * 4
    clock.advance(29.9)
    assert len(logged()) == 1
    clock.advance(0.1)
    assert [e["state"] for e in logged()] == [EJECTED, RETRYING]
    assert route.board.available == (A, B)


def test_every_origin_out_is_503_at_once_logged_once(logged):
    # panic_threshold = 0: the health verdicts are never doubted (the default balances over all)
    routes, clock = routes_for("[domain:chat.test]\norigins = 10.0.0.1:8000 10.0.0.2:8000\n"
                               "eject_after = 1\neject_for = 10\npanic_threshold = 0\n")
    route = routes["chat.test"]
    route.failed(A, "connect timed out")
    clock.advance(4)
    route.failed(B, "connect timed out")
    for _ in range(10):
        refusal = chosen(route)
        assert isinstance(refusal.value, NoOrigin) and refusal.value.retry_after == 6
    texts = [e["log_format"] for e in logged()]
    assert sum("out of rotation" in t for t in texts) == 1
    clock.advance(6)
    assert chosen(route) == [A]                         # A's cool-down is over, B's not yet
    assert sum("in rotation again" in e["log_format"] for e in logged()) == 1
    clock.advance(4)
    assert set(chosen(route)) == {A, B}


def test_primary_backup_fails_over_on_ejection_and_back_after_the_cool_down():
    routes, clock = routes_for("[domain:chat.test]\nselector = primary-backup\n"
                               "origins = 10.0.0.1:8000 10.0.0.2:8000 10.0.0.3:8000\n")
    route = routes["chat.test"]
    assert chosen(route) == [A, B]
    for _ in range(3):
        route.failed(A, "connect timed out")
    assert chosen(route) == [B, C]
    clock.advance(30)
    assert chosen(route) == [A, B]


def test_route_tells_the_selector_every_event():
    routes, _ = routes_for("[domain:chat.test]\nselector = least-connections\n"
                           "origins = 10.0.0.1:8000 10.0.0.2:8000\n")
    route = routes["chat.test"]
    route.opened(A)
    route.opened(A)
    route.closed(A)
    route.failed(B, "connect timed out")
    assert route.selector.live == {A: 1, B: 0}


def test_route_never_dials_what_a_selector_made_up():
    routes, _ = routes_for("[domain:chat.test]\norigins = 10.0.0.1:8000\n")
    route = routes["chat.test"]
    route.selector.choose = lambda hs, available: defer.succeed([Origin("evil.example", 25), A])
    assert chosen(route) == [A]
    route.selector.choose = lambda hs, available: defer.succeed([Origin("evil.example", 25)])
    assert isinstance(chosen(route).value, NoOrigin)
    route.selector.choose = lambda hs, available: 1 / 0
    assert isinstance(chosen(route).value, NoOrigin)


# -- active checks ---------------------------------------------------------------------------

class FakeProbes:
    """Each probe a Deferred the test fires: pass() or fail(reason)."""

    def __init__(self):
        self.pending = []

    def __call__(self, reactor, domain):
        def check(origin):
            d = defer.Deferred()
            self.pending.append((origin, d))
            return d
        return check

    def settle(self, results):
        pending, self.pending = self.pending, []
        for origin, d in pending:
            if results.get(origin, True):
                d.callback(None)
            else:
                d.errback(ProbeFailed("answered 500 to GET"))


def test_checks_run_every_interval_and_decide_rotation(logged):
    routes, clock = routes_for("[domain:chat.test]\norigins = 10.0.0.1:8000 10.0.0.2:8000\n"
                               "health_interval = 5\nhealth_fall = 2\nhealth_rise = 2\n")
    probes = FakeProbes()
    service = routes.health_service(probes)
    service.startService()
    route = routes["chat.test"]
    assert [o for o, _ in probes.pending] == [A, B]              # at once on start
    probes.settle({A: False})
    clock.advance(5)
    assert len(probes.pending) == 2
    probes.settle({A: False})
    assert route.board.available == (B,)
    assert "2 health checks failed in a row (last: answered 500 to GET)" in logged()[0]["reason"]
    for _ in range(2):
        clock.advance(5)
        probes.settle({})
    assert route.board.available == (A, B)
    assert [e["state"] for e in logged() if "state" in e] == [DOWN, UP]
    service.stopService()


def test_a_check_still_running_is_not_started_twice_and_stop_cancels_it():
    routes, clock = routes_for("[domain:chat.test]\norigins = 10.0.0.1:8000\nhealth_interval = 1\n"
                               "health_timeout = 1\n")
    probes = FakeProbes()
    service = routes.health_service(probes)
    service.startService()
    clock.advance(1)
    clock.advance(1)
    assert len(probes.pending) == 1
    service.stopService()
    assert probes.pending[0][1].called                             # cancelled
    assert routes["chat.test"].board.available == (A,)             # a cancel is not a failure


def test_only_domains_with_a_health_interval_get_checks():
    routes, clock = routes_for("[domain:a.test]\norigins = a\n[domain:b.test]\norigins = b\nhealth_interval = 7\n")
    service = routes.health_service()
    (timer,) = list(service)
    assert timer.step == 7 and timer.clock is clock


# -- the probe -----------------------------------------------------------------------------

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def run_check(answer, kind="websocket"):
    done = defer.Deferred()
    results = []
    done.addCallback(results.append)
    proto = CheckProtocol(check_request(kind, "/health", "chat.test", KEY),
                          accept_for(KEY) if kind == "websocket" else None, done)
    wire = StringTransport()
    proto.makeConnection(wire)
    if answer is not None:
        proto.dataReceived(answer)
    return results, wire, proto


def test_websocket_check_passes_on_a_real_101_and_closes_politely():
    results, wire, _ = run_check(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    assert results == [None]
    sent = wire.value()
    assert sent.startswith(b"GET /health HTTP/1.1\r\nHost: chat.test\r\n")
    assert b"Upgrade: websocket\r\n" in sent and b"Sec-WebSocket-Key: " + KEY in sent
    close = sent[sent.index(b"\r\n\r\n") + 4:]
    assert close[:2] == b"\x88\x82" and len(close) == 8            # a masked Close frame, code 1000
    assert bytes(b ^ close[2 + i % 4] for i, b in enumerate(close[6:])) == b"\x03\xe8"
    assert wire.disconnecting


@pytest.mark.parametrize("answer, kind, problem", [
    (b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n", "websocket",
     "wrong Sec-WebSocket-Accept"),
    (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", "websocket", "answered 503 instead of 101"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "websocket", "answered garbage"),
    (b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", "http", "answered 500 to GET"),
    (b"HTTP/1.1 301 Moved\r\n\r\n", "http", "answered 301"),
    (b"X" * 20000, "http", "too large"),
])
def test_checks_fail_on_wrong_answers(answer, kind, problem):
    results, wire, _ = run_check(answer, kind)
    assert problem in results[0]
    assert wire.disconnecting or wire.disconnected


def test_http_check_passes_on_2xx_and_asks_for_no_upgrade():
    results, wire, _ = run_check(b"HTTP/1.1 204 No Content\r\n\r\n", "http")
    assert results == [None]
    assert b"Upgrade" not in wire.value() and b"Connection: close\r\n" in wire.value()


def test_check_fails_when_the_origin_hangs_up_first():
    results, _, proto = run_check(b"HTTP/1.1 101 Swi")
    proto.connectionLost(Failure(ConnectionDone()))
    assert "closed before a complete answer" in results[0]


class OneEndpoint:
    def __init__(self):
        self.connecting = defer.Deferred()
        self.factory = None

    def connect(self, factory):
        self.factory = factory
        return self.connecting


def outcome_of(d):
    box = []
    d.addBoth(box.append)
    return box[0] if box else None


def test_probe_times_out_on_its_own_clock():
    clock, endpoint = MemoryReactorClock(), OneEndpoint()
    d = probe(clock, endpoint, "websocket", "/", "chat.test", 2.0)
    clock.advance(1.9)
    assert not d.called
    clock.advance(0.1)
    failure = outcome_of(d)
    assert failure.check(ProbeFailed) and "no answer within 2s" in failure.getErrorMessage()
    assert endpoint.connecting.called                              # the connect was cancelled
    assert not clock.getDelayedCalls()


def test_probe_reports_a_refused_connect_and_a_slow_answer():
    clock, endpoint = MemoryReactorClock(), OneEndpoint()
    d = probe(clock, endpoint, "http", "/health", "chat.test", 2.0)
    endpoint.connecting.errback(ConnectionRefusedError())
    assert "connect failed" in outcome_of(d).getErrorMessage()
    assert not clock.getDelayedCalls()

    endpoint = OneEndpoint()
    d = probe(clock, endpoint, "http", "/health", "chat.test", 2.0)
    proto = endpoint.factory.buildProtocol(None)
    wire = StringTransport()
    proto.makeConnection(wire)
    endpoint.connecting.callback(proto)
    clock.advance(2)
    assert "no answer" in outcome_of(d).getErrorMessage()
    assert wire.disconnecting or wire.disconnected


# -- the relay, in memory: 503 when every origin is out ---------------------------------

def test_handshakes_get_503_at_once_when_every_origin_is_ejected():
    clock = MemoryReactorClock()
    relay = Relay(parse_config("[relay]\norigin_connect_timeout = 3\n[domain:chat.test]\n"
                               "origins = 10.0.0.1:8000 10.0.0.2:8000\norigin_protocol = http\n"
                               "eject_after = 2\neject_for = 30\npanic_threshold = 0\n", "test.ini"), clock)
    factory = RelayFactory(relay)

    def handshake():
        client = factory.buildProtocol(None)
        wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
        client.makeConnection(wire)
        client.dataReceived(b"GET / HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        return wire

    for _ in range(2):                                  # each tries both origins, both refuse: 502
        wire = handshake()
        for _attempt in range(2):
            clock.tcpClients[-1][2].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        assert wire.value().startswith(b"HTTP/1.1 502 ")
    assert len(clock.tcpClients) == 4
    wire = handshake()
    response = wire.value()
    assert response.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 30\r\n" in response
    assert len(clock.tcpClients) == 4                   # nothing dialled, no timer to wait for
    clock.advance(30)
    handshake()
    assert len(clock.tcpClients) == 5                   # back in rotation after the cool-down


def test_service_stops_cool_down_timers_and_checks():
    clock = MemoryReactorClock()
    config = parse_config("[relay]\nlisten = tcp:0\n[domain:chat.test]\norigins = 10.0.0.1:8000\n"
                          "health_interval = 5\neject_after = 1\n", "test.ini")
    top = build_service(config, clock)
    top.startService()
    assert len(clock.tcpClients) == 1                   # the first check, at once
    top.relay.routes["chat.test"].failed(A, "connect timed out")
    top.stopService()
    assert not [c for c in clock.getDelayedCalls() if c.active()]
