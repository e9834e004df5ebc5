"""
SIGHUP on a real `twistd -n wsrelay` process under live traffic: sessions of
an unchanged domain lose nothing (message counters on both ends), sessions of
a changed or removed domain get 1012 within drain_window, new handshakes
follow the new config, listeners come and go, and an invalid file changes
nothing.
"""

import asyncio
import signal
import socket
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import WAIT, LoopbackOrigin, free_port, run

WINDOW = 2.0


class CountingOrigin(LoopbackOrigin):
    """Echoes every message and counts, per connection (the path), what it received."""

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.received = {}
        self.closes = {}
        self.paths = []

    async def handle(self, ws):
        path = ws.request.path
        self.paths.append(path)
        self.received[path] = 0
        try:
            async for message in ws:
                self.received[path] += 1
                await ws.send(message)
        except ConnectionClosed:
            pass
        self.closes[path] = ws.close_code


class Talker:
    """A client that keeps sending numbered messages and reading their echoes."""

    def __init__(self, relay, host, name):
        self.relay, self.host, self.path = relay, host, f"/{name}"
        self.sent = self.echoed = 0
        self.stop = asyncio.Event()
        self.close_code = None
        self.closed_at = None

    async def start(self):
        self.ws = await connect(f"ws://{self.host}{self.path}", host="127.0.0.1", port=self.relay.port,
                                ping_interval=None)
        self.task = asyncio.create_task(self.talk())
        return self

    async def talk(self):
        try:
            while not self.stop.is_set():
                self.sent += 1
                await self.ws.send(str(self.sent))
                assert await self.ws.recv() == str(self.sent)
                self.echoed += 1
                await asyncio.sleep(0.005)  # pacing the traffic, not waiting for an event
            await self.ws.close(1000)
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code
        self.closed_at = time.monotonic()

    async def finish(self):
        self.stop.set()
        await asyncio.wait_for(self.task, WAIT)


def config(a, b, change_to, listen, gone=True):
    text = f"""
        [relay]
        listen = {listen}
        drain_window = {WINDOW}
        [domain:keep.test]
        origins = 127.0.0.1:{a.port}
        origin_protocol = http
        [domain:change.test]
        origins = 127.0.0.1:{change_to.port}
        origin_protocol = http
    """
    if gone:
        text += f"""
        [domain:gone.test]
        origins = 127.0.0.1:{a.port}
        origin_protocol = http
        """
    return "\n".join(line.strip() for line in text.splitlines())


async def until(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # polling with a deadline


def count_in_log(relay, text):
    return relay.log().count(text)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_sighup_keeps_untouched_sessions_and_restarts_changed_ones(make_relay):
    async def main():
        async with CountingOrigin("a") as a, CountingOrigin("b") as b:
            relay = make_relay(config(a, b, a, "tcp:{port}:interface=127.0.0.1"))
            relay.start()
            base_listen = f"tcp:{relay.port}:interface=127.0.0.1"
            second = free_port()
            keep = [await Talker(relay, "keep.test", f"keep{i}").start() for i in range(3)]
            doomed = [await Talker(relay, host, f"{host}{i}").start()
                      for host in ("change.test", "gone.test") for i in range(3)]
            await until(lambda: all(t.echoed >= 5 for t in keep + doomed), "traffic on every session")

            # 1. a valid change: change.test moves to origin b, gone.test goes, a listener is added
            relay.config.write_text(config(a, b, b, f"{base_listen} tcp:{second}:interface=127.0.0.1", gone=False))
            relay.signal(signal.SIGHUP)
            await until(lambda: count_in_log(relay, "reloaded:") == 1, "the reload")
            reloaded = time.monotonic()
            await until(lambda: all(t.close_code is not None for t in doomed), "1012 on the changed sessions",
                        timeout=WINDOW + WAIT)
            assert [t.close_code for t in doomed] == [1012] * 6
            assert max(t.closed_at for t in doomed) - reloaded <= WINDOW + 1.0
            await until(lambda: all(a.closes.get(t.path) for t in doomed), "1012 towards the origin")
            assert {a.closes[t.path] for t in doomed} == {1012}
            assert all(t.close_code is None for t in keep)

            # new handshakes follow the new config at once; the new listener is open
            async with connect("ws://change.test/new", host="127.0.0.1", port=relay.port) as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
            assert "/new" in b.paths and "/new" not in a.paths
            with pytest.raises(InvalidStatus) as refused:
                async with connect("ws://gone.test/", host="127.0.0.1", port=relay.port):
                    pass
            assert refused.value.response.status_code == 404
            async with connect("ws://keep.test/second", host="127.0.0.1", port=second) as ws:
                await ws.send("y")
                assert await ws.recv() == "y"

            # 2. an invalid file: one clear line, nothing changes
            relay.config.write_text(config(a, b, a, base_listen).replace("origins = 127.0.0.1", "origins = ws://x", 1))
            relay.signal(signal.SIGHUP)
            await until(lambda: "refused, the running configuration stays" in relay.log(), "the refusal")
            # (refused handshakes have session lines saying "refused:" too: only the reload's line here)
            refusal = [line for line in relay.log().splitlines() if "refused, the running configuration" in line]
            assert len(refusal) == 1 and "[domain:keep.test] origins:" in refusal[0], refusal
            async with connect("ws://change.test/still-b", host="127.0.0.1", port=relay.port) as ws:
                await ws.send("z")
                assert await ws.recv() == "z"
            assert "/still-b" in b.paths and port_open(second)

            # 3. the added listener removed again
            relay.config.write_text(config(a, b, b, base_listen, gone=False))
            relay.signal(signal.SIGHUP)
            await until(lambda: count_in_log(relay, "reloaded:") == 2, "the second reload")
            await until(lambda: not port_open(second), "the removed listener to close")

            # the untouched sessions lost nothing, in either direction
            before = [t.echoed for t in keep]
            await until(lambda: all(t.echoed > n + 5 for t, n in zip(keep, before)), "traffic after reloads")
            for talker in keep:
                await talker.finish()
                assert talker.close_code == 1000
                assert talker.sent == talker.echoed == a.received[talker.path]
            await until(lambda: all(a.closes.get(t.path) == 1000 for t in keep), "the origin's side closed")

    run(main(), timeout=60)
