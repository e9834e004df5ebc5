"""
Autobahn's connectionMade pretty-prints every option of every new connection
(and startHandshake the transport's details) for a debug line: pformat runs
before the logger can drop the event, a fifth of the relay's CPU per connect
(bench/README.md, "connect rate"). Here the same lines are formatted only if
a debug observer reads them.
"""

from pprint import pformat

import autobahn.websocket.protocol as autobahn_protocol


class LazyPformat:
    """pprint.pformat of a value, done only when the text is read (str/format/repr)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return pformat(self.value)

    __repr__ = __str__

    def __format__(self, spec):
        return format(pformat(self.value), spec)


def quiet_autobahn_pformat():
    """Swap Autobahn's module-level pformat for LazyPformat; Timings.__str__ must return a str, so it keeps the real one."""
    autobahn_protocol.pformat = LazyPformat
    autobahn_protocol.Timings.__str__ = lambda self: pformat(self._timings)
