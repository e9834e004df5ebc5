"""
Every statistics store passes one contract (StoreContract): batches add up,
a batch id counts once, hours and days are computed from the finer points,
retention deletes old points, rows are plain values. SQLite (WAL, schema
versions) and PostgreSQL on a real server (tests/pg.py: nodes writing at
once, the fleet-wide write lock, timeouts, a lost connection).
"""

import json
import os
import shutil
import sqlite3
import tempfile
import time

import psycopg
import pytest
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests import schema_v2, schema_v3
from tests.support import WAIT
from wsrelay.accounting import schema
from wsrelay.accounting.builtin import PostgreSQLFactory
from wsrelay.accounting.meter import COUNTS, Batch
from wsrelay.accounting import postgresql
from wsrelay.accounting.postgresql import LOCK, PostgreSQLAccounting
from wsrelay.accounting.sqlite import SQLiteAccounting
from wsrelay.interfaces import IAccounting

DAY = 86400
T0 = 1_700_006_400  # a UTC midnight


def row(client_out=0, opened=0):
    values = [0] * len(COUNTS)
    values[COUNTS.index("client_bytes_out")] = client_out
    values[COUNTS.index("opened")] = opened
    return tuple(values)


def batch(seq, points, node="n1", run="r1", peaks=None, statuses=None):
    return Batch(node, run, seq, traffic=points, peaks=peaks or {}, statuses=statuses or {})


