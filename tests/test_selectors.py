"""
Origin selectors: one contract every strategy passes (the built-in ones and a
third-party one found in a test plugins folder), then how each built-in
strategy spreads its picks. No sockets, no clock but MemoryReactorClock.
"""

import random
from collections import Counter
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from zope.interface.verify import verifyObject

from wsrelay.config import DomainConfig, Origin
from wsrelay.interfaces import IHandshake, ISelector, ISelectorFactory
from wsrelay.selectors import Handshake, installed
from wsrelay.selectors.hashing import ranking
from wsrelay.selectors.leastconn import LeastConnections

PLUGINS_FOR_TESTS = Path(__file__).resolve().parent / "plugins_for_tests"


@pytest.fixture
def third_party(monkeypatch):
    """The test plugins folder on the path, as a third party's package would be (nothing installed)."""
    import twisted.plugins

    monkeypatch.syspath_prepend(str(PLUGINS_FOR_TESTS))
    # twisted.plugins computed its __path__ when it was first imported; a folder
    # added to sys.path later is only seen by a new process unless added here too.
    monkeypatch.setattr(twisted.plugins, "__path__",
                        [*twisted.plugins.__path__, str(PLUGINS_FOR_TESTS / "twisted" / "plugins")])
    return PLUGINS_FOR_TESTS


def result_of(d):
    """The result a Deferred has already fired with (a selector must not make the handshake wait)."""
    assert isinstance(d, Deferred)
    box = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def handshake(client="192.0.2.7", path="/room/1", query=None, headers=None):
    return Handshake("chat.test", path, query or {}, headers or {}, client)


A, B, C, D = (Origin(f"10.0.0.{i}", 8000) for i in range(1, 5))


def domain(factory, origins=(A, B, C, D), **raw):
    return DomainConfig(name="chat.test", origins=tuple(origins), selector=factory.name,
                        selector_options=factory.parse_options(raw))


# -- the contract ---------------------------------------------------------------------

class SelectorContract:
    """What every origin selection strategy does. Subclasses set `name`."""

    name = None

    @pytest.fixture
    def factory(self):
        return installed()[self.name]

    def build(self, factory, origins=(A, B, C, D)):
        return factory.build(domain(factory, origins), MemoryReactorClock())

    def test_factory_provides_the_factory_interface(self, factory):
        assert verifyObject(ISelectorFactory, factory)
        assert factory.name == self.name and factory.name == factory.name.strip().lower()
        assert isinstance(factory.help, str) and factory.help and "\n" not in factory.help
        for key, (default, text) in factory.options.items():
            assert isinstance(key, str) and isinstance(default, str) and "\n" not in text

    def test_factory_is_a_twisted_plugin_found_by_name(self, factory):
        assert factory in list(getPlugins(ISelectorFactory))

    def test_documented_defaults_parse_like_no_options(self, factory):
        defaults = {key: default for key, (default, _) in factory.options.items()}
        assert factory.parse_options(defaults) == factory.parse_options({})

    def test_built_selector_provides_the_selector_interface(self, factory):
        assert verifyObject(ISelector, self.build(factory))

    def test_handshake_value_provides_its_interface(self):
        assert verifyObject(IHandshake, handshake())

    def test_choice_is_a_fired_deferred_of_distinct_available_origins(self, factory):
        selector = self.build(factory)
        rng = random.Random(7)
        for i in range(300):
            available = tuple(o for o in (A, B, C, D) if rng.random() < 0.7) or (C,)
            hs = handshake(client=f"192.0.2.{i % 250}", query={"room": [str(i)]})
            chosen = list(result_of(selector.choose(hs, available)))
            assert chosen, available
            assert len(set(chosen)) == len(chosen)
            assert set(chosen) <= set(available)
            if len(available) > 1:
                assert len(chosen) >= 2, "a second origin for the retry"

    def test_the_only_available_origin_is_chosen(self, factory):
        selector = self.build(factory)
        for origin in (A, B, C, D):
            assert list(result_of(selector.choose(handshake(), (origin,)))) == [origin]

    def test_every_event_on_every_origin_is_heard(self, factory):
        selector = self.build(factory)
        for origin in (A, B, C, D):
            selector.connection_failed(origin, "connect Connection was refused")
            selector.connection_opened(origin)
            selector.connection_closed(origin)
        selector.connection_closed(A)        # an extra close does not break it
        assert result_of(selector.choose(handshake(), (A, B)))

    def test_rebuilt_selector_starts_afresh(self, factory):
        first = self.build(factory)
        opening = [list(result_of(first.choose(handshake(), (A, B, C, D)))) for _ in range(3)]
        for _ in range(10):
            first.choose(handshake(), (A, B, C))
            first.connection_opened(B)
        again = self.build(factory)
        assert [list(result_of(again.choose(handshake(), (A, B, C, D)))) for _ in range(3)] == opening


