"""
What a declared key is (Key) and a paragraph of etc/relay.ini opening a group
of keys (Topic), with the scopes a key may be written in. The keys themselves
are in wsrelay/config/keys/; wsrelay/config/schema.py holds them together.
"""

from dataclasses import dataclass

from wsrelay.config import kinds as k

RELAY = ("relay",)
DOMAIN = ("domain",)
INHERITED = ("relay", "domain")
ACCOUNTING = ("accounting",)


@dataclass(frozen=True)
class Key:
    """One key of one scope."""

    name: str
    scope: tuple
    kind: k.Kind
    default: object     # the value when the key is absent or empty (a domain's inherited: [relay]'s)
    shown: str          # the default as an operator writes it ("" : empty)
    help: str           # one line: what it sets
    ini: str = None     # its comment in etc/relay.ini; None: help (none right after a Topic); "": the one above
    doc: str = ""       # its cell in docs/configuration.md; "" : help
    table: str = ""     # the docs table it is in ("" : the table of its first scope)
    group: str = ""     # the value it fills: "" (the config or domain), health, billing, accounting
    field: str = ""     # its attribute there, when not its name
    example: str = None  # written in etc/relay.ini instead of `shown`
    commented: bool = False  # etc/relay.ini shows it commented out (it has no single default)
    doc_default: str = ""  # the docs' default column, when not `shown`
    in_ini: bool = True  # listed in etc/relay.ini (False: a note there names it)

    @property
    def attribute(self):
        return self.field or self.name


@dataclass(frozen=True)
class Topic:
    """A paragraph of etc/relay.ini opening a group of keys (after a blank line)."""

    ini: str
    scope: tuple = RELAY
