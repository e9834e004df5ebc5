"""
The `sqlite` store: one database file in WAL mode, written by one thread of
its own (never the reactor's), with a versioned schema upgraded at open.
`BEGIN IMMEDIATE` takes the file's write lock for each write transaction.
"""

import os
import sqlite3

from wsrelay.accounting import sql
from wsrelay.accounting.threaded import ThreadedStore

SQLITE = sql.Dialect(
    name="sqlite",
    paramstyle="qmark",
    begin=("BEGIN IMMEDIATE",),
    schema_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
)


def open_database(path, busy_timeout):
    """Open (creating or upgrading) the database: a sqlite3 connection in autocommit mode."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise sqlite3.OperationalError(f"{path}: {e}") from e
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        sql.prepare_schema(db, SQLITE, path)
        sql.prepare_writes(db, SQLITE)
    except BaseException:
        db.close()
        raise
    return db


# The shared functions bound to SQLite, for tools and tests holding a connection from open_database.
def write_batch(db, batch, now):
    return sql.write_batch(db, SQLITE, batch, now)


def select_points(db, table, start, end, domains=None, regions=None, isps=None):
    return sql.select_points(db, SQLITE, table, start, end, domains, regions, isps)


class SQLiteAccounting(ThreadedStore):
    """IAccounting on one SQLite file; a single worker thread owns the connection."""

    dialect = SQLITE
    thread_name = "wsrelay-sqlite"

    def __init__(self, path, reactor, busy_timeout=2.0):
        super().__init__(reactor)
        self.path = path
        self.busy_timeout = busy_timeout

    def connect(self):
        return open_database(self.path, self.busy_timeout)
