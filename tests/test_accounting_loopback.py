"""
Exactness end to end: a real `twistd -n wsrelay` process relays a scripted
set of messages of known sizes between two `websockets` peers, and the
totals stored in its SQLite database equal what the wire carried, byte for
byte on each leg (frame sizes computed here from RFC 6455), across a flush,
a restart of the relay and a database outage (the file locked by another
process for a while).
"""

import asyncio
import signal
import sqlite3
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from tests.support import WAIT, RelayProcess, free_port, run

SIZES = (0, 1, 125, 126, 65535, 65536, 200_000)
CLOSE = 2  # a Close frame's payload: the code, no reason


def frame(payload, masked):
    """Bytes of one WebSocket frame on the wire (RFC 6455 section 5.2)."""
    extended = 0 if payload < 126 else 2 if payload < 65536 else 8
    return 2 + extended + (4 if masked else 0) + payload


class EchoOrigin:
    """Echoes every message; keeps the size of each opening handshake it saw."""

    def __init__(self):
        self.port = free_port()
        self.handshakes = []  # (request bytes, response bytes)

    async def __aenter__(self):
        self.server = await serve(self.handle, "127.0.0.1", self.port, ping_interval=None,
                                  compression=None, max_size=None)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, ws):
        self.handshakes.append((len(ws.request.serialize()), len(ws.response.serialize())))
        async for message in ws:
            await ws.send(message)


class Expected:
    """What the wire carried, leg by leg, as computed by the test."""

    def __init__(self):
        self.totals = dict.fromkeys(
            ("client_bytes_in", "client_bytes_out", "client_messages_in", "client_messages_out",
             "origin_bytes_in", "origin_bytes_out", "origin_messages_in", "origin_messages_out",
             "opened", "closed"), 0)

    def session(self, client_handshake, origin_handshake, sizes):
        t = self.totals
        request, response = client_handshake
        t["client_bytes_in"] += request + sum(frame(n, True) for n in sizes) + frame(CLOSE, True)
        t["client_bytes_out"] += response + sum(frame(n, False) for n in sizes) + frame(CLOSE, False)
        request, response = origin_handshake
        t["origin_bytes_out"] += request + sum(frame(n, True) for n in sizes) + frame(CLOSE, True)
        t["origin_bytes_in"] += response + sum(frame(n, False) for n in sizes) + frame(CLOSE, False)
        for name in ("client_messages_in", "client_messages_out", "origin_messages_in", "origin_messages_out"):
            t[name] += len(sizes)
        t["opened"] += 1
        t["closed"] += 1


async def talk(relay, origin, expected, sizes=SIZES):
    """One session: every message sent and its echo read, then a normal close by the client."""
    seen = len(origin.handshakes)
    async with connect(relay.url("/exact"), ping_interval=None, compression=None, max_size=None) as ws:
        for n in sizes:
            await ws.send(bytes(n))
            assert len(await ws.recv()) == n
        handshake = (len(ws.request.serialize()), len(ws.response.serialize()))
    expected.session(handshake, origin.handshakes[seen], sizes)


def stored(path):
    """The sums of the 5-minute and the 1-day points (they must agree)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=WAIT)
    try:
        names = ("client_bytes_in", "client_bytes_out", "client_messages_in", "client_messages_out",
                 "origin_bytes_in", "origin_bytes_out", "origin_messages_in", "origin_messages_out",
                 "opened", "closed")
        sums = ", ".join(f"COALESCE(SUM({n}), 0)" for n in names)
        fine = db.execute(f"SELECT {sums} FROM traffic_5m WHERE domain = '*'").fetchone()
        daily = db.execute(f"SELECT {sums} FROM traffic_1d WHERE domain = '*'").fetchone()
        return dict(zip(names, fine)), dict(zip(names, daily))
    except sqlite3.OperationalError:
        return None, None  # not created yet
    finally:
        db.close()


def wait_for_totals(path, expected):
    deadline = time.monotonic() + WAIT
    while True:
        fine, daily = stored(path)
        if fine == expected.totals and daily == expected.totals:
            return
        if time.monotonic() > deadline:
            assert (fine, daily) == (expected.totals, expected.totals)
        time.sleep(0.1)  # polling the file the relay flushes to; bounded by WAIT


def wait_for_log(relay, text):
    deadline = time.monotonic() + WAIT
    while text not in relay.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{relay.log()}"
        time.sleep(0.05)  # polling the relay's log; bounded by WAIT


def config(origin_port):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        connection_timeout = 0
        [accounting]
        database = stats.sqlite
        flush_interval = 0.5
        busy_timeout = 1
        [domain:*]
        origins = 127.0.0.1:{origin_port}
        """


def test_stored_totals_equal_the_wire_across_flush_restart_and_outage(tmp_path):
    async def scenario():
        expected = Expected()
        async with EchoOrigin() as origin:
            relay = RelayProcess(tmp_path, config(origin.port))
            path = relay.dir / "stats.sqlite"
            with relay:
                await talk(relay, origin, expected)
                await talk(relay, origin, expected, sizes=(3, 70_000))
                await asyncio.to_thread(wait_for_totals, path, expected)  # written by a periodic flush

                await talk(relay, origin, expected, sizes=(10,) * 50)
                relay.signal(signal.SIGTERM)   # written by the flush at shutdown
                assert await asyncio.to_thread(relay.wait) in (0, -signal.SIGTERM)
            assert stored(path)[0] == expected.totals

            relay.port = free_port()
            relay.config.write_text(config(origin.port).replace("{port}", str(relay.port)))
            with relay:  # the same database after a restart
                await talk(relay, origin, expected, sizes=(1000,))
                await asyncio.to_thread(wait_for_totals, path, expected)

                lock = sqlite3.connect(path, isolation_level=None, timeout=WAIT)
                lock.execute("BEGIN EXCLUSIVE")  # another process holds the database
                try:
                    started = time.monotonic()
                    await talk(relay, origin, expected)
                    await asyncio.to_thread(wait_for_log, relay, "cannot write the statistics")
                    await talk(relay, origin, expected, sizes=(5, 6, 7))
                    assert time.monotonic() - started < WAIT  # relaying went on meanwhile
                finally:
                    lock.execute("ROLLBACK")
                    lock.close()
                await asyncio.to_thread(wait_for_totals, path, expected)
                await asyncio.to_thread(wait_for_log, relay, "statistics are written again")
            assert relay.log().count("cannot write the statistics") == 1

    run(scenario(), timeout=WAIT * 6)
