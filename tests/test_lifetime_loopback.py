"""
max_session_duration on a real `twistd -n wsrelay` process: busy `websockets`
clients are closed with 1001 and the reason at their lifetime, spread over
the last drain_window of it; the origin sees 1001 too; a domain without the
limit keeps its session.
"""

import asyncio
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import WAIT, LoopbackOrigin, run

REASON = "session reached its maximum duration"


class Origin(LoopbackOrigin):
    def __init__(self):
        super().__init__()
        self.closes = []

    async def handle(self, ws):
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            self.closes.append((ws.request.headers["Host"], ws.close_code, ws.close_reason))


def config(origin):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        drain_window = 1.5
        heartbeat_interval = 0
        connection_timeout = 0
        [domain:*]
        origins = 127.0.0.1:{origin.port}
        origin_protocol = http
        max_session_duration = 3
        [domain:forever.test]
        origins = 127.0.0.1:{origin.port}
        origin_protocol = http
    """


async def busy(ws, opened):
    """Talk every 0.1 s until closed; (seconds alive since `opened`, close code, reason)."""
    try:
        while True:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await asyncio.sleep(0.1)  # pacing the traffic, not waiting for an event
    except ConnectionClosed:
        return time.monotonic() - opened, ws.close_code, ws.close_reason


def test_sessions_end_with_1001_at_their_duration_spread_and_a_domain_without_it_stays(make_relay):
    async def main():
        async with Origin() as origin:
            relay = make_relay(config(origin), start=True)
            clients, opened = [], []
            for i in range(8):
                clients.append(await connect(relay.url(f"/c{i}"), ping_interval=None, close_timeout=WAIT))
                opened.append(time.monotonic())  # the 101 is in: the relay's session opened just before
            forever = await connect(f"ws://forever.test/", host="127.0.0.1", port=relay.port,
                                    ping_interval=None)
            results = await asyncio.wait_for(asyncio.gather(*(busy(ws, t) for ws, t in zip(clients, opened))), WAIT)
            assert {(code, reason) for _, code, reason in results} == {(1001, REASON)}
            lived = sorted(t for t, _, _ in results)
            assert lived[0] >= 1.5 - 0.1 and lived[-1] <= 3 + 0.5  # within the last window of the limit
            assert lived[-1] - lived[0] >= 0.3                     # not one burst
            await forever.send("still")
            assert await forever.recv() == "still"                 # well past 3 s
            await forever.close()
            deadline = time.monotonic() + WAIT
            while len(origin.closes) < 9 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the origin's handlers finish after the close
            ended = [(code, reason) for host, code, reason in origin.closes if host != "forever.test"]
            assert ended == [(1001, REASON)] * 8
            assert relay.log().count(f"close client=1001 origin=1001 first=relay") == 8

    run(main())
