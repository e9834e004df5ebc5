"""
The admin endpoint as one twisted.web Site: the dashboard at /, the JSON API
under /v1/, Prometheus at /metrics, and /healthz and /readyz for probes.

Who may ask what (wsrelay.admin.auth): /healthz and /readyz anyone; /metrics
the bearer token or the dashboard's cookie, or anyone with
`metrics_public = on`; everything else the token or the cookie (and for a
DELETE by cookie, its CSRF token). No answer carries a Server header.

With `workers`, the first worker serves this endpoint and asks the others
(wsrelay.admin.peers) for their live sessions and metrics, so the answers
are the whole relay's.
"""

import json

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from wsrelay.observability import metrics
from wsrelay.admin import auth, dashboard, sessions
from wsrelay.admin.api import AdminAPI, parameters
from wsrelay.admin.errors import ApiError
from wsrelay.admin.health import health_answer
from wsrelay.accounting.query import QueryError

log = Logger(namespace="wsrelay.admin")

SESSIONS = "/v1/sessions"
OVERVIEW = "/v1/overview"
NORMAL_CLOSES = ("1000", "1001", "4xxx", "3xxx")  # every other code counts as an error close


class AdminRequest(Request):
    """A Request that never sends Twisted's `Server: TwistedWeb/VERSION` header."""

    def setHeader(self, name, value):
        if name.lower() == b"server":
            return
        super().setHeader(name, value)


class AdminSite(Site):
    """Logs each request as one structured event (never the token) instead of an access log file."""

    noisy = False
    requestFactory = AdminRequest

    def log(self, request):
        log.info("admin {method} {path} {code}", method=request.method.decode("ascii", "replace"),
                 path=request.uri.decode("utf-8", "replace"), code=request.code,
                 client=getattr(request.getClientAddress(), "host", None))


def send_json(request, code, body):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body).encode("utf-8") + b"\n"


def only_get(request):
    """405 with the Allow header RFC 9110 asks for: these resources are read, never changed."""
    request.setHeader(b"allow", b"GET, HEAD")
    return send_json(request, 405, {"error": "only GET is allowed"})


def finish(request, gone, code, body, content_type=b"application/json"):
    """Write a deferred answer unless the client is gone."""
    if gone:
        return
    if content_type == b"application/json":
        data = send_json(request, code, body)
    else:
        request.setResponseCode(code)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"no-store")
        data = body
    request.write(data)
    request.finish()


