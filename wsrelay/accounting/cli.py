"""`wsrelay-stats`: the statistics of the store a config file names, as JSON on stdout (SQLite only for now)."""

import argparse
import json
import sqlite3
import sys

from wsrelay.accounting.query import KINDS, QueryError, make_query
from wsrelay.accounting.sqlite import select_points
from wsrelay.config import ConfigError, load_config

HELP = {
    "traffic": "traffic (bytes, messages) and bandwidth on the client leg",
    "connections": "sessions opened and closed, peak concurrent sessions, session seconds",
    "statuses": "handshake HTTP status codes",
    "closes": "close codes per leg and who closed",
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
        if kind == "closes":
            command.add_argument("--leg", action="append", help="client or origin (repeatable; none: both)")
    return top


def main(argv=None, out=sys.stdout, err=sys.stderr):
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if config.accounting is None or config.accounting.store != "sqlite":
            raise ConfigError(args.config, "relay", "accounting", "wsrelay-stats reads accounting = sqlite only")
        query = make_query(args.command, args.start, args.end, args.interval, args.domain, args.region,
                           args.isp, getattr(args, "leg", None))
    except (ConfigError, QueryError) as e:
        err.write(f"wsrelay-stats: {e}\n")
        return 2
    path = config.accounting.options[0]
    first, last = query.bounds()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            fetched = [select_points(db, table, first, last, query.domains, query.regions, query.isps)
                       for table in query.tables()]
        finally:
            db.close()
    except sqlite3.Error as e:
        err.write(f"wsrelay-stats: {path}: {e}\n")
        return 1
    json.dump(query.answer(fetched), out, indent=1)
    out.write("\n")
    return 0


def run():
    sys.exit(main())
