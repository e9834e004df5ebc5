"""
The usage report (billing) as a query over any IAccounting store: which
domains and cycles, what to read (the recorded billing changes, then daily
and 5-minute traffic), and the report rows from wsrelay.accounting.billing.
Shared by the admin API (GET /v1/usage) and `wsrelay-stats usage`.
"""

from dataclasses import dataclass

from twisted.internet import defer

from wsrelay.accounting import billing
from wsrelay.accounting.query import MAX_SPAN, QueryError, _filter, parse_time

FORMATS = ("json", "csv")


@dataclass(frozen=True)
class UsageQuery:
    """Every cycle of `domains` overlapping [start, end), from a config's billing settings."""

    start: float
    end: float
    domains: tuple     # names of [domain:...] sections
    settings: dict     # name -> billing.BillingSettings
    format: str = "json"


def make_usage_query(config, start, end, domains=None, fmt="json"):
    """A UsageQuery from text (URL parameters, a command line); QueryError says what is wrong."""
    if start is None or end is None:
        raise QueryError("start and end are required (ISO 8601 with a zone, e.g. 2026-11-01T00:00:00Z)")
    first, last = parse_time(start, "start"), parse_time(end, "end")
    if last <= first:
        raise QueryError("end must be after start")
    if last - first > MAX_SPAN:
        raise QueryError(f"a usage report spans at most 92 days (three months); this one spans "
                         f"{(last - first) / 86400:g} days")
    fmt = (fmt or "json").strip().lower()
    if fmt not in FORMATS:
        raise QueryError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    configured = {domain.name: domain.billing for domain in config.each_domain()}
    names = _filter(domains, "domain") or tuple(configured)
    for name in names:
        if name not in configured:
            raise QueryError(f"domain: {name!r} is not a [domain:...] section of the configuration "
                             f"(configured: {', '.join(configured)})")
    return UsageQuery(first, last, names, {name: configured[name] for name in names}, fmt)


def report(store, query, now):
    """A Deferred firing with the report's rows (one per domain and cycle), read from `store`."""
    d = defer.maybeDeferred(store.billing_history, list(query.domains))
    d.addCallback(lambda history: _read(store, query, history, now))
    return d


def _read(store, query, history, now):
    steps = {}
    for name in query.domains:
        changes = [(row["changed_at"], row["method"], row["cycle"]) for row in history if row["domain"] == name]
        settings = query.settings[name]
        steps[name] = billing.schedule(changes, (settings.method, settings.cycle))
    spans = {name: billing.cycles(steps[name], query.start, query.end) for name in query.domains}
    first = min(span[0][0] for span in spans.values())
    last = max(span[-1][1] for span in spans.values())
    lookback = min(billing.plan_lookback(query.settings[name], first) for name in query.domains)
    domains = list(query.domains)
    d = defer.gatherResults([
        defer.maybeDeferred(store.points, "traffic_1d", lookback, last, domains),
        defer.maybeDeferred(store.points, "traffic_5m", first, last, domains),
    ], consumeErrors=True)

    def answered(fetched):
        # WebSocket traffic is billed on its own (plain HTTP is metered, not billed here)
        daily, fine = ([r for r in rows if r.get("kind", "websocket") == "websocket"] for rows in fetched)
        rows = []
        for name in query.domains:
            rows += billing.usage(
                name, query.settings[name], steps[name], query.start, query.end,
                billing.bytes_by_bucket(r for r in daily if r["domain"] == name),
                billing.bytes_by_bucket(r for r in fine if r["domain"] == name), now)
        return rows

    return d.addCallback(answered)


def render(query, rows):
    """(content type, text) of the report in the query's format."""
    if query.format == "csv":
        return "text/csv; charset=utf-8", billing.csv_rows(rows)
    import json

    body = {"start": billing.iso_time(query.start), "end": billing.iso_time(query.end),
            "domains": list(query.domains), "cycles": rows}
    return "application/json", json.dumps(body) + "\n"
