"""
The relay path end to end: `twistd -n wsrelay` as a real process on loopback,
the `websockets` library as client and as origin.
"""

import asyncio
import json
import os
import signal
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import WAIT, free_port, raw_request, run, status_of, upgrade_request


class Origin:
    """A websockets origin whose behaviour is chosen by the request path."""

    def __init__(self, subprotocols=None, compression=None, max_queue=16):
        self.compression = compression
        self.max_queue = max_queue
        self.release = asyncio.Event()
        self.port = free_port()
        self.requests = []
        self.closed = asyncio.Queue()
        self.subprotocols = subprotocols
        self.server = None

    async def __aenter__(self):
        self.server = await serve(
            self.handle, "127.0.0.1", self.port, subprotocols=self.subprotocols,
            process_request=self.refuse, max_size=None, ping_interval=None, compression=self.compression,
            max_queue=self.max_queue)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    def refuse(self, connection, request):
        if request.path.startswith("/status/"):
            code = int(request.path.rsplit("/", 1)[1])
            response = connection.respond(code, "origin says no\n")
            response.headers["Retry-After"] = "7"
            return response
        return None

    async def handle(self, ws):
        self.requests.append(ws.request)
        path = ws.request.path
        try:
            if path.startswith("/greet"):  # speaks first, in the same breath as its 101
                await ws.send("welcome")
                async for message in ws:
                    await ws.send(message)
            elif path.startswith("/close4001"):
                await ws.close(4001, "origin says bye")
            elif path.startswith("/vanish"):
                await ws.recv()
                ws.transport.abort()
            elif path.startswith("/stall"):  # reads nothing until released, then counts
                await self.release.wait()
                count = 0
                async for message in ws:
                    count += 1
                    if message == "done":
                        await ws.send(str(count))
            elif path.startswith("/flood"):
                count, size = (int(x) for x in path.split("?")[1].split(","))
                for i in range(count):
                    await ws.send(struct.pack("!I", i) + bytes(size - 4))
                await ws.wait_closed()
            else:
                async for message in ws:
                    await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            await self.closed.put((ws.close_code, ws.close_reason, path))