class TestRoundRobinContract(SelectorContract):
    name = "round-robin"


class TestLeastConnectionsContract(SelectorContract):
    name = "least-connections"


class TestHashContract(SelectorContract):
    name = "hash"


class TestPrimaryBackupContract(SelectorContract):
    name = "primary-backup"


class TestThirdPartyContract(SelectorContract):
    """A strategy from tests/plugins_for_tests, found by name like any other."""

    name = "reverse"

    @pytest.fixture
    def factory(self, third_party):
        return installed()[self.name]


def test_builtin_strategies_are_all_installed():
    assert {"round-robin", "least-connections", "hash", "primary-backup"} <= set(installed())


def test_third_party_strategy_is_found_only_when_its_folder_is_on_the_path(third_party):
    assert "reverse" in installed()


def test_third_party_strategy_is_absent_without_its_folder():
    assert "reverse" not in installed()


# -- round-robin -------------------------------------------------------------------------

def firsts(selector, n, available=(A, B, C), **kw):
    return [result_of(selector.choose(handshake(**kw), available))[0] for _ in range(n)]


def test_round_robin_takes_each_origin_in_turn():
    f = installed()["round-robin"]
    rr = f.build(domain(f, (A, B, C)), None)
    picks = firsts(rr, 3000)
    assert picks[:6] == [A, B, C, A, B, C]
    assert Counter(picks) == {A: 1000, B: 1000, C: 1000}


def test_round_robin_retries_on_the_next_origin():
    f = installed()["round-robin"]
    rr = f.build(domain(f, (A, B, C)), None)
    assert [tuple(result_of(rr.choose(handshake(), (A, B, C)))) for _ in range(3)] == [(A, B), (B, C), (C, A)]


def test_round_robin_weights_are_exact_and_spread_out():
    f = installed()["round-robin"]
    heavy = Origin("10.0.0.1", 8000, weight=3)
    rr = f.build(domain(f, (heavy, B, C)), None)
    picks = firsts(rr, 5000, available=(heavy, B, C))
    assert Counter(picks) == {heavy: 3000, B: 1000, C: 1000}
    for start in range(0, 5000, 5):                  # every cycle of 5: 3, 1, 1 ...
        assert Counter(picks[start:start + 5]) == {heavy: 3, B: 1, C: 1}
    assert all(picks[i:i + 3] != [heavy] * 3 for i in range(len(picks) - 2))   # ... never 3 in a row


def test_round_robin_shares_among_available_origins_only():
    f = installed()["round-robin"]
    rr = f.build(domain(f, (A, B, C)), None)
    assert Counter(firsts(rr, 1000, available=(A, C))) == {A: 500, C: 500}


# -- least-connections -------------------------------------------------------------------

