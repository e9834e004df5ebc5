"""least-connections: the origin with the fewest live relayed sessions from this process."""

from twisted.internet.defer import succeed
from zope.interface import implementer

from wsrelay.interfaces import ISelector


@implementer(ISelector)
class LeastConnections:
    """
    Counts the live sessions per origin (opened minus closed) and picks the
    lowest count per unit of weight. Ties are broken in turn, so a burst of
    handshakes that arrive before any of them opens is spread, not piled on
    one origin. The retry goes to the next least loaded.
    """

    def __init__(self, origins):
        self.live = dict.fromkeys(origins, 0)
        self._weight = {origin: origin.weight for origin in origins}
        self._turn = 0

    def choose(self, handshake, available):
        n = len(available)
        if n == 1:
            return succeed(available)
        start = self._turn % n
        self._turn = start + 1
        live, weight = self.live, self._weight
        best = second = None
        best_load = second_load = 0.0
        for k in range(n):
            origin = available[(start + k) % n]
            load = live[origin] / weight[origin]
            if best is None or load < best_load:
                second, second_load = best, best_load
                best, best_load = origin, load
            elif second is None or load < second_load:
                second, second_load = origin, load
        return succeed((best, second))

    def connection_opened(self, origin):
        if origin in self.live:
            self.live[origin] += 1

    def connection_closed(self, origin):
        if self.live.get(origin, 0) > 0:
            self.live[origin] -= 1

    def connection_failed(self, origin, reason):
        pass
