"""primary-backup: the first origin in listed order that is in rotation."""

from twisted.internet.defer import succeed
from zope.interface import implementer

from wsrelay.interfaces import ISelector
from wsrelay.selectors import IgnoresConnections


@implementer(ISelector)
class PrimaryBackup(IgnoresConnections):
    """
    With failback on, always the first available origin in listed order, so
    traffic returns to the primary the moment it is back in rotation. With
    failback off, the origin in use is kept while it stays in rotation; the
    primary only gets traffic again once the backup leaves. The retry goes to
    the next available origin in listed order.
    """

    def __init__(self, origins, options):
        self._failback = options.failback
        self.current = None

    def choose(self, handshake, available):
        if len(available) == 1:
            if not self._failback:
                self.current = available[0]
            return succeed(available)
        if self._failback:
            return succeed(available[:2])
        current = self.current
        if current is None or current not in available:
            current = self.current = available[0]
        if current == available[0]:
            return succeed(available[:2])
        return succeed((current, available[0]))
