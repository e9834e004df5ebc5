"""
Reload and drain without sockets: which sessions a new config keeps, how
closes are spread over drain_window (a MemoryReactorClock and a seeded random
source), what RelayService.reload does with an invalid file, with listeners
and with certificates, and the SIGTERM drain's window, timeout and hurry.
"""

import random

import pytest
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import globalLogPublisher

from tests.test_tls import certs, config_with, domain  # noqa: F401  (fixtures)
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)
from wsrelay.config import ConfigError, parse_config
from wsrelay.process.drain import Stagger, keeps_route, plan_reload, spread
from wsrelay.process.service import build_service
from wsrelay.process.relay import HURRY_GRACE, Relay

BASE = """
[relay]
listen = tcp:8080:interface=127.0.0.1
drain_window = 10
[domain:keep.test]
origins = 10.0.0.1:80
[domain:change.test]
origins = 10.0.0.1:80
[domain:gone.test]
origins = 10.0.0.1:80
[domain:*.wild.test]
origins = 10.0.0.1:80
"""


def config(text=BASE, path="relay.ini"):
    return parse_config(text, path)


def edited(text=BASE, **replacements):
    for old, new in replacements.items():
        text = text.replace(old.replace("_", " "), new)
    return text


class FakeSession:
    """What Relay.reload and Relay.drain look at in a session, and what they call."""

    def __init__(self, relay, host, status=101):
        self.relay = relay
        self.host = host
        self.domain = relay.config.domain_for(host) if host else None
        self.status = status
        self.pending = None
        self.ended = False
        self.events = []
        relay.session_started(self)

    def restart(self):
        self.events.append(("restart", self.relay.reactor.seconds()))
        self.end()

    def shutdown(self):
        self.events.append(("shutdown", self.relay.reactor.seconds()))
        self.end()

    def end(self):
        self.ended = True
        self.relay.session_ended(self)


# -- the plan ---------------------------------------------------------------------

def test_a_session_keeps_running_while_its_section_origins_and_protocol_stay():
    old, new = config(), config(BASE + "\n[domain:new.test]\norigins = 10.0.0.9:80\n")
    for host in ("keep.test", "change.test:8080", "a.wild.test", "gone.test"):
        assert keeps_route(old.domain_for(host), host, new)
    # weights, selector, timers and limits are for new sessions only
    tuned = config(BASE.replace("[domain:keep.test]\n", "[domain:keep.test]\nconnection_timeout = 5\n"
                                "max_connections = 3\nselector = least-connections\n"))
    assert keeps_route(old.domain_for("keep.test"), "keep.test", tuned)


@pytest.mark.parametrize("change", [
    {"[domain:change.test]\norigins = 10.0.0.1:80": "[domain:change.test]\norigins = 10.0.0.2:80"},
    {"[domain:change.test]\norigins = 10.0.0.1:80": "[domain:change.test]\norigins = 10.0.0.1:80 10.0.0.2:80"},
    {"[domain:change.test]\n": "[domain:change.test]\norigin_protocol = https\n"},
    {"[domain:change.test]\n": "[domain:change.test]\nwebsocket = off\n"},
    {"[domain:change.test]\norigins = 10.0.0.1:80\n": ""},  # removed: nothing serves it
    {"[domain:change.test]\norigins = 10.0.0.1:80\n": "[domain:*]\norigins = 10.0.0.1:80\n"},  # now the catch-all's
])
def test_a_session_whose_route_changed_or_went_away_must_go(change):
    old, text = config(), BASE
    for a, b in change.items():
        text = text.replace(a, b)
    assert not keeps_route(old.domain_for("change.test"), "change.test", config(text))


def test_a_more_specific_new_section_takes_the_session_from_the_wildcard():
    old = config()
    new = config(BASE + "[domain:a.wild.test]\norigins = 10.0.0.1:80\n")
    assert not keeps_route(old.domain_for("a.wild.test"), "a.wild.test", new)
    assert keeps_route(old.domain_for("b.wild.test"), "b.wild.test", new)


def test_plan_splits_sessions_and_leaves_those_without_a_request_alone():
    relay = Relay(config(), MemoryReactorClock(), random=random.Random(1).random)
    keep, change, gone, early = (FakeSession(relay, h) for h in ("keep.test", "change.test", "gone.test", None))
    new = config(BASE.replace("[domain:gone.test]\norigins = 10.0.0.1:80\n", "")
                 .replace("[domain:change.test]\norigins = 10.0.0.1:80", "[domain:change.test]\norigins = b:80"))
    plan = plan_reload([keep, change, gone, early], new)
    assert set(plan.keep) == {keep, early} and set(plan.close) == {change, gone}


