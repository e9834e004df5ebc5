"""
MQTT over WebSockets (docs/configuration.md#mqtt-over-websockets): a client
that answers pings with unmasked pongs, as paho-mqtt does, is closed with
1002 at the relay's first heartbeat; with the documented `heartbeat_interval
= 0` for its domain the session lives on, its keepalive messages relayed.
Real `twistd -n wsrelay`, a raw socket client, a `websockets` origin.
"""

import asyncio
import base64
import os
import re
import signal
import time

from websockets.exceptions import ConnectionClosed

from tests.support import WAIT, LoopbackOrigin, run


class EchoOrigin(LoopbackOrigin):
    async def handle(self, ws):
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass


def frame(opcode, payload, masked=True):
    """One frame as a client sends it; paho-mqtt sends its pongs with masked=False."""
    if not masked:
        return bytes([0x80 | opcode, len(payload)]) + payload
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class PahoLikeClient:
    """Answers every ping with an unmasked pong; sends MQTT PINGREQ (0xC0 0x00) as binary messages."""

    async def open(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(f"GET /mqtt HTTP/1.1\r\nHost: mqtt.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                          f"Sec-WebSocket-Protocol: mqtt\r\n\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return self

    async def next_frame(self):
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        return first & 0x0F, await self.reader.readexactly(length)

    async def run_for(self, seconds):
        """Keepalive every 0.3 s, pongs unmasked; returns the close code the relay sent, or None."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.writer.write(frame(0x2, b"\xc0\x00"))               # PINGREQ, as a binary message
            try:
                opcode, payload = await asyncio.wait_for(self.next_frame(), 0.3)
            except asyncio.TimeoutError:
                continue
            while opcode == 0x9:                                     # the relay's ping
                self.writer.write(frame(0xA, payload, masked=False))
                opcode, payload = await asyncio.wait_for(self.next_frame(), WAIT)
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")
            assert (opcode, payload) == (0x2, b"\xc0\x00")           # echoed by the origin
            await asyncio.sleep(0.3)
        return None

    def close(self):
        self.writer.close()


def test_unmasked_pongs_are_closed_with_1002_unless_the_domain_turns_pings_off(make_relay):
    async def main():
        async with EchoOrigin() as origin:
            relay = make_relay(f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                heartbeat_interval = 1
                [domain:*]
                origins = 127.0.0.1:{origin.port}
                [domain:mqtt.test]
                origins = 127.0.0.1:{origin.port}
            """, start=True)
            client = await PahoLikeClient().open(relay.port)
            assert await client.run_for(WAIT) == 1002                # at the first heartbeat
            client.close()
            assert re.search(r'mqtt\.test "/mqtt" 101 .* close client=1002', "\n".join(relay.session_lines(1)))

            # The documented setting for the domain (the config guide's example, with its keys):
            relay.config.write_text(relay.config.read_text().replace(
                "[domain:mqtt.test]", "[domain:mqtt.test]\nheartbeat_interval = 0\nconnection_timeout = 150"))
            relay.signal(signal.SIGHUP)
            deadline = time.monotonic() + WAIT
            while "reloaded" not in relay.log():
                assert time.monotonic() < deadline, relay.log()
                await asyncio.sleep(0.05)
            client = await PahoLikeClient().open(relay.port)
            assert await client.run_for(3) is None                   # three heartbeat intervals, still open
            client.close()

    run(main())

