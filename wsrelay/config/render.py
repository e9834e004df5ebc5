"""
etc/relay.ini and the key tables of docs/configuration.md, written from the
schema (and from the built-in selectors' and statistics stores' declared
options), so that the shipped config and the docs cannot drift from the code.

    python -m wsrelay.config.render --write   # regenerate both
    python -m wsrelay.config.render --check   # exit 1 when either is stale

tests/test_config_schema.py runs the check. The prose of relay.ini around the
keys is below; the docs' prose outside the generated tables is hand-written.
"""

import argparse
import re
import sys
import textwrap
from pathlib import Path

from wsrelay.config import schema
from wsrelay.config.schema import Key, Topic

ROOT = Path(__file__).resolve().parent.parent.parent
INI = Path("etc") / "relay.ini"
DOCS = Path("docs") / "configuration.md"
WIDTH = 79

INI_HEAD = """\
wsrelay configuration. Every key is listed with its default; a key that is left out takes that default. \
Unknown sections or keys stop startup with a message naming this file, the section and the key.
As shipped, it relays every Host to the bundled demo origin on 127.0.0.1:8081 (python -m wsrelay.demo; \
scripts/demo starts both).
This file is generated from wsrelay/config/schema.py (python -m wsrelay.config.render --write): \
edit the schema, not this copy; your own copy is yours to edit."""

SELECTORS_HEAD = ("Options of a selector, for every domain that uses it; a domain's own section may set them too. "
                  "Only installed selectors may have a section.")
ACCOUNTING_HEAD = ("How the statistics are flushed and kept. Each store takes its own keys here (only the "
                   "chosen store's are accepted). Read at startup only.")
DOMAIN_HEAD = ("One section per domain, chosen by the Host header (port ignored, any case): an exact name "
               "first, then [domain:*.parent.name] (exactly one more label), then the catch-all [domain:*]. "
               "A Host that matches none gets 404.")
DOMAIN_CERTIFICATES = ("A named domain (not this catch-all, nor an IP address) may have its own certificate "
                       "and private_key, sent to clients asking for it by SNI; a [domain:*.example.com] one "
                       "serves every name it matches that has none. A request whose Host names another "
                       "domain than its SNI gets 421.")
DOMAIN_EXAMPLES = """\

; An example of a real domain (kept commented out), served on wss:// by a
; listen = ssl:443 listener:
; [domain:chat.example.com]
; certificate = /etc/wsrelay/chat.example.com/fullchain.pem
; private_key = /etc/wsrelay/chat.example.com/privkey.pem
; origins = 10.0.0.5:8000 10.0.0.6:8000
; origin_protocol = http
; allowed_origins = https://chat.example.com
; connection_timeout = 600
; heartbeat_interval = 30
;
; A collaborative editor: every client of one document on the same origin,
; a bigger machine taking twice the documents, dead origins found by checks.
; [domain:docs.example.com]
; origins = 10.0.1.5:8000 weight=2 10.0.1.6:8000 10.0.1.7:8000
; selector = hash
; hash_key = query:doc
; health_interval = 10
; health_check = http
; health_path = /healthz
;
; An origin speaking TLS with a certificate from a private CA:
; [domain:api.example.com]
; origins = 10.0.2.5:8443
; origin_protocol = https
; origin_ca = /etc/wsrelay/internal-ca.pem
; origin_sni = api.internal
"""


def builtin(factories):
    """The plugins shipped with wsrelay (a third-party plugin on the path is not rendered)."""
    return {name: f for name, f in sorted(factories.items()) if type(f).__module__.startswith("wsrelay.")}


def selectors():
    from wsrelay.selectors import installed

    return builtin(installed())


def stores():
    from wsrelay.accounting import installed

    return builtin(installed())


def comment(text):
    """`text` as ; lines, each paragraph (\\n) wrapped."""
    lines = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, WIDTH - 2, break_on_hyphens=False, break_long_words=False) or [""]
    return [f"; {line}".rstrip() for line in lines]


def sentence(text):
    """A plugin's option help as a sentence: capitalised (but for a leading `on:`), ending in a full stop."""
    first = text.split(" ", 1)[0]
    text = text if first.endswith(":") else text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _inherited(key):
    return "relay" in key.scope and "domain" in key.scope


def _key_lines(entries, scope):
    """The comment and `key = default` lines of `entries` written in `scope`."""
    lines, after_topic = [], False
    for entry in entries:
        if isinstance(entry, Topic):
            if scope in entry.scope:
                lines += [""] + comment(entry.ini)
                after_topic = True
            continue
        if scope not in entry.scope or not entry.in_ini or (scope == "domain" and _inherited(entry)):
            continue
        if entry.ini:
            lines += comment(entry.ini)
        elif entry.ini is None and not after_topic:
            lines += comment(entry.help)
        value = entry.shown if entry.example is None else entry.example
        lines.append(f"{'; ' if entry.commented else ''}{entry.name} = {value}".rstrip())
        after_topic = False
    return lines


