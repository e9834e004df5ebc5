"""
The metrics core without sockets: ping round trips timed by the heartbeat on an
injected clock land in the domain's histogram, and the exposition that
prometheus_client renders from a snapshot parses back to the same numbers.
"""

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from wsrelay.observability import metrics
from wsrelay.edge.session import LegCounters
from wsrelay.edge.timers import Heartbeat


class FakeSession(SimpleNamespace):
    __hash__ = object.__hash__


def fake_relay():
    return SimpleNamespace(routes=[], accounting=None,
                           config=SimpleNamespace(each_domain=lambda: [SimpleNamespace(name="chat.example")]))


def leg(bytes_in, bytes_out, messages_in, messages_out, heartbeat=None):
    counters = LegCounters()
    counters.bytes_in, counters.bytes_out = bytes_in, bytes_out
    counters.messages_in, counters.messages_out = messages_in, messages_out
    return SimpleNamespace(counters=counters, heartbeat=heartbeat, close_info=lambda: (1000, None, "client"))


def exposition(snapshot):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.SnapshotCollector(lambda: snapshot))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_ping_round_trips_go_into_the_domains_histogram_per_leg():
    clock = Clock()
    beat = Heartbeat(clock, 10, 5, (lambda payload: None, lambda payload: None), lambda index: None)
    relay = fake_relay()
    meter = metrics.Metrics(relay)
    session = FakeSession(domain=SimpleNamespace(name="chat.example"), status=101, connect_time=0.004,
                          client=leg(100, 50, 1, 1, beat), origin=leg(60, 110, 1, 1))
    meter.opened(session)
    beat.start()
    clock.advance(10)          # both legs pinged
    clock.advance(0.02)
    beat.pong(0)               # the client answers in 20 ms
    clock.advance(0.18)
    beat.pong(1)               # the origin in 200 ms
    assert beat.rtt == pytest.approx([0.02, 0.2])
    beat.pong(1)               # an unsolicited pong times nothing
    samples = exposition(meter.snapshot(clock.seconds()))
    client = {"domain": "chat.example", "leg": "client"}
    origin = {"domain": "chat.example", "leg": "origin"}

    def at(name, labels, **more):
        return samples[(name, tuple(sorted(dict(labels, **more).items())))]

    assert at("wsrelay_ping_rtt_seconds_count", client) == 1
    assert at("wsrelay_ping_rtt_seconds_count", origin) == 1
    assert at("wsrelay_ping_rtt_seconds_bucket", client, le="0.025") == 1
    assert at("wsrelay_ping_rtt_seconds_bucket", client, le="0.01") == 0
    assert at("wsrelay_ping_rtt_seconds_bucket", origin, le="0.1") == 0
    assert at("wsrelay_ping_rtt_seconds_bucket", origin, le="0.25") == 1
    assert samples[("wsrelay_origin_connect_seconds_count", (("domain", "chat.example"),))] == 1
    # open: its running counters count; ended: its totals, once
    assert samples[("wsrelay_bytes_total", (("direction", "in"), ("domain", "chat.example"), ("leg", "client")))] == 100
    assert samples[("wsrelay_sessions_open", (("domain", "chat.example"),))] == 1
    session.client.counters.bytes_in = 130
    meter.ended(session)
    samples = exposition(meter.snapshot(clock.seconds()))
    assert samples[("wsrelay_bytes_total", (("direction", "in"), ("domain", "chat.example"), ("leg", "client")))] == 130
    assert samples[("wsrelay_sessions_open", (("domain", "chat.example"),))] == 0
    assert samples[("wsrelay_closes_total", (("code", "1000"), ("domain", "chat.example"), ("leg", "client"),
                                             ("who", "client")))] == 1


def test_refusals_are_counted_by_the_limit_that_refused():
    from wsrelay.edge.limits import Refusal

    meter = metrics.Metrics(fake_relay())
    meter.refused(Refusal(429, "too many handshakes from your address", 1))
    meter.refused(Refusal(503, "the relay is at its connection limit", 5))
    meter.refused(Refusal(503, "the relay is at its connection limit", 5))
    samples = exposition(meter.snapshot(0.0))
    assert samples[("wsrelay_limit_refusals_total", (("reason", "handshake_rate_per_ip"),))] == 1
    assert samples[("wsrelay_limit_refusals_total", (("reason", "max_connections"),))] == 2
