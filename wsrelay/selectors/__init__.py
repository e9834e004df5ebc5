"""
Origin selection strategies: finding them (Twisted plugins), describing them,
and the small values they share. The built-in factories are in
`wsrelay.selectors.builtin`; each strategy's runtime object in its own module.
"""

from dataclasses import dataclass

from zope.interface import implementer

from wsrelay.interfaces import IHandshake, ISelectorFactory

class OptionError(ValueError):
    """A strategy option with a bad value; `key` names it (None: the options as a whole)."""

    def __init__(self, key, message):
        self.key = key
        super().__init__(message)


@implementer(IHandshake)
@dataclass(frozen=True, slots=True)
class Handshake:
    """The IHandshake value the relay builds once per handshake."""

    domain: str
    path: str
    query: dict
    headers: dict
    client_address: str


class IgnoresConnections:
    """For selectors that choose from the handshake alone: the connection events change nothing."""

    def connection_opened(self, origin):
        pass

    def connection_closed(self, origin):
        pass

    def connection_failed(self, origin, reason):
        pass


def installed():
    """Every ISelectorFactory on the path, by name (the first one found wins a name)."""
    from twisted.plugin import getPlugins

    found = {}
    for factory in getPlugins(ISelectorFactory):
        found.setdefault(factory.name, factory)
    return found


def describe(factories):
    """The text of `--help-selectors`: each strategy, its help and its options."""
    lines = ["Origin selectors (selector = NAME in [relay] or a [domain:...] section):", ""]
    width = max((len(name) for name in factories), default=0)
    for name in sorted(factories):
        factory = factories[name]
        lines.append(f"  {name:<{width}}  {factory.help}")
        for key, (default, text) in sorted(factory.options.items()):
            lines.append(f"  {'':<{width}}    {key} (default {default}): {text}")
    lines.append("")
    return "\n".join(lines)