def relay_config(origin_port, extra_relay="", extra_domain="", more=""):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        {extra_relay}
        [domain:*]
        origins = 127.0.0.1:{origin_port}
        origin_protocol = http
        {extra_domain}
        {more}
    """


def ws(relay, path="/", host=None, **kwargs):
    """A websockets client to the relay; `host` sets the Host header the relay routes on."""
    if host is None:
        return connect(relay.url(path), **kwargs)
    return connect(f"ws://{host}{path}", host="127.0.0.1", port=relay.port, **kwargs)


def start_relay(make_relay, config):
    return make_relay(config, start=True)


# -- messages ---------------------------------------------------------------------

def test_messages_keep_type_size_and_order(make_relay):
    """Text stays text, binary stays binary, empty and 1 MiB messages arrive whole, in order."""

    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            async with connect(relay.url("/echo"), max_size=None) as ws:
                big = os.urandom(1048576 - 16)
                sent = ["hello", b"\x00\xff binary", "", b"", "żółw ✓", big, "x" * 70000]
                sent += [f"n{i}" for i in range(200)]
                for m in sent:
                    await ws.send(m)
                got = [await ws.recv() for _ in sent]
                assert got == sent
                assert [type(m) for m in got] == [type(m) for m in sent]

    run(main())


def test_origin_speaking_first_is_not_lost(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            for _ in range(5):
                async with connect(relay.url("/greet")) as c:
                    assert await c.recv() == "welcome"
                    await c.send("and you")
                    assert await c.recv() == "and you"

    run(main())


def test_fragmented_message_arrives_whole(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            async with connect(relay.url("/echo")) as ws:
                await ws.send(["frag", "ment", "", "ed ✓"])
                assert await ws.recv() == "fragmented ✓"
                await ws.send([b"ab", b"cd"])
                assert await ws.recv() == b"abcd"

    run(main())


def test_message_over_limit_closes_with_1009(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port, extra_domain="max_message_size = 1000"))
            async with connect(relay.url("/echo")) as ws:
                await ws.send("a" * 1000)
                assert await ws.recv() == "a" * 1000
                await ws.send("a" * 1001)
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1009
            code, reason, _ = await asyncio.wait_for(origin.closed.get(), WAIT)
            assert code == 1001

    run(main())


# -- permessage-deflate ------------------------------------------------------------

@pytest.mark.parametrize("origin_compression", ["off", "on"])
def test_compression_with_clients_is_negotiated_per_leg(make_relay, origin_compression):
    async def main():
        async with Origin(compression="deflate") as origin:
            relay = start_relay(make_relay, relay_config(
                origin.port, extra_domain=f"compression = on\norigin_compression = {origin_compression}\n"
                                       "max_message_size = 8388608"))
            async with ws(relay, "/echo", compression="deflate", max_size=None) as c:
                assert "permessage-deflate" in c.response.headers.get("Sec-WebSocket-Extensions", "")
                # 4 MiB incompressible: Autobahn case 9.2.x through deflating legs once stalled
                sent = ["x" * 100000, os.urandom(5000), "", "ż" * 3000, b"\0" * 300000, os.urandom(4 << 20)]
                for m in sent:
                    await c.send(m)
                assert [await c.recv() for _ in sent] == sent
                await c.send(["frag", "mented ", "deflate"])
                assert await c.recv() == "fragmented deflate"
            offered = origin.requests[0].headers.get("Sec-WebSocket-Extensions")
            assert (offered is not None) == (origin_compression == "on")
        log = "\n".join(relay.session_lines(1))
        # compressed on the client leg: far fewer bytes than the 400 KB of payload
        assert "in=7/" in log

    run(main())


def test_compression_off_refuses_the_extension(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            async with ws(relay, "/echo", compression="deflate") as c:
                assert "Sec-WebSocket-Extensions" not in c.response.headers
                await c.send("plain")
                assert await c.recv() == "plain"

    run(main())


def test_inflated_size_is_what_max_message_size_limits(make_relay):
    """A small compressed frame that inflates past the limit closes with 1009."""

    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(
                origin.port, extra_domain="compression = on\nmax_message_size = 65536"))
            async with ws(relay, "/echo", compression="deflate", max_size=None) as c:
                await c.send(b"\0" * 65536)
                assert await c.recv() == b"\0" * 65536
                await c.send(b"\0" * (8 * 1048576))  # about 8 KiB on the wire
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(c.recv(), WAIT)
            assert c.close_code == 1009
        line = relay.session_lines(1)[0]
        assert int(line.split("in=2/")[1].split("B")[0]) < 100000  # the bomb never grew on the wire

    run(main())


# -- handshake --------------------------------------------------------------------

def test_routing_by_host_and_refusals(make_relay):
    """Host picks the domain; unknown 404, websocket off 403, foreign Origin 403."""

    async def main():
        async with Origin() as a, Origin() as b:
            relay = start_relay(make_relay, f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                [domain:a.example.com]
                origins = 127.0.0.1:{a.port}
                origin_protocol = http
                allowed_origins = https://app.example.com
                [domain:*.b.example.com]
                origins = 127.0.0.1:{b.port}
                origin_protocol = http
                [domain:off.example.com]
                websocket = off
            """)
            async with ws(relay, "/x", host="A.Example.com:8080", origin="https://app.example.com") as c:
                await c.send("to a")
                assert await c.recv() == "to a"
            async with ws(relay, "/y", host="chat.b.example.com") as c:
                await c.send("to b")
                assert await c.recv() == "to b"
            assert [r.path for r in a.requests] == ["/x"]
            assert [r.path for r in b.requests] == ["/y"]
            for host, origin_header, code in [
                ("nowhere.example.com", None, 404),
                ("b.example.com", None, 404),            # a wildcard needs one more label
                ("x.y.b.example.com", None, 404),        # ... exactly one
                ("off.example.com", None, 403),
                ("a.example.com", "https://evil.example.com", 403),
            ]:
                extra = f"Origin: {origin_header}\r\n" if origin_header else ""
                response = await raw_request(relay.port, upgrade_request(host, extra=extra))
                assert status_of(response) == code, (host, response)
            assert len(a.requests) == 1 and len(b.requests) == 1  # refusals never reach an origin

    run(main())


