"""
An origin that accepts the connection and then closes or resets it before
sending a byte: the upgrade is retried on the domain's next origin (nginx's
`proxy_next_upstream error`), so the client gets its session, not 502. An
origin that sent part of an answer is not retried (the client gets 502).
Real `twistd -n wsrelay`, real sockets on loopback.
"""

import asyncio
import socket
import struct

import pytest

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import WAIT, LoopbackOrigin, free_port, raw_request, run, status_of, upgrade_request
from tests.test_tls_loopback import Origin as TLSOrigin
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)


class EchoOrigin(LoopbackOrigin):
    def __init__(self):
        super().__init__()
        self.sessions = 0

    async def handle(self, ws):
        self.sessions += 1
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass


class BrokenOrigin:
    """
    Accepts, reads the request, then `close`s (FIN), `reset`s (RST, SO_LINGER 0)
    or answers `partial`ly (a status line cut short) and closes; or, for an
    https domain, `tls-reset`s in the middle of the relay's TLS hello, or
    answers it in `plaintext` HTTP.
    """

    def __init__(self, how):
        self.how = how
        self.port = free_port()
        self.accepted = 0

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def handle(self, reader, writer):
        self.accepted += 1
        if self.how == "plaintext":                # an http origin where https was configured
            await reader.read(1)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if self.how == "tls-reset":                # in the middle of the relay's TLS ClientHello
            await reader.read(1)
            self.reset(writer)
            return
        await reader.readuntil(b"\r\n\r\n")
        if self.how == "reset":
            self.reset(writer)
            return
        if self.how == "partial":
            writer.write(b"HTTP/1.1 10")
            await writer.drain()
        writer.close()

    def reset(self, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


def relay_config(first, second):
    # primary-backup: every handshake goes to the broken first origin, the retry to the second;
    # a high eject_after keeps the broken one in rotation for the whole test.
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        [domain:*]
        origins = 127.0.0.1:{first.port} 127.0.0.1:{second.port}
        selector = primary-backup
        eject_after = 100
    """


async def echo_session(relay):
    async with connect(relay.url("/"), open_timeout=WAIT) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"


def check_retried(make_relay, how):
    async def main():
        broken, good = await BrokenOrigin(how).start(), await EchoOrigin().start()
        relay = make_relay(relay_config(broken, good), start=True)
        try:
            for _ in range(3):
                await echo_session(relay)
        finally:
            await broken.stop()
            await good.stop()
        assert (broken.accepted, good.sessions) == (3, 3)
        lines = relay.session_lines(3)
        assert len(lines) == 3 and all(f"127.0.0.1:{good.port}" in line and " 101 " in line for line in lines)
        log = relay.log()
        assert log.count(f"origin 127.0.0.1:{broken.port} for *: {how} the connection during the handshake "
                         f"before sending a byte; trying 127.0.0.1:{good.port}") == 3, log

    run(main())


def test_origin_closing_before_a_byte_is_retried_on_the_next_origin(make_relay):
    check_retried(make_relay, "closed")


def test_origin_resetting_before_a_byte_is_retried_on_the_next_origin(make_relay):
    check_retried(make_relay, "reset")


def test_origin_that_sent_part_of_an_answer_is_not_retried(make_relay):
    async def main():
        broken, good = await BrokenOrigin("partial").start(), await EchoOrigin().start()
        relay = make_relay(relay_config(broken, good), start=True)
        try:
            answer = await raw_request(relay.port, upgrade_request())
        finally:
            await broken.stop()
            await good.stop()
        assert status_of(answer) == 502
        assert (broken.accepted, good.sessions) == (1, 0)

    run(main())


@pytest.mark.parametrize("how", ["tls-reset", "plaintext"])
def test_tls_origin_failing_its_handshake_before_a_byte_is_retried_on_the_next_origin(make_relay, pki, how):  # noqa: F811
    async def main():
        broken = await BrokenOrigin(how).start()
        good = await TLSOrigin(pki.issue(f"retry-{how}", ["origin.test"])).start()
        relay = make_relay(f"""
            [relay]
            listen = tcp:{{port}}:interface=127.0.0.1
            [domain:*]
            origins = 127.0.0.1:{broken.port} 127.0.0.1:{good.port}
            origin_protocol = https
            origin_ca = {pki.root.path}
            origin_sni = origin.test
            selector = primary-backup
            eject_after = 100
        """, start=True)
        try:
            for _ in range(2):
                await echo_session(relay)
        finally:
            await broken.stop()
            await good.stop()
        assert broken.accepted == 2 and len(good.requests) == 2
        origin_lines = [line for line in relay.log().splitlines() if "[wsrelay.origin" in line]
        assert sum(f"before sending a byte; trying 127.0.0.1:{good.port}" in line for line in origin_lines) == 2, \
            origin_lines

    run(main())