# -- the spread -------------------------------------------------------------------

def test_spread_puts_one_close_in_each_slot_of_the_window_with_jitter():
    delays = spread(100, 10.0, random.Random(7).random)
    assert len(delays) == 100 and all(0 <= d < 10 for d in delays)
    for i, d in enumerate(delays):
        assert i * 0.1 <= d < (i + 1) * 0.1  # one per slot: never a burst
    assert len({round(d % 0.1, 6) for d in delays}) > 90  # not on a grid
    assert spread(3, 0, random.random) == [0.0, 0.0, 0.0] and spread(0, 5, random.random) == []


def test_stagger_closes_over_the_window_and_hurry_closes_the_rest_at_once():
    clock, closed = MemoryReactorClock(), []
    items = list(range(20))
    stagger = Stagger(clock, items, 10.0, random.Random(3).random, closed.append)
    assert closed == [] and stagger.waiting == 20
    for second in range(1, 6):
        clock.advance(1)
        assert 2 * second - 1 <= len(closed) <= 2 * second + 1
    stagger.hurry()
    assert sorted(closed) == items and stagger.waiting == 0 and clock.getDelayedCalls() == []


# -- Relay.reload -----------------------------------------------------------------

def test_reload_closes_changed_sessions_with_1012_spread_over_the_window():
    clock = MemoryReactorClock()
    relay = Relay(config(), clock, random=random.Random(5).random)
    kept = [FakeSession(relay, "keep.test") for _ in range(10)]
    changed = [FakeSession(relay, "change.test") for _ in range(20)]
    gone = [FakeSession(relay, "gone.test") for _ in range(20)]
    new = config(BASE.replace("[domain:gone.test]\norigins = 10.0.0.1:80\n", "")
                 .replace("drain_window = 10", "drain_window = 4")
                 .replace("[domain:change.test]\norigins = 10.0.0.1:80", "[domain:change.test]\norigins = b:80"))
    old_keep_route = relay.routes["keep.test"]
    plan = relay.reload(new)
    assert relay.config is new and len(plan.close) == 40
    assert relay.routes["keep.test"] is old_keep_route  # its selector and health carry over
    assert relay.routes["change.test"].origins != old_keep_route.origins
    assert all(s.events == [] for s in changed + gone)  # nobody at the same instant
    times = []
    for _ in range(40):
        clock.advance(0.1)
        times += [t for s in changed + gone for e, t in s.events if t == clock.seconds()]
    assert all(s.events and s.events[0][0] == "restart" for s in changed + gone)
    assert all(s.events == [] for s in kept)
    assert max(times) <= 4.0 + 1e-9 and len({round(t, 1) for t in times}) >= 30  # spread, not a burst
    assert clock.getDelayedCalls() == []


# -- RelayService.reload ----------------------------------------------------------

@pytest.fixture
def service_log():
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    yield lambda: [e for e in observer if e.get("log_namespace") == "wsrelay.service"]
    globalLogPublisher.removeObserver(observer)


def service_with(text, loads):
    """A started RelayService on a MemoryReactorClock whose reloads read `loads` in turn."""
    reactor = MemoryReactorClock()
    queue = list(loads)

    def load(path):
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    top = build_service(config(text), reactor, random=random.Random(2).random, load=load)
    top.startService()
    return top, reactor


def test_an_invalid_file_changes_nothing_and_says_why_in_one_line(service_log):
    bad = ConfigError("relay.ini", "domain:keep.test", "origins", "'http://a' is not host[:port]")
    top, reactor = service_with(BASE, [bad])
    before, routes = top.relay.config, top.relay.routes
    session = FakeSession(top.relay, "change.test")
    assert top.reload().result is None
    assert top.relay.config is before and top.relay.routes is routes and session.events == []
    (line,) = [e for e in service_log() if e["log_level"].name == "error"]
    assert (line["path"], line["section"], line["key"]) == ("relay.ini", "domain:keep.test", "origins")
    assert "refused, the running configuration stays" in line["log_format"]
    top.stopService()


def test_listeners_added_are_opened_and_removed_are_closed():
    two = BASE.replace("listen = tcp:8080:interface=127.0.0.1",
                       "listen = tcp:8080:interface=127.0.0.1 tcp:8081:interface=127.0.0.1")
    one = BASE.replace("listen = tcp:8080:interface=127.0.0.1", "listen = tcp:8081:interface=127.0.0.1")
    top, reactor = service_with(BASE, [config(two), config(one)])
    first = top.listeners["tcp:8080:interface=127.0.0.1"]
    top.reload()
    assert [p[0] for p in reactor.tcpServers] == [8080, 8081]
    assert top.listeners["tcp:8080:interface=127.0.0.1"] is first  # untouched: never re-bound
    top.reload()
    assert list(top.listeners) == ["tcp:8081:interface=127.0.0.1"]
    assert first not in top.listeners.values()  # closed (proved on loopback in test_reload_loopback)
    top.stopService()


