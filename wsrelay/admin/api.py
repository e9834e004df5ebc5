"""
The admin API as a twisted.web resource: GET /v1/{traffic, connections,
statuses, closes, protocols}?start=...&end=...&interval=...&domain=...&region=...&isp=...&kind=...
answered as JSON (kind: websocket, the default, http or all), and GET /v1/usage?start=...&end=...&domain=...&format=json|csv,
the billing report (docs/openapi.yaml). Every request needs
`Authorization: Bearer TOKEN` (compared in constant time) or the dashboard's
cookie (wsrelay.admin.site decides). The query rules
are wsrelay.accounting.query's; the rows come from the IAccounting store,
whose reads happen off the reactor thread.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from wsrelay.accounting import usage
from wsrelay.accounting.query import (
    KINDS, SUFFIX, QueryError, align, allowed_intervals, check_query, make_query, of_traffic, parse_time,
    parse_traffic_kind,
)
from wsrelay.admin.auth import bearer_ok

log = Logger(namespace="wsrelay.admin")

PREFIX = "/v1/"
PARAMETERS = {"start", "end", "interval", "domain", "region", "isp", "leg", "kind"}
USAGE_PARAMETERS = {"start", "end", "domain", "format"}
TOP_PARAMETERS = {"start", "end", "domain", "by", "limit", "kind"}
RESOURCES = [PREFIX + kind for kind in KINDS] + [PREFIX + "top", PREFIX + "usage", PREFIX + "sessions",
                                                   PREFIX + "overview"]


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


class TopQuery:
    """GET /v1/top: the regions or ISPs that took the most traffic in [start, end)."""

    def __init__(self, args):
        params = parameters(args, TOP_PARAMETERS, ("start", "end", "by", "limit", "kind"))
        start, end = _one(params, "start"), _one(params, "end")
        if start is None or end is None:
            raise QueryError("start and end are required (ISO 8601 with a zone, e.g. 2024-05-01T00:00:00Z)")
        self.start, self.end = parse_time(start, "start"), parse_time(end, "end")
        self.interval = allowed_intervals(self.end - self.start)[0] if self.end > self.start else 300
        check_query(self.start, self.end, self.interval)
        self.by = _one(params, "by") or "region"
        if self.by not in ("region", "isp"):
            raise QueryError(f"by: {self.by!r} is not region or isp")
        limit = _one(params, "limit") or "10"
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise QueryError(f"limit: {limit!r} is not a whole number from 1 to 1000")
        self.limit = int(limit)
        self.domains = tuple(params["domain"]) if "domain" in params else None
        self.traffic_kind = parse_traffic_kind(_one(params, "kind"))

    def table(self):
        return f"traffic_{SUFFIX[self.interval]}"

    def bounds(self):
        return align(self.start, self.end, self.interval)

    def answer(self, rows):
        sums = {}
        for row in rows:
            if not of_traffic(row, self.traffic_kind):
                continue
            held = sums.setdefault(row[self.by], [0, 0, 0])
            held[0] += row["client_bytes_out"]
            held[1] += row["client_bytes_in"]
            held[2] += row["opened"]
        ranked = sorted(sums.items(), key=lambda item: (-item[1][0], -item[1][2], item[0]))
        first, last = self.bounds()
        return {"by": self.by, "start": first, "end": last, "interval": self.interval,
                "domains": list(self.domains) if self.domains is not None else None,
                "traffic": self.traffic_kind,
                "rows": [{"name": name, "bytes_out": out, "bytes_in": into, "opened": opened}
                         for name, (out, into, opened) in ranked[:self.limit]]}


class AdminAPI(Resource):
    """The whole API as one leaf resource over an IAccounting store."""

    isLeaf = True

    def __init__(self, store, token, config, clock, authorised=None):
        super().__init__()
        self.store = store
        self.token = token
        self.config = config  # () -> the relay's current RelayConfig (billing settings)
        self.clock = clock
        # (request) -> bool; by default the bearer token alone (the site adds the dashboard's cookie)
        self.authorised = authorised or (lambda request: bearer_ok(request.getHeader(b"authorization"), token))

    def render(self, request):
        if not self.authorised(request):
            request.setHeader(b"www-authenticate", b'Bearer realm="wsrelay"')
            return reply(request, 401, {"error": "a valid 'Authorization: Bearer TOKEN' header is required"})
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return reply(request, 405, {"error": "only GET is allowed"})
        path = request.path.decode("utf-8", "replace")
        try:
            if path == PREFIX + "usage":
                query = usage_query_of(self.config(), request.args)
            elif path == PREFIX + "top":
                query = TopQuery(request.args)
            else:
                query = query_of(path, request.args)
        except KeyError:
            return reply(request, 404, {"error": "no such resource: use " + ", ".join(RESOURCES)})
        except QueryError as e:
            return reply(request, 400, {"error": str(e)})
        if isinstance(query, TopQuery):
            first, last = query.bounds()
            d = defer.maybeDeferred(self.store.points, query.table(), first, last, query.domains)
            d.addCallback(lambda rows: ("application/json", json.dumps(query.answer(rows)) + "\n"))
        elif isinstance(query, usage.UsageQuery):
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
