"""
Scripted traffic of known sizes through a real relay, and what the wire
carried leg by leg (frame sizes computed here from RFC 6455), for the
loopback tests that check stored statistics byte for byte against it.
"""

import itertools
import time

from websockets.asyncio.client import connect

from tests.support import WAIT, LoopbackOrigin

SIZES = (0, 1, 125, 126, 65535, 65536, 200_000)
CLOSE = 2  # a Close frame's payload: the code, no reason
TOTALS = ("client_bytes_in", "client_bytes_out", "client_messages_in", "client_messages_out",
          "origin_bytes_in", "origin_bytes_out", "origin_messages_in", "origin_messages_out",
          "opened", "closed")


def frame(payload, masked):
    """Bytes of one WebSocket frame on the wire (RFC 6455 section 5.2)."""
    extended = 0 if payload < 126 else 2 if payload < 65536 else 8
    return 2 + extended + (4 if masked else 0) + payload


class EchoOrigin(LoopbackOrigin):
    """Echoes every message; keeps the size of each opening handshake it saw, by request path."""

    def __init__(self):
        super().__init__()
        self.handshakes = {}  # path -> (request bytes, response bytes)

    def serve_options(self):
        return dict(super().serve_options(), compression=None, max_size=None)

    async def handle(self, ws):
        self.handshakes[ws.request.path] = (len(ws.request.serialize()), len(ws.response.serialize()))
        async for message in ws:
            await ws.send(message)


class Expected:
    """What the wire carried, leg by leg, as computed by the test."""

    def __init__(self):
        self.totals = dict.fromkeys(TOTALS, 0)

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


_paths = itertools.count(1)


async def talk(relay, origin, expected, sizes=SIZES):
    """
    One session: every message sent and its echo read, then a normal close by
    the client. Each session has a path of its own, so that sessions may run
    side by side and still each find the handshake the origin saw.
    """
    path = f"/exact/{next(_paths)}"
    async with connect(relay.url(path), ping_interval=None, compression=None, max_size=None) as ws:
        for n in sizes:
            await ws.send(bytes(n))
            assert len(await ws.recv()) == n
        handshake = (len(ws.request.serialize()), len(ws.response.serialize()))
    expected.session(handshake, origin.handshakes[path], sizes)


TOTALS_SQL = "SELECT {} FROM {{table}} WHERE domain = '*'".format(
    ", ".join(f"COALESCE(SUM({n}), 0)" for n in TOTALS))


def totals_of(cursor, table):
    """The sums of TOTALS in one traffic table, as plain ints (PostgreSQL sums BIGINT as NUMERIC)."""
    cursor.execute(TOTALS_SQL.format(table=table))
    return dict(zip(TOTALS, map(int, cursor.fetchone())))


def wait_for_totals(read, expected):
    """Poll `read()` -> (5-minute sums, 1-day sums) until both equal the expected totals (bounded by WAIT)."""
    deadline = time.monotonic() + WAIT
    while True:
        fine, daily = read()
        if fine == expected.totals and daily == expected.totals:
            return
        if time.monotonic() > deadline:
            assert (fine, daily) == (expected.totals, expected.totals)
        time.sleep(0.1)  # polling the database the relay flushes to; bounded by WAIT


def wait_for_log(relay, text):
    deadline = time.monotonic() + WAIT
    while text not in relay.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{relay.log()}"
        time.sleep(0.05)  # polling the relay's log; bounded by WAIT
