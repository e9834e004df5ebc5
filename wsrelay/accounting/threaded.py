"""
The shell the SQL stores share: IAccounting over one DB-API connection that
a single worker thread of the store's own opens, uses and closes, so the
reactor thread never waits on a database. A connection an error left
unusable is dropped and opened again at the next call.
"""

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from wsrelay.accounting import schema, sql
from wsrelay.interfaces import IAccounting


@implementer(IAccounting)
class ThreadedStore:
    """
    Subclasses give the dialect, `connect()` (blocking, on the worker thread:
    a connection in autocommit mode with the schema ready) and `usable(db)`.
    """

    dialect = None
    thread_name = "wsrelay-store"

    def __init__(self, reactor):
        self.reactor = reactor
        self._pool = ThreadPool(1, 1, name=self.thread_name)
        self._db = None
        self._trigger = None

    def connect(self):
        raise NotImplementedError

    def usable(self, db):
        """Whether a connection is still good after one of its calls failed."""
        return True

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
                self._db = self.connect()
            db = self._db
            try:
                return function(db, self.dialect, *args)
            except BaseException:
                if not self.usable(db):
                    self._db = None
                    _close(db)
                raise

        return deferToThreadPool(self.reactor, self._pool, work)

    def write(self, batch):
        return self._call(sql.write_batch, batch, self.reactor.seconds())

    def expire(self, now, retention):
        return self._call(sql.run_statements, schema.expire_statements(now, retention))

    def points(self, table, start, end, domains=None, regions=None, isps=None):
        return self._call(sql.select_points, table, start, end, domains, regions, isps)

    def record_billing(self, node, changes):
        return self._call(sql.run_statements, [schema.record_billing(*change, node) for change in changes])

    def billing_history(self, domains=None):
        return self._call(sql.select_rows, *schema.select_billing(domains)).addCallback(schema.billing_rows)

    def close(self):
        def shut():
            db, self._db = self._db, None
            if db is not None:
                db.close()

        if not self._pool.started:
            return defer.succeed(None)
        d = deferToThreadPool(self.reactor, self._pool, shut)

        def stop(result):
            if self._trigger is not None:
                self.reactor.removeSystemEventTrigger(self._trigger)
                self._stop()
            return result

        return d.addBoth(stop)


def _close(db):
    try:
        db.close()
    except Exception:  # already broken; it is being dropped anyway
        pass
