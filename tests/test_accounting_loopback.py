"""
Exactness end to end: a real `twistd -n wsrelay` process relays a scripted
set of messages of known sizes between two `websockets` peers, and the
totals stored in its SQLite database equal what the wire carried, byte for
byte on each leg (frame sizes computed here from RFC 6455), across a flush,
a restart of the relay and a database outage (the file locked by another
process for a while).
"""

import asyncio
import signal
import sqlite3
import time

from tests.support import WAIT, RelayProcess, free_port, run
from tests.traffic import EchoOrigin, Expected, talk, totals_of, wait_for_log, wait_for_totals


def stored(path):
    """The sums of the 5-minute and the 1-day points (they must agree)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=WAIT)
    try:
        cursor = db.cursor()
        return totals_of(cursor, "traffic_5m"), totals_of(cursor, "traffic_1d")
    except sqlite3.OperationalError:
        return None, None  # not created yet
    finally:
        db.close()


def config(origin_port):
    return f"""
        [relay]
        listen = tcp:{{port}}:interface=127.0.0.1
        heartbeat_interval = 0
        connection_timeout = 0
        [accounting]
        database = stats.sqlite
        flush_interval = 0.5
        busy_timeout = 1
        [domain:*]
        origins = 127.0.0.1:{origin_port}
        """


def test_stored_totals_equal_the_wire_across_flush_restart_and_outage(tmp_path):
    async def scenario():
        expected = Expected()
        async with EchoOrigin() as origin:
            relay = RelayProcess(tmp_path, config(origin.port))
            path = relay.dir / "stats.sqlite"
            with relay:
                await talk(relay, origin, expected)
                await talk(relay, origin, expected, sizes=(3, 70_000))
                await asyncio.to_thread(wait_for_totals, lambda: stored(path), expected)  # written by a periodic flush

                await talk(relay, origin, expected, sizes=(10,) * 50)
                relay.signal(signal.SIGTERM)   # written by the flush at shutdown
                assert await asyncio.to_thread(relay.wait) in (0, -signal.SIGTERM)
            assert stored(path)[0] == expected.totals

            relay.port = free_port()
            relay.config.write_text(config(origin.port).replace("{port}", str(relay.port)))
            with relay:  # the same database after a restart
                await talk(relay, origin, expected, sizes=(1000,))
                await asyncio.to_thread(wait_for_totals, lambda: stored(path), expected)

                lock = sqlite3.connect(path, isolation_level=None, timeout=WAIT)
                lock.execute("BEGIN EXCLUSIVE")  # another process holds the database
                try:
                    started = time.monotonic()
                    await talk(relay, origin, expected)
                    await asyncio.to_thread(wait_for_log, relay, "cannot write the statistics")
                    await talk(relay, origin, expected, sizes=(5, 6, 7))
                    assert time.monotonic() - started < WAIT  # relaying went on meanwhile
                finally:
                    lock.execute("ROLLBACK")
                    lock.close()
                await asyncio.to_thread(wait_for_totals, lambda: stored(path), expected)
                await asyncio.to_thread(wait_for_log, relay, "statistics are written again")
            assert relay.log().count("cannot write the statistics") == 1

    run(scenario(), timeout=WAIT * 6)
