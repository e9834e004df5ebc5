"""
Statistics by carrying protocol, end to end: a real `twistd -n wsrelay` with
an ssl: listener and http2 = on relays WebSocket sessions over HTTP/1.1
(wss://) and over streams of one HTTP/2 connection (RFC 8441) on one domain.
The stored protocol points tell them apart at 5 minutes and 1 day, the h1
ones equal what the wire carried byte for byte (RFC 6455 frame sizes and the
handshakes both peers saw), the h2 ones equal the relay's session records,
and together they add up exactly to the domain's traffic points. The same
for plain HTTP requests (http = on) over HTTP/1.1 and over HTTP/2 streams,
against their access log lines.
"""

import asyncio
import re
import sqlite3
import ssl
import time

from websockets.asyncio.client import connect

from tests.h2client import H2Client
from tests.httporigin import HTTPOrigin
from tests.support import WAIT, RelayProcess, run
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)
from tests.traffic import CLOSE, EchoOrigin, Expected, frame, wait_for_totals

SIZES = (0, 1, 125, 126, 65535, 70_000)
H2_SIZES = (0, 1, 125, 126, 16_000)  # each frame within one DATA frame (16 KiB)
PROTOCOL_SQL = ("SELECT protocol, SUM(opened), SUM(client_bytes_in), SUM(client_bytes_out) FROM {table} "
                "WHERE domain = 'a.test' AND kind = 'websocket' GROUP BY protocol ORDER BY protocol")
TRAFFIC_SQL = ("SELECT COALESCE(SUM(opened), 0), COALESCE(SUM(client_bytes_in), 0), "
               "COALESCE(SUM(client_bytes_out), 0) FROM {table} WHERE domain = 'a.test' AND kind = 'websocket'")


def read(path, sql, table):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=WAIT)
    try:
        return db.execute(sql.format(table=table)).fetchall()
    except sqlite3.OperationalError:
        return None  # not created yet
    finally:
        db.close()


def by_protocol(path, table):
    rows = read(path, PROTOCOL_SQL, table)
    return None if rows is None else {protocol: tuple(values) for protocol, *values in rows}


