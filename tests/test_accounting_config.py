"""The accounting keys: defaults, the store chosen by name, and ConfigErrors naming file, section and key."""

import sys

import pytest

from tests.support import ROOT
from wsrelay.accounting import installed
from wsrelay.config import ConfigError, parse_config

DOMAIN = "[domain:*]\norigins = a:1\n"


def load(text, path="/etc/wsrelay/relay.ini"):
    return parse_config(text + DOMAIN, path)


def test_defaults():
    settings = load("[relay]\n").accounting
    assert settings.store == "sqlite"
    assert settings.options[0] == "/etc/wsrelay/var/wsrelay.sqlite"  # relative to the config file
    assert settings.flush_interval == 10.0
    assert (settings.retention_5m, settings.retention_1h, settings.retention_1d) == (
        93 * 86400, 186 * 86400, 366 * 86400)
    assert settings.geoip_city_db is None and settings.node_id


def test_accounting_off_keeps_no_statistics():
    assert load("[relay]\naccounting = off\n").accounting is None


def test_keys_are_read():
    settings = load("[relay]\n[accounting]\ndatabase = /srv/stats.db\nflush_interval = 2.5\n"
                    "node_id = edge-1\nretention_5m = 7\n").accounting
    assert settings.options[0] == "/srv/stats.db"
    assert (settings.flush_interval, settings.node_id, settings.retention_5m) == (2.5, "edge-1", 7 * 86400)


@pytest.mark.parametrize("text, where", [
    ("[relay]\naccounting = mongo\n", r"\[relay\] accounting: 'mongo' is not an installed statistics store "
                                      r"\(installed: .*sqlite"),
    ("[relay]\n[accounting]\nflush_interval = 0\n", r"\[accounting\] flush_interval: "),
    ("[relay]\n[accounting]\nflush_interval = 301\n", r"\[accounting\] flush_interval: "),
    ("[relay]\n[accounting]\nretention_1h = 0.5\n", r"\[accounting\] retention_1h: .*at least 1"),
    ("[relay]\n[accounting]\nbusy_timeout = soon\n", r"\[accounting\] busy_timeout: "),
    ("[relay]\n[accounting]\ndsn = x\n", r"\[accounting\] dsn: unknown key \(with accounting = sqlite"),
    ("[relay]\naccounting = postgresql\n", r"\[accounting\] dsn: required with accounting = postgresql"),
    ("[relay]\naccounting = postgresql\n[accounting]\ndsn =\n", r"\[accounting\] dsn: required"),
    ("[relay]\naccounting = postgresql\n[accounting]\ndsn = host=db\ndatabase = x.db\n",
     r"\[accounting\] database: unknown key \(with accounting = postgresql: .*dsn"),
    ("[relay]\naccounting = postgresql\n[accounting]\ndsn = host=db\nconnect_timeout = 1\n",
     r"\[accounting\] connect_timeout: '1' must be from 2 to 60 seconds"),
    ("[relay]\naccounting = postgresql\n[accounting]\ndsn = host=db\nconnect_timeout = 2.5\n",
     r"\[accounting\] connect_timeout: '2.5' must be a whole number"),
    ("[relay]\naccounting = postgresql\n[accounting]\ndsn = host=db\nconnect_timeout = soon\n",
     r"\[accounting\] connect_timeout: 'soon' is not a number"),
    ("[relay]\naccounting = postgresql\n[accounting]\ndsn = host=db\nstatement_timeout = 0\n",
     r"\[accounting\] statement_timeout: '0' must be from "),
    ("[relay]\naccounting = postgresql\n[accounting]\ndsn = host=db\nstatement_timeout = 301\n",
     r"\[accounting\] statement_timeout: '301' must be from "),
])
def test_mistakes_name_the_file_section_and_key(text, where):
    with pytest.raises(ConfigError, match=r"^/etc/wsrelay/relay.ini: " + where):
        load(text)


PG = "[relay]\naccounting = postgresql\n[accounting]\n"


def test_postgresql_keys_are_read_and_the_password_is_never_shown():
    settings = load(PG + "dsn = host=db.example port=6432 dbname=stats user=relay password=pw-s3cret\n"
                         "connect_timeout = 3\nstatement_timeout = 2.5\n").accounting
    options = settings.options
    assert settings.store == "postgresql"
    assert (options.connect_timeout, options.statement_timeout) == (3, 2.5)
    assert options.where == "postgresql host=db.example port=6432 dbname=stats user=relay"
    assert "pw-s3cret" in options.dsn and "pw-s3cret" not in repr(settings)


def test_postgresql_defaults_and_uris():
    options = load(PG + "dsn = postgresql://relay:pw-s3cret@db.example/stats\n").accounting.options
    assert (options.connect_timeout, options.statement_timeout) == (5, 10.0)
    assert options.where == "postgresql host=db.example dbname=stats user=relay"


def test_an_unparseable_dsn_is_refused_without_quoting_it():
    with pytest.raises(ConfigError, match=r"\[accounting\] dsn: is not a libpq connection string") as e:
        load(PG + "dsn = host=db password=pw s3cret\n")
    assert "s3cret" not in str(e.value)


def test_postgresql_without_psycopg_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg.conninfo", None)
    with pytest.raises(ConfigError, match=r"\[accounting\] dsn: accounting = postgresql needs psycopg 3: "
                                          r"pip install 'wsrelay\[postgresql\]'"):
        load(PG + "dsn = host=db\n")


def test_the_shipped_config_and_the_docs_name_every_store_and_its_keys_with_defaults():
    """etc/relay.ini lists every store's keys with its default (commented out but for the default store's)."""
    ini = (ROOT / "etc" / "relay.ini").read_text()
    docs = (ROOT / "docs" / "configuration.md").read_text()
    stores = installed()
    assert {"sqlite", "postgresql"} <= set(stores)
    for factory in stores.values():
        assert f"`{factory.name}`" in docs and f"{factory.name} (" in ini, factory.name
        for key, (default, _) in factory.options.items():
            line = f"\n{key} = {default}" if factory.name == "sqlite" else f"\n; {key} = {default}"
            assert line in ini and f"| `{key}` |" in docs, key
