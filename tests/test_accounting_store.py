"""
Every statistics store passes one contract (StoreContract): batches add up,
a batch id counts once, hours and days are computed from the finer points,
retention deletes old points. SQLite here; WAL and schema versions too.
"""

import os
import shutil
import sqlite3
import tempfile

from twisted.internet import reactor
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from wsrelay.accounting import schema
from wsrelay.accounting.meter import COUNTS, Batch
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
        history = await store.billing_history(["a.example"])
        self.assertEqual([(h["changed_at"], h["method"], h["cycle"]) for h in history],
                         [(T0, "traffic", "monthly"), (T0 + 20, "bandwidth", "monthly"),
                          (T0 + 30, "traffic", "monthly")])
        self.assertEqual([h["domain"] for h in await store.billing_history()],
                         ["a.example", "b.example", "a.example", "a.example"])
        self.assertEqual(await store.billing_history([]), [])

    async def test_retention_deletes_old_points_per_width(self):
        store = self.make_store()
        old, new = T0 - 10 * DAY, T0
        key = lambda t: ("a.example", t, "private", "private")  # noqa: E731
        await store.write(batch(1, {key(old): row(1), key(new): row(2)}))
        await store.expire(T0 + 300, {300: 5 * DAY, 3600: 20 * DAY, 86400: 20 * DAY})
        self.assertEqual([p["bucket"] for p in await store.points("traffic_5m", 0, T0 + DAY)], [new])
        self.assertEqual(len(await store.points("traffic_1h", 0, T0 + DAY)), 2)


class SQLiteStoreTests(StoreContract, unittest.TestCase):
    def make_store(self):
        directory = tempfile.mkdtemp(prefix="wsrelay-store-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "stats.sqlite")
        store = SQLiteAccounting(self.path, reactor)
        self.addCleanup(store.close)
        return store

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
        for statement in schema.create_statements():
            if statement not in schema.BILLING_TABLE:
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
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchone()[0], 2)
