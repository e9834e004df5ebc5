"""
Plain HTTP over HTTP/2 streams (http = on and http2 = on): requests and
WebSockets share one client connection; requests reach an aiohttp origin
over HTTP/1.1 through the HTTP pass-through, bodies stream both ways with
flow control, and each request gets its access log line.
"""

import asyncio
import hashlib
import json
import ssl

import pytest

from tests.h2client import H2Client
from tests.httporigin import HTTPOrigin
from tests.support import WAIT, run
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def cert(pki):  # noqa: F811
    return pki.issue("h2-http", ["a.test", "off.test"])


def config(port, cert):
    return f"""
        [relay]
        listen = ssl:{{port}}:interface=127.0.0.1
        http2 = on
        heartbeat_interval = 0
        [domain:a.test]
        origins = 127.0.0.1:{port}
        origin_protocol = http
        http = on
        certificate = {cert.certificate}
        private_key = {cert.key}
        [domain:off.test]
        origins = 127.0.0.1:{port}
        origin_protocol = http
        certificate = {cert.certificate}
        private_key = {cert.key}
    """


def test_requests_and_a_websocket_share_one_h2_connection(make_relay, pki, cert):  # noqa: F811
    async def main():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port, cert), start=True)
            client = await H2Client.connect(relay.port, "a.test", ssl.create_default_context(cafile=str(pki.root.path)))
            assert client.alpn == "h2"
            ws = await client.websocket("a.test", "/wsecho")
            assert ws.status == 200
            body = bytes(range(256)) * 4096   # 1 MiB: many windows' worth
            sized, posted, chunked, head = await asyncio.gather(
                client.request("a.test", "/size/300000"),
                client.request("a.test", "/echo?x=1", "POST", body, [(b"content-type", b"application/octet-stream")]),
                client.request("a.test", "/chunked/5"),
                client.request("a.test", "/head/1234", "HEAD"))
            ws.send("between requests")
            assert await ws.recv() == "between requests"
            assert (sized.status, len(sized.body)) == (200, 300000)
            assert dict(sized.headers)[b"x-origin"] == b"origin"
            echoed = json.loads(posted.body)
            assert (posted.status, echoed["method"], echoed["path"]) == (200, "POST", "/echo?x=1")
            assert (echoed["length"], echoed["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
            assert echoed["headers"]["Host"] == "a.test"
            assert chunked.status == 200 and chunked.body
            assert (head.status, head.body, dict(head.headers).get(b"content-length")) == (200, b"", b"1234")
            assert not any(name in (b"connection", b"transfer-encoding", b"keep-alive")
                           for s in (sized, posted, chunked) for name, _ in s.headers)
            # A domain without http = on: 426, as over HTTP/1.1, on the same connection (its certificate covers it).
            off = await client.request("off.test", "/size/10")
            assert off.status == 426
            await ws.close(1000)
            await client.close()
            log = relay.log()
            assert '"GET /size/300000" 200' in log and '"POST /echo?x=1" 200' in log, log
            assert relay.session_lines(1)[0].endswith(" proto=h2")
            access = [line for line in log.splitlines() if "[wsrelay.http#info]" in line]
            assert len(access) >= 4 and all(line.endswith(" proto=h2") for line in access), access

    run(main(), timeout=WAIT * 6)


def test_a_client_not_reading_a_response_stops_only_its_stream(make_relay, pki, cert):  # noqa: F811
    async def main():
        async with HTTPOrigin() as origin:
            relay = make_relay(config(origin.port, cert), start=True)
            client = await H2Client.connect(relay.port, "a.test", ssl.create_default_context(cafile=str(pki.root.path)))
            big = client.open([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"),
                               (b":path", b"/download/67108864")], end_stream=True, stalled=True)
            await client.wait_for(big, lambda: len(big.body) >= 65535, "the first window of the download")
            small = await client.request("a.test", "/size/1000")
            assert small.status == 200 and len(small.body) == 1000
            assert len(big.body) <= 65535
            client.reset(big)
            await client.close()

    run(main())
