"""Public in-memory fakes for the accounting layer (for tests of code that uses it)."""

from twisted.internet import defer
from zope.interface import implementer

from wsrelay.accounting.meter import COUNTS
from wsrelay.interfaces import IAccounting


@implementer(IAccounting)
class MemoryStore:
    """
    An IAccounting keeping 5-minute traffic totals in a dict. `fail` (an
    exception or None) makes writes fail; `lose_reply` makes the next write
    land but report failure (the case batch ids are for).
    """

    def __init__(self):
        self.batches = set()
        self.traffic = {}
        self.statuses = {}
        self.closes = {}
        self.http_traffic = {}
        self.http_statuses = {}
        self.fail = None
        self.lose_reply = False
        self.writes = 0
        self.closed = False
        self.billing = []  # (domain, changed_at, method, cycle, node), as recorded

    def write(self, batch):
        self.writes += 1
        if self.fail is not None:
            return defer.fail(self.fail)
        batch_id = (batch.node, batch.run, batch.seq)
        fresh = batch_id not in self.batches
        if fresh:
            self.batches.add(batch_id)
            for theirs, mine in ((batch.traffic, self.traffic), (batch.http_traffic, self.http_traffic)):
                for key, row in theirs.items():
                    old = mine.get(key, (0,) * len(COUNTS))
                    mine[key] = tuple(a + b for a, b in zip(old, row))
            for table, mine in ((batch.statuses, self.statuses), (batch.closes, self.closes),
                                (batch.http_statuses, self.http_statuses)):
                for key, count in table.items():
                    mine[key] = mine.get(key, 0) + count
        if self.lose_reply:
            self.lose_reply = False
            return defer.fail(ConnectionError("the reply was lost"))
        return defer.succeed(fresh)

    def expire(self, now, retention):
        return defer.succeed(None)

    def points(self, table, start, end, domains=None, regions=None, isps=None):
        return defer.succeed([])

    def record_billing(self, node, changes):
        if self.fail is not None:
            return defer.fail(self.fail)
        for domain, method, cycle, at in changes:
            last = [row for row in sorted(self.billing, key=lambda r: (r[1], r[4])) if row[0] == domain][-1:]
            if not last or last[0][2:4] != (method, cycle):
                self.billing.append((domain, round(at * 1000) / 1000, method, cycle, node))
        return defer.succeed(None)

    def billing_history(self, domains=None):
        return defer.succeed([{"domain": d, "changed_at": at, "method": m, "cycle": c}
                              for d, at, m, c, _ in sorted(self.billing, key=lambda r: (r[1], r[4]))
                              if domains is None or d in domains])

    def close(self):
        self.closed = True
        return defer.succeed(None)

    def total(self, column, domain=None, kind="websocket"):
        index = COUNTS.index(column)
        table = self.http_traffic if kind == "http" else self.traffic
        return sum(row[index] for key, row in table.items() if domain in (None, key[0]))