def test_certificates_are_read_again_on_reload(pki, certs):  # noqa: F811
    before = config_with(pki.dir, domains=domain("a.test", certs["a"]))
    after = config_with(pki.dir, domains=domain("a.test", certs["b"]))
    reactor = MemoryReactorClock()
    top = build_service(before, reactor, load=lambda path: after)
    top.startService()
    server_tls = top.tls
    old_context = server_tls.context_for("a.test")
    top.reload()
    assert top.tls is server_tls  # the listeners keep their context factory ...
    new_context = server_tls.context_for("a.test")
    assert new_context is not old_context  # ... which now serves the new certificate
    assert server_tls.certificates.select("a.test") is after.domains["a.test"].certificate
    top.stopService()


# -- the drain (SIGTERM) -------------------------------------------------------------

def test_drain_closes_live_sessions_over_the_window_then_fires():
    clock = MemoryReactorClock()
    relay = Relay(config(BASE.replace("drain_window = 10", "drain_window = 5")), clock,
                  random=random.Random(9).random)
    live = [FakeSession(relay, "keep.test") for _ in range(50)]
    done = relay.drain()
    assert relay.draining and not done.called
    clock.advance(2.5)
    assert 20 <= sum(bool(s.events) for s in live) <= 30
    clock.advance(2.5)
    assert done.called and all(s.events[0][0] == "shutdown" and s.events[0][1] <= 5 for s in live)
    assert clock.getDelayedCalls() == []


class Deaf(FakeSession):
    """A session whose peers never answer a Close: it ends only when dropped."""

    def __init__(self, relay, host):
        super().__init__(relay, host)
        self.client = self.origin = self

    def shutdown(self):
        self.events.append(("shutdown", self.relay.reactor.seconds()))

    def abort(self):
        if not self.ended:
            self.events.append(("abort", self.relay.reactor.seconds()))
            self.end()


def test_drain_timeout_closes_the_rest_at_once_then_drops_them():
    clock = MemoryReactorClock()
    text = BASE.replace("drain_window = 10", "drain_window = 2\ndrain_timeout = 4")
    relay = Relay(config(text), clock, random=random.Random(4).random)
    deaf = [Deaf(relay, "keep.test") for _ in range(10)]
    done = relay.drain()
    clock.advance(2)
    assert all(len(s.events) == 1 for s in deaf) and not done.called
    clock.advance(2)  # drain_timeout: 1001 again to all at once
    assert all([e for e, _ in s.events] == ["shutdown", "shutdown"] and s.events[1][1] == 4 for s in deaf)
    clock.pump([0.05] * int(HURRY_GRACE / 0.05 + 2))
    assert done.called and all(s.events[-1][0] == "abort" for s in deaf)
    assert clock.getDelayedCalls() == []


def test_a_second_sigterm_closes_the_rest_at_once():
    clock = MemoryReactorClock()
    relay = Relay(config(BASE), clock, random=random.Random(4).random)
    live = [FakeSession(relay, "keep.test") for _ in range(40)]
    done = relay.drain()
    clock.advance(1)
    assert 2 <= sum(s.ended for s in live) <= 6
    relay.hurry()
    assert done.called and all(s.ended for s in live)
    assert {t for s in live for _, t in s.events if t > 1} == set()  # the rest went at 1 s, not later


def test_drain_keys_are_checked():
    warned = config(BASE.replace("drain_window = 10", "drain_window = 40"))
    assert any("drain_window (40) is longer than drain_timeout (30)" in w for w in warned.warnings)
    with pytest.raises(ConfigError, match=r"\[relay\] drain_timeout: must be greater than 0"):
        config(BASE.replace("drain_window = 10", "drain_window = 0\ndrain_timeout = 0"))
    with pytest.raises(ConfigError, match=r"\[relay\] drain_window: 'soon' is not a number of seconds"):
        config(BASE.replace("drain_window = 10", "drain_window = soon"))
    defaults = config("[domain:*]\norigins = a\n")
    assert (defaults.drain_window, defaults.drain_timeout) == (10, 30)


def test_a_listener_listed_twice_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\[relay\] listen: 'tcp:1' is listed twice"):
        config(BASE.replace("listen = tcp:8080:interface=127.0.0.1", "listen = tcp:1 tcp:1"))
