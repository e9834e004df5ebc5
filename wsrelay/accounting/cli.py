"""
`wsrelay-stats`: the statistics of the store a config file names (any
installed store) as JSON on stdout, and the billing report (`usage`) as JSON or CSV.
"""

import argparse
import json
import sys
import time

from wsrelay.accounting import usage
from wsrelay.accounting.query import KINDS, QueryError, make_query
from wsrelay.config import ConfigError, load_config

HELP = {
    "traffic": "traffic (bytes, messages, requests) and bandwidth on the client leg",
    "connections": "sessions (or requests) opened and closed, peak concurrent ones, their seconds",
    "statuses": "HTTP status codes of handshakes (or requests)",
    "closes": "close codes per leg and who closed",
    "protocols": "sessions (or requests) and client bytes by carrying protocol (h1, h2)",
}


def parser():
    top = argparse.ArgumentParser(prog="wsrelay-stats", description=__doc__)
    top.add_argument("--config", default="etc/relay.ini", help="the relay's config file")
    commands = top.add_subparsers(dest="command", required=True)
    for kind in KINDS:
        command = commands.add_parser(kind, help=HELP[kind])
        command.add_argument("--start", required=True, help="ISO 8601 with a zone, e.g. 2024-05-01T00:00:00Z")
        command.add_argument("--end", required=True, help="ISO 8601 with a zone")
        command.add_argument("--interval", default="300", help="300, 3600 or 86400 (must fit the span)")
        command.add_argument("--domain", action="append", help="a domain (repeat for several; none: all)")
        command.add_argument("--region", action="append", help="a region filter (repeatable)")
        command.add_argument("--isp", action="append", help="an ISP filter (repeatable)")
        command.add_argument("--kind", default="websocket",
                             help="websocket (sessions, the default), http (plain HTTP requests) or all")
        if kind == "closes":
            command.add_argument("--leg", action="append", help="client or origin (repeatable; none: both)")
    command = commands.add_parser("usage", help="the billing report: one row per domain and billing cycle")
    command.add_argument("--start", required=True, help="ISO 8601 with a zone, e.g. 2026-11-01T00:00:00Z")
    command.add_argument("--end", required=True, help="ISO 8601 with a zone (at most 92 days after start)")
    command.add_argument("--domain", action="append",
                         help="a [domain:...] section's name (repeat for several; none: every configured one)")
    command.add_argument("--format", default="json", help="json or csv")
    return top


def main(argv=None, out=sys.stdout, err=sys.stderr):
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if config.accounting is None:
            raise ConfigError(args.config, "relay", "accounting", "is off: there is no statistics store to read")
        if args.command == "usage":
            query = usage.make_usage_query(config, args.start, args.end, args.domain, args.format)
        else:
            query = make_query(args.command, args.start, args.end, args.interval, args.domain, args.region,
                               args.isp, getattr(args, "leg", None), args.kind)
    except (ConfigError, QueryError) as e:
        err.write(f"wsrelay-stats: {e}\n")
        return 2
    try:
        if args.command == "usage":
            rows = with_store(config.accounting, lambda store: usage.report(store, query, time.time()))
        else:
            fetched = fetch(config.accounting, query)
    except Exception as e:  # whatever the store's driver raises: the database is unreachable, locked, ...
        err.write(f"wsrelay-stats: accounting = {config.accounting.store}: {e}\n")
        return 1
    if args.command == "usage":
        out.write(usage.render(query, rows)[1])
        return 0
    json.dump(query.answer(fetched), out, indent=1)
    out.write("\n")
    return 0


def fetch(settings, query):
    """The rows of each of query.tables() from the store `settings` (AccountingSettings) names."""
    first, last = query.bounds()

    async def ask(store):
        return [await store.points(table, first, last, query.domains, query.regions, query.isps)
                for table in query.tables()]

    return with_store(settings, ask)


def with_store(settings, ask):
    """
    What `ask(store)` (a Deferred or a coroutine) gives, from the store
    `settings` (AccountingSettings) names: built on a reactor of this call's
    own (the store delivers its results on it), asked, closed. Raises what
    the store failed with.
    """
    from twisted.internet import defer
    from twisted.internet.selectreactor import SelectReactor
    from twisted.python.failure import Failure

    reactor = SelectReactor()
    outcome = []

    async def asked():
        store = settings.factory.build(settings.options, reactor)
        try:
            return await ask(store)
        finally:
            await store.close()

    def start():
        d = defer.ensureDeferred(asked())
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    reactor.waker.connectionLost(None)  # the reactor is done with: close its wake-up pipe
    [result] = outcome
    if isinstance(result, Failure):
        result.raiseException()
    return result


def run():
    sys.exit(main())
