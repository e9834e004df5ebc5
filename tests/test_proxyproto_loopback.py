"""
PROXY protocol v1 and v2 against a real `twistd -n wsrelay` on loopback: from
a trusted proxy (127.0.0.1) the origin sees the client address the header
names, in X-Forwarded-For and Forwarded; from an untrusted peer (127.0.0.2)
or without a header the connection is closed without a byte of answer.
"""

import asyncio
import socket
import ssl

import pytest

from tests.support import WAIT, LoopbackOrigin, run, status_of, upgrade_request
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)
from wsrelay.edge.proxyproto import v1_header, v2_header


class HeaderOrigin(LoopbackOrigin):
    """A websockets origin that records the forwarding headers of each handshake."""

    def __init__(self):
        super().__init__()
        self.seen = []

    async def handle(self, ws):
        headers = ws.request.headers
        self.seen.append((headers.get("X-Forwarded-For"), headers.get("Forwarded")))
        await ws.wait_closed()


async def exchange(port, data, source="127.0.0.1"):
    """Connect from `source`, send `data`, return what the relay answers up to its head (or close)."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.setblocking(False)
    answer, writer = b"", None
    try:  # the relay aborts refused connections: a reset may come at any step
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(data)
        await writer.drain()
        while b"\r\n\r\n" not in answer:
            chunk = await asyncio.wait_for(reader.read(65536), WAIT)
            if not chunk:
                break
            answer += chunk
    except ConnectionResetError:
        pass
    if writer is not None:
        writer.close()
    else:
        sock.close()
    return answer


def proxied_config(origin_port):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1:proxy_protocol=on
        trusted_proxies = 127.0.0.1
        [domain:*]
        origins = 127.0.0.1:{origin_port}
        origin_protocol = http
    """


@pytest.mark.parametrize("header", [
    v1_header(("203.0.113.7", 50123), ("127.0.0.1", 80)),
    v2_header(("203.0.113.7", 50123), ("127.0.0.1", 80)),
], ids=["v1", "v2"])
def test_a_trusted_proxys_header_gives_the_origin_the_real_client(make_relay, header):  # noqa: F811
    async def main():
        async with HeaderOrigin() as origin:
            with make_relay(proxied_config(origin.port)) as relay:
                answer = await exchange(relay.port, header + upgrade_request())
                assert status_of(answer) == 101
                assert origin.seen == [("203.0.113.7", "for=203.0.113.7;proto=http;host=example.com")]
                [line] = await asyncio.to_thread(relay.session_lines, 1)
                assert line.split("] ", 1)[1].startswith("203.0.113.7 * ")
                # IPv6 clients too, and a client's own X-Forwarded-For is not believed
                six = v2_header(("2001:db8::7", 50123), ("::1", 80))
                answer = await exchange(relay.port, six + upgrade_request(extra="X-Forwarded-For: 6.6.6.6\r\n"))
                assert status_of(answer) == 101
                assert origin.seen[1] == ("2001:db8::7", 'for="[2001:db8::7]";proto=http;host=example.com')
                lines = await asyncio.to_thread(relay.session_lines, 2)
                assert lines[1].split("] ", 1)[1].startswith("2001:db8::7 * ")

    run(main())


@pytest.mark.parametrize("header", [
    v1_header(("203.0.113.7", 50123), ("127.0.0.1", 80)),
    v2_header(("203.0.113.7", 50123), ("127.0.0.1", 80)),
], ids=["v1", "v2"])
def test_an_untrusted_peer_or_no_header_is_closed_unanswered(make_relay, header):  # noqa: F811
    async def main():
        async with HeaderOrigin() as origin:
            with make_relay(proxied_config(origin.port)) as relay:
                for _ in range(2):
                    assert await exchange(relay.port, header + upgrade_request(), source="127.0.0.2") == b""
                assert await exchange(relay.port, upgrade_request()) == b""  # trusted, but no header
                assert origin.seen == []
                logged = [line for line in relay.log().splitlines() if "[wsrelay.proxy#info]" in line]
                assert len(logged) == 2  # once per peer address
                assert "from 127.0.0.2 closed: not a trusted proxy" in logged[0]
                assert "from 127.0.0.1 closed: no PROXY protocol header" in logged[1]

    run(main())


def test_on_a_tls_listener_the_header_comes_before_the_client_hello(make_relay, pki):  # noqa: F811
    """PROXY v2, then TLS with SNI, then the WebSocket handshake: the origin sees the real client."""
    issued = pki.issue("proxied", ["relay.test"])

    async def main():
        async with HeaderOrigin() as origin:
            relay = make_relay(f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1:proxy_protocol=on
                trusted_proxies = 127.0.0.1
                certificate = {issued.certificate}
                private_key = {issued.key}
                [domain:*]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
            """)
            with relay:
                sock = socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT)
                sock.sendall(v2_header(("198.51.100.9", 40000), ("127.0.0.1", 443)))
                context = ssl.create_default_context(cafile=str(pki.root.path))
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=context, server_hostname="relay.test")
                writer.write(upgrade_request(host="relay.test"))
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
                writer.close()
                assert status_of(head) == 101
                assert origin.seen == [("198.51.100.9", "for=198.51.100.9;proto=https;host=relay.test")]

    run(main())
