"""
Origin health over loopback: `twistd -n wsrelay` in front of three
`websockets` origins on 127.0.0.1. One is killed mid-run: after the passive
threshold no new session is sent to it; when it returns, the active checks
put it back; with all three gone, clients get 503 at once.
"""

import asyncio
import re
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import WAIT, LoopbackOrigin, raw_request, run, status_of, upgrade_request

CHECKER = "wsrelay-health-check"


class EchoOrigin(LoopbackOrigin):
    """An echo origin that counts the relayed sessions it served (health checks aside)."""

    def __init__(self):
        super().__init__()
        self.sessions = 0
        self.checks = 0

    async def handle(self, ws):
        if ws.request.headers.get("User-Agent") == CHECKER:
            self.checks += 1
        else:
            self.sessions += 1
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass


async def session(relay, text="hello"):
    async with connect(relay.url("/"), open_timeout=WAIT) as ws:
        await ws.send(text)
        assert await ws.recv() == text


def count(relay, pattern):
    return len(re.findall(pattern, relay.log()))


async def wait_for_log(relay, pattern, deadline=WAIT):
    end = time.monotonic() + deadline
    while not re.search(pattern, relay.log()):
        assert time.monotonic() < end, f"no {pattern!r} in the relay log:\n{relay.log()}"
        await asyncio.sleep(0.05)


def test_dead_origin_is_ejected_restored_by_checks_and_all_dead_is_503(make_relay):
    async def main():
        a, b, c = [await EchoOrigin().start() for _ in range(3)]
        relay = make_relay(f"""
            [relay]
            listen = tcp:{{port}}:interface=127.0.0.1
            [domain:*]
            origins = 127.0.0.1:{a.port} 127.0.0.1:{b.port} 127.0.0.1:{c.port}
            origin_protocol = http
            eject_after = 3
            eject_for = 600
            health_interval = 0.3
            health_timeout = 0.3
            ; the checks alone never take an origin out here: the passive threshold does
            health_fall = 1000
            health_rise = 2
            ; never doubt the verdicts: with every origin gone, 503 at once (the default
            ; panic_threshold would balance over all three; tests/test_passive_health_loopback.py)
            panic_threshold = 0
        """, start=True)
        for _ in range(6):
            await session(relay)
        assert (a.sessions, b.sessions, c.sessions) == (2, 2, 2)
        assert b.checks > 0                                    # real WebSocket handshakes

        await b.stop()                                         # killed mid-run
        b_failed = rf"origin 127\.0\.0\.1:{b.port} for \*: connect failed"
        for i in range(12):
            await session(relay, f"after {i}")                 # each failed connect is retried elsewhere
        assert a.sessions + c.sessions == 4 + 12
        assert count(relay, b_failed) == 3
        await wait_for_log(relay, rf"origin 127\.0\.0\.1:{b.port} of \* ejected: 3 failed connects in a row")
        for i in range(12):
            await session(relay, f"later {i}")
        assert count(relay, b_failed) == 3                    # no new session was sent to it

        port, b = b.port, EchoOrigin()
        b.port = port
        await b.start()                                        # back, on the same port
        await wait_for_log(relay, rf"origin 127\.0\.0\.1:{b.port} of \* up: 2 health checks passed in a row")
        for _ in range(6):
            await session(relay)
        assert b.sessions >= 1
        assert count(relay, r"\[wsrelay\.health#\w+\] origin") == 2   # ejected, up: once each

        for origin in (a, b, c):
            await origin.stop()
        statuses = []
        for _ in range(10):
            started = time.monotonic()
            response = await raw_request(relay.port, upgrade_request("chat.example.com"))
            statuses.append(status_of(response))
            if statuses[-1] == 503:
                assert time.monotonic() - started < 0.5        # at once, not after a timeout
                assert b"Retry-After: " in response
                break
        assert statuses[-1] == 503 and set(statuses[:-1]) <= {502}
        await wait_for_log(relay, r"every origin of \* is out of rotation")
        response = await raw_request(relay.port, upgrade_request("chat.example.com"))
        assert status_of(response) == 503
        assert count(relay, r"every origin of \* is out of rotation") == 1

    run(main())
