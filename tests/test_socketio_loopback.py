"""
A real Socket.IO application through the relay: python-socketio's server
under aiohttp as the origin, its client with the default transports (HTTP
long-polling first, then the WebSocket upgrade on the same host and port),
which used to fail with "Unexpected status code 426".
"""

import asyncio
import re
import time

import socketio
from aiohttp import web

from tests.support import WAIT, free_port, run


class SocketIOOrigin:
    def __init__(self):
        self.port = free_port()
        self.server = socketio.AsyncServer(async_mode="aiohttp")
        self.server.on("echo", self.echo)
        self.transports = []

    async def echo(self, sid, data):
        self.transports.append(self.server.transport(sid))
        await self.server.emit("reply", {"got": data}, to=sid)
        return {"ack": data}

    async def __aenter__(self):
        app = web.Application()
        self.server.attach(app)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def test_socketio_connects_by_long_polling_upgrades_and_exchanges_events(make_relay):
    async def scenario():
        async with SocketIOOrigin() as origin:
            relay = make_relay(f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                accounting = off
                [domain:*]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
                http = on
                """, start=True)
            client = socketio.AsyncClient(reconnection=False)
            replies = asyncio.Queue()
            client.on("reply", replies.put_nowait)
            await client.connect(f"http://127.0.0.1:{relay.port}", wait_timeout=WAIT)  # default transports
            try:
                assert await client.call("echo", "first", timeout=WAIT) == {"ack": "first"}
                assert await asyncio.wait_for(replies.get(), WAIT) == {"got": "first"}
                deadline = time.monotonic() + WAIT
                while client.transport() != "websocket":
                    assert time.monotonic() < deadline, "the client never upgraded to WebSocket"
                    await asyncio.sleep(0.05)  # the upgrade runs in the background; bounded by WAIT
                for n in range(3):
                    assert await client.call("echo", f"over ws {n}", timeout=WAIT) == {"ack": f"over ws {n}"}
                    assert await asyncio.wait_for(replies.get(), WAIT) == {"got": f"over ws {n}"}
                assert origin.transports[-1] == "websocket"
            finally:
                await client.disconnect()
            # connected by a long-poll, proxied as plain HTTP (it used to get 426)
            assert re.search(r'\[wsrelay\.http#info\] 127\.0\.0\.1 \* "GET /socket\.io/\?transport=polling&EIO=4[^"]*" 200 ',
                             relay.log()), relay.log()
            deadline = time.monotonic() + WAIT
            while "[wsrelay.session#info]" not in relay.log():
                assert time.monotonic() < deadline, relay.log()
                await asyncio.sleep(0.05)  # the session line follows the close; bounded by WAIT
            assert re.search(r'\[wsrelay\.session#info\] 127\.0\.0\.1 \* "/socket\.io/\?transport=websocket[^"]*" 101 ',
                             relay.log()), relay.log()

    run(scenario())