class AdminRoot(Resource):
    """Every path of the admin endpoint, dispatched in render()."""

    isLeaf = True

    def __init__(self, store, token, config, clock, service=None, peers=None):
        super().__init__()
        self.token = token
        self.config = config      # () -> the relay's current RelayConfig
        self.clock = clock
        self.service = service    # the RelayService (health, live sessions, metrics)
        self.peers = peers        # wsrelay.admin.peers.Peers with workers, else None
        self.api = AdminAPI(store, token, config, clock, authorised=self._api_authorised)

    def _api_authorised(self, request):
        return auth.authorised(request, self.token, self.clock.seconds()) is not None

    def render(self, request):
        path = request.path.decode("utf-8", "replace")
        if path in ("/healthz", "/readyz"):
            if request.method not in (b"GET", b"HEAD"):
                return only_get(request)
            code, body = health_answer(path, self.service)
            return send_json(request, code, body)
        if path in ("/", "/login", "/logout") or path.startswith(dashboard.STATIC):
            return dashboard.render(self, request, path)
        if path == "/metrics":
            return self.render_metrics(request)
        if path == SESSIONS or path.startswith(SESSIONS + "/"):
            return self.render_sessions(request, path)
        if path == OVERVIEW:
            return self.render_overview(request)
        return self.api.render(request)

    def unauthorised(self, request):
        request.setHeader(b"www-authenticate", b'Bearer realm="wsrelay"')
        return send_json(request, 401, {"error": "a valid 'Authorization: Bearer TOKEN' header is required"})

    # -- /metrics ------------------------------------------------------------------

    def render_metrics(self, request):
        public = getattr(self.config().accounting, "metrics_public", False)
        if not public and not self._api_authorised(request):
            return self.unauthorised(request)
        if request.method not in (b"GET", b"HEAD"):
            return only_get(request)
        gone = []
        request.notifyFinish().addErrback(gone.append)
        asked = self.snapshots()

        def answer(snaps):
            registry = CollectorRegistry(auto_describe=False)
            merged = metrics.merge([snap for _, snap in snaps])
            registry.register(metrics.SnapshotCollector(lambda: merged))
            if self.peers is None:
                registry.register(ProcessCollector(registry=None))
            else:  # each worker's process, told apart by a `worker` label
                registry.register(metrics.WorkersProcessCollector(
                    [(index, "self" if index == 0 else snap["pid"]) for index, snap in snaps]))
            finish(request, gone, 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode("ascii"))

        asked.addCallback(answer)
        asked.addErrback(self._failed, request, gone, "/metrics")
        return NOT_DONE_YET

    def snapshots(self):
        """A Deferred firing [(worker, snapshot)]: this process's, then each answering worker's."""
        own = self.service.relay.metrics.snapshot(self.clock.seconds())
        if self.peers is None:
            return defer.succeed([(None, own)])
        return self.peers.metrics().addCallback(lambda others: [(0, own)] + others)

    # -- /v1/overview ------------------------------------------------------------------

    def render_overview(self, request):
        if not self._api_authorised(request):
            return self.unauthorised(request)
        if request.method not in (b"GET", b"HEAD"):
            return only_get(request)
        gone = []
        request.notifyFinish().addErrback(gone.append)
        d = self.snapshots()
        d.addCallback(lambda snaps: finish(request, gone, 200, overview(
            metrics.merge([snap for _, snap in snaps]), self.clock.seconds(), self.config(),
            len(snaps), self.peers)))
        d.addErrback(self._failed, request, gone, OVERVIEW)
        return NOT_DONE_YET

    def _failed(self, failure, request, gone, path):
        log.failure("admin {path} failed", failure, path=path)
        finish(request, gone, 503, {"error": "the relay could not answer; try again"})

    # -- /v1/sessions ----------------------------------------------------------------

    def render_sessions(self, request, path):
        if not self._api_authorised(request):
            return self.unauthorised(request)
        try:
            if path == SESSIONS:
                if request.method not in (b"GET", b"HEAD"):
                    request.setHeader(b"allow", b"GET, HEAD")
                    raise ApiError(405, "only GET is allowed here; DELETE /v1/sessions/{id} closes one")
                params = parameters(request.args, sessions.LIST_PARAMETERS, ("client", "limit"))
                return self.list_sessions(request, *sessions.parse_filters(params))
            wanted = path[len(SESSIONS) + 1:]
            if request.method != b"DELETE":
                request.setHeader(b"allow", b"DELETE")
                raise ApiError(405, "only DELETE is allowed on a session")
            params = parameters(request.args, sessions.CLOSE_PARAMETERS, sessions.CLOSE_PARAMETERS)
            return self.close_session(request, wanted, *sessions.parse_close(params))
        except QueryError as e:
            return send_json(request, 400, {"error": str(e)})
        except ApiError as e:
            return send_json(request, e.status, {"error": str(e)})

    def list_sessions(self, request, domains, client, limit):
        own = sessions.select(self.service.relay.sessions, domains, client, self.clock.seconds())
        if self.peers is None:
            return send_json(request, 200, sessions.listing(own, limit))
        gone = []
        request.notifyFinish().addErrback(gone.append)
        d = self.peers.sessions(request.uri.partition(b"?")[2])
        d.addCallback(lambda others: finish(request, gone, 200, sessions.listing(own + others, limit)))
        d.addErrback(self._failed, request, gone, SESSIONS)
        return NOT_DONE_YET

    def close_session(self, request, wanted, client_code, origin_code, reason):
        session = sessions.find(self.service.relay.sessions, wanted)
        answer = {"id": wanted, "client_code": client_code, "origin_code": origin_code, "reason": reason}
        if session is not None:
            session.close_by_operator(client_code, origin_code, reason)
            log.info("session {id} ({client_ip} {domain}) closed by the operator with {code}",
                     id=wanted, client_ip=session.client_ip, domain=session.domain.name, code=client_code)
            return send_json(request, 200, answer)
        if self.peers is None:
            return send_json(request, 404, {"error": f"no live session {wanted!r}"})
        gone = []
        request.notifyFinish().addErrback(gone.append)
        d = self.peers.close(wanted, request.uri.partition(b"?")[2])

        def closed(found):
            if found:
                finish(request, gone, 200, answer)
            else:
                finish(request, gone, 404, {"error": f"no live session {wanted!r}"})

        d.addCallbacks(closed, self._failed, errbackArgs=(request, gone, SESSIONS))
        return NOT_DONE_YET


def overview(snap, now, config, answered, peers):
    """GET /v1/overview: the relay's running totals now; the page turns two of them into rates."""
    handshakes, traffic, closes = {}, {}, {"total": 0, "errors": 0}
    for _, status, count in snap["handshakes"]:
        handshakes[status] = handshakes.get(status, 0) + count
    for _, leg, direction, what, value in snap["traffic"]:
        key = f"{leg}_{what}_{direction}"
        traffic[key] = traffic.get(key, 0) + value
    for _, leg, code, _, count in snap["closes"]:
        if leg == "client":
            closes["total"] += count
            if code not in NORMAL_CLOSES:
                closes["errors"] += count
    return {
        "time": now,
        "domains": [domain.name for domain in config.each_domain()],
        "sessions_open": {domain: count for domain, count in snap["sessions_open"]},
        "handshakes": handshakes,
        "traffic": traffic,
        "closes": closes,
        "refusals": {reason: count for reason, count in snap["refusals"]},
        "origins": [{"domain": domain, "origin": origin, "up": bool(up)} for domain, origin, up in
                    sorted(snap["origin_up"])],
        "workers": {"answered": answered, "expected": len(peers.indexes) + 1 if peers is not None else 1},
    }


def admin_site(store, token, config, clock, service=None, peers=None):
    """The admin Site over `store`; `config()` returns the relay's current configuration, `clock` its reactor."""
    return AdminSite(AdminRoot(store, token, config, clock, service, peers))
