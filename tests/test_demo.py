"""
Tests of the bundled demo origin (wsrelay/demo.py, wsrelay/demo_page.html).

- TestCommentRoom: the room core, no sockets.
- DemoOverLoopbackTests: the demo site in-process on 127.0.0.1 port 0, with
  Autobahn clients and raw HTTP (twisted.trial, every wait bounded).
- test_cli_*: ``python -m wsrelay.demo`` as a user runs it, in a subprocess,
  with the ``websockets`` library as an independent client.
- test_page_script_*: the page's JavaScript run under node with a stub DOM and
  WebSocket (skipped when node is not installed).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest as trial

from tests.support import read_first_line
from wsrelay import demo
from wsrelay.demo_room import CommentRoom, Outgoing

ROOT = Path(__file__).resolve().parents[1]
WAIT = 5.0  # seconds: the bound on every single wait in these tests

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------
# The room core, no sockets.
# ---------------------------------------------------------------------------


def _to_each(out: list[Outgoing]) -> dict[int, list[dict]]:
    """What each viewer receives, in order."""
    got: dict[int, list[dict]] = {}
    for item in out:
        for viewer in item.to:
            got.setdefault(viewer, []).append(item.message)
    return got


class TestCommentRoom:
    def test_join_numbers_viewers_and_tells_everyone_the_count(self):
        room = CommentRoom()
        a, out_a = room.join(T0)
        b, out_b = room.join(T0)
        assert (a, b) == (1, 2)
        assert _to_each(out_a) == {1: [{"type": "hello", "you": 1}, {"type": "viewers", "count": 1}]}
        assert _to_each(out_b) == {
            1: [{"type": "viewers", "count": 2}],
            2: [{"type": "hello", "you": 2}, {"type": "viewers", "count": 2}],
        }

    def test_leave_tells_the_others_the_new_count(self):
        room = CommentRoom()
        a, _ = room.join(T0)
        b, _ = room.join(T0)
        c, _ = room.join(T0)
        assert _to_each(room.leave(b, T0)) == {
            a: [{"type": "viewers", "count": 2}],
            c: [{"type": "viewers", "count": 2}],
        }
        assert room.viewers == (a, c)
        assert room.leave(b, T0) == []  # twice: nothing
        room.leave(a, T0)
        assert room.leave(c, T0) == []  # nobody left to tell
        assert room.viewers == ()

    def test_post_broadcasts_to_everyone_including_the_sender(self):
        room = CommentRoom()
        a, _ = room.join(T0)
        b, _ = room.join(T0)
        out = room.post(b, "hello, room ☃", T0)
        expected = {"type": "comment", "text": "hello, room ☃", "from": b, "at": "2026-01-02T03:04:05.678Z"}
        assert _to_each(out) == {a: [expected], b: [expected]}

    def test_at_is_the_given_time_in_utc(self):
        room = CommentRoom()
        a, _ = room.join(T0)
        paris = timezone(timedelta(hours=1))
        (item,) = room.post(a, "x", datetime(2026, 1, 2, 4, 4, 5, 678000, tzinfo=paris))
        assert item.message["at"] == "2026-01-02T03:04:05.678Z"
        with pytest.raises(ValueError):
            room.post(a, "y", datetime(2026, 1, 2))  # naive: ambiguous

    def test_new_joiner_gets_the_last_20_comments_in_order(self):
        room = CommentRoom()
        a, _ = room.join(T0)
        for i in range(25):
            room.post(a, f"comment {i}", T0 + timedelta(seconds=i))
        b, out = room.join(T0)
        mine = _to_each(out)[b]
        assert mine[0] == {"type": "hello", "you": b}
        replayed = mine[1:-1]
        assert [m["text"] for m in replayed] == [f"comment {i}" for i in range(5, 25)]
        assert all(m["type"] == "comment" and m["replay"] is True and m["from"] == a for m in replayed)
        assert mine[-1] == {"type": "viewers", "count": 2}
        # The replay goes to the joiner only.
        assert _to_each(out)[a] == [{"type": "viewers", "count": 2}]

    def test_over_long_comment_is_an_error_to_the_sender_and_is_dropped(self):
        room = CommentRoom()
        a, _ = room.join(T0)
        b, _ = room.join(T0)
        assert len(_to_each(room.post(a, "é" * 500, T0))[b]) == 1  # exactly 500 characters: fine
        out = room.post(a, "é" * 501, T0)
        assert list(_to_each(out)) == [a]
        (err,) = _to_each(out)[a]
        assert err["type"] == "error" and "500" in err["error"]
        assert len(room.history) == 1  # not kept for replay either

    def test_empty_comment_is_rejected(self):
        room = CommentRoom()
        a, _ = room.join(T0)
        (item,) = room.post(a, "  \n", T0)
        assert item.to == (a,) and item.message["type"] == "error"
        assert room.history == ()

    def test_a_viewer_who_left_cannot_post(self):
        room = CommentRoom()
        a, _ = room.join(T0)
        b, _ = room.join(T0)
        room.leave(a, T0)
        assert room.post(a, "ghost", T0) == []
        assert room.history == ()


# ---------------------------------------------------------------------------
# In-process over loopback sockets.
# ---------------------------------------------------------------------------


class _Client(WebSocketClientProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.opened: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()
        self.messages: defer.DeferredQueue = defer.DeferredQueue()

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.put((payload, isBinary))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(RuntimeError(f"WebSocket did not open: {code} {reason}"))
        if not self.closed.called:
            self.closed.callback((code, reason))


class _RawHTTP(Protocol):
    """Sends one request and collects the whole response until the server closes."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.done: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.done.callback(self.data)


