"""
max_memory over the line: a real `twistd -n wsrelay` process, an origin
flooding every session and clients that stop reading (raw sockets with a
small receive buffer), opened until the relay's resident size crosses the
ceiling set by a reload. Then new handshakes get 503, the sessions holding
the most unsent data are closed (the origin sees 1013, the stalled client's
leg is dropped), the process lives on, and once it is back under the ceiling
a new client is relayed again.
"""

import asyncio
import signal
import socket
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import WAIT, LoopbackOrigin, run, status_of, upgrade_request
from tests.traffic import wait_for_log

MiB = 1 << 20
HEADROOM = 16 * MiB   # max_memory = the idle relay's resident size + this
CHUNK = 256 * 1024


class FloodOrigin(LoopbackOrigin):
    """Floods /flood/* sessions as fast as they drain, echoes others; keeps each close code and reason."""

    def __init__(self):
        super().__init__()
        self.closes = {}

    def serve_options(self):
        return dict(super().serve_options(), max_size=None, compression=None)

    async def handle(self, ws):
        path = ws.request.path
        chunk = bytes(CHUNK)
        try:
            if path.startswith("/flood/"):
                while True:
                    await ws.send(chunk)
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        self.closes[path] = (ws.close_code, ws.close_reason)


def config(origin, max_memory=0):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        connection_timeout = 0
        handshake_rate = 0
        handshake_rate_per_ip = 0
        max_memory = {max_memory}
        [domain:*]
        origins = 127.0.0.1:{origin.port}
        origin_protocol = http
    """


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def stalled_client(port, path):
    """Open a session and never read past the 101: (status, socket, the response head)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, upgrade_request(path=path))
    head = b""
    while b"\r\n\r\n" not in head:
        byte = await asyncio.wait_for(loop.sock_recv(sock, 1), WAIT)
        if not byte:
            break
        head += byte
    return status_of(head), sock, head


def test_over_max_memory_handshakes_get_503_the_largest_go_with_1013_and_it_recovers(make_relay):
    async def main():
        async with FloodOrigin() as origin:
            relay = make_relay(config(origin), start=True)
            pid = relay.proc.pid
            # one session first: the reactor runs (so its SIGHUP handler is in place) and is warm
            async with connect(relay.url("/echo"), ping_interval=None) as ws:
                await ws.send("warm")
                assert await ws.recv() == "warm"
            limit = rss(pid) + HEADROOM
            relay.config.write_text(relay.config.read_text().replace("max_memory = 0", f"max_memory = {limit}"))
            relay.signal(signal.SIGHUP)
            await asyncio.to_thread(wait_for_log, relay, "reloaded")

            sockets, refused = [], None
            for i in range(600):  # bounded: 600 sessions would hold far more than the headroom
                status, sock, head = await stalled_client(relay.port, f"/flood/{i}")
                if status != 101:
                    sock.close()
                    refused = head
                    break
                sockets.append(sock)
                if i % 10 == 9:
                    await asyncio.sleep(0.1)  # let the flood fill what the relay holds (pacing)
            try:
                assert refused is not None, f"never refused; relay at {rss(pid) / MiB:.0f} MiB of {limit / MiB:.0f}"
                assert status_of(refused) == 503 and b"\r\nRetry-After: 5\r\n" in refused
                await asyncio.to_thread(wait_for_log, relay, "closed the")
                assert relay.proc.poll() is None  # alive, not OOM-killed
                # The sessions closed were the ones holding the most: the origin saw 1013.
                deadline = time.monotonic() + WAIT
                while not any(close == (1013, "the relay is short of memory") for close in origin.closes.values()):
                    assert time.monotonic() < deadline, origin.closes
                    await asyncio.sleep(0.05)  # the origin's handlers finish after the close
                # The slow readers left give up too: memory goes back under the ceiling.
                for sock in sockets:
                    sock.close()
                sockets = []

                deadline = time.monotonic() + WAIT * 2
                while True:  # taken again once back under the ceiling
                    try:
                        async with connect(relay.url("/echo"), ping_interval=None, open_timeout=WAIT) as ws:
                            await ws.send("back")
                            assert await ws.recv() == "back"
                        break
                    except InvalidStatus as e:
                        assert e.response.status_code == 503
                        assert time.monotonic() < deadline, f"still refused at {rss(pid) / MiB:.0f} MiB"
                        await asyncio.sleep(0.25)  # polling for the recovery; bounded above
                assert "back under max_memory: taking handshakes again" in relay.log()
                assert relay.proc.poll() is None  # alive all along

                # the others ended when their clients went: 1001 "client gone" (or 1006 if mid-frame)
                assert {code for code, _ in origin.closes.values()} <= {1013, 1001, 1006, 1000}
            finally:
                for sock in sockets:
                    sock.close()

    run(main(), timeout=WAIT * 9)
