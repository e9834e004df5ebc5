"""
The admin API of a real `twistd -n wsrelay` on loopback: after sessions went
through the relay, every query answers what was relayed, and every answer
(200, 400, 401) matches docs/openapi.yaml.
"""

import asyncio
import json
import signal
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support import WAIT, RelayProcess, free_port, run
from tests.traffic import EchoOrigin, Expected, talk

DOC = yaml.safe_load((Path(__file__).parent.parent / "docs" / "openapi.yaml").read_text())
TOKEN = "s3cret-token-0123456789"


def check(path, code, body):
    """Validate one answer against the OpenAPI document's schema for that path and status."""
    response = DOC["paths"][path]["get"]["responses"][str(code)]
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = dict(response["content"]["application/json"]["schema"], components=DOC["components"])
    jsonschema.Draft202012Validator(schema).validate(body)


def fetch(port, path, params="", token=TOKEN):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}?{params}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["content-type"], e.read()


def get(port, path, params="", token=TOKEN):
    code, _, body = fetch(port, path, params, token)
    body = json.loads(body)
    if path in DOC["paths"]:
        check(path, code, body)
    return code, body


def day(offset):
    """The UTC date `offset` days from today, as plans and reports write it."""
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset * 86400))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def around_now(span, interval):
    """Query parameters of a window of `span` seconds centred on now (so the sessions just relayed fall in it)."""
    now = int(time.time())
    return f"start={iso(now - span // 2)}&end={iso(now + span // 2)}&interval={interval}"


