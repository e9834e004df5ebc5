"""
Autobahn formats text for debug lines before the logger can drop them:
connectionMade pretty-prints every option of every new connection (and
startHandshake the transport's details), and a dozen lines per connection
colour a function's name or a value with click (hltype, hlval). That was a
fifth, then another 3 %, of the relay's CPU per connect (bench/README.md,
"connect rate"). Here the same lines are formatted only if a debug observer
reads them.
"""

from pprint import pformat

import autobahn.twisted.websocket as autobahn_twisted
import autobahn.util as autobahn_util
import autobahn.websocket.protocol as autobahn_protocol


class Lazy:
    """func(*args), computed only when the text is read (str/format/repr)."""

    __slots__ = ("func", "args")

    def __init__(self, func, *args):
        self.func = func
        self.args = args

    def __str__(self):
        return self.func(*self.args)

    __repr__ = __str__

    def __format__(self, spec):
        return format(self.func(*self.args), spec)


class LazyPformat(Lazy):
    """pprint.pformat of a value, done only when the text is read."""

    __slots__ = ()

    def __init__(self, value):
        super().__init__(pformat, value)

    @property
    def value(self):
        return self.args[0]


def _lazy(func):
    def lazy(*args, **kwargs):
        if kwargs:
            return Lazy(lambda: func(*args, **kwargs))
        return Lazy(func, *args)
    lazy.__name__ = func.__name__
    return lazy


def quiet_autobahn_pformat():
    """
    Swap the pformat, hltype and hlval Autobahn's protocol modules call for
    lazy ones; Timings.__str__ must return a str, so it keeps the real pformat.
    """
    autobahn_protocol.pformat = LazyPformat
    autobahn_protocol.Timings.__str__ = lambda self: pformat(self._timings)
    for module in (autobahn_protocol, autobahn_twisted):
        module.hltype = _lazy(autobahn_util.hltype)
        module.hlval = _lazy(autobahn_util.hlval)
