"""
The `postgresql` store: one database shared by every relay of a fleet, with
psycopg 3 on one thread of the store's own (never the reactor's).

Why a lock: a batch's 5-minute upserts are safe side by side, but the
rollups recompute an hour and a day (DELETE, then INSERT ... SELECT of the
finer points). Two nodes doing that at once under READ COMMITTED would
collide on the coarse rows' keys or each write a sum without the other's
points. So every write transaction first takes one transaction-scoped
advisory lock (pg_advisory_xact_lock), and schema creation does too when
several nodes start on an empty database: writes are serialized
fleet-wide, each seeing everything committed before it. A flush is one
short transaction every flush_interval per node, so the lock costs little;
waiting for it counts against statement_timeout like any statement. Reads
take no lock. READ COMMITTED is named explicitly: under REPEATABLE READ
the snapshot would be taken before the lock was granted.
"""

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from wsrelay.accounting import sql
from wsrelay.accounting.threaded import ThreadedStore

LOCK = int.from_bytes(b"wsrelay", "big")  # the advisory lock's key: the same for every node of every version

POSTGRESQL = sql.Dialect(
    name="postgresql",
    paramstyle="format",
    begin=("BEGIN ISOLATION LEVEL READ COMMITTED", f"SELECT pg_advisory_xact_lock({LOCK})"),
    schema_exists="SELECT 1 WHERE to_regclass('schema_version') IS NOT NULL",
)

# libpq settings used unless the dsn sets them: a name in pg_stat_activity, and TCP
# keepalives and a bound on unacknowledged data, so that a server gone silent (no
# answer, no reset) fails the flush within about a minute instead of holding it.
LIBPQ_DEFAULTS = {"application_name": "wsrelay", "keepalives_idle": "30", "keepalives_interval": "10",
                  "keepalives_count": "3", "tcp_user_timeout": "30000"}


def connect(options):
    """A connection in autocommit mode with the statement timeout set and the schema ready."""
    given = conninfo_to_dict(options.dsn)
    extra = {k: v for k, v in LIBPQ_DEFAULTS.items() if k not in given}
    db = psycopg.connect(options.dsn, autocommit=True, connect_timeout=options.connect_timeout, **extra)
    try:
        db.execute(f"SET statement_timeout = {int(options.statement_timeout * 1000)}")
        sql.prepare_schema(db, POSTGRESQL, options.where)
    except BaseException:
        db.close()
        raise
    return db


class PostgreSQLAccounting(ThreadedStore):
    """IAccounting on a PostgreSQL database; a broken connection is opened again at the next call."""

    dialect = POSTGRESQL
    thread_name = "wsrelay-postgresql"

    def __init__(self, options, reactor):
        super().__init__(reactor)
        self.options = options

    def connect(self):
        return connect(self.options)

    def usable(self, db):
        return not db.closed and not db.broken and db.info.transaction_status == TransactionStatus.IDLE
