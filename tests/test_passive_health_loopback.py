"""
The panic threshold over loopback: both origins of a domain ejected (they
refused while restarting), then back. With the default panic_threshold the
relay balances over all of them and the next session works at once; with
panic_threshold = 0 the domain is refused (503) for the whole cool-down.
Real `twistd -n wsrelay`, real `websockets` origins.
"""

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import WAIT, LoopbackOrigin, raw_request, run, status_of, upgrade_request


class EchoOrigin(LoopbackOrigin):
    def __init__(self):
        super().__init__()
        self.sessions = 0

    async def handle(self, ws):
        self.sessions += 1
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass


def test_origins_back_after_an_ejection_of_all_get_sessions_at_once_under_the_panic_threshold(make_relay):
    async def main():
        a, b = EchoOrigin(), EchoOrigin()                  # ports chosen, nothing listening yet
        config = f"""
            [relay]
            listen = tcp:{{port}}:interface=127.0.0.1
            [domain:*]
            origins = 127.0.0.1:{a.port} 127.0.0.1:{b.port}
            eject_after = 1
            eject_for = 600
        """
        panicking = make_relay(config, start=True)                         # panic_threshold 50 by default
        strict = make_relay(config + "panic_threshold = 0\n", start=True)
        for relay in (panicking, strict):
            assert status_of(await raw_request(relay.port, upgrade_request())) == 502   # both refuse: ejected
            assert relay.log().count("ejected: 1 failed connects in a row") == 2
        assert "under panic_threshold 50%: balancing over all of them" in panicking.log()
        await a.start()
        await b.start()
        try:
            assert status_of(await raw_request(strict.port, upgrade_request())) == 503
            for i in range(4):
                async with connect(panicking.url("/"), open_timeout=WAIT) as ws:
                    await ws.send(f"back {i}")
                    assert await ws.recv() == f"back {i}"
            assert (a.sessions, b.sessions) == (2, 2)                      # balanced over both
            assert status_of(await raw_request(strict.port, upgrade_request())) == 503
        finally:
            await a.stop()
            await b.stop()

    run(main())
