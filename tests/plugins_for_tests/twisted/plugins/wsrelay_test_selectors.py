# A third-party origin selector, for the tests only: this folder is put on
# sys.path (and PYTHONPATH for a subprocess) to prove that a strategy dropped
# into any twisted/plugins/ directory is found by name, without installing it.
from twisted.internet.defer import succeed
from twisted.plugin import IPlugin
from zope.interface import implementer

from wsrelay.interfaces import ISelector, ISelectorFactory
from wsrelay.selectors import OptionError


@implementer(ISelector)
class Reverse:
    """The available origins in reverse listed order, skipping `offset` of them; records every event."""

    def __init__(self, offset):
        self.offset = offset
        self.events = []

    def choose(self, handshake, available):
        order = list(reversed(available))
        k = self.offset % len(order)
        return succeed(order[k:] + order[:k])

    def connection_opened(self, origin):
        self.events.append(("opened", origin))

    def connection_closed(self, origin):
        self.events.append(("closed", origin))

    def connection_failed(self, origin, reason):
        self.events.append(("failed", origin))


@implementer(IPlugin, ISelectorFactory)
class ReverseFactory:
    name = "reverse"
    help = "Test only: the available origins in reverse listed order."
    options = {"reverse_offset": ("0", "how many origins to skip from the end")}

    def parse_options(self, raw):
        text = raw.get("reverse_offset", "0")
        if not text.isdigit():
            raise OptionError("reverse_offset", f"{text!r} is not a whole number")
        return int(text)

    def build(self, domain, reactor):
        return Reverse(domain.selector_options)


reverse = ReverseFactory()
