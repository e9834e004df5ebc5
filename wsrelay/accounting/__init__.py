"""
Statistics and accounting: the in-memory meter (meter.py), the region/ISP
lookup (geo.py), the storage backends found as Twisted plugins by name
(IAccountingFactory, see twisted/plugins/wsrelay_accounting.py) and the
service that flushes the meter into the chosen backend (service.py).
"""


class OptionError(ValueError):
    """A backend option with a bad value; `key` names it."""

    def __init__(self, key, message):
        self.key = key
        super().__init__(message)


def installed():
    """Every IAccountingFactory on the path, by name (the first one found wins a name)."""
    from twisted.plugin import getPlugins

    from wsrelay.interfaces import IAccountingFactory

    found = {}
    for factory in getPlugins(IAccountingFactory):
        found.setdefault(factory.name, factory)
    return found
