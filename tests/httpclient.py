"""
A raw HTTP/1.1 client for the plain HTTP tests: exact bytes on the wire,
several requests on one connection, partial bodies, and responses read with
their framing (Content-Length, chunked, or until close). Every wait is bounded.
"""

import asyncio

from tests.support import WAIT


class Response:
    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers      # [(name, value)] as received
        self.body = body
        self.raw = raw              # the bytes on the wire

    def header(self, name):
        found = [v for n, v in self.headers if n.lower() == name.lower()]
        return found[0] if found else None

    def names(self):
        return {n.lower() for n, _ in self.headers}


class RawClient:
    """One TCP connection to the relay."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.sent = 0
        self.received = 0

    @classmethod
    async def open(cls, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data):
        self.sent += len(data)
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self, how, *args):
        data = await asyncio.wait_for(getattr(self.reader, how)(*args), WAIT)
        self.received += len(data)
        return data

    async def head(self):
        raw = await self._read("readuntil", b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")[:-2]
        status = int(lines[0].split()[1])
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
        return status, headers, raw

    async def response(self, method="GET"):
        """One whole response (1xx interim ones skipped, their bytes counted)."""
        raw = b""
        while True:
            status, headers, head = await self.head()
            raw += head
            if status >= 200 or status == 101:
                break
        names = {n.lower(): v for n, v in headers}
        body = b""
        if method == "HEAD" or status in (101, 204, 304):
            pass
        elif names.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await self._read("readuntil", b"\r\n")
                raw += size_line
                size = int(size_line.split(b";")[0], 16)
                piece = await self._read("readexactly", size + 2)
                raw += piece
                if size == 0:
                    break
                body += piece[:-2]
        elif "content-length" in names:
            body = await self._read("readexactly", int(names["content-length"]))
            raw += body
        else:
            body = await self._read("read", -1)
            raw += body
        return Response(status, headers, body, raw)

    async def closed(self):
        """Whether the relay closed the connection (EOF within WAIT)."""
        return await asyncio.wait_for(self.reader.read(1), WAIT) == b""

    def close(self):
        self.writer.close()


def request(method, path, host, body=None, headers=(), chunked=False, version="HTTP/1.1"):
    """The bytes of one request; a body is sent sized (Content-Length) or chunked."""
    lines = [f"{method} {path} {version}", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    payload = b""
    if body is not None:
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            half = len(body) // 2
            for piece in (body[:half], body[half:]):
                if piece:
                    payload += b"%x\r\n" % len(piece) + piece + b"\r\n"
            payload += b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
