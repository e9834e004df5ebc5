"""The admin API's config keys and the resource's answers (bearer token, 400/401/404/405/503), with no sockets."""

import json

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from wsrelay.accounting.testing import MemoryStore
from wsrelay.admin.api import AdminAPI, bearer_ok
from wsrelay.config import ConfigError, parse_config
from wsrelay.interfaces import IAccounting

TOKEN = b"0123456789abcdef-token"
DOMAIN = "[domain:*]\norigins = a:1\n"
WINDOW = {b"start": [b"2023-11-15T00:00:00Z"], b"end": [b"2023-11-15T01:00:00Z"], b"interval": [b"3600"]}


def load(tmp_path, text):
    return parse_config("[relay]\n[accounting]\n" + text + DOMAIN, str(tmp_path / "relay.ini"))


def test_admin_keys_read_the_token_from_its_file(tmp_path):
    (tmp_path / "token").write_text(TOKEN.decode() + "\n")
    settings = load(tmp_path, "admin = tcp:9090:interface=127.0.0.1\nadmin_token_file = token\n").accounting
    assert (settings.admin, settings.admin_token) == ("tcp:9090:interface=127.0.0.1", TOKEN)
    assert TOKEN.decode() not in repr(settings)
    assert load(tmp_path, "").accounting.admin is None  # default: no admin API


@pytest.mark.parametrize("text, where", [
    ("admin = tcp:9090\n", r"\[accounting\] admin_token_file: required with admin"),
    ("admin = tcp:9090\nadmin_token_file = missing\n", r"\[accounting\] admin_token_file: cannot read .*missing"),
    ("admin = tcp:9090\nadmin_token_file = short\n", r"\[accounting\] admin_token_file: .* at least 16"),
    ("admin = nonsense:1\nadmin_token_file = token\n", r"\[accounting\] admin: 'nonsense:1' is not a Twisted"),
    ("admin_token_file = token\n", r"\[accounting\] admin_token_file: set, but admin is not"),
])
def test_admin_mistakes_name_the_file_section_and_key(tmp_path, text, where):
    (tmp_path / "token").write_text(TOKEN.decode())
    (tmp_path / "short").write_text("abc")
    with pytest.raises(ConfigError, match="^" + str(tmp_path / "relay.ini") + ": " + where):
        load(tmp_path, text)


def test_bearer_tokens():
    assert bearer_ok(b"Bearer " + TOKEN, TOKEN)
    assert bearer_ok(b"bearer " + TOKEN, TOKEN)
    assert not bearer_ok(b"Bearer " + TOKEN[:-1], TOKEN)
    assert not bearer_ok(b"Basic " + TOKEN, TOKEN)
    assert not bearer_ok(None, TOKEN)


@implementer(IAccounting)
class FailingStore(MemoryStore):
    def points(self, *args):
        return defer.fail(OSError("database is locked"))


def ask(store, path, args, token=TOKEN, method=b"GET", config=None, now=0.0, raw=False):
    request = DummyRequest(path.lstrip("/").split("/"))
    request.path = path.encode()
    request.method = method
    request.args = args
    if token is not None:
        request.requestHeaders.setRawHeaders(b"authorization", [b"Bearer " + token])
    config = config or parse_config("[relay]\n" + DOMAIN)
    clock = Clock()
    clock.advance(now)
    result = AdminAPI(store, TOKEN, lambda: config, clock).render(request)
    if isinstance(result, bytes):
        request.write(result)
        request.finish()
    assert request.finished
    body = b"".join(request.written)
    return request.responseCode or 200, (body if raw else json.loads(body))


def test_answers_without_sockets():
    store = MemoryStore()
    code, body = ask(store, "/v1/statuses", WINDOW)
    assert code == 200 and body["points"] == [{"start": 1_700_006_400, "total": 0, "statuses": {}}]
    assert ask(store, "/v1/statuses", WINDOW, token=None)[0] == 401
    assert ask(store, "/v1/statuses", WINDOW, token=b"x" * 22)[0] == 401
    assert ask(store, "/v1/volume", WINDOW) == (404, {"error": "no such resource: use /v1/traffic, "
                                                               "/v1/connections, /v1/statuses, /v1/closes, /v1/protocols, "
                                                               "/v1/top, /v1/usage, /v1/sessions, /v1/overview"})
    assert ask(store, "/v1/statuses", WINDOW, method=b"POST")[0] == 405
    code, body = ask(store, "/v1/statuses", {**WINDOW, b"color": [b"red"]})
    assert code == 400 and body["error"].startswith("unknown parameter 'color': use domain, end, interval")
    code, body = ask(store, "/v1/statuses", {**WINDOW, b"interval": [b"300", b"3600"]})
    assert (code, body) == (400, {"error": "interval is given more than once"})


