"""The built-in store factories (IAccountingFactory): cheap to import, drivers imported in build."""

import os
from dataclasses import dataclass, field

from twisted.plugin import IPlugin
from zope.interface import implementer

from wsrelay.accounting import OptionError
from wsrelay.interfaces import IAccountingFactory


@implementer(IPlugin, IAccountingFactory)
class SQLiteFactory:
    name = "sqlite"
    help = "An embedded SQLite file (WAL) on this machine: no setup, one relay process per file."
    options = {
        "database": ("var/wsrelay.sqlite",
                     "the SQLite file (WAL mode); relative to the config file's directory, its directory "
                     "created. Under systemd (etc/wsrelay.service): /var/lib/wsrelay/wsrelay.sqlite, the state "
                     "directory. A file that cannot be opened at startup stops the relay"),
        "busy_timeout": ("2", "seconds a write waits for a lock held by another process before it "
                              "fails (and is retried at the next flush); more than 0, at most 60"),
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

    def check(self, options, create):
        """
        At startup (create): open the file as the relay will (its directory, the file,
        the schema), so an unwritable path stops startup in one line. For --check: only
        whether it could be, creating nothing.
        """
        path, timeout = options
        self._could_open(path)
        if create:
            import sqlite3

            from wsrelay.accounting.sqlite import open_database

            try:
                open_database(path, timeout).close()
            except OSError as e:
                where = f" ({e.filename})" if e.filename and e.filename != path else ""
                raise OptionError("database", f"cannot open {path}: {e.strerror or e}{where}")
            except sqlite3.Error as e:
                raise OptionError("database", f"cannot open {path}: {str(e).removeprefix(path + ': ')}")

    @staticmethod
    def _could_open(path):
        if os.path.exists(path):
            if not os.path.isfile(path) or not os.access(path, os.R_OK | os.W_OK):
                raise OptionError("database", f"cannot open {path}: not a readable and writable file")
            return
        parent = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise OptionError("database", f"cannot create {path}: {parent} is not a writable directory")

    def build(self, options, reactor):
        from wsrelay.accounting.sqlite import SQLiteAccounting

        path, timeout = options
        return SQLiteAccounting(path, reactor, busy_timeout=timeout)


@dataclass(frozen=True)
class PostgreSQLOptions:
    """The postgresql store's options; `where` names the server without the password (for logs)."""

    dsn: str = field(repr=False)
    connect_timeout: int = 5
    statement_timeout: float = 10.0
    where: str = "postgresql"


@implementer(IPlugin, IAccountingFactory)
class PostgreSQLFactory:
    name = "postgresql"
    help = "A PostgreSQL database shared by several relays: they write it at once, queries see the whole fleet."
    options = {
        "dsn": ("", "required: a libpq connection string (host=... dbname=... user=...) or a postgresql:// URI. "
                    "Keep the password out of it: ~/.pgpass of the user the relay runs as, or "
                    "PGPASSWORD/PGPASSFILE in its environment; it is never logged. Several relays share "
                    "one database"),
        "connect_timeout": ("5", "whole seconds a connection attempt may take (2 to 60)"),
        "statement_timeout": ("10", "seconds a statement may take, waiting for the fleet's write lock "
                                    "included, before it fails and the flush is retried (more than 0, at most 300)"),
    }

    def parse_options(self, raw, base):
        try:
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise OptionError("dsn", "accounting = postgresql needs psycopg 3: pip install 'wsrelay[postgresql]'")
        dsn = (raw.get("dsn") or "").strip()
        if not dsn:
            raise OptionError("dsn", "required with accounting = postgresql: a libpq connection string or URI, "
                                     "e.g. host=db.example dbname=wsrelay user=wsrelay")
        try:
            params = conninfo_to_dict(dsn)
        except Exception:  # psycopg.ProgrammingError; its message may quote the password, so it is not shown
            raise OptionError("dsn", "is not a libpq connection string (key=value ...) nor a postgresql:// URI "
                                     "(not shown here: it may hold a password)")
        connect_timeout = _number(raw, "connect_timeout", "5", 2, 60)
        if connect_timeout != int(connect_timeout):
            raise OptionError("connect_timeout", f"{raw['connect_timeout']!r} must be a whole number of seconds")
        return PostgreSQLOptions(dsn, int(connect_timeout), _number(raw, "statement_timeout", "10", 0.001, 300),
                                 where=describe(params))

    def build(self, options, reactor):
        from wsrelay.accounting.postgresql import PostgreSQLAccounting

        return PostgreSQLAccounting(options, reactor)


def _number(raw, key, default, low, high):
    text = (raw.get(key) or default).strip()
    try:
        value = float(text)
    except ValueError:
        raise OptionError(key, f"{text!r} is not a number of seconds")
    if not low <= value <= high:
        raise OptionError(key, f"{text!r} must be from {low:g} to {high:g} seconds")
    return value


def describe(params):
    """The server a libpq connection dict names, for logs and errors: never its password."""
    shown = [f"{k}={params[k]}" for k in ("host", "hostaddr", "port", "dbname", "user") if params.get(k)]
    return "postgresql " + (" ".join(shown) if shown else "(libpq defaults)")
