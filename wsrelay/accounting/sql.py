"""
The DB-API work shared by the SQL stores: schema creation and upgrade, the
write of a batch, retention deletes and point reads, as blocking functions
of one connection (run on a store's own thread, never the reactor's). The
statements are schema.py's; a Dialect says how a database spells the rest.

Connections are in autocommit mode: every write is an explicit
transaction opened by the dialect's `begin`, which also takes the
fleet-wide write lock, so that two writers never recompute the same
rollups at once (see docs/statistics.md).
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from wsrelay.accounting import schema
from wsrelay.accounting.meter import Batch


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases the stores speak."""

    name: str
    paramstyle: str        # "qmark" (?) or "format" (%s)
    begin: tuple           # statements opening a write transaction that holds the write lock
    schema_exists: str     # a query giving a row when the schema_version table exists

    def sql(self, statement):
        """schema.py's statement (written with ?) in this database's parameter style."""
        return statement if self.paramstyle == "qmark" else _format_style(statement)


@lru_cache(maxsize=512)
def _format_style(statement):
    if "%" in statement:
        raise ValueError(f"a statement with % cannot be translated to the format style: {statement}")
    return statement.replace("?", "%s")


def _rollback(cursor):
    try:
        cursor.execute("ROLLBACK")
    except Exception:  # no transaction, or the connection is gone: the error that got us here is what counts
        pass


def transaction(db, dialect, work):
    """Run `work(cursor)` in one write transaction under the write lock; its result, once committed."""
    cursor = db.cursor()
    try:
        try:
            for statement in dialect.begin:
                cursor.execute(statement)
            result = work(cursor)
            cursor.execute("COMMIT")
        except BaseException:
            _rollback(cursor)  # a transaction whose lock wait timed out is open too
            raise
        return result
    finally:
        cursor.close()


def prepare_schema(db, dialect, where):
    """Create the schema of schema.VERSION in an empty database, or upgrade an older one, in one transaction."""

    def work(cursor):
        cursor.execute(dialect.schema_exists)
        if cursor.fetchone() is None:
            for statement in schema.create_statements():
                cursor.execute(statement)
            cursor.execute(dialect.sql("INSERT INTO schema_version (version) VALUES (?)"), (schema.VERSION,))
            return
        cursor.execute("SELECT version FROM schema_version")
        version = cursor.fetchone()[0]
        if version > schema.VERSION:
            raise RuntimeError(f"{where}: schema version {version} is newer than this wsrelay's ({schema.VERSION})")
        while version < schema.VERSION:
            version += 1
            for statement in schema.UPGRADES[version]:
                cursor.execute(statement)
            cursor.execute(dialect.sql("UPDATE schema_version SET version = ?"), (version,))

    transaction(db, dialect, work)


def write_batch(db, dialect, batch, now):
    """One transaction: claim the batch id, add its points, recompute its rollups. False: already written."""

    def work(cursor):
        cursor.execute(dialect.sql(schema.CLAIM_BATCH), (batch.node, batch.run, batch.seq, int(now)))
        if cursor.rowcount != 1:
            return False
        for statement, rows in schema.batch_rows(batch):
            if rows:
                cursor.executemany(dialect.sql(statement), rows)
        for statement, args in schema.rollups(batch):
            cursor.execute(dialect.sql(statement), args)
        return True

    return transaction(db, dialect, work)


def prepare_writes(db, dialect):
    """
    Compile a batch write's statements (and its rollups') into the connection's
    statement cache now, at connect: compiled at the first flush with traffic,
    in the middle of a connection storm, the cached statements and their SQL
    text would stay in the small-object arenas the storm's sessions used and
    keep those arenas from being given back when the sessions end.
    """
    statements = [schema.CLAIM_BATCH] + [statement for statement, _ in schema.batch_rows(Batch("", "", 0))]
    statements += [statement for statement, _ in schema.rollup_statements(300, 3600, 0)]
    statements += [statement for statement, _ in schema.rollup_statements(3600, 86400, 0)]
    cursor = db.cursor()
    try:
        for statement in statements:
            cursor.executemany(dialect.sql(statement), [])  # no rows: compiled and cached, nothing run
    finally:
        cursor.close()


def run_statements(db, dialect, statements):
    """(statement, parameters) pairs in one write transaction (the retention deletes)."""

    def work(cursor):
        for statement, args in statements:
            cursor.execute(dialect.sql(statement), args)

    transaction(db, dialect, work)


def select_points(db, dialect, table, start, end, domains=None, regions=None, isps=None):
    """The rows of `table` with bucket in [start, end) matching the filters (None: all), as dicts of plain values."""
    if table not in schema.TABLES:
        raise ValueError(f"no table {table!r}")
    sql = f"SELECT * FROM {table} WHERE bucket >= ? AND bucket < ?"
    args = [start, end]
    for column, values in (("domain", domains), ("region", regions), ("isp", isps)):
        if values is not None:
            values = list(values)
            sql += f" AND {column} IN ({', '.join('?' for _ in values)})" if values else " AND FALSE"
            args += values
    return select_rows(db, dialect, sql + " ORDER BY bucket", args)


def select_rows(db, dialect, statement, args):
    """The rows of one read (a schema.py statement) as dicts of plain values."""
    cursor = db.cursor()
    try:
        cursor.execute(dialect.sql(statement), args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, map(_plain, row))) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _plain(value):
    """An int for a whole NUMERIC (what PostgreSQL makes of sums of BIGINT), so rows stay JSON numbers."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value
