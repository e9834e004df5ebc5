"""
hash: rendezvous (highest random weight) hashing of a request key.

Each origin scores every key with a hash of (key, origin); the highest score
wins, and the runner-up takes the retry. Taking an origin out of rotation
moves only the keys it held (to their runners-up); adding one takes from the
others only the keys it now wins, about 1/N of them. Scores with weights use
-weight / ln(u), u uniform in (0, 1): an origin wins in proportion to weight.
No ring to rebuild, no state, the same answer in every relay process.
"""

import math
from hashlib import blake2b

from twisted.internet.defer import succeed
from zope.interface import implementer

from wsrelay.interfaces import ISelector
from wsrelay.selectors import IgnoresConnections

_SCALE = 1.0 / 2.0 ** 64


def score(key, origin_id, weight):
    """The score of one origin for one key (both bytes); higher wins."""
    h = int.from_bytes(blake2b(origin_id + b"\0" + key, digest_size=8).digest(), "big")
    return -weight / math.log((h + 0.5) * _SCALE)


def ranking(key, origins):
    """`origins` ordered by their score for `key` (bytes), best first."""
    return sorted(origins, key=lambda o: score(key, str(o).encode(), o.weight), reverse=True)


def cookie_value(header, name):
    """The value of cookie `name` in a Cookie header, or None."""
    for part in header.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip() == name:
            return value.strip().strip('"')
    return None


@implementer(ISelector)
class RendezvousHash(IgnoresConnections):
    def __init__(self, origins, key):
        self._key = key
        self._ids = {origin: (str(origin).encode(), origin.weight) for origin in origins}

    def key_of(self, handshake):
        """The bytes hashed for this handshake; the client address when the key is absent."""
        kind, name = self._key.kind, self._key.name
        value = None
        if kind == "path":
            value = handshake.path
        elif kind == "header":
            value = handshake.headers.get(name)
        elif kind == "query":
            values = handshake.query.get(name)
            value = values[0] if values else None
        elif kind == "cookie":
            header = handshake.headers.get("cookie")
            value = cookie_value(header, name) if header else None
        if value is None or kind == "client_address":
            value = handshake.client_address or ""
        return value.encode("utf-8", "replace")

    def choose(self, handshake, available):
        if len(available) == 1:
            return succeed(available)
        key = self.key_of(handshake)
        ids = self._ids
        best = second = None
        best_score = second_score = 0.0
        for origin in available:
            origin_id, weight = ids[origin]
            s = score(key, origin_id, weight)
            if best is None or s > best_score:
                second, second_score = best, best_score
                best, best_score = origin, s
            elif second is None or s > second_score:
                second, second_score = origin, s
        return succeed((best, second))
