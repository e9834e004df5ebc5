"""
Admission limits and the ping limit: the pure bookkeeping on explicit times,
then each key over loopback against a real `twistd -n wsrelay` process
(client addresses told apart through X-Forwarded-For from a trusted proxy).
"""

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import WAIT, run
from tests.test_reload_loopback import CountingOrigin
from wsrelay.config import ConfigError, parse_config
from wsrelay.edge.limits import Limits, PingLimit, Refusal, auto_max_connections


def limits_config(text):
    return parse_config(f"[relay]\n{text}\n[domain:a.test]\norigins = o\n[domain:b.test]\norigins = o\n"
                        "max_connections = 1\n", "x.ini")


# -- units ------------------------------------------------------------------------

def test_defaults_and_validation():
    c = parse_config("[domain:*]\norigins = o\n", "x.ini")
    assert (c.max_connections, c.max_connections_per_ip, c.handshake_rate_per_ip, c.handshake_rate,
            c.max_ping_rate, c.catch_all.max_connections) == (None, 0, 0, 0, 10, 0)
    assert limits_config("max_connections = 0").max_connections == 0
    assert limits_config("handshake_rate = 0.5").handshake_rate == 0.5
    for key, value, message in [("max_connections", "lots", "is not a whole number"),
                                ("max_connections_per_ip", "-1", "must be 0 or more"),
                                ("handshake_rate_per_ip", "fast", "is not a number per second"),
                                ("max_ping_rate", "-3", r"must be 0 \(no limit\) or a positive number")]:
        with pytest.raises(ConfigError, match=rf"x.ini: \[relay\] {key}: '{value}' {message}"):
            limits_config(f"{key} = {value}")


def test_auto_max_connections_leaves_room_for_two_descriptors_a_session():
    assert auto_max_connections(20000) == 9968
    assert auto_max_connections(1024) == 480
    relay_limits = Limits(limits_config(""), 1024)
    assert relay_limits.max_connections == 480


def test_connection_counts_per_process_domain_and_address():
    config = limits_config("max_connections = 3\nmax_connections_per_ip = 2\nhandshake_rate = 0\n"
                           "handshake_rate_per_ip = 0")
    a, b = config.domains["a.test"], config.domains["b.test"]
    limits = Limits(config, 1024)
    one, two = limits.admit("10.0.0.1", a, 0), limits.admit("10.0.0.1", a, 0)
    assert limits.admit("10.0.0.1", a, 0) == Refusal(429, "too many connections from your address", 5)
    three = limits.admit("10.0.0.2", b, 0)
    assert limits.admit("10.0.0.3", b, 0).status == 503  # b's own limit (1)
    assert limits.admit("10.0.0.3", a, 0).reason == "the relay is at its connection limit"
    three.release()
    three.release()  # twice is harmless
    assert limits.total == 2 and limits.admit("10.0.0.3", b, 0) is not None
    one.release(), two.release()
    assert limits.per_address.get("10.0.0.1") is None


def test_handshake_rates_refill_and_say_when_to_retry():
    config = limits_config("handshake_rate = 4\nhandshake_rate_per_ip = 2\nmax_connections = 0")
    a = config.domains["a.test"]
    limits = Limits(config, 1024)
    assert all(not isinstance(limits.admit("1.1.1.1", a, 0), Refusal) for _ in range(2))
    refused = limits.admit("1.1.1.1", a, 0)
    assert (refused.status, refused.retry_after) == (429, 1)
    assert not isinstance(limits.admit("2.2.2.2", a, 0), Refusal)
    assert not isinstance(limits.admit("3.3.3.3", a, 0), Refusal)
    assert limits.admit("4.4.4.4", a, 0).status == 503  # the process's 4/s are spent
    assert not isinstance(limits.admit("1.1.1.1", a, 0.5), Refusal)  # refilled


def test_ping_limit():
    limit = PingLimit(10, 0)
    assert all(limit.allow(0) for _ in range(10)) and not limit.allow(0)
    assert limit.allow(0.1) and not limit.allow(0.1)
    assert all(PingLimit(0, 0).allow(0) for _ in range(1000))


# -- over loopback ----------------------------------------------------------------

