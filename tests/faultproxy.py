"""
A loopback TCP proxy the tests put between a client and the relay, or
between the relay and an origin, to make the network misbehave: latency,
a bandwidth cap, a connection cut after a given number of bytes (in the
middle of a frame), a reset. It counts every byte it moved, each way, so a
test can hold the relay's statistics to exactly what crossed.

"up" is the direction from the side that connected to the proxy (the
client, or the relay towards an origin) to the side the proxy dialled.
"""

import asyncio
import socket
import struct
from dataclasses import dataclass

UP, DOWN = "up", "down"
CHUNK = 16384


@dataclass
class Faults:
    latency: float = 0.0        # seconds every chunk waits before it is passed on
    rate: float = 0.0           # bytes per second each way; 0: no cap
    cut: tuple = None           # (direction, n): after n bytes that way, FIN to their receiver, close the sender
    reset: tuple = None         # (direction, n): after n bytes that way and a quiet `settle`, RST both sides
    settle: float = 0.3         # seconds without traffic before a reset (so every byte sent was read)


class Link:
    """One proxied connection and its counts."""

    def __init__(self):
        self.delivered = {UP: 0, DOWN: 0}   # bytes written to the receiver, each way
        self.read = {UP: 0, DOWN: 0}        # bytes read from the sender, each way
        self.done = asyncio.Event()
        self.writers = {}
        self.fault = None                    # what happened: "cut" or "reset"


class FaultProxy:
    """Listens on a free loopback port and forwards every connection to `target` (host, port)."""

    def __init__(self, target, faults=None):
        self.target = target
        self.faults = faults or Faults()
        self.links = []
        self.server = None
        self.port = None

    async def start(self):
        self.server = await asyncio.start_server(self._serve, sock=_socket(listen=True))
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        self.server.close()
        for link in self.links:
            for writer in link.writers.values():
                writer.transport.abort()
        await self.server.wait_closed()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    async def wait_closed(self, timeout=10.0):
        await asyncio.wait_for(asyncio.gather(*(link.done.wait() for link in self.links)), timeout)

    def totals(self):
        """Bytes delivered and read each way, summed over every connection."""
        return {f"{what}_{way}": sum(getattr(link, what)[way] for link in self.links)
                for what in ("delivered", "read") for way in (UP, DOWN)}

    async def reset_now(self):
        """RST both sides of every connection at once (call it when no byte is in flight)."""
        for link in self.links:
            link.fault = "reset"
            for writer in link.writers.values():
                _rst(writer)

    async def _serve(self, client_reader, client_writer):
        link = Link()
        self.links.append(link)
        try:
            sock = _socket()
            await asyncio.get_running_loop().sock_connect(sock, self.target)
            server_reader, server_writer = await asyncio.open_connection(sock=sock)
        except OSError:
            client_writer.transport.abort()
            link.done.set()
            return
        link.writers = {"client": client_writer, "server": server_writer}
        _nodelay(client_writer)
        _nodelay(server_writer)
        await asyncio.gather(
            self._pump(link, UP, client_reader, server_writer, client_writer),
            self._pump(link, DOWN, server_reader, client_writer, server_writer),
            return_exceptions=True)
        for writer in link.writers.values():
            writer.transport.abort()
        link.done.set()

    async def _pump(self, link, way, reader, writer, sender_writer):
        faults = self.faults
        cut = faults.cut[1] if faults.cut and faults.cut[0] == way else None
        reset = faults.reset[1] if faults.reset and faults.reset[0] == way else None
        stopped = False  # after a cut this way: read on (counted) so the sender's every byte is accounted, pass nothing
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):  # reset: so is the other side
                for other in link.writers.values():
                    other.transport.abort()
                break
            if not data:  # an end (FIN): passed on, the other way keeps going
                if writer in link.writers.values() and writer.can_write_eof() and not writer.is_closing():
                    try:
                        writer.write_eof()
                    except (ConnectionError, OSError):
                        pass
                break
            link.read[way] += len(data)
            if stopped or link.fault == "reset" or writer not in link.writers.values():
                continue  # the receiver is gone (a cut): read on, so the sender's every byte is counted
            for limit, kind in ((cut, "cut"), (reset, "reset")):
                if limit is not None and link.delivered[way] + len(data) >= limit:
                    data = data[:limit - link.delivered[way]]
                    stopped = True
                    break
            if faults.latency:
                await asyncio.sleep(faults.latency)
            if faults.rate:
                await asyncio.sleep(len(data) / faults.rate)
            if data:
                try:
                    writer.write(data)
                    await writer.drain()
                except (ConnectionError, OSError):
                    break
                link.delivered[way] += len(data)
            if stopped and cut is not None:
                link.fault = "cut"
                if writer.can_write_eof():
                    writer.write_eof()           # the receiver reads the n bytes, then the end
                sender_writer.transport.abort()  # the sender's connection ends without a word
                # keep reading what the receiver still sends, so that it is counted
                link.writers = {k: w for k, w in link.writers.items() if w is not sender_writer}
                break
            if stopped and reset is not None:
                await asyncio.sleep(faults.settle)  # the receiver reads all it was given
                link.fault = "reset"
                for other in link.writers.values():
                    _rst(other)
                break


def _socket(listen=False):
    """
    A loopback socket with a receive buffer as large as the system allows: the
    proxy's side acknowledges what the relay sends at once, so nothing the
    relay counted is left in its kernel's send queue when a connection is
    reset (that, a reset throws away, and nobody could count it exactly).
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # before listen/connect: the window scale
    sock.setblocking(False)
    if listen:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
    return sock


def _nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _rst(writer):
    """Close with a reset (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
