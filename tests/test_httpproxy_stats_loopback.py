"""
Exactness with both kinds of traffic on one domain: a real relay carries
plain HTTP requests (keep-alive, sized and chunked bodies, an origin 404)
and WebSocket sessions (one opened after HTTP requests on the same
connection) to one aiohttp origin behind a byte-counting forwarder. The
stored points equal the wire byte for byte on each leg and kind, statuses
and requests included, and `wsrelay-stats` reports the kinds apart and
together.
"""

import asyncio
import base64
import io
import json
import os
import sqlite3
import time
from datetime import datetime, timezone

from tests.httpclient import RawClient, request
from tests.httporigin import HTTPOrigin
from tests.support import WAIT, free_port, run
from wsrelay.accounting.cli import main as stats_main

HOST = "app.test"
LEGS = ("client_bytes_in", "client_bytes_out", "origin_bytes_in", "origin_bytes_out")


class CountingForwarder:
    """TCP forwarder in front of the origin: bytes each way per connection, and whether it carried a WebSocket."""

    def __init__(self, target):
        self.port = free_port()
        self.target = target
        self.connections = []  # [{"to_origin": n, "from_origin": n, "websocket": bool}]
        self.writers = []

    async def handle(self, reader, writer):
        record = {"to_origin": 0, "from_origin": 0, "websocket": False}
        self.connections.append(record)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_writer]

        async def pump(source, sink, key):
            try:
                while data := await source.read(65536):
                    if key == "to_origin" and record["to_origin"] == 0:
                        record["websocket"] = b"upgrade: websocket" in data.lower()
                    record[key] += len(data)
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pump(reader, up_writer, "to_origin"), pump(up_reader, writer, "from_origin"))

    def totals(self, websocket):
        found = [c for c in self.connections if c["websocket"] == websocket]
        return sum(c["from_origin"] for c in found), sum(c["to_origin"] for c in found)

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for writer in self.writers:
            writer.close()


def masked(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(client):
    head = await client._read("readexactly", 2)
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await client._read("readexactly", 2), "big")
    return head[0] & 0x0F, await client._read("readexactly", n)