def test_a_failing_store_answers_503():
    code, body = ask(FailingStore(), "/v1/traffic", WINDOW)
    assert (code, body) == (503, {"error": "the statistics store is unavailable; try again"})


def test_usage_refusals_say_what_is_allowed():
    store = MemoryStore()
    month = {b"start": [b"2026-11-01T00:00:00Z"], b"end": [b"2026-12-01T00:00:00Z"]}
    code, body = ask(store, "/v1/usage", {**month, b"format": [b"xml"]})
    assert (code, body) == (400, {"error": "format: 'xml' is not one of json, csv"})
    code, body = ask(store, "/v1/usage", {**month, b"end": [b"2027-03-01T00:00:00Z"]})
    assert code == 400 and body["error"].startswith("a usage report spans at most 92 days")
    code, body = ask(store, "/v1/usage", {**month, b"interval": [b"300"]})
    assert code == 400 and body["error"] == "unknown parameter 'interval': use domain, end, format, start"
    code, body = ask(store, "/v1/usage", {**month, b"domain": [b"b.example"]})
    assert (code, body) == (400, {"error": "domain: 'b.example' is not a [domain:...] section of the "
                                           "configuration (configured: *)"})
    assert ask(FailingStore(), "/v1/usage", month)[0] == 503


def test_usage_reads_the_recorded_billing_changes_and_prices_the_cycles():
    store = MemoryStore()
    nov = 1_793_491_200
    store.billing = [("*", nov - 86400, "traffic", "daily", "n1"), ("*", nov + 3600, "bandwidth", "daily", "n1")]
    config = parse_config("[relay]\n" + DOMAIN + "price_tiers = 0:1\n")
    code, body = ask(store, "/v1/usage", {b"start": [b"2026-11-01T00:00:00Z"], b"end": [b"2026-11-03T00:00:00Z"]},
                     config=config, now=nov + 86400 + 5)
    assert code == 200
    assert [(c["start"], c["method"], c["unit"], c["complete"], c["amount"]) for c in body["cycles"]] == [
        ("2026-11-01T00:00:00Z", "traffic", "GB", True, 0.0),
        ("2026-11-02T00:00:00Z", "bandwidth", "Mbit/s", False, 0.0)]


@implementer(IAccounting)
class FixedPointsStore(MemoryStore):
    """A store answering every points() with the same rows (what a scripted run would have written)."""

    def __init__(self, rows):
        super().__init__()
        self.rows = rows

    def points(self, *args):
        return defer.succeed(list(self.rows))


def test_top_ranks_the_traffic_kind_asked_for_websocket_by_default():
    def row(region, kind, out, opened):
        point = {"bucket": 1_700_006_400, "domain": "a.test", "region": region, "isp": "-",
                 "client_bytes_out": out, "client_bytes_in": 1, "opened": opened, "kind": kind}
        return point
    store = FixedPointsStore([row("EU", "websocket", 100, 2), row("US", "websocket", 50, 1),
                              row("US", "http", 500, 7), row("AS", "http", 10, 1)])
    window = {b"start": WINDOW[b"start"], b"end": WINDOW[b"end"]}

    def ranking(**extra):
        code, body = ask(store, "/v1/top", {**window, **{k.encode(): [v.encode()] for k, v in extra.items()}})
        assert code == 200
        return body["traffic"], [(r["name"], r["bytes_out"], r["opened"]) for r in body["rows"]]

    assert ranking() == ("websocket", [("EU", 100, 2), ("US", 50, 1)])
    assert ranking(kind="http") == ("http", [("US", 500, 7), ("AS", 10, 1)])
    assert ranking(kind="all") == ("all", [("US", 550, 8), ("EU", 100, 2), ("AS", 10, 1)])
    code, body = ask(store, "/v1/top", {**window, b"kind": [b"https"]})
    assert (code, body) == (400, {"error": "kind: 'https' is not one of websocket, http, all"})
