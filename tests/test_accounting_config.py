"""The accounting keys: defaults, the store chosen by name, and ConfigErrors naming file, section and key."""

import pytest

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
])
def test_mistakes_name_the_file_section_and_key(text, where):
    with pytest.raises(ConfigError, match=r"^/etc/wsrelay/relay.ini: " + where):
        load(text)
