"""
Plain HTTP through a real `twistd -n wsrelay` on loopback, to a real aiohttp
origin (tests/httporigin.py), with aiohttp as the client and a raw socket
client (tests/httpclient.py) where the bytes on the wire matter: every
method, sized and chunked bodies both ways, HEAD, HTTP/1.0, 100-continue,
keep-alive then a WebSocket upgrade on the same connection, server-sent
events one by one, backpressure both ways, 1 GiB in bounded relay memory,
the error statuses, retry on the next origin, hop-by-hop headers, forwarded
headers and the access log.
"""

import asyncio
import base64
import hashlib
import json
import os
import re
import time

import aiohttp
import pytest

from tests.httpclient import RawClient, request
from tests.httporigin import HTTPOrigin
from tests.support import WAIT, free_port, run

HOST = "app.test"


def config(*origins, domain="", relay="", http="on"):
    listed = " ".join(f"127.0.0.1:{port}" for port in origins)
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        connection_timeout = 0
        accounting = off
        {relay}
        [domain:{HOST}]
        origins = {listed}
        origin_protocol = http
        http = {http}
        {domain}
        """


def url(relay, path):
    return f"http://127.0.0.1:{relay.port}{path}"


async def client_session():
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT * 3), auto_decompress=False)


def test_every_method_with_sized_and_chunked_bodies_both_ways(make_relay):
    async def scenario():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            body = os.urandom(300_000)
            digest = hashlib.sha256(body).hexdigest()
            async with await client_session() as session:
                for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
                    async with session.request(method, url(relay, "/echo?q=1"), headers={"Host": HOST}) as r:
                        seen = await r.json()
                        assert (r.status, seen["method"], seen["path"], seen["length"]) == (200, method, "/echo?q=1", 0)
                for method in ("POST", "PUT", "PATCH", "DELETE"):
                    async with session.request(method, url(relay, "/echo"), headers={"Host": HOST}, data=body) as r:
                        seen = await r.json()
                        assert (seen["method"], seen["length"], seen["sha256"]) == (method, len(body), digest)
                        assert seen["content_length"] == str(len(body)) and not seen["chunked"]

                async def pieces():
                    for start in range(0, len(body), 70_000):
                        yield body[start:start + 70_000]

                async with session.post(url(relay, "/echo"), headers={"Host": HOST}, data=pieces()) as r:
                    seen = await r.json()
                    assert (seen["length"], seen["sha256"], seen["chunked"]) == (len(body), digest, True)
                async with session.post(url(relay, "/stream-echo"), headers={"Host": HOST}, data=pieces()) as r:
                    assert await r.read() == body
                async with session.get(url(relay, "/size/123456"), headers={"Host": HOST}) as r:
                    assert r.headers["Content-Length"] == "123456" and "Transfer-Encoding" not in r.headers
                    assert await r.read() == b"s" * 123456
                async with session.get(url(relay, "/chunked/25000"), headers={"Host": HOST}) as r:
                    assert r.headers["Transfer-Encoding"] == "chunked" and await r.read() == b"c" * 25000
                async with session.head(url(relay, "/head/777"), headers={"Host": HOST}) as r:
                    assert (r.status, r.headers["Content-Length"]) == (200, "777")

    run(scenario())


def test_raw_wire_head_http10_expect_continue_and_keep_alive(make_relay):
    async def scenario():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            client = await RawClient.open(relay.port)
            await client.send(request("HEAD", "/head/10", HOST))
            head = await client.response("HEAD")
            assert (head.status, head.header("Content-Length"), head.body) == (200, "10", b"")
            # 100-continue: the relay invites the body, then the origin answers
            await client.send(request("POST", "/echo", HOST, headers=[("Expect", "100-continue"),
                                                                     ("Content-Length", "5")]))
            status, _, _ = await client.head()
            assert status == 100
            await client.send(b"hello")
            answer = await client.response()
            assert answer.status == 200 and json.loads(answer.body)["length"] == 5
            assert "expect" not in {k.lower() for k in json.loads(answer.body)["headers"]}
            await client.send(request("GET", "/chunked/3000", HOST, chunked=False))
            assert (await client.response()).body == b"c" * 3000  # the same connection, third request
            client.close()

            old = await RawClient.open(relay.port)   # HTTP/1.0: no chunking, the connection closes after it
            await old.send(request("GET", "/chunked/2000", HOST, version="HTTP/1.0"))
            answer = await old.response()
            assert answer.raw.startswith(b"HTTP/1.0 200") and answer.header("Transfer-Encoding") is None
            assert answer.body == b"c" * 2000
            old.close()

    run(scenario())


def ws_handshake(path, host=HOST):
    key = base64.b64encode(os.urandom(16)).decode()
    return key, (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def masked_text(text):
    payload = text.encode()
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_keep_alive_requests_then_a_websocket_upgrade_on_the_same_connection(make_relay):
    async def scenario():
        async with HTTPOrigin("o1") as origin:
            relay = make_relay(config(origin.port), start=True)
            client = await RawClient.open(relay.port)
            for n in range(3):
                await client.send(request("POST", f"/echo?n={n}", HOST, body=b"x" * n))
                answer = await client.response()
                assert answer.status == 200 and json.loads(answer.body)["path"] == f"/echo?n={n}"
            key, handshake = ws_handshake("/ws")
            await client.send(handshake + masked_text("after three requests"))  # a frame right behind the head
            status, headers, _ = await client.head()
            accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            assert status == 101 and ("Sec-WebSocket-Accept", accept.decode()) in headers
            frame = await client._read("readexactly", 2)
            text = await client._read("readexactly", frame[1] & 0x7F)
            assert frame[0] == 0x81 and text == b"o1: after three requests"
            client.close()
            assert origin.seen[-1] == ("GET", "/ws")
            deadline = time.monotonic() + WAIT
            while "[wsrelay.session#info]" not in relay.log():
                assert time.monotonic() < deadline, relay.log()
                await asyncio.sleep(0.05)  # the session line follows the close; bounded by WAIT
            assert re.search(r'"/ws" 101 127\.0\.0\.1:\d+ in=1/', relay.log())

    run(scenario())


def test_server_sent_events_reach_the_client_one_by_one(make_relay):
    """Each event is read by the client before the origin writes the next one: nothing waits in the relay."""
    async def scenario():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            async with await client_session() as session:
                async with session.get(url(relay, "/sse"), headers={"Host": HOST}) as r:
                    assert r.headers["Content-Type"] == "text/event-stream"
                    for number in range(1, 6):
                        await origin.events.put(number)
                        event = b""
                        while not event.endswith(b"\n\n"):
                            event += await asyncio.wait_for(r.content.readline(), WAIT)
                        assert event == f"id: {number}\ndata: event {number}\n\n".encode()
                        assert origin.sent == list(range(1, number + 1))  # not one event further
                    await origin.events.put(None)
                    assert await r.read() == b""

    run(scenario())


def relay_memory(relay):
    """(VmRSS, VmHWM) of the relay process in bytes."""
    found = {}
    with open(f"/proc/{relay.proc.pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


GIB = 1 << 30


def test_one_gib_each_way_streams_in_bounded_relay_memory(make_relay):
    async def scenario():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            async with await client_session() as session:
                async with session.get(url(relay, "/size/10"), headers={"Host": HOST}) as r:
                    await r.read()  # warmed up: the pool and the code paths exist
                before, _ = relay_memory(relay)
                block = b"u" * (1 << 20)

                async def upload():
                    for _ in range(GIB // len(block)):
                        yield block

                timeout = aiohttp.ClientTimeout(total=300)
                async with session.post(url(relay, "/upload"), headers={"Host": HOST, "Content-Length": str(GIB)},
                                        data=upload(), timeout=timeout) as r:
                    assert (await r.json())["length"] == GIB
                got = 0
                async with session.get(url(relay, f"/download/{GIB}"), headers={"Host": HOST}, timeout=timeout) as r:
                    async for data in r.content.iter_chunked(1 << 20):
                        got += len(data)
                assert got == GIB
                _, peak = relay_memory(relay)
                assert peak - before < 64 << 20, (before, peak)  # 2 GiB went through; the relay grew by < 64 MiB

    run(scenario(), timeout=600)


def test_a_slow_writer_is_streamed_piece_by_piece(make_relay):
    async def scenario():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            # Each piece the client sends reaches the origin before it sends the next: nothing waits for the whole body.
            for chunked in (True, False):
                origin.trickled = b""
                writer = await RawClient.open(relay.port)
                pieces = [f"piece {n};".encode() for n in range(4)]
                framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(sum(map(len, pieces))))
                await writer.send(request("POST", "/trickle", HOST, headers=[framing]))
                for n, piece in enumerate(pieces):
                    await writer.send(b"%x\r\n" % len(piece) + piece + b"\r\n" if chunked else piece)
                    deadline = time.monotonic() + WAIT
                    while origin.trickled != b"".join(pieces[:n + 1]):
                        assert time.monotonic() < deadline, (n, origin.trickled)
                        await asyncio.sleep(0.02)  # watching the origin's side; bounded by WAIT
                    await asyncio.sleep(0.2)  # a slow writer
                if chunked:
                    await writer.send(b"0\r\n\r\n")
                answer = await writer.response()
                assert json.loads(answer.body)["length"] == sum(map(len, pieces))
                writer.close()

    run(scenario())


def test_a_slow_reader_stops_the_origin_backpressure_bounds_what_it_can_write(make_relay):
    async def scenario():
        async with CountingOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            client = await RawClient.open(relay.port)
            client.writer.transport.pause_reading()
            await client.send(request("GET", "/", HOST))
            await asyncio.sleep(2.0)
            stuck = origin.written
            await asyncio.sleep(1.0)
            assert origin.written == stuck  # stopped, not slowed
            assert stuck < 32 << 20, stuck  # of a 512 MiB body: socket buffers and one read per hop at most
            client.writer.transport.resume_reading()
            status, _, _ = await client.head()
            assert status == 200
            got = 0
            while got < origin.size:
                data = await asyncio.wait_for(client.reader.read(1 << 20), WAIT)
                assert data
                got += len(data)
            client.close()

    run(scenario())


class CountingOrigin:
    """A minimal origin on asyncio streams that answers one 512 MiB body and counts what it managed to write."""

    size = 512 << 20

    def __init__(self):
        self.port = free_port()
        self.written = 0

    async def handle(self, reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size)
        block = b"b" * (1 << 20)
        for _ in range(self.size // len(block)):
            writer.write(block)
            await writer.drain()
            self.written += len(block)
        writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc):
        self.server.close()


class ClosingOrigin:
    """Accepts connections and closes them at once, without a byte: an origin that breaks."""

    def __init__(self):
        self.port = free_port()
        self.accepted = 0

    async def handle(self, reader, writer):
        self.accepted += 1
        writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc):
        self.server.close()


def test_error_statuses_502_504_413_431_408_and_426(make_relay):
    async def scenario():
        async with HTTPOrigin() as origin:
            dead = free_port()
            relay = make_relay(config(origin.port, domain="origin_read_timeout = 1\nclient_body_timeout = 1\n"
                                      "max_body_size = 1000") + f"""
                [domain:dead.test]
                origins = 127.0.0.1:{dead}
                origin_protocol = http
                http = on
                [domain:ws.test]
                origins = 127.0.0.1:{origin.port}
                """, start=True)
            async with await client_session() as session:
                async with session.get(url(relay, "/"), headers={"Host": "dead.test"}) as r:
                    assert r.status == 502
                started = time.monotonic()
                async with session.get(url(relay, "/silent"), headers={"Host": HOST}) as r:
                    assert r.status == 504
                assert time.monotonic() - started < WAIT
                async with session.post(url(relay, "/echo"), headers={"Host": HOST}, data=b"x" * 1001) as r:
                    assert r.status == 413
                async with session.get(url(relay, "/"), headers={"Host": "ws.test"}) as r:
                    assert r.status == 426 and r.headers["Upgrade"] == "websocket"  # http = off: as before
                async with session.get(url(relay, "/echo"), headers={"Host": "nowhere.test"}) as r:
                    assert r.status == 404

            chunked = await RawClient.open(relay.port)   # a chunked body over the limit: 413 when it gets there
            await chunked.send(request("POST", "/upload", HOST, headers=[("Transfer-Encoding", "chunked")]))
            await chunked.send(b"3e8\r\n" + b"y" * 1000 + b"\r\n" + b"1\r\nz\r\n")
            assert (await chunked.response()).status == 413
            chunked.close()

            stalled = await RawClient.open(relay.port)   # a body that stops coming: 408, connection closed
            await stalled.send(request("POST", "/upload", HOST, headers=[("Content-Length", "100")]) + b"half")
            answer = await stalled.response()
            assert answer.status == 408 and answer.header("Connection") == "close"
            assert await stalled.closed()

            cut = await RawClient.open(relay.port)       # the origin goes silent mid-response: cut, not replaced
            await cut.send(request("GET", "/stall", HOST))
            status, headers, _ = await cut.head()
            assert status == 200
            rest = await asyncio.wait_for(cut.reader.read(-1), WAIT)
            assert b"first piece" in rest and not rest.endswith(b"0\r\n\r\n") and b"HTTP/1.1" not in rest

            big = await RawClient.open(relay.port)       # heads over 16 KiB: 431, first or later on a connection
            await big.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
            assert (await big.response()).status == 431
            later = await RawClient.open(relay.port)
            await later.send(request("GET", "/size/3", HOST))
            assert (await later.response()).status == 200
            await later.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
            assert (await later.response()).status == 431
            assert await later.closed()

    run(scenario())


def test_retry_on_the_next_origin_and_503_when_every_origin_is_down(make_relay):
    async def scenario():
        async with HTTPOrigin("good") as good, ClosingOrigin() as closing:
            broken = make_relay(config(closing.port, good.port, domain="selector = primary-backup\neject_after = 0"),
                                start=True)
            async with await client_session() as session:
                for method in ("GET", "DELETE", "HEAD"):
                    async with session.request(method, url(broken, "/echo"), headers={"Host": HOST}) as r:
                        assert r.status == 200 and r.headers["X-Origin"] == "good", method
                tried = closing.accepted
                assert tried >= 3  # each went to the broken origin first and got nothing back
                # a POST whose body reached an origin that broke is not sent again (it may have been acted on)
                async with session.post(url(broken, "/echo"), headers={"Host": HOST}, data=b"once") as r:
                    assert r.status == 502
                assert closing.accepted == tried + 1 and "POST" not in [m for m, _ in good.seen]

            refused = make_relay(config(free_port(), good.port, domain="selector = primary-backup\neject_after = 0"),
                                 start=True)
            async with await client_session() as session:
                # a refused connect sent nothing: any request goes on to the next origin, its body too
                async with session.post(url(refused, "/echo"), headers={"Host": HOST}, data=b"twice") as r:
                    assert r.status == 200 and (await r.json())["length"] == 5

            down = make_relay(config(free_port(), free_port(), domain="eject_after = 1\neject_for = 60\npanic_threshold = 0"),
                              start=True)
            async with await client_session() as session:
                async with session.get(url(down, "/"), headers={"Host": HOST}) as r:
                    assert r.status == 502  # both refuse: both ejected
                async with session.get(url(down, "/"), headers={"Host": HOST}) as r:
                    assert r.status == 503 and "Retry-After" in r.headers

    run(scenario())


def test_hop_by_hop_and_connection_named_headers_are_removed_both_ways(make_relay):
    async def scenario():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            client = await RawClient.open(relay.port)
            await client.send(request("GET", "/echo", HOST, headers=[
                ("Connection", "keep-alive, X-Hop-Secret"), ("X-Hop-Secret", "client-only"), ("Keep-Alive", "300"),
                ("TE", "trailers"), ("Proxy-Connection", "keep-alive"), ("Upgrade", "h2c"),
                ("X-End-To-End", "kept")]))
            seen = json.loads((await client.response()).body)["headers"]
            names = {name.lower() for name in seen}
            assert seen.get("X-End-To-End") == "kept"
            assert not names & {"x-hop-secret", "keep-alive", "te", "proxy-connection", "upgrade"}
            await client.send(request("GET", "/hop", HOST))
            answer = await client.response()
            assert answer.header("X-Kept") == "yes"
            assert not answer.names() & {"x-secret-out", "keep-alive", "proxy-connection"}
            assert answer.header("Connection") in (None, "keep-alive")
            client.close()

    run(scenario())


def test_forwarded_headers_and_origin_host(make_relay):
    async def scenario():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port), start=True)
            async with await client_session() as session:
                async with session.get(url(relay, "/echo"), headers={
                        "Host": HOST, "X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6"}) as r:
                    seen = (await r.json())["headers"]
            assert seen["Host"] == HOST
            assert seen["X-Forwarded-For"] == "127.0.0.1"  # a client's own claim is not believed
            assert (seen["X-Forwarded-Proto"], seen["X-Forwarded-Host"]) == ("http", HOST)
            assert seen["Forwarded"] == f"for=127.0.0.1;proto=http;host={HOST}"

            pinned = make_relay(config(origin.port, domain="origin_host = internal.example",
                                       relay="trusted_proxies = 127.0.0.1"), start=True)
            async with await client_session() as session:
                async with session.get(url(pinned, "/echo"), headers={"Host": HOST, "X-Forwarded-For": "203.0.113.9"}) as r:
                    seen = (await r.json())["headers"]
            assert seen["Host"] == "internal.example"
            assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
            assert seen["Forwarded"] == f"for=203.0.113.9;proto=http;host={HOST}"
            line = [l for l in pinned.log().splitlines() if "[wsrelay.http#info]" in l][-1]
            assert re.search(r'203\.0\.113\.9 app\.test "GET /echo" 200 127\.0\.0\.1:\d+ in=\d+B out=\d+B '
                             r'ttfb=\d+\.\d+s \d+\.\d+s proto=h1$', line), line

    run(scenario())
