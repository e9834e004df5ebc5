"""
HTTP/2 at the edge over loopback: `twistd -n wsrelay` with an ssl: listener
and http2 = on, an HTTP/2 client of the tests (tests.h2client: the h2
package, with websockets' own client protocol on each stream) and a
`websockets` origin. WebSockets over extended CONNECT (RFC 8441) share one
connection with each other and with plain requests; one stalled stream
leaves the others flowing; attacks end in GOAWAY.
"""

import asyncio
import re
import signal
import ssl

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from tests.h2client import H2Client
from tests.support import WAIT, LoopbackOrigin, run
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)

CHUNK = 65536


@pytest.fixture(scope="module")
def certs(pki):  # noqa: F811
    return {
        "a": pki.issue("h2-a", ["a.test"]),
        "b": pki.issue("h2-b", ["b.test"]),
        "ac": pki.issue("h2-ac", ["a2.test", "c.test"]),
    }


class Origin(LoopbackOrigin):
    """
    /echo echoes; /big/N sends N bytes in 64 KiB binary messages, then one
    text "done"; /one/N sends one binary message of N bytes. Every request
    and every close code it receives is noted.
    """

    def __init__(self):
        super().__init__()
        self.requests = []
        self.closes = {}
        self.sent = {}
        self.closed = asyncio.Event()

    def serve_options(self):
        return dict(super().serve_options(), max_size=None, compression="deflate")

    async def handle(self, ws):
        path = ws.request.path
        self.requests.append(ws.request)
        try:
            if path.startswith("/big/"):
                total = int(path.rsplit("/", 1)[1])
                self.sent[path] = 0
                while self.sent[path] < total:
                    await ws.send(b"x" * CHUNK)
                    self.sent[path] += CHUNK
                await ws.send("done")
            elif path.startswith("/one/"):
                await ws.send(b"y" * int(path.rsplit("/", 1)[1]))
            elif path == "/sink":   # reads nothing: what the client sends piles up before the relay
                await ws.wait_closed()
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            self.closes[path] = ws.close_code
            self.closed.set()

    async def close_code(self, path):
        async def wait():
            while path not in self.closes:
                self.closed.clear()
                await self.closed.wait()
        await asyncio.wait_for(wait(), WAIT)
        return self.closes[path]


def trusting(pki):  # noqa: F811
    return ssl.create_default_context(cafile=str(pki.root.path))


def relay_config(origin_port, certs, extra="", relay_extra=""):
    text = f"""
        [relay]
        listen = ssl:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        {relay_extra}
    """
    for name, key in (("a.test", "a"), ("b.test", "b"), ("a2.test", "ac"), ("c.test", "ac")):
        text += f"""
        [domain:{name}]
        origins = 127.0.0.1:{origin_port}
        origin_protocol = http
        certificate = {certs[key].certificate}
        private_key = {certs[key].key}
        http2 = {"off" if name == "b.test" else "on"}
        {extra}
        """
    return text


def test_websockets_and_requests_share_one_connection(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs, extra="compression = on"), start=True)
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            assert client.alpn == "h2"
            assert client.connect_protocol == 1   # SETTINGS_ENABLE_CONNECT_PROTOCOL
            sockets = [await client.websocket("a.test", f"/echo?n={i}") for i in range(3)]
            deflated = await client.websocket("a.test", "/echo?deflate", extensions=[ClientPerMessageDeflateFactory()])
            plain = [await client.request("a.test", "/index.html") for _ in range(2)]
            assert [ws.status for ws in sockets + [deflated]] == [200] * 4
            assert dict(deflated.stream.headers)[b"sec-websocket-extensions"].startswith(b"permessage-deflate")
            assert len({ws.stream.stream_id for ws in sockets}) == 3
            for round_ in range(5):   # interleaved on the one connection
                for i, ws in enumerate(sockets + [deflated]):
                    ws.send(f"round {round_} socket {i}")
                for i, ws in enumerate(sockets + [deflated]):
                    assert await ws.recv() == f"round {round_} socket {i}"
            deflated.send(b"z" * 200000)
            assert await deflated.recv() == b"z" * 200000
            # Plain requests, until HTTP pass-through exists: what HTTP/1.1 gets, 426.
            assert [s.status for s in plain] == [426, 426]
            assert b"WebSocket relay" in plain[0].body
            for i, ws in enumerate(sockets):
                close = await ws.close(4000 + i, "bye")
                assert (close.code, close.reason) == (4000 + i, "bye")
                assert await origin.close_code(f"/echo?n={i}") == 4000 + i
            await deflated.close(1000)
            # The origin was asked with HTTP/1.1 upgrades.
            assert all(r.headers["Upgrade"] == "websocket" for r in origin.requests)
            assert origin.requests[0].headers["Host"] == "a.test"
            await client.close()
            lines = relay.session_lines(4)
            assert len(lines) == 4, relay.log()
            assert all(line.endswith(" proto=h2") for line in lines), lines
            assert all(' 101 127.0.0.1:' in line for line in lines), lines

    run(main())


