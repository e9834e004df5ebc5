"""
Exactness with PostgreSQL end to end: two real `twistd -n wsrelay` processes
(two nodes) write one database while scripted traffic goes through both at
once; the stored totals equal what the wire carried, byte for byte on each
leg, and `wsrelay-stats traffic` answers the fleet's. A relay whose server
is stopped mid-run keeps relaying, logs the failure once, and writes
everything, once, when the server is back.
"""

import asyncio
import json
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import psycopg

from tests.support import WAIT, run
from tests.traffic import SIZES, EchoOrigin, Expected, talk, totals_of, wait_for_log, wait_for_totals

STATS = str(Path(sys.executable).with_name("wsrelay-stats"))


def config(origin_port, dsn, node):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        connection_timeout = 0
        accounting = postgresql
        [accounting]
        dsn = {dsn}
        node_id = {node}
        flush_interval = 0.5
        connect_timeout = 2
        statement_timeout = 2
        [domain:*]
        origins = 127.0.0.1:{origin_port}
        """


def stored(dsn):
    """The sums of the 5-minute and the 1-day points (they must agree)."""
    try:
        with psycopg.connect(dsn, connect_timeout=int(WAIT)) as db:
            cursor = db.cursor()
            return totals_of(cursor, "traffic_5m"), totals_of(cursor, "traffic_1d")
    except psycopg.Error:
        return None, None  # not created yet, or the server is down


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_two_relays_write_one_database_exactly_and_wsrelay_stats_sees_the_fleet(make_relay, pg_dsn):
    async def scenario():
        expected = Expected()
        async with EchoOrigin() as origin:
            a = make_relay(config(origin.port, pg_dsn, "edge-a"), start=True)
            b = make_relay(config(origin.port, pg_dsn, "edge-b"), start=True)
            # both nodes meet an empty database at their first flush, and then write side by side
            await asyncio.gather(*(talk(relay, origin, expected, sizes)
                                   for relay in (a, b) for sizes in (SIZES, (3, 70_000), (10,) * 30)))
            await asyncio.to_thread(wait_for_totals, partial(stored, pg_dsn), expected)

            now = time.time()
            answer = await asyncio.to_thread(
                subprocess.run, [STATS, "--config", str(a.config), "traffic", "--start", iso(now - 3600),
                                 "--end", iso(now + 3600)], capture_output=True, text=True, timeout=WAIT)
            assert answer.returncode == 0, answer.stderr
            points = json.loads(answer.stdout)["points"]
            t = expected.totals
            assert [sum(p[k] for p in points) for k in ("bytes_in", "bytes_out", "messages_in", "messages_out")] == [
                t["client_bytes_in"], t["client_bytes_out"], t["client_messages_in"], t["client_messages_out"]]

            await asyncio.gather(talk(a, origin, expected, (1000,)), talk(b, origin, expected, (2000, 3)))
            for relay in (a, b):
                relay.signal(signal.SIGTERM)  # the last sessions are written by the flush at shutdown
            for relay in (a, b):
                assert await asyncio.to_thread(relay.wait) in (0, -signal.SIGTERM)
        assert stored(pg_dsn) == (expected.totals, expected.totals)
        with psycopg.connect(pg_dsn) as db:
            assert db.execute("SELECT DISTINCT node FROM batches ORDER BY node").fetchall() == [
                ("edge-a",), ("edge-b",)]

    run(scenario(), timeout=WAIT * 6)


def test_a_postgresql_outage_mid_run_loses_nothing_and_counts_nothing_twice(make_relay, own_postgres):
    # trust authentication ignores the password; the relay must never log it
    dsn = own_postgres.create_database() + " password=pw-s3cret"

    async def scenario():
        expected = Expected()
        async with EchoOrigin() as origin:
            relay = make_relay(config(origin.port, dsn, "edge-a"), start=True)
            await talk(relay, origin, expected, sizes=(5, 500))
            await asyncio.to_thread(wait_for_totals, partial(stored, dsn), expected)

            await asyncio.to_thread(own_postgres.stop, "fast")
            started = time.monotonic()
            await talk(relay, origin, expected)
            await asyncio.to_thread(wait_for_log, relay, "cannot write the statistics")
            await talk(relay, origin, expected, sizes=(70_000,) * 3)
            while time.monotonic() - started < 4 * 0.5:  # traffic through several failed flushes
                await talk(relay, origin, expected, sizes=(5, 6, 7))
                await asyncio.sleep(0.1)  # pacing the sessions; the loop is bounded by its 2 s
            assert time.monotonic() - started < WAIT  # relaying went on meanwhile

            await asyncio.to_thread(own_postgres.start)  # the same port and data
            await asyncio.to_thread(wait_for_totals, partial(stored, dsn), expected)
            await asyncio.to_thread(wait_for_log, relay, "statistics are written again")
            await talk(relay, origin, expected, sizes=(1,))
            await asyncio.to_thread(wait_for_totals, partial(stored, dsn), expected)
        log = relay.log()
        assert log.count("cannot write the statistics") == 1
        assert "s3cret" not in log

    run(scenario(), timeout=WAIT * 6)