def test_queries_answer_what_was_relayed_as_the_openapi_document_says(tmp_path):
    admin_port = free_port()
    (tmp_path / "token").write_text(TOKEN + "\n")

    async def scenario():
        expected = Expected()
        async with EchoOrigin() as origin:
            relay = RelayProcess(tmp_path, f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                heartbeat_interval = 0
                [accounting]
                database = stats.sqlite
                flush_interval = 0.2
                admin = tcp:{admin_port}:interface=127.0.0.1
                admin_token_file = token
                [domain:*]
                origins = 127.0.0.1:{origin.port}
                billing = traffic
                billing_cycle = daily
                price_tiers = 0:0.10
                plans = 0.000001GB:{day(0)}:{day(1)}
                """)
            with relay:
                await talk(relay, origin, expected, sizes=(10, 200))
                # the first session has ended on the relay's side too before the second opens
                assert len(await asyncio.get_running_loop().run_in_executor(None, relay.session_lines, 1)) == 1
                await talk(relay, origin, expected, sizes=(70_000,))
                # ended on the relay's side too (its bytes may be flushed while it still closes)
                assert len(await asyncio.get_running_loop().run_in_executor(None, relay.session_lines, 2)) == 2
                window = around_now(7200, 300)

                def traffic_seen():
                    deadline = time.monotonic() + WAIT
                    while True:
                        code, body = get(admin_port, "/v1/traffic", window + "&domain=*")
                        total = sum(p["bytes_out"] for p in body["points"])
                        if total == expected.totals["client_bytes_out"] or time.monotonic() > deadline:
                            return code, body, total
                        time.sleep(0.1)  # polling the API until the flush landed; bounded by WAIT

                code, body, total = await asyncio.to_thread(traffic_seen)
                assert (code, total) == (200, expected.totals["client_bytes_out"])
                assert sum(p["messages_in"] for p in body["points"]) == expected.totals["client_messages_in"]

                def rest():
                    return {path: get(admin_port, path, window) for path in
                            ("/v1/connections", "/v1/statuses", "/v1/closes", "/v1/protocols")}

                answers = await asyncio.to_thread(rest)
                assert all(code == 200 for code, _ in answers.values())
                connections = answers["/v1/connections"][1]["points"]
                assert sum(p["opened"] for p in connections) == 2
                assert sum(p["closed"] for p in connections) == 2
                assert max(p["peak_concurrent"] for p in connections) == 1
                statuses = answers["/v1/statuses"][1]["points"]
                assert sum(p["statuses"].get("101", 0) for p in statuses) == 2
                by_protocol = [p["protocols"] for p in answers["/v1/protocols"][1]["points"]]
                assert sum(p["h1"]["opened"] for p in by_protocol) == 2
                assert sum(p["h1"]["bytes_out"] for p in by_protocol) == expected.totals["client_bytes_out"]
                assert sum(p["h1"]["bytes_in"] for p in by_protocol) == expected.totals["client_bytes_in"]
                assert sum(p["h2"]["opened"] + p["h2"]["bytes_in"] + p["h2"]["bytes_out"] for p in by_protocol) == 0
                closes = [c for p in answers["/v1/closes"][1]["points"] for c in p["closes"]]
                assert {"leg": "client", "code": 1000, "closed_by": "client", "count": 2} in closes

                # the ranking by region sums the same bytes (WebSocket by default, as every query)
                span = "&".join(window.split("&")[:2])
                code, top = await asyncio.to_thread(get, admin_port, "/v1/top", span + "&by=region")
                assert (code, top["traffic"]) == (200, "websocket")
                assert sum(r["bytes_out"] for r in top["rows"]) == expected.totals["client_bytes_out"]
                assert sum(r["opened"] for r in top["rows"]) == 2

                def refusals():
                    return [
                        get(admin_port, "/v1/traffic", around_now(86400, 86400)),
                        get(admin_port, "/v1/traffic", "start=2024-01-01T00:00:00Z&end=2024-06-01T00:00:00Z"),
                        get(admin_port, "/v1/closes", window + "&leg=edge"),
                        get(admin_port, "/v1/traffic", window, token=None),
                        get(admin_port, "/v1/traffic", window, token=TOKEN + "x"),
                    ]

                (bad_interval, too_long, bad_leg, anonymous, wrong) = await asyncio.to_thread(refusals)
                assert bad_interval == (400, {"error": "interval 86400 is not allowed for a span of 1 days: "
                                                      "use 300 or 3600"})
                assert too_long[0] == 400 and "at most 92 days" in too_long[1]["error"]
                assert bad_leg[0] == 400 and "client, origin" in bad_leg[1]["error"]
                assert anonymous[0] == wrong[0] == 401

                def usage():
                    today = f"start={day(0)}T00:00:00Z&end={day(1)}T00:00:00Z"
                    return (get(admin_port, "/v1/usage", today), fetch(admin_port, "/v1/usage", today + "&format=csv"),
                            get(admin_port, "/v1/usage", today + "&domain=other.example"))

                (code, body), (csv_code, csv_type, csv_text), unknown = await asyncio.to_thread(usage)
                assert code == 200 and [c["domain"] for c in body["cycles"]] == ["*"]
                [cycle] = body["cycles"]
                sent = expected.totals["client_bytes_out"]
                assert (cycle["cycle"], cycle["method"], cycle["traffic_bytes"]) == ("daily", "traffic", sent)
                plan = f"0.000001GB:{day(0)}:{day(1)}"  # 1,000 bytes prepaid: the rest is billable
                assert cycle["plan_deductions"] == [{"plan": plan, "gb": 0.000001}]
                assert cycle["billable_quantity"] == pytest.approx((sent - 1000) / 1e9)
                assert cycle["amount"] == round((sent - 1000) / 1e9 * 0.10, 2)
                assert (csv_code, csv_type) == (200, "text/csv; charset=utf-8")
                lines = csv_text.decode().splitlines()
                assert lines[0].split(",")[:3] == ["domain", "cycle", "method"] and len(lines) == 2
                assert lines[1].startswith(f"*,daily,traffic,{day(0)}T00:00:00Z,{day(1)}T00:00:00Z,false,{sent},")
                assert unknown[0] == 400 and "not a [domain:...] section" in unknown[1]["error"]

                # a reload switching to bandwidth billing is recorded, and waits for tomorrow
                relay.config.write_text(relay.config.read_text().replace("billing = traffic",
                                                                         "billing = bandwidth"))
                relay.signal(signal.SIGHUP)

                def recorded():
                    deadline = time.monotonic() + WAIT
                    while True:
                        with sqlite3.connect(tmp_path / "stats.sqlite") as db:
                            rows = db.execute("SELECT method FROM billing_changes WHERE domain = '*' "
                                              "ORDER BY changed_ms").fetchall()
                        if len(rows) == 2 or time.monotonic() > deadline:
                            return rows, get(admin_port, "/v1/usage", f"start={day(0)}T00:00:00Z&"
                                                                      f"end={day(2)}T00:00:00Z")
                        time.sleep(0.1)  # polling the file until the next flush; bounded by WAIT

                rows, (code, body) = await asyncio.to_thread(recorded)
                assert rows == [("traffic",), ("bandwidth",)]
                assert [(c["start"][:10], c["method"]) for c in body["cycles"]] == [
                    (day(0), "traffic"), (day(1), "bandwidth")]

    run(scenario(), timeout=WAIT * 4)
