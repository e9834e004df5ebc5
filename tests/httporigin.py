"""
An aiohttp origin for the plain HTTP tests: echoes, sized and chunked
bodies, server-sent events paced by the test, a silent handler, a
WebSocket endpoint, and what it received, on a free loopback port.
"""

import asyncio
import hashlib
import json

from aiohttp import WSMsgType, web

from tests.support import free_port

CHUNK = 65536


class HTTPOrigin:
    """The aiohttp app on 127.0.0.1:port; `name` tells origins apart; `seen` lists (method, path) received."""

    def __init__(self, name="origin"):
        self.name = name
        self.port = free_port()
        self.seen = []
        self.headers = []          # the request headers of each request, as received
        self.events = asyncio.Queue()  # /sse sends one event per item put here (None ends the stream)
        self.sent = []             # (event number) as /sse wrote them
        self.trickled = b""        # what /trickle has received so far
        self.runner = None
        self.stopping = None       # set at stop(): handlers that hang return

    def app(self):
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_route("*", "/stream-echo", self.stream_echo)
        app.router.add_get("/size/{n}", self.sized)
        app.router.add_get("/chunked/{n}", self.chunked)
        app.router.add_route("HEAD", "/head/{n}", self.sized)
        app.router.add_get("/sse", self.sse)
        app.router.add_get("/silent", self.silent)
        app.router.add_get("/stall", self.stall)
        app.router.add_get("/hop", self.hop)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/wsecho", self.websocket_echo)
        app.router.add_post("/upload", self.upload)
        app.router.add_post("/trickle", self.trickle)
        app.router.add_get("/download/{n}", self.download)
        return app

    async def start(self):
        self.stopping = asyncio.Event()
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self):
        self.stopping.set()
        await self.runner.cleanup()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    def _note(self, request):
        self.seen.append((request.method, request.path_qs))
        self.headers.append(list(request.raw_headers))

    async def echo(self, request):
        self._note(request)
        body = await request.read()
        return web.json_response({
            "origin": self.name, "method": request.method, "path": request.path_qs,
            "length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "chunked": request.headers.get("Transfer-Encoding", "").lower() == "chunked",
            "content_length": request.headers.get("Content-Length"),
            "headers": {k.decode(): v.decode() for k, v in request.raw_headers},
        }, headers={"X-Origin": self.name})

    async def stream_echo(self, request):
        """The request body sent back as it arrives (chunked)."""
        self._note(request)
        response = web.StreamResponse()
        await response.prepare(request)
        async for data in request.content.iter_chunked(CHUNK):
            await response.write(data)
        await response.write_eof()
        return response

    async def sized(self, request):
        self._note(request)
        n = int(request.match_info["n"])
        return web.Response(body=b"s" * n, headers={"X-Origin": self.name})

    async def chunked(self, request):
        self._note(request)
        n = int(request.match_info["n"])
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, n, 1000):
            await response.write(b"c" * min(1000, n - start))
        await response.write_eof()
        return response

    async def sse(self, request):
        self._note(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        while True:
            number = await self.events.get()
            if number is None:
                break
            self.sent.append(number)
            await response.write(f"id: {number}\ndata: event {number}\n\n".encode())
        await response.write_eof()
        return response

    async def silent(self, request):
        self._note(request)
        await self.stopping.wait()
        return web.Response(text="too late")

    async def stall(self, request):
        """The head and a first piece, then nothing."""
        self._note(request)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first piece")
        await self.stopping.wait()
        return response

    async def hop(self, request):
        self._note(request)
        response = web.Response(text="hop", headers={
            "Connection": "X-Secret-Out", "X-Secret-Out": "origin-only", "Keep-Alive": "timeout=5",
            "Proxy-Connection": "keep-alive", "X-Kept": "yes"})
        return response

    async def websocket(self, request):
        self._note(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(f"{self.name}: {message.data}")
        return ws

    async def websocket_echo(self, request):
        """Every message sent back as it came (no compression, no pings)."""
        self._note(request)
        ws = web.WebSocketResponse(autoping=False, compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    async def upload(self, request):
        self._note(request)
        total = 0
        async for data in request.content.iter_chunked(CHUNK):
            total += len(data)
        return web.json_response({"length": total})

    async def trickle(self, request):
        """Keeps each piece of the body as it arrives (the test watches `trickled` grow)."""
        self._note(request)
        async for data in request.content.iter_any():
            self.trickled += data
        return web.json_response({"length": len(self.trickled)})

    async def download(self, request):
        self._note(request)
        n = int(request.match_info["n"])
        response = web.StreamResponse(headers={"Content-Length": str(n)})
        await response.prepare(request)
        block = b"d" * CHUNK
        left = n
        while left:
            piece = block if left >= CHUNK else block[:left]
            await response.write(piece)
            left -= len(piece)
        await response.write_eof()
        return response


def decode(body):
    return json.loads(body)
