"""
The built-in strategy factories: small, cheap to import (they are what the
dropin twisted/plugins/wsrelay_selectors.py exposes), parsing their options
at config load and importing their runtime module only in `build`.
"""

from dataclasses import dataclass

from twisted.plugin import IPlugin
from zope.interface import implementer

from wsrelay.interfaces import ISelectorFactory
from wsrelay.selectors import OptionError

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@implementer(IPlugin, ISelectorFactory)
class RoundRobinFactory:
    name = "round-robin"
    help = "Each origin in turn, in proportion to its weight (origins = a:8000 weight=3 b:8000)."
    options = {}

    def parse_options(self, raw):
        return None

    def build(self, domain, reactor):
        from wsrelay.selectors.roundrobin import RoundRobin

        return RoundRobin(domain.origins)


@implementer(IPlugin, ISelectorFactory)
class LeastConnectionsFactory:
    name = "least-connections"
    help = "The origin with the fewest live sessions from this process (per unit of weight); ties in turn."
    options = {}

    def parse_options(self, raw):
        return None

    def build(self, domain, reactor):
        from wsrelay.selectors.leastconn import LeastConnections

        return LeastConnections(domain.origins)


@dataclass(frozen=True)
class HashKey:
    """What `hash` hashes: kind is client_address, path, header, cookie or query; name for the last three."""

    kind: str
    name: str | None = None

    def __str__(self):
        return self.kind if self.name is None else f"{self.kind}:{self.name}"


HASH_KINDS = ("client_address", "path", "header", "cookie", "query")


def parse_hash_key(text):
    """'header:X-Room' -> HashKey('header', 'x-room'); OptionError when it is not one of the forms."""
    kind, colon, name = text.strip().partition(":")
    kind = kind.lower()
    forms = "client_address, path, header:NAME, cookie:NAME or query:NAME"
    if kind in ("client_address", "path") and not colon:
        return HashKey(kind)
    if kind not in ("header", "cookie", "query") or not name:
        raise OptionError("hash_key", f"{text!r} is not one of {forms}")
    if kind in ("header", "cookie") and not all(c in _TOKEN for c in name):
        raise OptionError("hash_key", f"{text!r}: {name!r} is not a valid {kind} name")
    if kind == "query" and (any(c in name for c in "&=# ") or not name.isprintable()):
        raise OptionError("hash_key", f"{text!r}: {name!r} is not a valid query parameter name")
    return HashKey(kind, name.lower() if kind == "header" else name)


@implementer(IPlugin, ISelectorFactory)
class HashFactory:
    name = "hash"
    help = "Rendezvous hashing of a request key: one key, one origin; adding or removing one moves ~1/N of keys."
    options = {
        "hash_key": ("client_address",
                     "what is hashed: client_address, path, header:NAME, cookie:NAME or query:NAME; "
                     "a request without it is hashed by its client address"),
    }

    def parse_options(self, raw):
        return parse_hash_key(raw.get("hash_key", "client_address"))

    def build(self, domain, reactor):
        from wsrelay.selectors.hashing import RendezvousHash

        return RendezvousHash(domain.origins, domain.selector_options)


@dataclass(frozen=True)
class PrimaryBackupOptions:
    failback: bool = True


@implementer(IPlugin, ISelectorFactory)
class PrimaryBackupFactory:
    name = "primary-backup"
    help = "The first origin in listed order that is in rotation; the others are backups."
    options = {
        "failback": ("on", "on: traffic returns to the primary as soon as it is back in rotation; "
                           "off: it stays on the backup until the backup leaves rotation"),
    }

    def parse_options(self, raw):
        value = raw.get("failback", "on").strip().lower()
        if value in ("on", "yes", "true", "1"):
            return PrimaryBackupOptions(True)
        if value in ("off", "no", "false", "0"):
            return PrimaryBackupOptions(False)
        raise OptionError("failback", f"{value!r} is not on or off")

    def build(self, domain, reactor):
        from wsrelay.selectors.primary import PrimaryBackup

        return PrimaryBackup(domain.origins, domain.selector_options)