def test_http2_is_offered_only_where_a_domain_turns_it_on(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs), start=True)
            off = await H2Client.connect(relay.port, "b.test", trusting(pki))
            assert off.alpn == "http/1.1"
            await off.close()
            on = await H2Client.connect(relay.port, "a.test", trusting(pki))
            assert on.alpn == "h2"
            await on.close()

    run(main())


def test_a_stalled_stream_leaves_the_others_flowing(make_relay, pki, certs):  # noqa: F811
    total = 64 * 1024 * 1024

    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs), start=True)
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            # Its DATA is never acknowledged: the relay's window for it closes.
            stalled = await client.websocket("a.test", f"/big/{total}", stalled=True)
            await client.wait_for(stalled.stream, lambda: len(stalled.stream.body) >= 65535, "the first window")
            flowing = await client.websocket("a.test", "/echo")
            for i in range(50):
                flowing.send(f"message {i}")
                assert await flowing.recv() == f"message {i}"
            got = len(stalled.stream.body)
            assert got <= 65535, got   # no more than the stream's window reached the client
            # The relay stopped reading the origin: it did not take the whole body into memory.
            assert origin.sent[f"/big/{total}"] < total / 2
            client.unstall(stalled.stream)
            received = 0
            while True:
                message = await stalled.recv()
                if message == "done":
                    break
                received += len(message)
                client.unstall(stalled.stream)
            assert received == total
            await flowing.close(1000)
            await stalled.close(1000)
            await client.close()

    run(main(), timeout=WAIT * 6)


def test_an_origin_not_reading_stops_only_its_clients_stream(make_relay, pki, certs):  # noqa: F811
    total = 64 * 1024 * 1024

    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs), start=True)
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            stuck = await client.websocket("a.test", "/sink")
            sent = 0

            async def upload():
                nonlocal sent
                while sent < total:
                    await stuck.send_within_windows(b"u" * CHUNK)
                    sent += CHUNK

            uploading = asyncio.ensure_future(upload())
            flowing = await client.websocket("a.test", "/echo")
            for i in range(50):
                flowing.send(f"message {i}")
                assert await flowing.recv() == f"message {i}"
            # The relay stopped granting window on the stuck stream only: the upload waits.
            with pytest.raises(AssertionError, match="a window to send in"):
                await uploading
            assert sent < total / 2, sent
            assert client.conn.local_flow_control_window(stuck.stream.stream_id) == 0
            await flowing.close(1000)
            client.reset(stuck.stream)
            await client.close()
            lines = relay.session_lines(2)
            # The origin gets 1001, or, when a frame was half copied onto it as the client
            # left, its connection is dropped (as over HTTP/1.1, docs/wire.md); the session ends.
            sink = [line for line in lines if '"/sink" 101' in line]
            assert sink and "client=1006" in sink[0] and ("origin=1001" in sink[0] or "origin=1006" in sink[0]), lines

    run(main(), timeout=WAIT * 6)


def test_a_stream_reset_mid_message_gives_the_origin_1001(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs), start=True)
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            ws = await client.websocket("a.test", "/one/1000000")
            other = await client.websocket("a.test", "/echo")
            await client.wait_for(ws.stream, lambda: len(ws.stream.body) > 100000, "part of the message")
            client.reset(ws.stream)   # RST_STREAM CANCEL, mid-message
            assert await origin.close_code("/one/1000000") == 1001
            other.send("still here")   # the connection and its other streams go on
            assert await other.recv() == "still here"
            await other.close(1000)
            await client.close()
            lines = relay.session_lines(2)
            assert any('"/one/1000000" 101' in line and "origin=1001" in line for line in lines), lines

    run(main())


def test_status_pass_through_and_421_per_stream(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs), start=True)
            client = await H2Client.connect(relay.port, "a2.test", trusting(pki))
            # c.test is on this connection's certificate: coalescing is allowed.
            ws = await client.websocket("c.test", "/echo")
            assert ws.status == 200
            ws.send("coalesced")
            assert await ws.recv() == "coalesced"
            # a.test is not: 421, on that stream only.
            refused = await client.websocket("a.test", "/echo")
            assert refused.status == 421
            unknown = await client.websocket("nowhere.test", "/echo")
            assert unknown.status == 404
            assert (await client.request("a.test", "/")).status == 421
            ws.send("still open")
            assert await ws.recv() == "still open"
            await ws.close(1000)
            await client.close()

    run(main())


