"""
Plain HTTP over HTTP/2 streams to an `http = on` domain: the HTTP/2 front
(wsrelay.h2http) drives the same ProxyRequest as HTTP/1.1, to a real aiohttp
origin, with an HTTP/2 client of the tests (tests.h2client) over TLS.
"""

import json

from tests.h2client import H2Client
from tests.httporigin import HTTPOrigin
from tests.support import run
from tests.test_h2_loopback import trusting
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)


def test_plain_requests_on_http2_streams_are_proxied(make_relay, pki):  # noqa: F811
    issued = pki.issue("h2-http", ["app.test"])

    async def main():
        async with HTTPOrigin("o1") as origin:
            relay = make_relay(f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                accounting = off
                [domain:app.test]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
                certificate = {issued.certificate}
                private_key = {issued.key}
                http2 = on
                http = on
                """, start=True)
            client = await H2Client.connect(relay.port, "app.test", trusting(pki))
            assert client.alpn == "h2"
            got = await client.request("app.test", "/echo?x=1")
            seen = json.loads(bytes(got.body))
            assert (got.status, seen["method"], seen["path"]) == (200, "GET", "/echo?x=1")
            assert seen["headers"]["Host"] == "app.test" and seen["headers"]["X-Forwarded-Proto"] == "https"
            body = b"p" * 100_000
            posted = await client.request("app.test", "/echo", method="POST", body=body)
            assert json.loads(bytes(posted.body))["length"] == len(body)
            chunked = await client.request("app.test", "/chunked/5000")
            assert (chunked.status, bytes(chunked.body)) == (200, b"c" * 5000)
            missing = await client.request("app.test", "/nothing-here")
            assert missing.status == 404  # the origin's own
            await client.close()
            assert '[wsrelay.http#info] 127.0.0.1 app.test "POST /echo" 200' in relay.log()

    run(main())