async def websocket_session(client, messages):
    """A WebSocket session on `client` (after whatever it already carried): echoes read, closed with 1000."""
    key = base64.b64encode(os.urandom(16)).decode()
    await client.send((f"GET /wsecho HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    status, _, _ = await client.head()
    assert status == 101
    for payload in messages:
        await client.send(masked(0x2, payload))
        assert await read_frame(client) == (0x2, payload)
    await client.send(masked(0x8, (1000).to_bytes(2, "big")))
    assert (await read_frame(client))[0] == 0x8
    assert await client.closed()  # the relay ends the TCP connection after the closing handshake


def stored(path):
    """{kind: {column: sum}} of the 5-minute and 1-day points, and {kind: {status: count}}."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=WAIT)
    except sqlite3.OperationalError:
        return None
    try:
        found = {}
        for table in ("traffic_5m", "traffic_1d"):
            columns = LEGS + ("client_messages_in", "opened", "closed")
            rows = db.execute(f"SELECT kind, {', '.join(f'SUM({c})' for c in columns)} FROM {table} "
                              f"WHERE domain = ? GROUP BY kind", (HOST,)).fetchall()
            found[table] = {row[0]: dict(zip(columns, row[1:])) for row in rows}
        found["statuses"] = {}
        for kind, status, count in db.execute("SELECT kind, status, SUM(count) FROM statuses_5m WHERE domain = ? "
                                              "GROUP BY kind, status", (HOST,)):
            found["statuses"].setdefault(kind, {})[status] = count
        return found
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()


def test_http_and_websocket_traffic_on_one_domain_are_stored_exactly_and_apart(tmp_path, make_relay):
    async def scenario():
        async with HTTPOrigin() as origin, CountingForwarder(origin.port) as forwarder:
            relay = make_relay(f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                heartbeat_interval = 0
                connection_timeout = 0
                [accounting]
                database = stats.sqlite
                flush_interval = 0.5
                [domain:{HOST}]
                origins = 127.0.0.1:{forwarder.port}
                origin_protocol = http
                http = on
                """, start=True)
            http_in = http_out = 0
            ws_in = ws_out = 0

            one = await RawClient.open(relay.port)
            for data, method in ((request("GET", "/size/1000", HOST), "GET"),
                                 (request("POST", "/echo", HOST, body=os.urandom(70_000)), "POST"),
                                 (request("PUT", "/echo", HOST, body=os.urandom(5000), chunked=True), "PUT"),
                                 (request("HEAD", "/head/99", HOST), "HEAD"),
                                 (request("GET", "/missing", HOST), "GET"),
                                 (request("GET", "/chunked/20000", HOST), "GET")):
                await one.send(data)
                await one.response(method)
            await one.send(request("GET", "/size/10", HOST, headers=[("Connection", "close")]))
            await one.response()
            assert await one.closed()
            http_in, http_out = one.sent, one.received

            two = await RawClient.open(relay.port)   # two requests, then a WebSocket session on the same connection
            for _ in range(2):
                await two.send(request("GET", "/size/300", HOST))
                await two.response()
            http_in, http_out = http_in + two.sent, http_out + two.received
            sent, received = two.sent, two.received
            await websocket_session(two, [b"a" * 10, b"b" * 60_000])
            ws_in, ws_out = two.sent - sent, two.received - received

            three = await RawClient.open(relay.port)  # a WebSocket session from the first request on
            await websocket_session(three, [b"c" * 200])
            ws_in, ws_out = ws_in + three.sent, ws_out + three.received

            def expected():
                """What the wire carried; the origin side read anew (its closing handshakes may still be on the way)."""
                http_origin = forwarder.totals(websocket=False)
                ws_origin = forwarder.totals(websocket=True)
                return {
                    "http": {"client_bytes_in": http_in, "client_bytes_out": http_out,
                             "origin_bytes_in": http_origin[0], "origin_bytes_out": http_origin[1],
                             "client_messages_in": 9, "opened": 9, "closed": 9},
                    "websocket": {"client_bytes_in": ws_in, "client_bytes_out": ws_out,
                                  "origin_bytes_in": ws_origin[0], "origin_bytes_out": ws_origin[1],
                                  "client_messages_in": 3, "opened": 2, "closed": 2},
                }

            statuses = {"http": {200: 8, 404: 1}, "websocket": {101: 2}}
            path = relay.dir / "stats.sqlite"
            deadline = time.monotonic() + WAIT
            while True:
                found = await asyncio.to_thread(stored, path)
                wire = expected()
                if found and found["traffic_5m"] == wire and found["traffic_1d"] == wire \
                        and found["statuses"] == statuses:
                    break
                if time.monotonic() > deadline:
                    differ = {(kind, name): (found["traffic_5m"].get(kind, {}).get(name), value)
                              for kind, columns in wire.items() for name, value in columns.items()
                              if found and found["traffic_5m"].get(kind, {}).get(name) != value}
                    raise AssertionError(f"stored != wire: {differ}; statuses {found and found['statuses']}")
                await asyncio.sleep(0.1)  # polling the database the relay flushes to; bounded by WAIT

            now = datetime.now(timezone.utc)
            window = ["--start", now.replace(hour=0, minute=0, second=0, microsecond=0).isoformat(),
                      "--end", now.replace(hour=23, minute=59, second=0, microsecond=0).isoformat(),
                      "--interval", "3600", "--domain", HOST]

            def ask(kind):
                out = io.StringIO()
                assert stats_main(["--config", str(relay.config), "traffic", *window, "--kind", kind], out=out) == 0
                points = json.loads(out.getvalue())["points"]
                return {name: sum(p[name] for p in points) for name in ("bytes_in", "bytes_out", "requests",
                                                                         "messages_in")}

            apart = {kind: await asyncio.to_thread(ask, kind) for kind in ("websocket", "http", "all")}
            assert apart["http"] == {"bytes_in": http_in, "bytes_out": http_out, "requests": 9, "messages_in": 0}
            assert apart["websocket"] == {"bytes_in": ws_in, "bytes_out": ws_out, "requests": 0, "messages_in": 3}
            assert apart["all"] == {"bytes_in": http_in + ws_in, "bytes_out": http_out + ws_out, "requests": 9,
                                    "messages_in": 3}

    run(scenario())