def relay_rss(relay):
    text = open(f"/proc/{relay.proc.pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024


@pytest.mark.parametrize("attack", ["resets", "pings", "settings"])
def test_floods_are_answered_with_goaway(make_relay, pki, certs, attack):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs), start=True)
            warm = await H2Client.connect(relay.port, "a.test", trusting(pki))
            await warm.close()
            before = relay_rss(relay)
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            for i in range(5000):
                if client.closed.is_set() or client.terminated is not None:
                    break
                if attack == "resets":   # CVE-2023-44487: open a stream (an origin is dialled), reset it at once
                    stream = client.open([(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                                          (b":scheme", b"https"), (b":authority", b"a.test"),
                                          (b":path", b"/echo"), (b"sec-websocket-version", b"13")])
                    client.conn.reset_stream(stream.stream_id, 8)
                elif attack == "pings":
                    client.conn.ping(i.to_bytes(8, "big"))
                else:
                    client.conn.update_settings({4: 65535 + i % 2})   # SETTINGS_INITIAL_WINDOW_SIZE
                client.flush()
                if i % 50 == 0:
                    await client.writer.drain()
                    await asyncio.sleep(0)
            await asyncio.wait_for(client.closed.wait(), WAIT)
            assert client.terminated is not None, "no GOAWAY"
            assert client.terminated.error_code == 11   # ENHANCE_YOUR_CALM
            assert relay_rss(relay) - before < 16 * 1024 * 1024
            assert f"too many {attack}" in relay.log()
            # The relay serves the next client as before.
            fresh = await H2Client.connect(relay.port, "a.test", trusting(pki))
            ws = await fresh.websocket("a.test", "/echo")
            ws.send("after")
            assert await ws.recv() == "after"
            await ws.close(1000)
            await fresh.close()

    run(main())


def test_too_many_streams_and_hpack_bombs_end_the_connection(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs, relay_extra="max_concurrent_streams = 2"),
                               start=True)
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            assert client.conn.remote_settings.max_concurrent_streams == 2
            open_ = [await client.websocket("a.test", f"/echo?{i}") for i in range(2)]
            open_[0].send("fine")
            assert await open_[0].recv() == "fine"
            # A client ignoring the limit it was given: GOAWAY, and the sessions end as if it left.
            client.conn.remote_settings._settings[3].appendleft(100)   # the client's own check of the limit
            client.open([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"),
                         (b":path", b"/")], end_stream=True)
            await asyncio.wait_for(client.closed.wait(), WAIT)
            assert client.terminated is not None and client.terminated.error_code == 1   # PROTOCOL_ERROR
            assert await origin.close_code("/echo?0") == 1001
            assert await origin.close_code("/echo?1") == 1001
            await client.close()
            # A header list beyond 16 KiB once decompressed (an HPACK bomb): GOAWAY.
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            client.conn.remote_settings._settings[6].appendleft(1 << 20)
            client.open([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"),
                         (b":path", b"/")] + [(b"x-bomb", b"v" * 4000)] * 5, end_stream=True)
            await asyncio.wait_for(client.closed.wait(), WAIT)
            assert client.terminated is not None and client.terminated.error_code != 0
            assert "header list" in relay.log().lower() or "protocol error" in relay.log()
            await client.close()

    run(main())


def test_sigterm_sends_goaway_and_the_sessions_close_with_1001(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs, relay_extra="drain_window = 0"), start=True)
            client = await H2Client.connect(relay.port, "a.test", trusting(pki))
            ws = await client.websocket("a.test", "/echo")
            ws.send("before")
            assert await ws.recv() == "before"
            relay.signal(signal.SIGTERM)
            assert await origin.close_code("/echo") == 1001
            await asyncio.wait_for(client.closed.wait(), WAIT)
            # First a GOAWAY NO_ERROR naming the last stream the relay took: the client opens no more here.
            assert (client.goaways[0].error_code, client.goaways[0].last_stream_id) == (0, ws.stream.stream_id)
            relay.wait()
            line = relay.session_lines(1)[0]
            assert "client=1001" in line and "origin=1001" in line and "first=relay" in line, line
            await client.close()

    run(main())


def test_a_reload_turns_http2_on_for_new_connections(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(relay_config(origin.port, certs).replace("http2 = on", "http2 = off"), start=True)
            before = await H2Client.connect(relay.port, "a.test", trusting(pki))
            assert before.alpn == "http/1.1"
            await before.close()
            relay.config.write_text(relay.config.read_text().replace("http2 = off", "http2 = on"))
            relay.signal(signal.SIGHUP)
            deadline = asyncio.get_running_loop().time() + WAIT
            while "reloaded" not in relay.log():
                assert asyncio.get_running_loop().time() < deadline, relay.log()
                await asyncio.sleep(0.05)   # polling the log for the reload line, bounded
            after = await H2Client.connect(relay.port, "a.test", trusting(pki))
            assert after.alpn == "h2"
            ws = await after.websocket("a.test", "/echo")
            ws.send("after reload")
            assert await ws.recv() == "after reload"
            await ws.close(1000)
            await after.close()

    run(main())
