"""
Every configuration key, declared once (in wsrelay/config/keys/, by concern):
where it may be written, its type, its default, and what it means.

The reader takes each key's value through its Kind (wsrelay/config/kinds.py),
the key sets it accepts per section come from here, and so do the commented
etc/relay.ini and the key tables of docs/configuration.md
(`python -m wsrelay.config.render --write` regenerates both; a test checks they
are current). Adding a key: one Key in wsrelay/config/keys/, one field on the value it fills
(wsrelay/config/values.py), then regenerate.

Scopes: RELAY keys are written in [relay]; DOMAIN keys in [domain:...];
INHERITED keys in either, a domain's value defaulting to [relay]'s; ACCOUNTING
keys in [accounting]. The options of selectors and statistics stores are
declared by their plugins (`options`) and rendered alongside.
"""

from wsrelay.config import kinds as k  # noqa: F401  (schema.k: the kinds, for tools and tests)
from wsrelay.config.keys import accounting, edge, http, origins, process
from wsrelay.config.keytypes import ACCOUNTING, DOMAIN, INHERITED, RELAY, Key, Topic  # noqa: F401

# In the order etc/relay.ini lists them.
KEYS = edge.KEYS + http.KEYS + origins.KEYS + process.KEYS + accounting.KEYS


def keys(scope):
    """The Keys that may be written in `scope` ("relay", "domain" or "accounting"), in order."""
    return tuple(key for key in KEYS if isinstance(key, Key) and scope in key.scope)


def key(scope, name):
    """The Key `name` of `scope`; KeyError when there is none."""
    for found in keys(scope):
        if found.name == name:
            return found
    raise KeyError(f"{scope}: {name}")


def names(scope, group=None):
    """The key names of `scope` (of one `group` when given)."""
    return frozenset(key.name for key in keys(scope) if group is None or key.group == group)
