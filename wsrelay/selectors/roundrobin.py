"""round-robin: each origin in turn, in proportion to its weight (nginx's smooth weighted round-robin)."""

from twisted.internet.defer import succeed
from zope.interface import implementer

from wsrelay.interfaces import ISelector
from wsrelay.selectors import IgnoresConnections


def first_then_next(available, index):
    """The origin at `index`, then (when there is one) the next in listed order for the retry."""
    if len(available) == 1:
        return available
    return (available[index], available[(index + 1) % len(available)])


@implementer(ISelector)
class RoundRobin(IgnoresConnections):
    """
    Every pick adds each available origin's weight to its running credit and
    takes the origin with the most credit, which then pays back the total.
    Weights 3 and 1 give a a b a, a a b a ...: spread out, never bursts.
    Unavailable origins keep their credit for when they return.
    """

    def __init__(self, origins):
        self._weight = {origin: origin.weight for origin in origins}
        self._credit = dict.fromkeys(origins, 0)

    def choose(self, handshake, available):
        credit, weight = self._credit, self._weight
        best, best_credit, total = 0, None, 0
        for index, origin in enumerate(available):
            w = weight[origin]
            c = credit[origin] + w
            credit[origin] = c
            total += w
            if best_credit is None or c > best_credit:
                best, best_credit = index, c
        credit[available[best]] -= total
        return succeed(first_then_next(available, best))