def test_plain_http_gets_426_bad_heads_400_and_huge_heads_431(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            response = await raw_request(relay.port, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
            assert status_of(response) == 426
            assert b"Upgrade: websocket" in response
            assert b"WebSocket" in response.split(b"\r\n\r\n", 1)[1]
            huge = upgrade_request(extra="X-Big: " + "a" * 20000 + "\r\n")
            assert status_of(await raw_request(relay.port, huge)) == 431
            endless = b"GET / HTTP/1.1\r\nHost: example.com\r\n" + b"X-Pad: aaaaaaaaaa\r\n" * 2000
            assert status_of(await raw_request(relay.port, endless)) == 431
            smuggle = upgrade_request(extra="X-Evil: a\nInjected: yes\r\n")
            assert status_of(await raw_request(relay.port, smuggle)) == 400
            assert origin.requests == []

    run(main())


def test_origin_failures_map_to_502_504_and_pass_through(make_relay):
    async def main():
        silent_port = free_port()
        silent_conns = []

        async def silent(reader, writer):  # accepts TCP, never answers the handshake
            silent_conns.append(writer)
            await reader.read(-1)

        bad_accept_port = free_port()

        async def bad_accept(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n")
            await reader.read(-1)

        silent_server = await asyncio.start_server(silent, "127.0.0.1", silent_port)
        bad_server = await asyncio.start_server(bad_accept, "127.0.0.1", bad_accept_port)
        closed_port = free_port()
        async with Origin() as origin:
            relay = start_relay(make_relay, f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                origin_connect_timeout = 0.5
                [domain:refused.test]
                origins = 127.0.0.1:{closed_port}
                origin_protocol = http
                [domain:silent.test]
                origins = 127.0.0.1:{silent_port}
                origin_protocol = http
                [domain:badaccept.test]
                origins = 127.0.0.1:{bad_accept_port}
                origin_protocol = http
                [domain:status.test]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
                [domain:retry.test]
                origins = 127.0.0.1:{closed_port} 127.0.0.1:{origin.port}
                origin_protocol = http
            """)
            assert status_of(await raw_request(relay.port, upgrade_request("refused.test"))) == 502
            assert status_of(await raw_request(relay.port, upgrade_request("silent.test"))) == 504
            assert status_of(await raw_request(relay.port, upgrade_request("badaccept.test"))) == 502
            for code in (403, 404, 500):
                response = await raw_request(relay.port, upgrade_request("status.test", f"/status/{code}"))
                assert status_of(response) == code
                assert b"Retry-After: 7" in response
            # the first origin refuses; the retry on the next one succeeds, twice in a row
            for _ in range(2):
                async with ws(relay, "/echo", host="retry.test") as c:
                    await c.send("through")
                    assert await c.recv() == "through"
            with pytest.raises(InvalidStatus) as refused:
                async with ws(relay, "/", host="refused.test"):
                    pass
            assert refused.value.response.status_code == 502
        silent_server.close()
        bad_server.close()
        for w in silent_conns:
            w.close()

    run(main())


def test_subprotocol_and_forwarded_headers(make_relay):
    async def main():
        async with Origin(subprotocols=["chat.v2"]) as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            async with ws(relay, "/echo?room=7&x=%20y", host="Chat.Example.com",
                          subprotocols=["chat.v1", "chat.v2"],
                          additional_headers={"X-Forwarded-For": "6.6.6.6", "Cookie": "s=1"}) as c:
                assert c.subprotocol == "chat.v2"
            request = origin.requests[0]
            assert request.path == "/echo?room=7&x=%20y"
            h = request.headers
            assert h["Host"] == "chat.example.com"  # websockets lower-cases it
            assert h["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"
            assert h["X-Forwarded-For"] == "127.0.0.1"   # the client is not a trusted proxy
            assert h["X-Forwarded-Proto"] == "http"
            assert h["X-Forwarded-Host"] == "chat.example.com"
            assert h["Forwarded"] == "for=127.0.0.1;proto=http;host=chat.example.com"
            assert h["Cookie"] == "s=1"

    run(main())


def test_trusted_proxy_forwarded_for_is_believed(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(
                origin.port, extra_relay="trusted_proxies = 127.0.0.0/8",
                extra_domain="origin_host = app.internal"))
            async with connect(relay.url("/echo"), additional_headers={"X-Forwarded-For": "203.0.113.9"}):
                pass
            h = origin.requests[0].headers
            assert h["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
            assert h["Forwarded"].startswith("for=203.0.113.9;")
            assert h["Host"] == "app.internal"

    run(main())


# -- closing ----------------------------------------------------------------------

def test_close_codes_cross_both_ways(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            async with connect(relay.url("/echo")) as ws:
                await ws.close(4000, "client says bye")
            assert await asyncio.wait_for(origin.closed.get(), WAIT) == (4000, "client says bye", "/echo")
            async with connect(relay.url("/close4001")) as ws:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4001, "origin says bye")
            async with connect(relay.url("/echo")) as ws:
                await ws.close(1000)
            assert (await asyncio.wait_for(origin.closed.get(), WAIT))[0] == 4001
            assert (await asyncio.wait_for(origin.closed.get(), WAIT))[0] == 1000
        log = "\n".join(relay.session_lines(3))
        assert "close client=4000 origin=4000 first=client" in log
        assert "close client=4001 origin=4001 first=origin" in log

    run(main())


@pytest.mark.parametrize("configured", [None, 1012])
def test_origin_vanishing_closes_client_with_origin_gone_code(make_relay, configured):
    async def main():
        async with Origin() as origin:
            extra = f"origin_gone_close_code = {configured}" if configured else ""
            relay = start_relay(make_relay, relay_config(origin.port, extra_relay=extra))
            async with connect(relay.url("/vanish")) as ws:
                await ws.send("now")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == (configured or 1011)
            assert ws.close_reason == "origin gone"

    run(main())


def test_client_vanishing_closes_origin_with_1001(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            ws = await connect(relay.url("/echo"))
            await ws.send("hi")
            assert await ws.recv() == "hi"
            ws.transport.abort()
            code, reason, _ = await asyncio.wait_for(origin.closed.get(), WAIT)
            assert (code, reason) == (1001, "client gone")

    run(main())


# -- timers -----------------------------------------------------------------------

async def open_raw_session(port, path="/echo"):
    """A client that completes the handshake and then never answers anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(path=path))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert status_of(head) == 101
    return reader, writer


def test_client_not_answering_pings_is_dropped(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(
                origin.port, extra_relay="heartbeat_interval = 0.2\nheartbeat_timeout = 0.3\nconnection_timeout = 0"))
            reader, writer = await open_raw_session(relay.port)
            first = await asyncio.wait_for(reader.readexactly(2), WAIT)
            assert first[0] == 0x89  # the relay pings us
            code, reason, _ = await asyncio.wait_for(origin.closed.get(), WAIT)
            assert (code, reason) == (1001, "client not answering pings")
            try:  # and the relay drops the TCP connection: EOF or reset, within the bound
                await asyncio.wait_for(reader.read(-1), WAIT)
            except ConnectionResetError:
                pass
            writer.close()

    run(main())


def test_answering_client_survives_heartbeats_and_origin_not_answering_is_dropped(make_relay):
    async def main():
        mute_port = free_port()

        async def mute_origin(reader, writer):  # a valid 101, then silence: never a pong
            head = await reader.readuntil(b"\r\n\r\n")
            key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
                   if l.lower().startswith(b"sec-websocket-key")][0]
            import base64, hashlib
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            await reader.read(-1)

        server = await asyncio.start_server(mute_origin, "127.0.0.1", mute_port)
        relay = start_relay(make_relay, relay_config(
            mute_port, extra_relay="heartbeat_interval = 0.2\nheartbeat_timeout = 0.5\nconnection_timeout = 0"))
        async with connect(relay.url("/"), ping_interval=None) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
        assert (ws.close_code, ws.close_reason) == (1011, "origin not answering pings")
        server.close()

    run(main())


def test_connection_timeout_counts_data_not_pings(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(
                origin.port, extra_relay="heartbeat_interval = 0.1\nheartbeat_timeout = 5\nconnection_timeout = 0.6"))
            loop = asyncio.get_running_loop()
            async with connect(relay.url("/echo"), ping_interval=None) as ws:
                for _ in range(4):  # data every 0.3 s keeps it open past 0.6 s
                    await ws.send("tick")
                    assert await ws.recv() == "tick"
                    await asyncio.sleep(0.3)  # the traffic pattern under test, not a wait for an event
                start = loop.time()
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), WAIT)
                quiet = loop.time() - start
            assert (ws.close_code, ws.close_reason) == (1001, "connection timeout")
            assert 0.2 <= quiet < 3
            code, reason, _ = await asyncio.wait_for(origin.closed.get(), WAIT)
            assert (code, reason) == (1001, "connection timeout")

    run(main())


