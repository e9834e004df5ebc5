"""
SIGTERM on a real `twistd -n wsrelay` process: live sessions get 1001 spread
over drain_window while new handshakes get 503 with Retry-After, the process
exits once they are gone; drain_timeout and a second SIGTERM close the rest
at once.
"""

import asyncio
import signal
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import WAIT, raw_request, run, status_of, upgrade_request
from tests.test_reload_loopback import CountingOrigin


def drain_config(origin, window, timeout=30):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        drain_window = {window}
        drain_timeout = {timeout}
        [domain:*]
        origins = 127.0.0.1:{origin.port}
        origin_protocol = http
    """


async def open_clients(relay, count):
    clients = []
    for i in range(count):
        ws = await connect(f"ws://127.0.0.1:{relay.port}/c{i}", ping_interval=None, close_timeout=WAIT)
        await ws.send("hi")
        assert await ws.recv() == "hi"
        clients.append(ws)
    return clients


async def closed_at(ws):
    try:
        await asyncio.wait_for(ws.recv(), WAIT * 2)
    except ConnectionClosed:
        pass
    return time.monotonic(), ws.close_code


async def exit_status(relay, timeout=WAIT):
    return await asyncio.get_running_loop().run_in_executor(None, relay.wait, timeout)


def test_sigterm_spreads_1001_over_the_window_and_refuses_new_handshakes(make_relay):  # noqa: F811
    async def main():
        async with CountingOrigin("a") as origin:
            relay = make_relay(drain_config(origin, window=3)).start()
            clients = await open_clients(relay, 12)
            waiting = [asyncio.create_task(closed_at(ws)) for ws in clients]
            relay.signal(signal.SIGTERM)
            started = time.monotonic()
            await asyncio.sleep(0.3)  # a moment into the drain (pacing, not waiting for an event)
            answer = await raw_request(relay.port, upgrade_request())
            assert status_of(answer) == 503 and b"\r\nRetry-After: 5\r\n" in answer
            results = await asyncio.gather(*waiting)
            assert {code for _, code in results} == {1001}
            offsets = sorted(t - started for t, _ in results)
            assert offsets[-1] <= 3 + 1.0  # all within the window
            assert offsets[-1] - offsets[0] >= 1.5  # spread, not one burst
            assert sum(1 for o in offsets if o < 1.5) <= 9  # not all at the start
            assert await exit_status(relay) in (0, -signal.SIGTERM)

    run(main())


def test_drain_timeout_and_a_second_sigterm_close_the_rest_at_once(make_relay):  # noqa: F811
    async def main():
        async with CountingOrigin("a") as origin:
            for second_sigterm in (False, True):
                relay = make_relay(drain_config(origin, window=20, timeout=1.5 if not second_sigterm else 20)).start()
                clients = await open_clients(relay, 6)
                waiting = [asyncio.create_task(closed_at(ws)) for ws in clients]
                relay.signal(signal.SIGTERM)
                started = time.monotonic()
                if second_sigterm:
                    await asyncio.sleep(0.5)  # into the drain
                    relay.signal(signal.SIGTERM)
                results = await asyncio.gather(*waiting)
                assert {code for _, code in results} == {1001}
                assert max(t for t, _ in results) - started <= (1.5 if not second_sigterm else 0.5) + 1.0
                assert await exit_status(relay) in (0, -signal.SIGTERM)

    run(main(), timeout=60)
