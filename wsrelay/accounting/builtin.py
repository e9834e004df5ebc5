"""The built-in store factories (IAccountingFactory): cheap to import, drivers imported in build."""

import os

from twisted.plugin import IPlugin
from zope.interface import implementer

from wsrelay.accounting import OptionError
from wsrelay.interfaces import IAccountingFactory


@implementer(IPlugin, IAccountingFactory)
class SQLiteFactory:
    name = "sqlite"
    help = "An embedded SQLite file (WAL) on this machine: no setup, one relay process per file."
    options = {
        "database": ("var/wsrelay.sqlite", "the SQLite file; relative to the config file's directory"),
        "busy_timeout": ("2", "seconds a write waits for a lock held by another process before it "
                              "fails (and is retried at the next flush)"),
    }

    def parse_options(self, raw, base):
        path = (raw.get("database") or "var/wsrelay.sqlite").strip()
        timeout_text = (raw.get("busy_timeout") or "2").strip()
        try:
            timeout = float(timeout_text)
        except ValueError:
            raise OptionError("busy_timeout", f"{timeout_text!r} is not a number of seconds")
        if not 0 < timeout <= 60:
            raise OptionError("busy_timeout", f"{timeout_text!r} must be more than 0 and at most 60 seconds")
        return (os.path.join(base, os.path.expanduser(path)), timeout)

    def build(self, options, reactor):
        from wsrelay.accounting.sqlite import SQLiteAccounting

        path, timeout = options
        return SQLiteAccounting(path, reactor, busy_timeout=timeout)
