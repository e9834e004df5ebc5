"""
The admin API as a twisted.web resource: GET /v1/{traffic, connections,
statuses, closes, protocols}?start=...&end=...&interval=...&domain=...&region=...&isp=...&kind=...
answered as JSON (kind: websocket, the default, http or all), and GET /v1/usage?start=...&end=...&domain=...&format=json|csv,
the billing report (docs/openapi.yaml). Every request needs
`Authorization: Bearer TOKEN` (compared in constant time). The query rules
are wsrelay.accounting.query's; the rows come from the IAccounting store,
whose reads happen off the reactor thread.
"""

import hmac
import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from wsrelay.accounting import usage
from wsrelay.accounting.query import KINDS, QueryError, make_query

log = Logger(namespace="wsrelay.admin")

PREFIX = "/v1/"
PARAMETERS = {"start", "end", "interval", "domain", "region", "isp", "leg", "kind"}
USAGE_PARAMETERS = {"start", "end", "domain", "format"}
RESOURCES = [PREFIX + kind for kind in KINDS] + [PREFIX + "usage"]


def bearer_ok(header, token):
    """Whether an Authorization header value carries `token` (bytes), compared in constant time."""
    if not header or not token:
        return False
    scheme, _, given = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token)


def parameters(args, allowed, single):
    """{name: [str]} of a request's parameters ({bytes: [bytes]}); QueryError for unknown or repeated ones."""
    params = {}
    for name, values in args.items():
        name = name.decode("utf-8", "replace")
        if name not in allowed:
            raise QueryError(f"unknown parameter {name!r}: use {', '.join(sorted(allowed))}")
        try:
            params[name] = [v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise QueryError(f"{name}: not UTF-8")
    for name in single:
        if len(params.get(name, ())) > 1:
            raise QueryError(f"{name} is given more than once")
    return params


def _one(params, name):
    return params[name][0] if name in params else None


def query_of(path, args):
    """A Query from a request path and its parameters ({bytes: [bytes]}); KeyError: no such path."""
    if not path.startswith(PREFIX) or path[len(PREFIX):] not in KINDS:
        raise KeyError(path)
    kind = path[len(PREFIX):]
    params = parameters(args, PARAMETERS, ("start", "end", "interval", "kind"))
    return make_query(kind, _one(params, "start"), _one(params, "end"), _one(params, "interval") or "300",
                      params.get("domain"), params.get("region"), params.get("isp"), params.get("leg"),
                      _one(params, "kind"))


def usage_query_of(config, args):
    """A UsageQuery from GET /v1/usage's parameters."""
    params = parameters(args, USAGE_PARAMETERS, ("start", "end", "format"))
    return usage.make_usage_query(config, _one(params, "start"), _one(params, "end"), params.get("domain"),
                                  _one(params, "format") or "json")


class AdminAPI(Resource):
    """The whole API as one leaf resource over an IAccounting store."""

    isLeaf = True

    def __init__(self, store, token, config, clock):
        super().__init__()
        self.store = store
        self.token = token
        self.config = config  # () -> the relay's current RelayConfig (billing settings)
        self.clock = clock

    def render(self, request):
        if not bearer_ok(request.getHeader(b"authorization"), self.token):
            request.setHeader(b"www-authenticate", b'Bearer realm="wsrelay"')
            return reply(request, 401, {"error": "a valid 'Authorization: Bearer TOKEN' header is required"})
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return reply(request, 405, {"error": "only GET is allowed"})
        path = request.path.decode("utf-8", "replace")
        try:
            if path == PREFIX + "usage":
                query = usage_query_of(self.config(), request.args)
            else:
                query = query_of(path, request.args)
        except KeyError:
            return reply(request, 404, {"error": "no such resource: use " + ", ".join(RESOURCES)})
        except QueryError as e:
            return reply(request, 400, {"error": str(e)})
        if isinstance(query, usage.UsageQuery):
            d = usage.report(self.store, query, self.clock.seconds())
            d.addCallback(lambda rows: usage.render(query, rows))
        else:
            first, last = query.bounds()
            d = defer.gatherResults([
                defer.maybeDeferred(self.store.points, table, first, last, query.domains, query.regions,
                                    query.isps)
                for table in query.tables()], consumeErrors=True)
            d.addCallback(lambda fetched: ("application/json", json.dumps(query.answer(fetched)) + "\n"))
        gone = []
        request.notifyFinish().addErrback(gone.append)

        def answered(rendered):
            if not gone:
                content_type, text = rendered
                request.setResponseCode(200)
                request.setHeader(b"content-type", content_type.encode("ascii"))
                request.setHeader(b"cache-control", b"no-store")
                request.write(text.encode("utf-8"))
                request.finish()

        def failed(failure):
            while isinstance(failure.value, defer.FirstError):
                failure = failure.value.subFailure
            log.failure("admin query {path} failed in the statistics store", failure, path=path)
            if not gone:
                reply(request, 503, {"error": "the statistics store is unavailable; try again"}, finish=True)

        d.addCallbacks(answered, failed)
        return NOT_DONE_YET


def reply(request, code, body, finish=False):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    data = json.dumps(body).encode("utf-8") + b"\n"
    if not finish:
        return data
    request.write(data)
    request.finish()


class AdminSite(Site):
    """A Site logging each request as one structured event (never the token) instead of an access log file."""

    noisy = False

    def log(self, request):
        log.info("admin {method} {path} {code}", method=request.method.decode("ascii", "replace"),
                 path=request.uri.decode("utf-8", "replace"), code=request.code,
                 client=getattr(request.getClientAddress(), "host", None))


def admin_site(store, token, config, clock):
    """The admin Site over `store`; `config()` returns the relay's current configuration, `clock` its reactor."""
    return AdminSite(AdminAPI(store, token, config, clock))
