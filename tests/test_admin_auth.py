"""
Who may use the admin endpoint, without sockets (twisted.web's DummyRequest,
an injected clock): the bearer token, the dashboard's signed cookie, its CSRF
token for a DELETE, the origin check; and the bounded metric labels.
"""

from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.web import http
from twisted.web.test.requesthelper import DummyRequest

from wsrelay.observability import metrics
from wsrelay.admin import auth
from wsrelay.admin.site import AdminRoot
from wsrelay.config import parse_config

TOKEN = b"s3cret-token-0123456789"
CONFIG = parse_config("[relay]\n[domain:*]\norigins = 127.0.0.1:9\n", "test.ini")


class Request(DummyRequest):
    """DummyRequest with twisted.web's own cookie handling."""

    addCookie = http.Request.addCookie

    def __init__(self, postpath):
        super().__init__(postpath)
        self.received_cookies, self.cookies = {}, []

    def getCookie(self, key):
        return self.received_cookies.get(key)

    def isSecure(self):
        return False


def request(path, method=b"GET", bearer=None, cookie=None, csrf=None, origin=None, host=b"admin.test:9090"):
    r = Request(path.lstrip("/").split("/"))
    r.path = path.encode()
    r.uri = path.encode()
    r.method = method
    r.requestHeaders.setRawHeaders(b"host", [host])
    if bearer is not None:
        r.requestHeaders.setRawHeaders(b"authorization", [b"Bearer " + bearer])
    if cookie is not None:
        r.received_cookies[auth.COOKIE] = cookie
    if csrf is not None:
        r.requestHeaders.setRawHeaders(b"x-csrf-token", [csrf])
    if origin is not None:
        r.requestHeaders.setRawHeaders(b"origin", [origin])
    return r


def test_cookies_are_signed_expire_and_die_with_the_token():
    cookie = auth.new_cookie(TOKEN, 1000.0)
    assert auth.cookie_ok(cookie, TOKEN, 1000.0 + auth.LIFETIME - 1)
    assert not auth.cookie_ok(cookie, TOKEN, 1000.0 + auth.LIFETIME + 1)
    assert not auth.cookie_ok(cookie, b"another-token-0123456789", 1000.0)
    expiry, _, signature = cookie.partition(b".")
    forged = str(int(expiry) + 10**6).encode() + b"." + signature  # a later expiry, the old signature
    assert not auth.cookie_ok(forged, TOKEN, 1000.0)
    assert not auth.cookie_ok(b"garbage", TOKEN, 1000.0) and not auth.cookie_ok(None, TOKEN, 1000.0)


def test_reading_takes_the_cookie_a_delete_also_its_csrf_token_from_the_same_origin():
    now = 5000.0
    cookie = auth.new_cookie(TOKEN, now)
    csrf = auth.csrf_of(cookie, TOKEN).encode()
    assert auth.authorised(request("/v1/sessions", bearer=TOKEN), TOKEN, now) == "bearer"
    assert auth.authorised(request("/v1/sessions", bearer=b"x" * 23), TOKEN, now) is None
    assert auth.authorised(request("/v1/sessions", cookie=cookie), TOKEN, now) == "cookie"
    delete = dict(method=b"DELETE", cookie=cookie)
    assert auth.authorised(request("/v1/sessions/a", **delete), TOKEN, now) is None
    assert auth.authorised(request("/v1/sessions/a", csrf=b"0" * 64, **delete), TOKEN, now) is None
    assert auth.authorised(request("/v1/sessions/a", csrf=csrf, **delete), TOKEN, now) == "cookie"
    assert auth.authorised(request("/v1/sessions/a", csrf=csrf, origin=b"http://admin.test:9090", **delete),
                           TOKEN, now) == "cookie"
    assert auth.authorised(request("/v1/sessions/a", csrf=csrf, origin=b"https://evil.example", **delete),
                           TOKEN, now) is None


def answer(root, r):
    body = root.render(r)
    return r.responseCode or 200, body