def _bounded(d: defer.Deferred, what: str) -> defer.Deferred:
    def timed_out(f):
        f.trap(defer.TimeoutError)
        raise AssertionError(f"timed out after {WAIT}s waiting for {what}")

    return d.addTimeout(WAIT, reactor).addErrback(timed_out)


class DemoOverLoopbackTests(trial.TestCase):
    timeout = 30

    RELAY_URL = "wss://relay.example:9443/edge?a=1&b=<2>"

    @defer.inlineCallbacks
    def setUp(self):
        self.service = demo.makeService(reactor, port=0, interface="127.0.0.1", relay_url=self.RELAY_URL)
        self.service.startService()
        self.addCleanup(self._stop_service)
        port = yield _bounded(self.service.whenListening(), "the demo to listen")
        self.port = port.getHost().port

    def _stop_service(self):
        if self.service.running:
            return _bounded(self.service.stopService(), "the demo to stop")

    @defer.inlineCallbacks
    def connect(self, path: str, protocols=None, **options):
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{self.port}{path}", protocols=protocols or [])
        factory.protocol = _Client
        factory.setProtocolOptions(openHandshakeTimeout=WAIT, **options)
        client = yield _bounded(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port).connect(factory), "TCP connect")
        self.addCleanup(self._close_client, client)
        yield _bounded(client.opened, f"{path} to open")
        return client

    def _close_client(self, client: _Client):
        if not client.closed.called and client.state == WebSocketClientProtocol.STATE_OPEN:
            client.sendClose(1000)
        if not client.closed.called and client.transport is not None and client.state == client.STATE_CONNECTING:
            client.transport.abortConnection()
        return _bounded(client.closed, "the client to close")

    def recv(self, client: _Client, what: str = "a message"):
        return _bounded(client.messages.get(), what)

    @defer.inlineCallbacks
    def recv_json(self, client: _Client, what: str = "a JSON message"):
        payload, is_binary = yield self.recv(client, what)
        self.assertFalse(is_binary, "the comments room sends text")
        return json.loads(payload.decode("utf-8"))

    @defer.inlineCallbacks
    def http(self, request: bytes):
        proto = _RawHTTP(request)
        factory = Factory.forProtocol(lambda: proto)
        yield _bounded(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port).connect(factory), "TCP connect")
        raw = yield _bounded(proto.done, "the HTTP response")
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(status_line.split()[1]), headers, body

    # -- echo ---------------------------------------------------------------

    @defer.inlineCallbacks
    def test_echo_text_comes_back_as_text(self):
        client = yield self.connect("/echo")
        client.sendMessage("héllo ☃".encode("utf-8"), isBinary=False)
        payload, is_binary = yield self.recv(client, "the echo")
        self.assertEqual((payload.decode("utf-8"), is_binary), ("héllo ☃", False))

    @defer.inlineCallbacks
    def test_echo_binary_comes_back_as_binary_in_order(self):
        client = yield self.connect("/echo")
        blobs = [bytes(range(256)), b"\x00" * 60000, b"\xff\xfe"]
        for blob in blobs:
            client.sendMessage(blob, isBinary=True)
        for blob in blobs:
            payload, is_binary = yield self.recv(client, "the echo")
            self.assertTrue(is_binary)
            self.assertEqual(payload, blob)

    @defer.inlineCallbacks
    def test_echo_message_over_64k_closes_with_1009(self):
        client = yield self.connect("/echo")
        client.sendMessage(b"x" * 65537, isBinary=True)
        code, _reason = yield _bounded(client.closed, "the origin to close the connection")
        self.assertEqual(code, 1009)

    @defer.inlineCallbacks
    def test_echo_fragmented_message_over_64k_closes_with_1009(self):
        client = yield self.connect("/echo", autoFragmentSize=40000)
        client.sendMessage(b"x" * 80000, isBinary=True)  # two frames, each under the frame limit
        code, _reason = yield _bounded(client.closed, "the origin to close the connection")
        self.assertEqual(code, 1009)

    @defer.inlineCallbacks
    def test_echo_selects_the_first_offered_subprotocol(self):
        client = yield self.connect("/echo", protocols=["chat.v2", "chat.v1"])
        self.assertEqual(client.websocket_protocol_in_use, "chat.v2")

    @defer.inlineCallbacks
    def test_echo_selects_no_subprotocol_when_none_offered(self):
        client = yield self.connect("/echo")
        self.assertIsNone(client.websocket_protocol_in_use)

    @defer.inlineCallbacks
    def test_server_side_sockets_have_tcp_nodelay(self):
        yield self.connect("/echo")
        (server_proto,) = self.service.site.connections.open
        sock = server_proto.transport.getHandle()
        self.assertTrue(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    # -- comments -----------------------------------------------------------

    @defer.inlineCallbacks
    def test_two_viewers_see_each_others_comments_and_the_count(self):
        a = yield self.connect("/comments")
        self.assertEqual((yield self.recv_json(a)), {"type": "hello", "you": 1})
        self.assertEqual((yield self.recv_json(a)), {"type": "viewers", "count": 1})

        b = yield self.connect("/comments")
        self.assertEqual((yield self.recv_json(b)), {"type": "hello", "you": 2})
        self.assertEqual((yield self.recv_json(b)), {"type": "viewers", "count": 2})
        self.assertEqual((yield self.recv_json(a)), {"type": "viewers", "count": 2})

        a.sendMessage("bonjour from A ☃".encode("utf-8"))
        for who in (a, b):
            msg = yield self.recv_json(who, "A's comment")
            self.assertEqual((msg["type"], msg["text"], msg["from"]), ("comment", "bonjour from A ☃", 1))
            at = datetime.fromisoformat(msg["at"].replace("Z", "+00:00"))
            self.assertLess(abs((at - datetime.now(timezone.utc)).total_seconds()), 60)

        b.sendMessage(b"hi from B")
        for who in (a, b):
            msg = yield self.recv_json(who, "B's comment")
            self.assertEqual((msg["text"], msg["from"]), ("hi from B", 2))

        b.sendClose(1000)
        yield _bounded(b.closed, "B to close")
        self.assertEqual((yield self.recv_json(a, "the new count")), {"type": "viewers", "count": 1})

    @defer.inlineCallbacks
    def test_late_joiner_gets_the_replay(self):
        a = yield self.connect("/comments")
        yield self.recv_json(a)  # hello
        yield self.recv_json(a)  # viewers 1
        for i in range(22):
            a.sendMessage(f"c{i}".encode())
            yield self.recv_json(a, "the echo of my comment")
        c = yield self.connect("/comments")
        self.assertEqual((yield self.recv_json(c)), {"type": "hello", "you": 2})
        texts = []
        for _ in range(20):
            msg = yield self.recv_json(c, "a replayed comment")
            self.assertTrue(msg["replay"])
            texts.append(msg["text"])
        self.assertEqual(texts, [f"c{i}" for i in range(2, 22)])
        self.assertEqual((yield self.recv_json(c)), {"type": "viewers", "count": 2})

    @defer.inlineCallbacks
    def test_over_long_comment_gets_an_error_and_reaches_nobody(self):
        a = yield self.connect("/comments")
        yield self.recv_json(a)
        yield self.recv_json(a)
        b = yield self.connect("/comments")
        yield self.recv_json(b)  # hello
        yield self.recv_json(b)  # viewers 2
        yield self.recv_json(a)  # viewers 2

        a.sendMessage(("x" * 501).encode())
        err = yield self.recv_json(a, "the error")
        self.assertEqual(err["type"], "error")
        self.assertEqual(a.state, WebSocketClientProtocol.STATE_OPEN)  # not closed: just dropped

        a.sendMessage(b"short one")
        msg = yield self.recv_json(b, "the next comment")
        self.assertEqual(msg["text"], "short one")  # B never saw the long one

    @defer.inlineCallbacks
    def test_binary_in_the_comments_room_is_refused(self):
        a = yield self.connect("/comments")
        yield self.recv_json(a)
        yield self.recv_json(a)
        a.sendMessage(b"\x00\x01", isBinary=True)
        err = yield self.recv_json(a, "the error")
        self.assertEqual(err["type"], "error")

    # -- page and HTTP ------------------------------------------------------

    @defer.inlineCallbacks
    def test_page_is_served_with_the_relay_url_in_it(self):
        status, headers, body = yield self.http(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        page = body.decode("utf-8")
        m = re.search(r'<meta name="wsrelay-relay-url" content="([^"]*)">', page)
        self.assertIsNotNone(m, "no relay URL meta tag in the page")
        self.assertEqual(html.unescape(m.group(1)), self.RELAY_URL)
        self.assertNotIn("<2>", page)  # escaped, not injected
        self.assertNotIn("{{", page)  # every placeholder filled
        # The page talks to the relay, not to the origin, and loads nothing from elsewhere.
        self.assertIn('"/echo"', page)
        self.assertIn('"/comments"', page)
        self.assertNotIn(f"127.0.0.1:{self.port}", page)
        self.assertIsNone(re.search(r"\b(src|href)\s*=", page))
        self.assertLess(len(body), 20000)
        # The inline script and style carry the nonce the CSP allows.
        nonce = re.search(r"script-src 'nonce-([^']+)'", headers["content-security-policy"]).group(1)
        self.assertIn(f'<script nonce="{nonce}">', page)
        self.assertIn(f'<style nonce="{nonce}">', page)

    @defer.inlineCallbacks
    def test_unknown_path_is_404(self):
        status, _headers, _body = yield self.http(b"GET /nope HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 404)

    @defer.inlineCallbacks
    def test_plain_get_of_a_websocket_path_shows_no_status_page(self):
        status, _headers, body = yield self.http(b"GET /echo HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertNotEqual(status, 200)
        self.assertNotIn(b"autobahn", body.lower())

    # -- shutdown -----------------------------------------------------------

    @defer.inlineCallbacks
    def test_stopping_the_origin_closes_pages_with_1001(self):
        e = yield self.connect("/echo")
        c = yield self.connect("/comments")
        yield _bounded(self.service.stopService(), "the demo to stop")
        for client in (e, c):
            code, reason = yield _bounded(client.closed, "the close")
            self.assertEqual((code, reason), (1001, "demo origin shutting down"))
        self.assertEqual(self.service.site.room.viewers, ())


# ---------------------------------------------------------------------------
# The command line, as a user runs it.
# ---------------------------------------------------------------------------

LINE_RE = re.compile(
    r"^demo origin listening on http://127\.0\.0\.1:(\d+)/ "
    r"\(open the page through: http://127\.0\.0\.1:\1/ ; it talks to the relay at (\S+)\)$"
)


def _start_demo(*args: str) -> subprocess.Popen:
    # SIGINT as a terminal's Ctrl-C delivers it: not ignored in the child.
    def default_sigint():
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return subprocess.Popen(
        [sys.executable, "-m", "wsrelay.demo", *args],
        cwd=ROOT,
        # As a user runs it: stdout is a pipe and Python buffers it, unless the demo flushes.
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        preexec_fn=default_sigint,
    )


def _read_line(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    """The first line the demo prints, waiting at most ``timeout`` seconds."""
    return read_first_line(proc, "the demo", timeout)


@pytest.fixture
def demo_proc():
    procs = []

    def start(*args):
        p = _start_demo(*args)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=WAIT)
        p.stdout.close()
        p.stderr.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_cli_serves_page_and_echo_and_stops_on_signal(demo_proc, stop_signal):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    proc = demo_proc("--port", "0", "--relay-url", "ws://127.0.0.1:18080")
    m = LINE_RE.match(_read_line(proc))
    assert m, "unexpected first line"
    port, relay = int(m.group(1)), m.group(2)
    assert port != 0 and relay == "ws://127.0.0.1:18080"

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=WAIT) as resp:
        assert resp.status == 200
        assert 'content="ws://127.0.0.1:18080"' in resp.read().decode()

    with connect(f"ws://127.0.0.1:{port}/echo", subprotocols=["b.v1", "a.v1"], open_timeout=WAIT) as ws:
        assert ws.subprotocol == "b.v1"
        ws.send("ping")
        assert ws.recv(timeout=WAIT) == "ping"
        ws.send(b"\x01\x02")
        assert ws.recv(timeout=WAIT) == b"\x01\x02"

        proc.send_signal(stop_signal)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=WAIT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001

    assert proc.wait(timeout=WAIT * 2) == 0


def test_cli_lifetime_exits_by_itself(demo_proc):
    proc = demo_proc("--port", "0", "--lifetime", "0.2")
    assert LINE_RE.match(_read_line(proc))
    assert proc.wait(timeout=WAIT * 2) == 0


def test_cli_rejects_a_relay_url_that_is_not_websocket(demo_proc):
    proc = demo_proc("--port", "0", "--relay-url", "http://127.0.0.1:8080")
    assert proc.wait(timeout=WAIT * 2) == 2
    assert b"--relay-url" in proc.stderr.read()


# ---------------------------------------------------------------------------
# The page's JavaScript, under node with a stub DOM and WebSocket.
# ---------------------------------------------------------------------------

NODE = shutil.which("node") or shutil.which("nodejs")

_HARNESS = textwrap.dedent(
    r"""
    const vm = require("vm");
    const fs = require("fs");
    const html = fs.readFileSync(0, "utf8");
    const script = html.match(/<script nonce="[^"]*">([\s\S]*?)<\/script>/)[1];
    const relay = html.match(/<meta name="wsrelay-relay-url" content="([^"]*)">/)[1].replace(/&amp;/g, "&");

    class El {
      constructor(id) { this.id = id; this.children = []; this._text = ""; this.hidden = false; this.value = ""; }
      get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
      set textContent(t) { this._text = String(t); this.children = []; }
      get lastChild() { return this.children[this.children.length - 1]; }
      append(...xs) { for (const x of xs) { x.parent = this; this.children.push(x); } }
      prepend(x) { x.parent = this; this.children.unshift(x); }
      remove() { const s = this.parent.children; s.splice(s.indexOf(this), 1); }
    }
    const els = {};
    const document = {
      getElementById: (id) => (els[id] = els[id] || new El(id)),
      querySelector: () => ({ content: relay }),
      createElement: () => new El(),
      createTextNode: (t) => { const e = new El(); e._text = String(t); return e; },
    };
    const sockets = [];
    class WebSocket {
      constructor(url) { this.url = url; this.readyState = 0; this.sent = []; this.protocol = ""; sockets.push(this); }
      send(d) { this.sent.push(d); }
    }
    WebSocket.OPEN = 1;
    vm.runInNewContext(script, { document, WebSocket, performance: { now: () => 0 }, console, JSON, Date, String });

    const [echo, comments] = sockets;
    const open = (ws) => { ws.readyState = 1; ws.onopen(); };
    open(echo); open(comments);
    document.getElementById("echo-text").value = "hi";
    document.getElementById("echo-form").onsubmit({ preventDefault() {} });
    echo.onmessage({ data: "hi" });
    document.getElementById("comments-text").value = "my comment";
    document.getElementById("comments-form").onsubmit({ preventDefault() {} });
    for (const m of [{ type: "hello", you: 2 }, { type: "viewers", count: 3 },
                     { type: "comment", text: "<b>x</b>", from: 2, at: "2026-01-02T03:04:05.678Z" }]) {
      comments.onmessage({ data: JSON.stringify(m) });
    }
    const t = (id) => document.getElementById(id).textContent;
    const viewersSeen = t("viewers");
    comments.readyState = 3;
    comments.onclose({ code: 1001, reason: "demo origin shutting down", wasClean: true });
    console.log(JSON.stringify({
      urls: sockets.map((s) => s.url),
      echoSent: echo.sent, commentsSent: comments.sent,
      echoLog: t("echo-log"), echoState: t("echo-state"),
      viewersWhileOpen: viewersSeen, commentsLog: t("comments-log"), commentsState: t("comments-state"),
    }));
    """
)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_page_script_connects_to_the_relay_and_shows_what_happens():
    page = demo.PageResource("ws://relay.test:8080/", demo.load_page_template())

    class _Request:
        postpath: list = []

        def setHeader(self, name, value):
            pass

    body = page.render_GET(_Request()).decode()
    out = subprocess.run([NODE, "-e", _HARNESS], input=body, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["urls"] == ["ws://relay.test:8080/echo", "ws://relay.test:8080/comments"]
    assert got["echoSent"] == ["hi"] and got["commentsSent"] == ["my comment"]
    assert "hi" in got["echoLog"] and "ms" in got["echoLog"]
    assert got["echoState"].startswith("open")
    assert got["viewersWhileOpen"] == "3"
    assert "<b>x</b>" in got["commentsLog"] and "(you)" in got["commentsLog"]
    assert "1001" in got["commentsState"] and "demo origin shutting down" in got["commentsState"]
    assert got["commentsState"].startswith("closed")


def test_same_host_page_connects_to_the_host_it_came_from_and_the_demo_config_serves_it_through_the_relay():
    """scripts/demo: the page comes through the relay (etc/demo.ini, http = on) and opens its WebSockets there."""
    from wsrelay.config import load_config

    demo.check_relay_url(demo.SAME_HOST)
    page = demo.PageResource(demo.SAME_HOST, demo.load_page_template()).render_GET(_PageRequest()).decode()
    assert '<meta name="wsrelay-relay-url" content="">' in page
    assert 'location.host' in page
    config = load_config(str(Path(__file__).resolve().parent.parent / "etc" / "demo.ini"))
    assert config.catch_all.http and [str(o) for o in config.catch_all.origins] == ["127.0.0.1:8081"]
    assert config.listen == ("tcp:8080:interface=127.0.0.1",)
    script = (Path(__file__).resolve().parent.parent / "scripts" / "demo").read_text()
    assert "--relay-url same-host" in script and "etc/demo.ini" in script and "--port 8081" in script


class _PageRequest:
    postpath = []

    def __init__(self):
        self.headers = {}

    def setHeader(self, name, value):
        self.headers[name] = value
