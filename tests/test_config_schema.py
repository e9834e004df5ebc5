"""
The declared config schema (wsrelay/config/schema.py) is the one source: the
reader takes every key through it, the values' defaults equal its defaults,
the default an operator reads is the value the relay uses, and etc/relay.ini
and the key tables of docs/configuration.md are what it renders.
"""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from wsrelay.accounting.billing import BillingSettings
from wsrelay.config import (
    ACCOUNTING_KEYS, DOMAIN_KEYS, RELAY_KEYS, AccountingSettings, ConfigError, DomainConfig, HealthConfig,
    RelayConfig, parse_config, render, schema,
)

ROOT = Path(__file__).parent.parent
KEYS = [key for key in schema.KEYS if isinstance(key, schema.Key)]
VALUES = {"health": (HealthConfig,), "billing": (BillingSettings,),
          "accounting": (AccountingSettings, RelayConfig)}


def test_every_key_is_declared_once_per_scope_with_a_one_line_help():
    seen = set()
    for key in KEYS:
        assert key.scope in (schema.RELAY, schema.DOMAIN, schema.INHERITED, schema.ACCOUNTING), key.name
        for scope in key.scope:
            assert (scope, key.name) not in seen, f"{key.name} is declared twice in {scope}"
            seen.add((scope, key.name))
        assert key.help and "\n" not in key.help and len(key.help) <= 110, key.name
        assert isinstance(key.kind, schema.k.Kind), key.name


def test_the_reader_accepts_exactly_the_declared_keys():
    assert RELAY_KEYS == {key.name for key in KEYS if "relay" in key.scope}
    assert DOMAIN_KEYS == {key.name for key in KEYS if "domain" in key.scope}
    assert ACCOUNTING_KEYS == {key.name for key in KEYS if "accounting" in key.scope}


@pytest.mark.parametrize("key", KEYS, ids=lambda key: f"{key.scope[0]}-{key.name}")
def test_the_values_default_to_the_schema(key):
    """Each dataclass field a key fills has the key's default (a value built without the reader agrees)."""
    if key.group in ("tls", "selector") or key.name in ("accounting", "workers", "node_id", "admin_token_file"):
        return  # filled by the reader from more than the key (a loaded certificate, a plugin, the CPUs, the host)
    candidates = VALUES[key.group] if key.group else \
        [cls for scope, cls in (("relay", RelayConfig), ("domain", DomainConfig)) if scope in key.scope]
    holders = [cls for cls in candidates if key.attribute in {f.name for f in dataclasses.fields(cls)}]
    assert holders, f"{key.name}: no value has a field {key.attribute}"
    for cls in holders:
        field = {f.name: f for f in dataclasses.fields(cls)}[key.attribute]
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        assert default == key.default, f"{cls.__name__}.{key.attribute} = {default!r}, schema: {key.default!r}"


def _written(scope):
    return {key.name: key.shown for key in KEYS if scope in key.scope and key.shown
            and not (scope == "domain" and "relay" in key.scope)}


def test_the_default_an_operator_reads_is_the_value_the_relay_uses():
    """A file setting every key to its documented default reads as the file setting none."""
    def ini(sections):
        return "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) for name, keys in sections)

    domain = {"origins": "o"}
    plain = parse_config(ini([("relay", {}), ("accounting", {}), ("domain:*", domain)]), "/x/relay.ini")
    written = parse_config(ini([("relay", _written("relay")), ("accounting", _written("accounting")),
                                ("domain:*", {**_written("domain"), **domain})]), "/x/relay.ini")
    assert written.catch_all == plain.catch_all
    for field in dataclasses.fields(RelayConfig):
        if field.name not in ("accounting", "catch_all", "selectors"):
            assert getattr(written, field.name) == getattr(plain, field.name), field.name
    for field in dataclasses.fields(AccountingSettings):
        if field.name not in ("factory", "options"):
            assert getattr(written.accounting, field.name) == getattr(plain.accounting, field.name), field.name


def test_a_bad_value_names_file_section_and_key_through_its_kind():
    for key in KEYS:
        if isinstance(key.kind, (schema.k.Seconds, schema.k.Rate, schema.k.Count, schema.k.Flag)):
            section = {"relay": "relay", "domain": "domain:*", "accounting": "accounting"}[key.scope[0]]
            text = f"[{section}]\n{key.name} = bogus\n" + ("" if section == "domain:*" else "[domain:*]\n") \
                + "origins = o\n"
            with pytest.raises(ConfigError) as caught:
                parse_config(text, "/x/relay.ini")
            assert str(caught.value).startswith(f"/x/relay.ini: [{section}] {key.name}: 'bogus' is not ")


def test_the_shipped_config_and_the_docs_tables_are_rendered_from_the_schema():
    for path, (current, generated) in render.rendered(ROOT).items():
        assert current == generated, f"{path} is stale: python -m wsrelay.config.render --write"


def test_the_render_command_checks_and_rewrites(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "configuration.md").write_text((ROOT / "docs" / "configuration.md").read_text())
    (tmp_path / "etc" / "relay.ini").write_text("; out of date\n")
    command = [sys.executable, "-m", "wsrelay.config.render", "--root", str(tmp_path)]
    stale = subprocess.run(command + ["--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "etc/relay.ini is stale" in stale.stdout
    subprocess.run(command + ["--write"], check=True, capture_output=True)
    assert subprocess.run(command + ["--check"], capture_output=True).returncode == 0
    assert (tmp_path / "etc" / "relay.ini").read_text() == (ROOT / "etc" / "relay.ini").read_text()