class StoreContract:
    """Mixin: `make_store()` returns a fresh, empty IAccounting."""

    def test_it_provides_the_interface(self):
        self.assertTrue(verifyObject(IAccounting, self.make_store()))

    async def test_http_points_are_kept_apart_from_websocket_points_at_every_width(self):
        store = self.make_store()
        key = ("a.example", T0, "private", "private")
        await store.write(Batch("n1", "r1", 1, traffic={key: row(100, 1)}, peaks={key: 2}, statuses={(*key, 101): 1},
                                http_traffic={key: row(30, 3)}, http_peaks={key: 1},
                                http_statuses={(*key, 200): 2, (*key, 502): 1}))
        for table in ("traffic_5m", "traffic_1h", "traffic_1d"):
            points = {p["kind"]: p for p in await store.points(table, T0 - DAY, T0 + DAY)}
            self.assertEqual({k: (p["client_bytes_out"], p["opened"]) for k, p in points.items()},
                             {"websocket": (100, 1), "http": (30, 3)}, table)
        hours = {p["kind"]: p["peak_concurrent"] for p in await store.points("traffic_1h", T0, T0 + 3600)}
        self.assertEqual(hours, {"websocket": 2, "http": 1})
        for table in ("statuses_5m", "statuses_1d"):
            found = {(p["kind"], p["status"]): p["count"] for p in await store.points(table, T0 - DAY, T0 + DAY)}
            self.assertEqual(found, {("websocket", 101): 1, ("http", 200): 2, ("http", 502): 1}, table)

    async def test_points_by_protocol_are_kept_apart_rolled_up_and_expired(self):
        """h1 and h2 points of each kind: sessions and client bytes, summed into hours and days, pruned per width."""
        store = self.make_store()
        key = ("a.example", T0, "private", "private")
        later = ("a.example", T0 + 300, "private", "private")
        await store.write(Batch("n1", "r1", 1, traffic={key: row(100, 3)},
                                protocols={(*key, "h1"): (2, 10, 60), (*key, "h2"): (1, 5, 40)},
                                http_protocols={(*key, "h2"): (4, 7, 9)}))
        await store.write(Batch("n2", "r1", 1, protocols={(*later, "h2"): (1, 20, 30), (*key, "h2"): (0, 1, 2)}))
        fine = {(p["bucket"], p["kind"], p["protocol"]): (p["opened"], p["client_bytes_in"], p["client_bytes_out"])
                for p in await store.points("protocols_5m", T0, T0 + 600)}
        self.assertEqual(fine, {(T0, "websocket", "h1"): (2, 10, 60), (T0, "websocket", "h2"): (1, 6, 42),
                                (T0, "http", "h2"): (4, 7, 9), (T0 + 300, "websocket", "h2"): (1, 20, 30)})
        for table in ("protocols_1h", "protocols_1d"):
            coarse = {(p["bucket"], p["kind"], p["protocol"]): (p["opened"], p["client_bytes_in"],
                                                               p["client_bytes_out"])
                      for p in await store.points(table, T0 - DAY, T0 + DAY)}
            self.assertEqual(coarse, {(T0, "websocket", "h1"): (2, 10, 60), (T0, "websocket", "h2"): (2, 26, 72),
                                      (T0, "http", "h2"): (4, 7, 9)}, table)
        await store.expire(T0 + 2 * DAY, {300: DAY, 3600: 3 * DAY, 86400: 3 * DAY})
        self.assertEqual(await store.points("protocols_5m", T0 - DAY, T0 + DAY), [])
        self.assertEqual(len(await store.points("protocols_1h", T0 - DAY, T0 + DAY)), 3)

    async def test_a_version_3_database_is_upgraded_in_place_and_counts_by_protocol(self):
        """Version 4 only adds the protocol tables: version-3 points stay as they were, new batches fill both."""
        statements = list(schema_v3.STATEMENTS) + [
            "INSERT INTO schema_version (version) VALUES (3)",
            f"INSERT INTO traffic_5m (domain, bucket, region, isp, kind, client_bytes_out, opened) "
            f"VALUES ('a.example', {T0}, 'private', 'private', 'http', 42, 1)",
            f"INSERT INTO statuses_5m (domain, bucket, region, isp, kind, status, count) "
            f"VALUES ('a.example', {T0}, 'private', 'private', 'websocket', 101, 1)",
        ]
        store = self.old_store(statements)
        key = ("a.example", T0, "private", "private")
        await store.write(Batch("n1", "r1", 1, http_traffic={key: row(8, 1)}, http_statuses={(*key, 200): 1},
                                http_protocols={(*key, "h2"): (1, 3, 8)}))
        self.assertEqual([(p["kind"], p["client_bytes_out"], p["opened"])
                          for p in await store.points("traffic_5m", T0, T0 + 300)], [("http", 50, 2)])
        statuses = {(p["kind"], p["status"]): p["count"] for p in await store.points("statuses_5m", T0, T0 + 300)}
        self.assertEqual(statuses, {("websocket", 101): 1, ("http", 200): 1})
        for table in ("protocols_5m", "protocols_1h", "protocols_1d"):
            self.assertEqual([(p["kind"], p["protocol"], p["opened"], p["client_bytes_out"])
                              for p in await store.points(table, T0 - DAY, T0 + DAY)], [("http", "h2", 1, 8)], table)
        self.assertEqual(self.schema_version(), schema.VERSION)

    async def test_a_version_2_database_is_upgraded_in_place_and_keeps_its_points(self):
        """Points written before the kind column are WebSocket points, at every width; new ones of both kinds add to them."""
        statements = list(schema_v2.STATEMENTS) + [
            "INSERT INTO schema_version (version) VALUES (2)",
            f"INSERT INTO traffic_5m (domain, bucket, region, isp, client_bytes_out, opened) "
            f"VALUES ('a.example', {T0}, 'private', 'private', 42, 1)",
            f"INSERT INTO traffic_1h (domain, bucket, region, isp, client_bytes_out, opened, peak_concurrent) "
            f"VALUES ('a.example', {T0}, 'private', 'private', 42, 1, 1)",
            f"INSERT INTO statuses_5m (domain, bucket, region, isp, status, count) "
            f"VALUES ('a.example', {T0}, 'private', 'private', 101, 1)",
            f"INSERT INTO closes_5m (domain, bucket, region, isp, leg, code, closed_by, count) "
            f"VALUES ('a.example', {T0}, 'private', 'private', 'client', 1000, 'client', 1)",
            f"INSERT INTO peaks_5m (domain, bucket, region, isp, node, peak) "
            f"VALUES ('a.example', {T0}, 'private', 'private', 'n0', 1)",
        ]
        store = self.old_store(statements)
        key = ("a.example", T0, "private", "private")
        await store.write(Batch("n1", "r1", 1, traffic={key: row(8, 1)}, peaks={key: 1},
                                http_traffic={key: row(5, 1)}, http_statuses={(*key, 200): 1}))
        points = {p["kind"]: p["client_bytes_out"] for p in await store.points("traffic_5m", T0, T0 + 300)}
        self.assertEqual(points, {"websocket": 50, "http": 5})
        hours = {p["kind"]: (p["client_bytes_out"], p["opened"], p["peak_concurrent"])
                 for p in await store.points("traffic_1h", T0, T0 + 3600)}
        self.assertEqual(hours, {"websocket": (50, 2, 2), "http": (5, 1, 0)})
        statuses = {(p["kind"], p["status"]): p["count"] for p in await store.points("statuses_5m", T0, T0 + 300)}
        self.assertEqual(statuses, {("websocket", 101): 1, ("http", 200): 1})
        closes = [(p["kind"], p["code"], p["count"]) for p in await store.points("closes_5m", T0, T0 + 300)]
        self.assertEqual(closes, [("websocket", 1000, 1)])
        self.assertEqual(self.schema_version(), schema.VERSION)

    async def test_batches_add_up_and_a_batch_id_counts_once(self):
        store = self.make_store()
        key = ("a.example", T0, "private", "private")
        first = batch(1, {key: row(100, 1)})
        self.assertTrue(await store.write(first))
        self.assertFalse(await store.write(first))  # a retry of the same batch
        await store.write(batch(2, {key: row(50)}))
        await store.write(batch(1, {key: row(7)}, node="n2"))
        points = await store.points("traffic_5m", T0, T0 + 300)
        self.assertEqual([(p["client_bytes_out"], p["opened"]) for p in points], [(157, 1)])

    async def test_hours_and_days_are_computed_from_finer_points(self):
        store = self.make_store()
        a, b = ("a.example", "US", "isp1"), ("a.example", "DE", "isp2")
        points = {
            (a[0], T0, a[1], a[2]): row(300),
            (a[0], T0 + 300, a[1], a[2]): row(900),
            (a[0], T0 + 3600, a[1], a[2]): row(600),
            (b[0], T0 + 3300, b[1], b[2]): row(30),
        }
        peaks = {(a[0], T0, a[1], a[2]): 4}
        await store.write(batch(1, points, peaks=peaks))
        await store.write(batch(1, {}, node="n2", peaks=peaks))  # another node, same bucket: peaks add
        hours = await store.points("traffic_1h", T0, T0 + DAY, regions=["US"])
        self.assertEqual([(h["bucket"], h["client_bytes_out"], h["peak_client_bytes_out"], h["peak_concurrent"])
                          for h in hours], [(T0, 1200, 900, 8), (T0 + 3600, 600, 600, 0)])
        days = await store.points("traffic_1d", T0, T0 + DAY)
        totals = {d["region"]: (d["client_bytes_out"], d["peak_client_bytes_out"]) for d in days}
        self.assertEqual(totals, {"US": (1800, 900), "DE": (30, 30)})

    async def test_a_billing_setting_is_recorded_only_when_it_changes(self):
        store = self.make_store()
        await store.record_billing("n1", [("a.example", "traffic", "monthly", T0),
                                          ("b.example", "bandwidth", "daily", T0)])
        await store.record_billing("n2", [("a.example", "traffic", "monthly", T0 + 10)])  # the same: nothing
        await store.record_billing("n2", [("a.example", "bandwidth", "monthly", T0 + 20)])
        await store.record_billing("n2", [("a.example", "bandwidth", "monthly", T0 + 20)])  # a retry
        await store.record_billing("n1", [("a.example", "traffic", "monthly", T0 + 30)])  # and back
        # two reloads within one second are two changes
        await store.record_billing("n1", [("a.example", "traffic", "daily", T0 + 40.25),
                                          ("a.example", "traffic", "monthly", T0 + 40.75)])
        history = await store.billing_history(["a.example"])
        self.assertEqual([(h["changed_at"], h["method"], h["cycle"]) for h in history],
                         [(T0, "traffic", "monthly"), (T0 + 20, "bandwidth", "monthly"),
                          (T0 + 30, "traffic", "monthly"), (T0 + 40.25, "traffic", "daily"),
                          (T0 + 40.75, "traffic", "monthly")])
        self.assertEqual([h["domain"] for h in await store.billing_history()],
                         ["a.example", "b.example"] + ["a.example"] * 4)
        self.assertEqual(await store.billing_history([]), [])

    async def test_retention_deletes_old_points_per_width(self):
        store = self.make_store()
        old, new = T0 - 10 * DAY, T0
        key = lambda t: ("a.example", t, "private", "private")  # noqa: E731
        await store.write(batch(1, {key(old): row(1), key(new): row(2)}))
        await store.expire(T0 + 300, {300: 5 * DAY, 3600: 20 * DAY, 86400: 20 * DAY})
        self.assertEqual([p["bucket"] for p in await store.points("traffic_5m", 0, T0 + DAY)], [new])
        self.assertEqual(len(await store.points("traffic_1h", 0, T0 + DAY)), 2)

    async def test_rows_are_plain_values(self):
        store = self.make_store()
        key = ("a.example", T0, "US", "isp1")
        await store.write(batch(1, {key: row(2**40, 3)}, peaks={key: 2}))
        await store.write(batch(1, {key: row(2**40)}, node="n2"))
        for table in ("traffic_5m", "traffic_1h", "traffic_1d", "peaks_5m"):
            rows = await store.points(table, T0, T0 + DAY)
            self.assertTrue(rows)
            for point in rows:
                self.assertEqual({type(v) for v in point.values()} - {int, str}, set(), (table, point))
            json.dumps(rows)
        [day] = await store.points("traffic_1d", T0, T0 + DAY)
        self.assertEqual((day["client_bytes_out"], day["opened"]), (2**41, 3))

    async def test_an_empty_filter_matches_nothing(self):
        store = self.make_store()
        await store.write(batch(1, {("a.example", T0, "US", "isp1"): row(1)}))
        self.assertEqual(await store.points("traffic_5m", T0, T0 + DAY, domains=[]), [])
        self.assertEqual(len(await store.points("traffic_5m", T0, T0 + DAY, regions=["US", "DE"])), 1)


