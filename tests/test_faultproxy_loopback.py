"""
A real `twistd -n wsrelay` with statistics on, a `websockets` client and
origin, and a tests/faultproxy.py proxy on each leg (client - proxy - relay
- proxy - origin). Each case makes the network misbehave one way, then
checks the close codes both ends saw and that the stored statistics equal,
byte for byte, what the proxies saw cross each leg, handshakes included.
"""

import asyncio
import sqlite3
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.faultproxy import DOWN, UP, Faults, FaultProxy
from tests.support import WAIT, RelayProcess, run
from tests.traffic import EchoOrigin, totals_of

KIB = 1024


class Origin(EchoOrigin):
    """Echoes every message; keeps each connection's close code and reason."""

    def __init__(self):
        super().__init__()
        self.closes = []

    async def handle(self, ws):
        try:
            await super().handle(ws)
        except ConnectionClosed:
            pass
        finally:
            self.closes.append((ws.close_code, ws.close_reason))


def config(origin_port):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        connection_timeout = 0
        [accounting]
        database = stats.sqlite
        flush_interval = 0.2
        [domain:*]
        origins = 127.0.0.1:{origin_port}
        origin_protocol = http
    """


def stored(path):
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=WAIT)
    except sqlite3.OperationalError:
        return None
    try:
        return totals_of(db.cursor(), "traffic_5m")
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()


class Rig:
    """origin <- proxy <- relay <- proxy <- client, all on loopback."""

    def __init__(self, tmp_path, client_faults=None, origin_faults=None):
        self.tmp_path = tmp_path
        self.client_faults, self.origin_faults = client_faults, origin_faults

    async def __aenter__(self):
        self.origin = await Origin().start()
        self.to_origin = await FaultProxy(("127.0.0.1", self.origin.port), self.origin_faults).start()
        self.relay = RelayProcess(self.tmp_path, config(self.to_origin.port)).start()
        self.to_relay = await FaultProxy(("127.0.0.1", self.relay.port), self.client_faults).start()
        return self

    async def __aexit__(self, *exc):
        self.relay.stop()
        await self.to_relay.stop()
        await self.to_origin.stop()
        await self.origin.stop()

    def connect(self, path="/x"):
        return connect(f"ws://127.0.0.1:{self.to_relay.port}{path}", ping_interval=None, max_size=None,
                       compression=None, close_timeout=WAIT)

    async def check_statistics(self):
        """Once both proxies saw their connections end: the stored totals are what crossed them."""
        await self.to_relay.wait_closed()
        await self.to_origin.wait_closed()
        client, origin = self.to_relay.totals(), self.to_origin.totals()
        wanted = {
            "client_bytes_in": client["delivered_up"],    # what reached the relay from the client
            "client_bytes_out": client["read_down"],      # what the relay sent towards the client
            "origin_bytes_out": origin["read_up"],        # what the relay sent towards the origin
            "origin_bytes_in": origin["delivered_down"],  # what reached the relay from the origin
            "opened": 1, "closed": 1,
        }
        path = self.relay.dir / "stats.sqlite"
        deadline = time.monotonic() + WAIT
        while True:
            got = await asyncio.to_thread(stored, path)
            got = {k: got[k] for k in wanted} if got else None
            if got == wanted or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # polling the store the relay flushes to; bounded by WAIT
        assert got == wanted
        return wanted

    def session_line(self):
        lines = self.relay.session_lines(1)
        assert len(lines) == 1, self.relay.log()
        return lines[0]


async def closed(ws):
    """The close code the client saw, reading until the connection ends."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason


def test_latency_and_a_bandwidth_cap_on_both_legs_change_nothing_but_time(tmp_path):
    async def main():
        slow = Faults(latency=0.02, rate=400 * KIB)
        async with Rig(tmp_path, slow, slow) as rig:
            async with rig.connect() as ws:
                for size in (0, 125, 126, 70_000, 200_000):
                    await ws.send(bytes(size))
                    assert len(await asyncio.wait_for(ws.recv(), WAIT)) == size
            assert ws.close_code == 1000
            totals = await rig.check_statistics()
            assert rig.origin.closes == [(1000, "")]
            assert "close client=1000 origin=1000 first=client" in rig.session_line()
            assert totals["client_bytes_in"] > 270_000 and totals["origin_bytes_in"] > 270_000

    run(main(), timeout=WAIT * 6)


def test_the_client_leg_cut_in_the_middle_of_a_frame(tmp_path):
    async def main():
        # the client's handshake is about 250 bytes: 100 KB in is the middle of its 200 KB message
        async with Rig(tmp_path, Faults(cut=(UP, 100_000))) as rig:
            ws = await rig.connect()
            await ws.send(bytes(200_000))
            assert (await closed(ws))[0] == 1006         # its connection ended without a Close
            totals = await rig.check_statistics()
            assert totals["client_bytes_in"] == 100_000
            # half a frame was copied to the origin: it cannot be ended, so that leg is dropped
            assert rig.origin.closes == [(1006, "")]
            assert "close client=1006 origin=1006" in rig.session_line()

    run(main())


def test_the_origin_leg_cut_in_the_middle_of_a_frame(tmp_path):
    async def main():
        async with Rig(tmp_path, origin_faults=Faults(cut=(DOWN, 100_000))) as rig:
            ws = await rig.connect()
            await ws.send(bytes(200_000))                # its echo is cut 100 KB into the answer
            assert (await closed(ws))[0] == 1006         # half a frame went out: dropped, not closed
            totals = await rig.check_statistics()
            assert totals["origin_bytes_in"] == 100_000
            assert rig.origin.closes == [(1006, "")]
            assert "close client=1006 origin=1006" in rig.session_line()

    run(main())


def test_the_origin_leg_reset_between_messages(tmp_path):
    async def main():
        async with Rig(tmp_path) as rig:
            ws = await rig.connect()
            await ws.send("one")
            assert await ws.recv() == "one"
            await asyncio.sleep(0.3)  # nothing in flight on either leg (pacing, not waiting for an event)
            await rig.to_origin.reset_now()
            assert await closed(ws) == (1011, "origin gone")  # origin_gone_close_code
            await rig.check_statistics()
            assert rig.origin.closes == [(1006, "")]
            assert "close client=1011 origin=1006" in rig.session_line()

    run(main())


def test_the_client_leg_reset_in_the_middle_of_a_message(tmp_path):
    async def main():
        # 50 KB of a 200 KB message reach the relay, the client then goes quiet and is reset
        async with Rig(tmp_path, Faults(reset=(UP, 50_000))) as rig:
            ws = await rig.connect()
            await ws.send(bytes(200_000))
            assert (await closed(ws))[0] == 1006
            totals = await rig.check_statistics()
            assert totals["client_bytes_in"] == 50_000
            assert rig.origin.closes == [(1006, "")]   # mid-frame on its way to the origin: dropped
            assert "close client=1006 origin=1006" in rig.session_line()

    run(main())