def root(metrics_public=False):
    settings = SimpleNamespace(metrics_public=metrics_public)
    current = SimpleNamespace(accounting=settings, each_domain=CONFIG.each_domain)
    return AdminRoot(None, TOKEN, lambda: current, Clock())


def test_login_sets_an_httponly_strict_cookie_only_for_the_token():
    site = root()
    r = request("/login", method=b"POST", origin=b"http://admin.test:9090")
    r.args = {b"token": [b"wrong-token-0123456789"]}
    code, body = answer(site, r)
    assert code == 401 and b"not the admin token" in body and not r.cookies
    r = request("/login", method=b"POST", origin=b"http://admin.test:9090")
    r.args = {b"token": [TOKEN]}
    code, _ = answer(site, r)
    assert code == 303 and r.responseHeaders.getRawHeaders(b"location") == [b"/"]
    (set_cookie,) = r.cookies
    assert set_cookie.startswith(auth.COOKIE + b"=")
    assert b"HttpOnly" in set_cookie and b"SameSite=strict" in set_cookie and b"Path=/" in set_cookie
    # a login form posted from another site is ignored
    r = request("/login", method=b"POST", origin=b"https://evil.example")
    r.args = {b"token": [TOKEN]}
    assert answer(site, r)[0] == 303 and not r.cookies


def test_the_page_needs_the_cookie_and_carries_its_csrf_token():
    site = root()
    code, body = answer(site, request("/"))
    assert code == 200 and b'action="/login"' in body and b"csrf-token" not in body
    cookie = auth.new_cookie(TOKEN, 0.0)
    r = request("/", cookie=cookie)
    code, body = answer(site, r)
    assert b'<meta name="csrf-token" content="' + auth.csrf_of(cookie, TOKEN).encode() + b'">' in body
    assert r.responseHeaders.getRawHeaders(b"content-security-policy")[0].startswith(b"default-src 'none'")
    code, body = answer(site, request("/static/plotly.min.js"))
    assert code == 200 and len(body) > 1_000_000 and b"plotly.js" in body[:2000]
    assert answer(site, request("/static/../../etc/passwd"))[0] == 404


def test_metrics_need_the_token_unless_public():
    assert answer(root(), request("/metrics"))[0] == 401
    assert answer(root(), request("/v1/sessions"))[0] == 401


def test_metric_labels_come_from_fixed_sets():
    assert [metrics.code_label(c) for c in (1000, 1006, 1015, 3001, 4999, 2000, 5000, None)] == \
        ["1000", "1006", "1015", "3xxx", "4xxx", "other", "other", "none"]
    assert [metrics.status_label(s) for s in (101, 404, 599, 600, 99, None)] == \
        ["101", "404", "599", "other", "other", "other"]
    assert metrics.domain_label(SimpleNamespace(domain=None)) == "-"


def test_snapshots_of_workers_add_up():
    one = {"sessions_open": [["*", 2]], "handshakes": [["*", "101", 5]], "traffic": [["*", "client", "in", "bytes", 10]],
           "closes": [], "refusals": [["handshake_rate", 1]], "origin_up": [["*", "a:1", 0]],
           "connect": [["*", [1] + [0] * 13, 0.001, 1]], "rtt": [], "flush": {"lag": 1.0, "failures": 0}}
    two = {"sessions_open": [["*", 3]], "handshakes": [["*", "101", 7], ["-", "404", 1]],
           "traffic": [["*", "client", "in", "bytes", 32]], "closes": [], "refusals": [],
           "origin_up": [["*", "a:1", 1]], "connect": [["*", [0, 2] + [0] * 12, 0.004, 2]], "rtt": [],
           "flush": {"lag": 3.0, "failures": 2}}
    merged = metrics.merge([one, two])
    assert merged["sessions_open"] == [["*", 5]]
    assert sorted(merged["handshakes"]) == [["*", "101", 12], ["-", "404", 1]]
    assert merged["traffic"] == [["*", "client", "in", "bytes", 42]]
    assert merged["origin_up"] == [["*", "a:1", 1]]
    assert merged["connect"] == [["*", [1, 2] + [0] * 12, 0.005, 3]]
    assert merged["flush"] == {"lag": 3.0, "failures": 2}
