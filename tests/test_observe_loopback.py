"""
What an operator looks at, on a real `twistd -n wsrelay` on loopback: the
health endpoints, no Server header naming a version, the session line of a
refused handshake (and no Autobahn line repeating it), the summary of a flood
of refusals, the live sessions API (checked against docs/openapi.yaml,
closing a session over real sockets) and /metrics parsed with
prometheus_client's own parser.
"""

import asyncio
import json
import random
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import WAIT, RelayProcess, free_port, raw_request, run, status_of, upgrade_request
from tests.test_admin_loopback import DOC, TOKEN, check
from tests.traffic import EchoOrigin, Expected, talk, wait_for_log


def relay_with_admin(tmp_path, origin_port, admin_port, extra="", accounting="", last="*"):
    (tmp_path / "token").write_text(TOKEN + "\n")
    return RelayProcess(tmp_path, f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        {extra}
        [accounting]
        database = stats.sqlite
        flush_interval = 0.2
        admin = tcp:{admin_port}:interface=127.0.0.1
        admin_token_file = token
        {accounting}
        [domain:chat.example.com]
        origins = 127.0.0.1:{origin_port}
        [domain:{last}]
        origins = 127.0.0.1:{origin_port}
        """)


def http(port, path, method="GET", token=TOKEN, headers=()):
    """(status, headers, body bytes) of one request to the admin endpoint."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in headers:
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(port, path, method="GET", token=TOKEN, spec=None):
    """(status, JSON body) checked against the OpenAPI document's schema for that path and status."""
    code, _, body = http(port, path, method, token)
    body = json.loads(body)
    spec = spec or path.split("?")[0]
    check_method(spec, method.lower(), code, body)
    return code, body


def check_method(spec, method, code, body):
    response = DOC["paths"][spec][method]["responses"][str(code)]
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    import jsonschema

    schema = dict(response["content"]["application/json"]["schema"], components=DOC["components"])
    jsonschema.Draft202012Validator(schema).validate(body)


def metrics_of(port, token=TOKEN):
    code, headers, body = http(port, "/metrics", token=token)
    assert code == 200, body
    assert headers["content-type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def sample(families, name, suffix="_total", **labels):
    """The value of one sample (0 when absent)."""
    family = families.get(name)
    for s in family.samples if family else ():
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0


def ready(port):
    try:
        return http(port, "/readyz", token=None)[0] == 200
    except OSError:  # not listening yet
        return False


def wait_until(probe, what):
    deadline = time.monotonic() + WAIT
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {WAIT}s"
        time.sleep(0.05)  # polling the relay from outside; bounded by WAIT


def test_health_endpoints_need_no_token_and_no_answer_names_a_server(tmp_path):
    admin_port = free_port()

    async def scenario():
        async with EchoOrigin() as origin:
            with relay_with_admin(tmp_path, origin.port, admin_port) as relay:
                assert (await asyncio.to_thread(api, admin_port, "/healthz", "GET", None)) == \
                    (200, {"status": "ok"})
                code, body = await asyncio.to_thread(api, admin_port, "/readyz", "GET", None)
                assert (code, body["status"]) == (200, "ready")
                assert body["checks"] == {"config_loaded": True, "listeners_open": True, "not_draining": True}
                answers = [await asyncio.to_thread(http, admin_port, path, "GET", token)
                           for path, token in (("/healthz", None), ("/v1/sessions", None), ("/v1/sessions", TOKEN),
                                               ("/metrics", TOKEN), ("/", None), ("/nothing", TOKEN))]
                assert [code for code, _, _ in answers] == [200, 401, 200, 200, 200, 404]
                assert all(headers["server"] is None for _, headers, _ in answers)
                # the relay's own answers: a refusal, the plain-HTTP page, a 101
                for head in (upgrade_request(host="nowhere.test"), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"):
                    answer = await raw_request(relay.port, head, read_until_close=False)
                    assert b"\r\nserver:" not in answer.lower().split(b"\r\n\r\n")[0] + b"\r\n"
                async with connect(relay.url("/x")) as ws:
                    assert "server" not in {k.lower() for k in ws.response.headers.keys()}
                # a session that keeps the drain going: its client never answers the relay's
                # Close (the relay waits out its closing timeout), so the process is still
                # draining, not gone, when /readyz is asked
                reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
                writer.write(upgrade_request(host="chat.example.com", path="/held"))
                assert status_of(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)) == 101
                relay.signal(15)  # draining: not ready any more, still alive

                def not_ready():
                    code, body = api(admin_port, "/readyz", "GET", None)
                    return (code, body) if code != 200 else None

                code, body = await asyncio.to_thread(wait_until, not_ready, "/readyz 503 while draining")
                assert (code, body["checks"]["not_draining"]) == (503, False)
                writer.close()

    run(scenario())


def test_a_refused_handshake_has_one_session_line_and_a_flood_is_summarised(tmp_path):
    admin_port = free_port()

    async def scenario():
        async with EchoOrigin() as origin:
            relay = relay_with_admin(tmp_path, origin.port, admin_port,
                                     "log_refusals_per_ip = 3\nlog_summary_interval = 1\n"
                                     "handshake_rate_per_ip = 0", last="known.example")
            with relay:
                for i in range(20):
                    answer = await raw_request(relay.port, upgrade_request(host=f"n{i}.test", path=f"/p{i}?q=1"))
                    assert status_of(answer) == 404
                wait_for_log(relay, "17 refused handshakes (404: 17)")
                log = relay.log()
                lines = [l for l in log.splitlines() if "refused:" in l]
                assert len(lines) == 3, log
                assert '127.0.0.1 - "/p0?q=1" 404 refused: no such domain on this relay' in lines[0]
                assert "not logged one by one" in log
                assert "dropping connection" not in log and "failing WebSocket opening handshake" not in log
                assert "None" not in "".join(lines)

    run(scenario())


def test_sessions_api_lists_filters_and_closes_sessions_as_documented(tmp_path):
    admin_port = free_port()

    async def scenario():
        async with EchoOrigin() as origin:
            with relay_with_admin(tmp_path, origin.port, admin_port) as relay:
                async with connect(f"ws://chat.example.com:{relay.port}/a?x=1", host="127.0.0.1") as one, \
                        connect(relay.url("/b")) as two:
                    await one.send("hello")
                    assert await one.recv() == "hello"
                    code, body = await asyncio.to_thread(api, admin_port, "/v1/sessions")
                    assert code == 200 and body["count"] == 2
                    listed = {s["path"]: s for s in body["sessions"]}
                    first = listed["/a?x=1"]
                    assert (first["domain"], first["client"], first["origin"]) == \
                        ("chat.example.com", "127.0.0.1", f"127.0.0.1:{origin.port}")
                    assert first["client_leg"]["messages_in"] == 1 and first["client_leg"]["messages_out"] == 1
                    assert first["origin_leg"]["messages_in"] == 1 and first["origin_leg"]["messages_out"] == 1
                    code, body = await asyncio.to_thread(api, admin_port, "/v1/sessions?domain=chat.example.com",
                                                         spec="/v1/sessions")
                    assert [s["path"] for s in body["sessions"]] == ["/a?x=1"]
                    code, body = await asyncio.to_thread(api, admin_port, "/v1/sessions?client=10.0.0.0/8",
                                                         spec="/v1/sessions")
                    assert body == {"count": 0, "truncated": False, "sessions": []}
                    code, body = await asyncio.to_thread(api, admin_port, "/v1/sessions?limit=1",
                                                         spec="/v1/sessions")
                    assert (body["count"], body["truncated"], len(body["sessions"])) == (2, True, 1)
                    for bad in ("limit=0", "client=nope", "colour=red"):
                        assert (await asyncio.to_thread(api, admin_port, "/v1/sessions?" + bad,
                                                        spec="/v1/sessions"))[0] == 400
                    assert (await asyncio.to_thread(api, admin_port, "/v1/sessions", "GET", None))[0] == 401
                    spec = "/v1/sessions/{id}"
                    url = f"/v1/sessions/{first['id']}"
                    for bad in ("code=1005", "code=999", "code=abc", "origin_code=1011", "reason=" + "x" * 124):
                        assert (await asyncio.to_thread(api, admin_port, f"{url}?{bad}", "DELETE",
                                                        spec=spec))[0] == 400
                    assert (await asyncio.to_thread(api, admin_port, "/v1/sessions/nope", "DELETE",
                                                    spec=spec))[0] == 404
                    assert (await asyncio.to_thread(api, admin_port, url + "?code=4000", "DELETE", None,
                                                    spec=spec))[0] == 401
                    code, body = await asyncio.to_thread(api, admin_port, f"{url}?code=4321&reason=bye%20now",
                                                         "DELETE", spec=spec)
                    assert (code, body["client_code"], body["origin_code"]) == (200, 4321, 1001)
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(one.recv(), WAIT)
                    assert (one.close_code, one.close_reason) == (4321, "bye now")
                    assert (await asyncio.to_thread(api, admin_port, url, "DELETE", spec=spec))[0] == 404
                    await two.send("still here")
                    assert await two.recv() == "still here"

    run(scenario())


def test_metrics_move_by_exactly_what_a_scripted_session_sent(tmp_path):
    admin_port = free_port()

    async def scenario():
        expected = Expected()
        async with EchoOrigin() as origin:
            with relay_with_admin(tmp_path, origin.port, admin_port) as relay:
                before = await asyncio.to_thread(metrics_of, admin_port)
                await talk(relay, origin, expected, sizes=(0, 10, 70_000))
                await asyncio.to_thread(relay.session_lines, 1)
                after = await asyncio.to_thread(metrics_of, admin_port)
                t = expected.totals
                for leg in ("client", "origin"):
                    for direction in ("in", "out"):
                        moved = sample(after, "wsrelay_bytes", leg=leg, direction=direction, domain="*") - \
                            sample(before, "wsrelay_bytes", leg=leg, direction=direction, domain="*")
                        assert moved == t[f"{leg}_bytes_{direction}"], (leg, direction)
                        moved = sample(after, "wsrelay_messages", leg=leg, direction=direction, domain="*") - \
                            sample(before, "wsrelay_messages", leg=leg, direction=direction, domain="*")
                        assert moved == t[f"{leg}_messages_{direction}"]
                assert sample(after, "wsrelay_handshakes", domain="*", status="101") == 1
                assert sample(after, "wsrelay_closes", domain="*", leg="client", code="1000", who="client") == 1
                assert sample(after, "wsrelay_closes", domain="*", leg="origin", code="1000", who="relay") == 1
                assert sample(after, "wsrelay_sessions_open", "", domain="*") == 0
                assert sample(after, "wsrelay_origin_up", "", domain="*", origin=f"127.0.0.1:{origin.port}") == 1
                assert sample(after, "wsrelay_origin_connect_seconds", "_count", domain="*") == 1
                assert "process_cpu_seconds" in after
                assert "wsrelay_accounting_flush_lag_seconds" in after
                # an open session counts as it goes
                async with connect(relay.url("/open")) as ws:
                    await ws.send(bytes(1000))
                    await ws.recv()
                    live = await asyncio.to_thread(metrics_of, admin_port)
                    assert sample(live, "wsrelay_sessions_open", "", domain="*") == 1
                    assert sample(live, "wsrelay_messages", leg="client", direction="in", domain="*") == \
                        t["client_messages_in"] + 1
                # the token, unless metrics_public
                assert (await asyncio.to_thread(http, admin_port, "/metrics", "GET", None))[0] == 401

    run(scenario())


def test_metrics_cardinality_stays_bounded_under_a_flood_of_random_host_names(tmp_path):
    admin_port = free_port()

    async def scenario():
        async with EchoOrigin() as origin:
            relay = relay_with_admin(tmp_path, origin.port, admin_port, accounting="metrics_public = on",
                                     last="known.example")
            with relay:
                names = [f"{random.getrandbits(64):x}.flood.test" for _ in range(200)]
                for name in names:
                    assert status_of(await raw_request(relay.port, upgrade_request(host=name))) in (404, 429)
                text = (await asyncio.to_thread(http, admin_port, "/metrics", "GET", None))[2].decode()
                assert not any(name in text for name in names)
                families = {f.name: f for f in text_string_to_metric_families(text)}
                domains = {s.labels.get("domain") for f in families.values() for s in f.samples} - {None}
                assert domains == {"-", "chat.example.com", "known.example"}
                refused = sum(s.value for s in families["wsrelay_handshakes"].samples
                              if s.name == "wsrelay_handshakes_total")
                assert refused == 200
                assert len(text.splitlines()) < 400

    run(scenario())


def test_with_two_workers_the_admin_endpoint_answers_for_both(tmp_path):
    from tests.test_workers_loopback import poll, started_workers

    admin_port = free_port()

    async def scenario():
        async with EchoOrigin() as origin:
            relay = relay_with_admin(tmp_path, origin.port, admin_port, "workers = 2\nhandshake_rate_per_ip = 0")
            with relay:
                workers = await asyncio.to_thread(poll, lambda: len(started_workers(relay)) == 2
                                                  and started_workers(relay))
                await asyncio.to_thread(wait_until, lambda: ready(admin_port), "worker 0's admin endpoint")
                clients = []
                try:
                    # the kernel spreads connections over both workers' sockets once both listen
                    for i in range(64):
                        ws = await connect(relay.url(f"/w{i}"))
                        await ws.send("x")
                        await ws.recv()
                        clients.append(ws)
                        if len(clients) >= 24 and len(clients) % 8 == 0:
                            listed = (await asyncio.to_thread(api, admin_port, "/v1/sessions?limit=100",
                                                              spec="/v1/sessions"))[1]
                            if {s["worker"] for s in listed["sessions"]} == set(workers.values()):
                                break
                    opened = len(clients)

                    def both_answer():
                        code, body = api(admin_port, "/v1/sessions?limit=100", spec="/v1/sessions")
                        return body if body["count"] == opened else None

                    body = await asyncio.to_thread(wait_until, both_answer, "every worker's sessions")
                    by_worker = {s["worker"] for s in body["sessions"]}
                    assert by_worker == set(workers.values())
                    families = await asyncio.to_thread(metrics_of, admin_port)
                    assert sample(families, "wsrelay_sessions_open", "", domain="*") == opened
                    assert sample(families, "wsrelay_handshakes", domain="*", status="101") == opened
                    assert sample(families, "wsrelay_messages", domain="*", leg="client", direction="in") == opened
                    assert {s.labels["worker"] for s in families["process_cpu_seconds"].samples} == {"0", "1"}
                    overview = (await asyncio.to_thread(api, admin_port, "/v1/overview"))[1]
                    assert overview["workers"] == {"answered": 2, "expected": 2}
                    assert overview["sessions_open"]["*"] == opened
                    # a session of the other worker is closed through worker 0's endpoint
                    other = next(s for s in body["sessions"] if s["worker"] == workers[1])
                    code, _ = await asyncio.to_thread(api, admin_port, f"/v1/sessions/{other['id']}?code=4444",
                                                      "DELETE", spec="/v1/sessions/{id}")
                    assert code == 200
                    closed = next(ws for ws in clients if ws.request.path == other["path"])
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(closed.recv(), WAIT)
                    assert closed.close_code == 4444
                finally:
                    for ws in clients:
                        await ws.close()

    run(scenario(), timeout=WAIT * 6)