def config(origin, relay_keys):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        trusted_proxies = 127.0.0.1
        {relay_keys}
        [domain:a.test]
        origins = 127.0.0.1:{origin.port}
        origin_protocol = http
        [domain:b.test]
        origins = 127.0.0.1:{origin.port}
        origin_protocol = http
        max_connections = 1
    """


def client(relay, host="a.test", ip="10.0.0.1", path="/"):
    return connect(f"ws://{host}{path}", host="127.0.0.1", port=relay.port, ping_interval=None,
                   additional_headers={"X-Forwarded-For": ip})


async def refused(relay, **kwargs):
    with pytest.raises(InvalidStatus) as caught:
        async with client(relay, **kwargs):
            pass
    response = caught.value.response
    return response.status_code, response.headers.get("Retry-After")


def test_connection_limits_over_loopback(make_relay):  # noqa: F811
    async def main():
        async with CountingOrigin("o") as origin:
            relay = make_relay(config(origin, "max_connections = 3\nmax_connections_per_ip = 2")).start()
            first = await client(relay, ip="10.0.0.1", path="/1")
            second = await client(relay, ip="10.0.0.1", path="/2")
            assert await refused(relay, ip="10.0.0.1") == (429, "5")  # max_connections_per_ip
            third = await client(relay, host="b.test", ip="10.0.0.2", path="/3")
            assert await refused(relay, host="b.test", ip="10.0.0.3") == (503, "5")  # the domain's own
            assert await refused(relay, ip="10.0.0.4") == (503, "5")  # max_connections
            assert sorted(origin.paths) == ["/1", "/2", "/3"]  # no origin dialled for a refusal
            await third.close()
            await asyncio.wait_for(third.wait_closed(), WAIT)
            for _ in range(100):  # the relay counts the session out once both legs are gone
                try:
                    async with client(relay, host="b.test", ip="10.0.0.3", path="/4") as ws:
                        await ws.send("x")
                        assert await ws.recv() == "x"
                    break
                except InvalidStatus:
                    await asyncio.sleep(0.02)  # polling, bounded
            assert "/4" in origin.paths
            await first.close(), await second.close()

    run(main())


def test_handshake_rates_over_loopback(make_relay):  # noqa: F811
    async def main():
        async with CountingOrigin("o") as origin:
            relay = make_relay(config(origin, "handshake_rate_per_ip = 2\nhandshake_rate = 4")).start()
            for i in range(2):
                async with client(relay, ip="10.0.0.1", path=f"/r{i}"):
                    pass
            assert await refused(relay, ip="10.0.0.1") == (429, "1")
            async with client(relay, ip="10.0.0.2", path="/r2"):
                pass
            async with client(relay, ip="10.0.0.3", path="/r3"):
                pass
            status, retry = await refused(relay, ip="10.0.0.5")
            assert status == 503 and int(retry) >= 1
            assert sorted(origin.paths) == ["/r0", "/r1", "/r2", "/r3"]

    run(main())


def test_a_peer_pinging_too_fast_is_closed_with_1008(make_relay):  # noqa: F811
    async def main():
        async with CountingOrigin("o") as origin:
            relay = make_relay(config(origin, "max_ping_rate = 5")).start()
            async with client(relay, path="/calm") as ws:
                for _ in range(5):
                    await asyncio.wait_for(await ws.ping(), WAIT)
                await ws.send("still here")
                assert await ws.recv() == "still here"
            async with client(relay, path="/flood") as ws:
                with pytest.raises(ConnectionClosed):
                    for _ in range(50):
                        await ws.ping()
                    await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1008 and ws.close_reason == "too many pings"
            for _ in range(100):
                if "/flood" in origin.closes:
                    break
                await asyncio.sleep(0.02)  # polling, bounded
            assert origin.closes["/flood"] == 1001  # the origin is told the client broke the rules

    run(main())


def test_http_requests_count_as_live_sessions_and_have_rates_of_their_own():
    config = limits_config("max_connections_per_ip = 2\nhandshake_rate = 0\nhandshake_rate_per_ip = 1\n"
                           "request_rate_per_ip = 3\nrequest_rate = 0")
    assert (config.request_rate_per_ip, config.request_rate) == (3, 0)
    assert parse_config("[domain:*]\norigins = o\n", "x.ini").request_rate_per_ip == 0  # no limit by default
    a = config.domains["a.test"]
    limits = Limits(config, 1024)
    first = limits.admit_request("1.1.1.1", a, 0)
    session = limits.admit("1.1.1.1", a, 0)  # the handshake rate (1/s) is not spent by requests
    assert limits.admit_request("1.1.1.1", a, 0).reason == "too many connections from your address"
    first.release()
    assert not isinstance(limits.admit_request("1.1.1.1", a, 0), Refusal)
    limits.admit_request("2.2.2.2", a, 0), limits.admit_request("2.2.2.2", a, 0)
    session.release()
    refused = Limits(config, 1024)
    for _ in range(3):
        refused.admit_request("3.3.3.3", a, 0).release()
    assert refused.admit_request("3.3.3.3", a, 0) == Refusal(429, "too many requests from your address", 1)
    with pytest.raises(ConfigError, match=r"x.ini: \[relay\] request_rate: 'x' is not a number per second"):
        limits_config("request_rate = x")