def test_least_connections_fills_the_emptier_origins_first():
    f = installed()["least-connections"]
    lc = f.build(domain(f, (A, B, C)), None)
    for _ in range(4):
        lc.connection_opened(A)
    picks = []
    for _ in range(8):
        origin = result_of(lc.choose(handshake(), (A, B, C)))[0]
        lc.connection_opened(origin)
        picks.append(origin)
    assert Counter(picks[:8]) == {B: 4, C: 4}        # B and C catch up with A, taking turns
    assert lc.live == {A: 4, B: 4, C: 4}


def simulate(selector, steps=3000):
    """One handshake per tick; sessions on A last ten times longer. (opened per origin, live spreads)."""
    rng = random.Random(1)
    live, ends, opened, spreads = Counter({A: 0, B: 0, C: 0}), [], Counter(), []
    for now in range(steps):
        for item in [e for e in ends if e[0] <= now]:
            ends.remove(item)
            live[item[1]] -= 1
            selector.connection_closed(item[1])
        origin = result_of(selector.choose(handshake(), (A, B, C)))[0]
        if isinstance(selector, LeastConnections):
            assert live[origin] == min(live.values())    # the definition, at every pick
        live[origin] += 1
        selector.connection_opened(origin)
        opened[origin] += 1
        ends.append((now + rng.randint(20, 40) * (10 if origin == A else 1), origin))
        spreads.append(max(live.values()) - min(live.values()))
    return opened, spreads


def test_least_connections_under_uneven_session_lengths():
    """Sessions on A last ten times longer: A gets far fewer new ones and live counts stay level."""
    f = installed()["least-connections"]
    opened, spreads = simulate(f.build(domain(f, (A, B, C)), None))
    assert opened[A] * 5 < opened[B] and opened[A] * 5 < opened[C]
    assert max(spreads[100:]) <= 6
    rr = installed()["round-robin"]
    opened, spreads = simulate(rr.build(domain(rr, (A, B, C)), None))  # for comparison
    assert opened[A] == opened[B] == opened[C] and min(spreads[1000:]) > 50


def test_least_connections_weights_count_per_unit_of_weight():
    f = installed()["least-connections"]
    big = Origin("10.0.0.1", 8000, weight=2)
    lc = f.build(domain(f, (big, B)), None)
    for _ in range(300):
        origin = result_of(lc.choose(handshake(), (big, B)))[0]
        lc.connection_opened(origin)
    assert lc.live == {big: 200, B: 100}


def test_least_connections_close_of_an_unknown_or_idle_origin_is_ignored():
    f = installed()["least-connections"]
    lc = f.build(domain(f, (A, B)), None)
    lc.connection_closed(A)
    lc.connection_closed(Origin("192.0.2.99", 1))
    assert lc.live == {A: 0, B: 0}


# -- hash ------------------------------------------------------------------------------

def hashed(selector, hs, available=(A, B, C, D)):
    return result_of(selector.choose(hs, available))[0]


@pytest.mark.parametrize("hash_key, same, other", [
    ("client_address", handshake(client="198.51.100.1", path="/a"), handshake(client="198.51.100.2", path="/a")),
    ("path", handshake(client="198.51.100.1", path="/doc/1"), handshake(client="198.51.100.1", path="/doc/2")),
    ("header:X-Room", handshake(client="198.51.100.1", headers={"x-room": "r1"}),
     handshake(client="198.51.100.1", headers={"x-room": "r2"})),
    ("cookie:room", handshake(client="198.51.100.1", headers={"cookie": "sid=1; room=r1"}),
     handshake(client="198.51.100.1", headers={"cookie": "sid=1; room=r2"})),
    ("query:room", handshake(client="198.51.100.1", query={"room": ["r1"]}),
     handshake(client="198.51.100.1", query={"room": ["r2"]})),
])
def test_hash_key_kinds(hash_key, same, other):
    f = installed()["hash"]
    selector = f.build(domain(f, hash_key=hash_key), None)
    key = selector.key_of(same)
    assert key != selector.key_of(other)
    # the key alone decides: other clients, paths and headers do not matter
    if hash_key != "client_address":
        moved = Handshake(same.domain, same.path if hash_key == "path" else "/elsewhere", same.query,
                          dict(same.headers, **{"user-agent": "x"}), "203.0.113.9")
        assert selector.key_of(moved) == key