# -- backpressure -----------------------------------------------------------------

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_stopped_reader_stops_the_fast_sender(make_relay):
    """An origin flooding a client that does not read: relay memory stays bounded, nothing is lost."""

    async def main():
        count, size = 800, 256 * 1024  # 200 MiB offered
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            before = rss_kib(relay.proc.pid)
            async with connect(relay.url(f"/flood?{count},{size}"), max_size=None,
                               max_queue=1) as ws:
                # the client stops reading: only websockets' tiny queue and the kernel buffers fill
                await asyncio.sleep(1.0)  # give the origin time to push as much as it can
                grown = rss_kib(relay.proc.pid) - before
                assert grown < 40 * 1024, f"relay grew by {grown} KiB while the client was not reading"
                for i in range(count):
                    m = await asyncio.wait_for(ws.recv(), WAIT)
                    assert struct.unpack("!I", m[:4])[0] == i and len(m) == size

    run(main(), timeout=90)


def test_stopped_origin_stops_the_fast_client(make_relay):
    """The other way round: a client flooding an origin that does not read."""

    async def main():
        count, size = 800, 256 * 1024
        async with Origin(max_queue=1) as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            before = rss_kib(relay.proc.pid)
            async with connect(relay.url("/stall"), max_size=None) as c:
                async def flood():
                    for i in range(count):
                        await c.send(struct.pack("!I", i) + bytes(size - 4))
                    await c.send("done")

                sending = asyncio.ensure_future(flood())
                done, _ = await asyncio.wait([sending], timeout=1.0)
                assert not done, "the client sent 200 MiB to an origin that reads nothing"
                grown = rss_kib(relay.proc.pid) - before
                assert grown < 40 * 1024, f"relay grew by {grown} KiB while the origin was not reading"
                origin.release.set()
                await asyncio.wait_for(sending, 60)
                assert await asyncio.wait_for(c.recv(), WAIT) == str(count + 1)

    run(main(), timeout=90)