def test_sessions_over_h1_and_h2_are_counted_apart_and_add_up_to_the_traffic(tmp_path, pki):  # noqa: F811
    cert = pki.issue("h2-stats", ["a.test"])
    context = ssl.create_default_context(cafile=str(pki.root.path))

    async def scenario():
        expected = Expected()   # the h1 sessions, as the wire carried them
        async with EchoOrigin() as origin:
            relay = RelayProcess(tmp_path, f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                heartbeat_interval = 0
                connection_timeout = 0
                [accounting]
                database = stats.sqlite
                flush_interval = 0.3
                [domain:a.test]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
                certificate = {cert.certificate}
                private_key = {cert.key}
                http2 = on
                """)
            path = relay.dir / "stats.sqlite"
            with relay:
                for i in range(2):   # HTTP/1.1 upgrades over TLS (ALPN not offered: http/1.1)
                    where = f"/h1/{i}"
                    async with connect(f"wss://a.test:{relay.port}{where}", host="127.0.0.1", port=relay.port,
                                       ssl=context, ping_interval=None, compression=None, max_size=None) as ws:
                        for n in SIZES:
                            await ws.send(bytes(n))
                            assert len(await ws.recv()) == n
                        handshake = (len(ws.request.serialize()), len(ws.response.serialize()))
                    expected.session(handshake, origin.handshakes[where], SIZES)

                client = await H2Client.connect(relay.port, "a.test", context)
                assert client.alpn == "h2"
                sockets = [await client.websocket("a.test", f"/h2/{i}") for i in range(3)]
                assert [ws.status for ws in sockets] == [200] * 3
                for n in H2_SIZES:   # interleaved on the one connection
                    for ws in sockets:
                        ws.send(bytes(n))
                        assert len(await ws.recv()) == n
                for ws in sockets:
                    assert (await ws.close(1000)).code == 1000
                await client.close()
                frames_in = 3 * (sum(frame(n, True) for n in H2_SIZES) + frame(CLOSE, True))
                frames_out = 3 * (sum(frame(n, False) for n in H2_SIZES) + frame(CLOSE, False))

                lines = await asyncio.to_thread(relay.session_lines, 5)
                assert len(lines) == 5, relay.log()
                records = {"h1": [0, 0, 0], "h2": [0, 0, 0]}
                for line in lines:
                    found = re.search(r" in=\d+/(\d+)B out=\d+/(\d+)B .* proto=(h1|h2)$", line)
                    assert found, line
                    record = records[found[3]]
                    record[0] += 1
                    record[1] += int(found[1])
                    record[2] += int(found[2])
                h1 = (2, expected.totals["client_bytes_in"], expected.totals["client_bytes_out"])
                assert tuple(records["h1"]) == h1   # the records themselves are exact for h1
                h2 = tuple(records["h2"])
                # h2 sessions: their WebSocket frames exactly, plus each handshake in its HTTP/1.1 form
                assert 3 * 100 < h2[1] - frames_in < 3 * 1000, (h2, frames_in)
                assert 3 * 100 < h2[2] - frames_out < 3 * 1000, (h2, frames_out)

                want = {"h1": h1, "h2": h2}

                def stored():
                    return by_protocol(path, "protocols_5m"), by_protocol(path, "protocols_1d")

                class Want:
                    totals = want

                await asyncio.to_thread(wait_for_totals, stored, Want)
                # together: the domain's traffic points, not a byte dropped or counted twice
                for width in ("5m", "1h", "1d"):
                    [traffic] = read(path, TRAFFIC_SQL, f"traffic_{width}")
                    assert traffic == tuple(a + b for a, b in zip(h1, h2)), width
                    assert by_protocol(path, f"protocols_{width}") == want, width

    run(scenario(), timeout=WAIT * 4)


def test_plain_requests_over_h1_and_h2_are_counted_apart_and_add_up_to_the_traffic(tmp_path, pki):  # noqa: F811
    cert = pki.issue("h2-stats-http", ["a.test"])
    context = ssl.create_default_context(cafile=str(pki.root.path))
    http_protocols = PROTOCOL_SQL.replace("'websocket'", "'http'")
    http_traffic = TRAFFIC_SQL.replace("'websocket'", "'http'")

    async def scenario():
        async with HTTPOrigin() as origin:
            relay = RelayProcess(tmp_path, f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                heartbeat_interval = 0
                [accounting]
                database = stats.sqlite
                flush_interval = 0.3
                [domain:a.test]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
                http = on
                http2 = on
                certificate = {cert.certificate}
                private_key = {cert.key}
                """)
            path = relay.dir / "stats.sqlite"
            with relay:
                reader, writer = await asyncio.open_connection("127.0.0.1", relay.port, ssl=context,
                                                               server_hostname="a.test")
                writer.write(b"GET /size/1000 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                answer = await asyncio.wait_for(reader.read(), WAIT)
                assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
                writer.close()

                client = await H2Client.connect(relay.port, "a.test", context)
                assert client.alpn == "h2"
                answers = [await client.request("a.test", f"/size/{n}") for n in (10, 5000, 70_000)]
                assert [a.status for a in answers] == [200] * 3
                await client.close()

                def access_lines():
                    return [line for line in relay.log().splitlines() if "[wsrelay.http#info]" in line]

                deadline = time.monotonic() + WAIT
                while len(access_lines()) < 4 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)  # the access line follows the response's end; bounded by WAIT
                records = {"h1": [0, 0, 0], "h2": [0, 0, 0]}
                for line in access_lines():
                    found = re.search(r" in=(\d+)B out=(\d+)B .* proto=(h1|h2)$", line)
                    assert found, line
                    record = records[found[3]]
                    record[0] += 1
                    record[1] += int(found[1])
                    record[2] += int(found[2])
                assert records["h1"][0] == 1 and records["h2"][0] == 3, records
                h2 = tuple(records["h2"])

                def stored():
                    rows = read(path, http_protocols, "protocols_5m")
                    return None if rows is None else {p: tuple(v) for p, *v in rows}

                deadline = time.monotonic() + WAIT
                while (stored() or {}).get("h2") != h2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # polling the file the relay flushes to; bounded by WAIT
                found = stored()
                assert found["h2"] == h2 and found["h1"][0] == 1, (found, records)
                for width in ("5m", "1h", "1d"):
                    [traffic] = read(path, http_traffic, f"traffic_{width}")
                    by = {p: tuple(v) for p, *v in read(path, http_protocols, f"protocols_{width}")}
                    assert by == found, width
                    assert traffic == tuple(a + b for a, b in zip(found["h1"], found["h2"])), width

    run(scenario(), timeout=WAIT * 4)