def test_hash_without_its_key_falls_back_to_the_client_address():
    f = installed()["hash"]
    selector = f.build(domain(f, hash_key="cookie:room"), None)
    assert selector.key_of(handshake(client="198.51.100.4", headers={"cookie": "sid=1"})) == b"198.51.100.4"
    assert selector.key_of(handshake(client="198.51.100.4")) == b"198.51.100.4"


def test_hash_is_stable_across_picks_and_fresh_builds():
    f = installed()["hash"]
    one, two = (f.build(domain(f, hash_key="query:room"), None) for _ in range(2))
    for room in range(200):
        hs = handshake(query={"room": [str(room)]})
        first = hashed(one, hs)
        assert all(hashed(one, hs) == first for _ in range(5))
        assert hashed(two, hs) == first


def test_hash_spreads_keys_evenly_and_by_weight():
    keys = [f"room-{i}".encode() for i in range(20000)]
    share = Counter(ranking(k, (A, B, C, D))[0] for k in keys)
    assert all(abs(share[o] - 5000) < 400 for o in (A, B, C, D)), share
    heavy = Origin("10.0.0.1", 8000, weight=2)
    share = Counter(ranking(k, (heavy, B, C))[0] for k in keys)
    assert abs(share[heavy] / len(keys) - 0.5) < 0.02, share


def test_hash_adding_an_origin_moves_about_one_nth_of_the_keys_all_to_it():
    keys = [f"doc-{i}".encode() for i in range(20000)]
    before = {k: ranking(k, (A, B, C, D))[0] for k in keys}
    after = {k: ranking(k, (A, B, C, D, Origin("10.0.0.5", 8000)))[0] for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert 0.17 < len(moved) / len(keys) < 0.23       # 1/5
    assert {after[k] for k in moved} == {Origin("10.0.0.5", 8000)}


def test_hash_origin_leaving_rotation_moves_only_its_keys_to_their_runners_up():
    f = installed()["hash"]
    selector = f.build(domain(f, hash_key="path"), None)
    paths = [f"/doc/{i}" for i in range(4000)]
    before = {p: result_of(selector.choose(handshake(path=p), (A, B, C, D))) for p in paths}
    for p in paths:
        now = hashed(selector, handshake(path=p), (A, C, D))
        if before[p][0] != B:
            assert now == before[p][0]
        else:
            assert now == before[p][1]             # the retry origin is where it goes


# -- primary-backup ------------------------------------------------------------------------

def test_primary_backup_fails_over_in_listed_order_and_fails_back():
    f = installed()["primary-backup"]
    pb = f.build(domain(f, (A, B, C)), None)
    assert list(result_of(pb.choose(handshake(), (A, B, C)))) == [A, B]
    assert list(result_of(pb.choose(handshake(), (B, C)))) == [B, C]      # A out: the first backup
    assert list(result_of(pb.choose(handshake(), (C,)))) == [C]
    assert list(result_of(pb.choose(handshake(), (A, C)))) == [A, C]      # A back: traffic returns


def test_primary_backup_without_failback_stays_on_the_backup():
    f = installed()["primary-backup"]
    pb = f.build(domain(f, (A, B, C), failback="off"), None)
    assert result_of(pb.choose(handshake(), (A, B, C)))[0] == A
    assert result_of(pb.choose(handshake(), (B, C)))[0] == B
    assert list(result_of(pb.choose(handshake(), (A, B, C)))) == [B, A]   # A back, B still serves
    assert list(result_of(pb.choose(handshake(), (A, C)))) == [A, C]      # B gone: the first in order
    assert result_of(pb.choose(handshake(), (A, B, C)))[0] == A