# -- shutdown and the session log --------------------------------------------------

def test_sigterm_closes_sessions_with_1001_and_exits(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port, extra_relay="drain_window = 0.5"))
            async with connect(relay.url("/echo")) as ws:
                await ws.send("before")
                assert await ws.recv() == "before"
                relay.signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.close_code == 1001
            code, reason, _ = await asyncio.wait_for(origin.closed.get(), WAIT)
            assert code == 1001
            # twistd re-raises the signal once the reactor has stopped, as systemd expects
            status = await asyncio.get_running_loop().run_in_executor(None, relay.wait, 5)
            assert status in (0, -signal.SIGTERM)

    run(main())


def test_one_log_line_per_session_with_counters(make_relay):
    async def main():
        async with Origin() as origin:
            relay = start_relay(make_relay, relay_config(origin.port))
            async with connect(relay.url("/echo?q=1")) as ws:
                for m in ("a" * 10, "b" * 200):
                    await ws.send(m)
                    await ws.recv()
            await asyncio.wait_for(origin.closed.get(), WAIT)
            assert status_of(await raw_request(relay.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 426
        lines = relay.session_lines(2)
        assert len(lines) == 2, lines
        assert '"/echo?q=1" 101 127.0.0.1:' in lines[0]
        assert "in=2/" in lines[0] and "out=2/" in lines[0]

    run(main())