class SQLiteStoreTests(StoreContract, unittest.TestCase):
    def make_store(self):
        directory = tempfile.mkdtemp(prefix="wsrelay-store-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "stats.sqlite")
        store = SQLiteAccounting(self.path, reactor)
        self.addCleanup(store.close)
        return store

    def old_store(self, statements):
        directory = tempfile.mkdtemp(prefix="wsrelay-store-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "old.sqlite")
        db = sqlite3.connect(self.path)
        for statement in statements:
            db.execute(statement)
        db.commit()
        db.close()
        store = SQLiteAccounting(self.path, reactor)
        self.addCleanup(store.close)
        return store

    def schema_version(self):
        db = sqlite3.connect(self.path)
        try:
            return db.execute("SELECT version FROM schema_version").fetchone()[0]
        finally:
            db.close()

    async def test_the_file_is_in_wal_mode_with_a_schema_version(self):
        store = self.make_store()
        await store.write(batch(1, {}))
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchone()[0], schema.VERSION)

    async def test_a_version_1_file_is_upgraded_and_keeps_its_points(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.path = os.path.join(directory, "old.sqlite")
        db = sqlite3.connect(self.path)
        for statement in schema_v2.STATEMENTS:
            if statement not in schema_v2.BILLING:
                db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute("INSERT INTO traffic_5m (domain, bucket, region, isp, client_bytes_out) "
                   "VALUES ('a.example', ?, 'private', 'private', 42)", (T0,))
        db.commit()
        db.close()
        store = SQLiteAccounting(self.path, reactor)
        self.addCleanup(store.close)
        self.assertEqual([p["client_bytes_out"] for p in await store.points("traffic_5m", T0, T0 + 300)], [42])
        await store.record_billing("n1", [("a.example", "traffic", "daily", T0)])
        self.assertEqual(await store.billing_history(), [
            {"domain": "a.example", "changed_at": T0, "method": "traffic", "cycle": "daily"}])
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchone()[0], schema.VERSION)


def pg_options(dsn, **keys):
    return PostgreSQLFactory().parse_options({"dsn": dsn, **{k: str(v) for k, v in keys.items()}}, "/")


class PostgreSQLStoreTests(StoreContract, unittest.TestCase):
    """A real PostgreSQL server (the `postgres` fixture), a new database per test."""

    @pytest.fixture(autouse=True)
    def _database(self, pg_dsn):
        self.dsn = pg_dsn

    def make_store(self, **keys):
        store = PostgreSQLAccounting(pg_options(self.dsn, **keys), reactor)
        self.addCleanup(store.close)
        return store

    def old_store(self, statements):
        db = self.connect()
        for statement in statements:
            db.execute(statement)
        return self.make_store()

    def schema_version(self):
        return self.connect().execute("SELECT version FROM schema_version").fetchone()[0]

    def connect(self):
        """A connection of the test's own (autocommit), closed at the end."""
        db = psycopg.connect(self.dsn, autocommit=True, connect_timeout=int(WAIT))
        self.addCleanup(db.close)
        return db

    async def until(self, condition):
        """Wait (bounded by WAIT) for condition() to hold, asking the server every 50 ms."""
        deadline = time.monotonic() + WAIT
        while not condition():
            self.assertLess(time.monotonic(), deadline, "the server never got there")
            await task.deferLater(reactor, 0.05, lambda: None)

    async def test_nodes_writing_at_once_lose_nothing_and_rollups_equal_the_sums(self):
        """
        Four nodes start together on an empty database (one creates the schema)
        and write 20 batches each, all in flight at once, over the same keys
        across an hour and a day boundary: nothing is lost and every 1-hour and
        1-day point is the sum of its 5-minute points.
        """
        await self.nodes_at_once()

    async def test_a_database_defaulting_to_repeatable_read_changes_nothing(self):
        """The store names READ COMMITTED: under REPEATABLE READ its snapshots would predate the lock."""
        self.connect().execute(f"ALTER DATABASE {self.connect().info.dbname} "
                               "SET default_transaction_isolation = 'repeatable read'")
        self.assertEqual(self.connect().execute("SHOW default_transaction_isolation").fetchone(),
                         ("repeatable read",))
        await self.nodes_at_once()

    async def nodes_at_once(self):
        stores = [self.make_store() for _ in range(4)]
        expected, writes = {}, []
        for seq in range(1, 21):
            for n, store in enumerate(stores):
                points = {}
                for i in range(6):
                    key = ("ab"[i % 2] + ".example", T0 + 23 * 3600 + 300 * ((seq + i) % 24), "US", "isp")
                    points[key] = row(seq * 10 + n + i, 1)
                    expected[key] = expected.get(key, 0) + seq * 10 + n + i
                writes.append(store.write(batch(seq, points, node=f"n{n}")))
        self.assertEqual(await defer.gatherResults(writes), [True] * len(writes))

        reader = stores[0]
        fine = await reader.points("traffic_5m", T0, T0 + 2 * DAY)
        self.assertEqual({(p["domain"], p["bucket"], p["region"], p["isp"]): p["client_bytes_out"] for p in fine},
                         expected)
        for table, width in (("traffic_1h", 3600), ("traffic_1d", DAY)):
            sums = {}
            for p in fine:
                at = (p["domain"], p["bucket"] // width * width)
                sums[at] = [a + b for a, b in zip(sums.get(at, (0, 0)), (p["client_bytes_out"], p["opened"]))]
            coarse = await reader.points(table, T0, T0 + 2 * DAY)
            self.assertEqual({(p["domain"], p["bucket"]): [p["client_bytes_out"], p["opened"]] for p in coarse},
                             sums)
        self.assertEqual(len(sums), 4)  # two domains on two days

    async def test_a_write_waits_for_the_fleet_wide_lock(self):
        store = self.make_store()
        await store.write(batch(1, {}))  # connected, schema made
        holder, watcher = self.connect(), self.connect()
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
        d = store.write(batch(2, {("a.example", T0, "US", "isp"): row(5)}))
        await self.until(lambda: watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wsrelay' "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'").fetchone()[0] == 1)
        self.assertFalse(d.called)
        holder.execute("COMMIT")
        self.assertTrue(await d)

    async def test_a_slow_database_fails_the_write_at_statement_timeout_and_the_retry_counts_once(self):
        store = self.make_store(statement_timeout=0.3)
        key = ("a.example", T0, "US", "isp")
        await store.write(batch(1, {}, node="n0"))  # connected
        holder, watcher = self.connect(), self.connect()
        backends = "SELECT pid FROM pg_stat_activity WHERE application_name = 'wsrelay'"
        before = watcher.execute(backends).fetchall()
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))  # another node holds it for long
        started = time.monotonic()
        with self.assertRaises(psycopg.errors.QueryCanceled):
            await store.write(batch(1, {key: row(7)}))
        self.assertLess(time.monotonic() - started, WAIT)
        holder.execute("COMMIT")
        self.assertTrue(await store.write(batch(1, {key: row(7)})))   # the flush's retry
        self.assertEqual(watcher.execute(backends).fetchall(), before)  # on the same connection
        self.assertFalse(await store.write(batch(1, {key: row(7)})))
        self.assertEqual([p["client_bytes_out"] for p in await store.points("traffic_5m", T0, T0 + DAY)], [7])

    async def test_a_lost_connection_is_opened_again_at_the_next_call(self):
        store = self.make_store()
        key = ("a.example", T0, "US", "isp")
        self.assertTrue(await store.write(batch(1, {key: row(1)})))
        watcher = self.connect()
        [pid] = watcher.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'wsrelay'").fetchone()
        watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await self.until(lambda: watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0)
        with self.assertRaises(psycopg.OperationalError):
            await store.write(batch(2, {key: row(2)}))
        self.assertTrue(await store.write(batch(2, {key: row(2)})))
        self.assertEqual([p["client_bytes_out"] for p in await store.points("traffic_5m", T0, T0 + DAY)], [3])

    async def test_the_schema_has_a_version_and_the_store_names_itself(self):
        store = self.make_store()
        await store.write(batch(1, {}))
        watcher = self.connect()
        self.assertEqual(watcher.execute("SELECT version FROM schema_version").fetchall(), [(schema.VERSION,)])
        self.assertEqual(watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wsrelay'").fetchone()[0], 1)

    def test_a_connection_has_the_timeouts_and_the_defaults_the_dsn_does_not_override(self):
        db = postgresql.connect(pg_options(self.dsn + " application_name=mine keepalives_idle=7",
                                           connect_timeout=3, statement_timeout=2.5))
        self.addCleanup(db.close)
        params = db.info.get_parameters()
        self.assertEqual([params.get(k) for k in ("application_name", "keepalives_idle", "keepalives_count",
                                                  "tcp_user_timeout", "connect_timeout")],
                         ["mine", "7", "3", "30000", "3"])
        self.assertEqual(db.execute("SHOW statement_timeout").fetchone(), ("2500ms",))
