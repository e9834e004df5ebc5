"""
The `sqlite` store: one database file in WAL mode, written by one thread of
its own (never the reactor's), with a versioned schema upgraded at open.
"""

import os
import sqlite3

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from wsrelay.accounting import schema
from wsrelay.interfaces import IAccounting


def open_database(path, busy_timeout):
    """Open (creating or upgrading) the database: a sqlite3 connection in autocommit mode."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if not exists:
            for statement in schema.create_statements():
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.VERSION,))
        else:
            version = db.execute("SELECT version FROM schema_version").fetchone()[0]
            if version > schema.VERSION:
                raise RuntimeError(f"{path}: schema version {version} is newer than this wsrelay's "
                                   f"({schema.VERSION})")
            while version < schema.VERSION:
                version += 1
                for statement in schema.UPGRADES[version]:
                    db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (version,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        db.close()
        raise
    return db


def write_batch(db, batch, now):
    """One transaction: claim the batch id, add its points, recompute its rollups. False: already written."""
    db.execute("BEGIN IMMEDIATE")
    try:
        claimed = db.execute(schema.CLAIM_BATCH, (batch.node, batch.run, batch.seq, int(now))).rowcount
        if claimed:
            for statement, rows in schema.batch_rows(batch):
                if rows:
                    db.executemany(statement, rows)
            for statement, args in schema.rollups(batch):
                db.execute(statement, args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return bool(claimed)


def run_statements(db, statements):
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement, args in statements:
            db.execute(statement, args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def select_points(db, table, start, end, domains=None, regions=None, isps=None):
    if table not in schema.TABLES:
        raise ValueError(f"no table {table!r}")
    sql = f"SELECT * FROM {table} WHERE bucket >= ? AND bucket < ?"
    args = [start, end]
    for column, values in (("domain", domains), ("region", regions), ("isp", isps)):
        if values is not None:
            values = list(values)
            sql += f" AND {column} IN ({', '.join('?' for _ in values)})" if values else " AND 0"
            args += values
    cursor = db.execute(sql + " ORDER BY bucket", args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def select_rows(db, statement, args):
    cursor = db.execute(statement, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


@implementer(IAccounting)
class SQLiteAccounting:
    """IAccounting on one SQLite file; a single worker thread owns the connection."""

    def __init__(self, path, reactor, busy_timeout=2.0):
        self.path = path
        self.reactor = reactor
        self.busy_timeout = busy_timeout
        self._pool = ThreadPool(1, 1, name="wsrelay-sqlite")
        self._db = None
        self._trigger = None

    def _start(self):
        """The worker thread, started at the first call and stopped with the reactor at the latest."""
        if not self._pool.started:
            self._pool.start()
            self._trigger = self.reactor.addSystemEventTrigger("after", "shutdown", self._stop)

    def _stop(self):
        self._trigger = None
        self._pool.stop()

    def _call(self, function, *args):
        self._start()

        def work():
            if self._db is None:
                self._db = open_database(self.path, self.busy_timeout)
            return function(self._db, *args)

        return deferToThreadPool(self.reactor, self._pool, work)

    def write(self, batch):
        return self._call(write_batch, batch, self.reactor.seconds())

    def expire(self, now, retention):
        return self._call(run_statements, schema.expire_statements(now, retention))

    def points(self, table, start, end, domains=None, regions=None, isps=None):
        return self._call(select_points, table, start, end, domains, regions, isps)

    def record_billing(self, node, changes):
        return self._call(run_statements, [schema.record_billing(*change, node) for change in changes])

    def billing_history(self, domains=None):
        return self._call(select_rows, *schema.select_billing(domains))

    def close(self):
        def shut(db):
            db.close()
            self._db = None

        if not self._pool.started:
            return defer.succeed(None)
        d = self._call(shut) if self._db is not None else deferToThreadPool(self.reactor, self._pool, lambda: None)

        def stop(result):
            if self._trigger is not None:
                self.reactor.removeSystemEventTrigger(self._trigger)
                self._stop()
            return result

        return d.addBoth(stop)