def render_ini():
    """The text of etc/relay.ini."""
    relay = _key_lines(schema.KEYS, "relay")
    lines = comment(INI_HEAD) + ["", "[relay]"] + (relay[1:] if relay[:1] == [""] else relay)
    lines += [""] + comment(SELECTORS_HEAD)
    for name, factory in selectors().items():
        if factory.options:
            lines += [f"[selector:{name}]"]
            for option, (default, text) in factory.options.items():
                lines += comment(sentence(text)) + [f"{option} = {default}"]
            lines.append("")
    lines += comment(ACCOUNTING_HEAD) + ["[accounting]"]
    default_store = schema.key("relay", "accounting").default
    for name, factory in sorted(stores().items(), key=lambda item: item[0] != default_store):
        chosen = name == default_store
        lines += comment(f"With accounting = {name} " + ("(the default): " if chosen else
                                                         f"(instead of the {default_store} keys): ") + factory.help)
        for option, (default, text) in factory.options.items():
            lines += comment(sentence(text))
            # commented out, an empty default keeps its space: "; dsn = " is what to fill in
            lines.append(f"{option} = {default}".rstrip() if chosen else f"; {option} = {default}")
    lines += _key_lines(schema.KEYS, "accounting")
    lines += [""] + comment(DOMAIN_HEAD) + ["[domain:*]"] + _key_lines(schema.KEYS, "domain")
    overrides = [key.name for key in schema.keys("domain") if _inherited(key)]
    options = sorted({option for factory in selectors().values() for option in factory.options})
    lines += comment(f"Any of {', '.join(overrides)} may be set here too, overriding [relay] for this "
                     f"domain, and so may the options of the domain's selector ({', '.join(options)}), "
                     "overriding its [selector:NAME] section.")
    lines += comment(DOMAIN_CERTIFICATES)
    return "\n".join(lines) + "\n" + DOMAIN_EXAMPLES


# --- docs/configuration.md ---------------------------------------------------------------------

def _default(key):
    if key.doc_default:
        return key.doc_default
    return f"`{key.shown}`" if key.shown else "(empty)"


def _cell(text):
    return text.replace("\n", " ").replace("|", "\\|")


def _codes(names):
    return ", ".join(f"`{name}`" for name in names)


def _relay_table():
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in schema.keys("relay"):
        if not key.table:
            text = key.doc or key.help
            if _inherited(key) and key.name != "http2":
                text += " Per domain too."
            rows.append(f"| `{key.name}` | {_default(key)} | {_cell(text)} |")
    return rows


TABLE_LINKS = {"billing": "[Billing](#billing)", "statistics": "[Statistics](#statistics-accounting-geoip_-in-relay-and-accounting)"}


def _domain_table():
    rows = ["| key | default | meaning |", "|---|---|---|"]
    inherited = []
    for key in schema.keys("domain"):
        if _inherited(key):
            inherited.append(key)
        elif key.table:
            rows.append(f"| `{key.name}` | {_default(key)} | {_cell(key.help)} See {TABLE_LINKS[key.table]}. |")
        else:
            rows.append(f"| `{key.name}` | {_default(key)} | {_cell(key.doc or key.help)} |")
    plain = [key.name for key in inherited if not key.table]
    rows.append(f"| {_codes(plain)} | from `[relay]` | Per-domain overrides of the `[relay]` keys. |")
    for table in sorted({key.table for key in inherited if key.table}):
        names = [key.name for key in inherited if key.table == table]
        rows.append(f"| {_codes(names)} | from `[relay]` | Per-domain overrides; see {TABLE_LINKS[table]}. |")
    rows.append("| the options of the domain's selector (`hash_key`, `failback`, ...) | from `[selector:NAME]` "
                "| Per-domain overrides. A key of another selector is an unknown key. |")
    return rows


def _billing_table():
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in schema.KEYS:
        if isinstance(key, Key) and key.table == "billing":
            rows.append(f"| `{key.name}` | {_default(key)} | {_cell(key.doc or key.help)} |")
    return rows


def _selector_table():
    rows = ["| section | key | default | meaning |", "|---|---|---|---|"]
    for name, factory in selectors().items():
        for option, (default, text) in factory.options.items():
            rows.append(f"| `[selector:{name}]` | `{option}` | `{default}` | {_cell(sentence(text))} |")
    return rows


def _statistics_table():
    rows = ["| section | key | default | meaning |", "|---|---|---|---|"]
    for key in schema.KEYS:
        if isinstance(key, Key) and key.table == "statistics":
            rows.append(f"| `[{key.scope[0]}]` | `{key.name}` | {_default(key)} | {_cell(key.doc or key.help)} |")
    for name, factory in stores().items():
        for option, (default, text) in factory.options.items():
            shown = f"`{default}`" if default else "(empty)"
            rows.append(f"| `[accounting]` | `{option}` | {shown} | (`{name}`) {_cell(sentence(text))} |")
    return rows


TABLES = {"relay": _relay_table, "domain": _domain_table, "billing": _billing_table,
          "selector": _selector_table, "statistics": _statistics_table}
_MARKED = re.compile(r"(<!-- keys:(\w+) .*?-->\n)(.*?)(<!-- /keys -->)", re.S)


def render_docs(text):
    """`text` (docs/configuration.md) with every marked key table regenerated."""
    def table(match):
        return match.group(1) + "\n".join(TABLES[match.group(2)]()) + "\n" + match.group(4)

    return _MARKED.sub(table, text)


def rendered(root=ROOT):
    """{path: (current text, generated text)} of the generated files under `root`."""
    docs = (root / DOCS).read_text()
    ini = (root / INI).read_text() if (root / INI).exists() else ""
    return {INI: (ini, render_ini()), DOCS: (docs, render_docs(docs))}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m wsrelay.config.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the files that are stale")
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree (default: this checkout)")
    args = parser.parse_args(argv)
    stale = [path for path, (now, new) in rendered(args.root).items() if now != new]
    for path in stale:
        if args.write:
            (args.root / path).write_text(rendered(args.root)[path][1])
            print(f"wrote {path}")
        else:
            print(f"{path} is stale: python -m wsrelay.config.render --write")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
