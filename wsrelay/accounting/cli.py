"""`wsrelay-stats`: the statistics of the store a config file names, as JSON on stdout (SQLite only for now)."""

import argparse
import json
import sqlite3
import sys

from wsrelay.accounting.query import QueryError, align, check_query, parse_time, traffic_series
from wsrelay.accounting.sqlite import select_points
from wsrelay.config import ConfigError, load_config


def main(argv=None, out=sys.stdout, err=sys.stderr):
    parser = argparse.ArgumentParser(prog="wsrelay-stats", description=__doc__)
    parser.add_argument("--config", default="etc/relay.ini", help="the relay's config file")
    commands = parser.add_subparsers(dest="command", required=True)
    traffic = commands.add_parser("traffic", help="traffic and bandwidth on the client leg")
    traffic.add_argument("--start", required=True, help="ISO 8601 with a zone, e.g. 2024-05-01T00:00:00Z")
    traffic.add_argument("--end", required=True, help="ISO 8601 with a zone")
    traffic.add_argument("--interval", type=int, default=300, help="300, 3600 or 86400 (must fit the span)")
    traffic.add_argument("--domain", action="append", help="a domain (repeat for several; none: all)")
    traffic.add_argument("--region", action="append", help="a region filter (repeatable)")
    traffic.add_argument("--isp", action="append", help="an ISP filter (repeatable)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if config.accounting is None or config.accounting.store != "sqlite":
            raise ConfigError(args.config, "relay", "accounting", "wsrelay-stats reads accounting = sqlite only")
        start, end = parse_time(args.start, "start"), parse_time(args.end, "end")
        check_query(start, end, args.interval)
    except (ConfigError, QueryError) as e:
        err.write(f"wsrelay-stats: {e}\n")
        return 2
    path = config.accounting.options[0]
    first, last = align(start, end, args.interval)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = select_points(db, "traffic_5m", first, last, args.domain, args.region, args.isp)
    except sqlite3.Error as e:
        err.write(f"wsrelay-stats: {path}: {e}\n")
        return 1
    finally:
        db.close()
    json.dump({"interval": args.interval, "domains": args.domain, "regions": args.region, "isps": args.isp,
               "points": traffic_series(rows, start, end, args.interval)}, out, indent=1)
    out.write("\n")
    return 0


def run():
    sys.exit(main())
