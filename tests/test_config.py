"""Config parsing: every mistake names the file, section and key."""

import pytest

from wsrelay.config import ConfigError, Origin, load_config, normalize_host, parse_config

BASE = """
[relay]
listen = tcp:8080:interface=127.0.0.1
[domain:*]
origins = 127.0.0.1:9000
"""


def config_error(text, section, key):
    """The one-line message of the ConfigError `text` raises, checked to name etc/relay.ini, `section`, `key`."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "etc/relay.ini")
    error = caught.value
    assert (error.path, error.section, error.key) == ("etc/relay.ini", section, key)
    return str(error)


def test_shipped_config_loads_without_warnings():
    config = load_config("etc/relay.ini")
    assert config.listen == ("tcp:8080:interface=127.0.0.1",)
    assert config.catch_all.origins == (Origin("127.0.0.1", 8081),)
    assert config.warnings == ()


def test_defaults_match_the_documentation():
    config = parse_config("[domain:*]\norigins = o\n", "x.ini")
    d = config.catch_all
    assert (d.heartbeat_interval, d.heartbeat_timeout, d.connection_timeout) == (60, 60, 60)
    assert d.max_message_size == 1048576 and d.origin_protocol == "follow" and d.websocket
    assert (config.handshake_timeout, config.origin_connect_timeout) == (5, 3)
    assert config.origin_gone_close_code == 1011 and config.trusted_proxies == ()
    assert not d.compression and not d.origin_compression


def test_domain_overrides_and_inheritance():
    config = parse_config("""
[relay]
heartbeat_interval = 20
connection_timeout = 300
[domain:chat.example.com]
origins = 10.0.0.5:8000 10.0.0.6 [::1]:99
connection_timeout = 0
max_message_size = 4096
""", "x.ini")
    d = config.domain_for("chat.example.com")
    assert d.origins == (Origin("10.0.0.5", 8000), Origin("10.0.0.6"), Origin("::1", 99))
    assert (d.heartbeat_interval, d.connection_timeout, d.max_message_size) == (20, 0, 4096)
    assert d.origins[1].port_for("http") == 80 and d.origins[1].port_for("https") == 443
    assert d.origins[0].port_for("https") == 8000


def test_domain_matching_exact_then_wildcard_then_catch_all():
    config = parse_config("""
[domain:a.example.com]
origins = exact
[domain:*.example.com]
origins = wild
[domain:*]
origins = any
""", "x.ini")
    pick = lambda host: config.domain_for(host).origins[0].host
    assert pick("A.Example.COM:8443") == "exact"
    assert pick("a.example.com.") == "exact"
    assert pick("b.example.com") == "wild"
    assert pick("x.b.example.com") == "any"   # one label only
    assert pick("example.com") == "any"
    assert pick("[::1]:8080") == "any"
    assert config.domain_for(None) is None


def test_billing_defaults_come_from_relay_and_domains_override_them():
    config = parse_config("""
[relay]
billing = bandwidth
price_tiers = 0:2
[domain:a.example]
origins = o
billing_cycle = daily
plans = 10GB:2026-11-01:2026-12-01
[domain:b.example]
origins = o
billing = traffic
""", "x.ini")
    a, b = config.domains["a.example"].billing, config.domains["b.example"].billing
    assert (a.method, a.cycle, [p.key for p in a.plans]) == ("bandwidth", "daily", ["10GB:2026-11-01:2026-12-01"])
    assert (b.method, b.cycle, b.plans) == ("traffic", "monthly", ())
    assert a.tiers == b.tiers and len(a.tiers) == 1
    plain = parse_config("[domain:*]\norigins = o\n", "x.ini").catch_all.billing
    assert (plain.method, plain.cycle, plain.tiers, plain.plans) == ("traffic", "monthly", (), ())


def test_no_catch_all_means_unknown_hosts_are_none():
    config = parse_config("[domain:a.example.com]\norigins = o\n", "x.ini")
    assert config.domain_for("b.example.com") is None


@pytest.mark.parametrize("host, name", [
    ("Example.com:80", "example.com"), ("[::1]:443", "::1"), ("[::1]", "::1"), ("a.b.", "a.b"),
    ("", None), ("[::1", None),
])
def test_normalize_host(host, name):
    assert normalize_host(host) == name


@pytest.mark.parametrize("text, section, key, words", [
    (BASE + "[bogus]\n", "bogus", None, "unknown section"),
    (BASE + "[domain:x.com]\norigins = a\ncolour = red\n", "domain:x.com", "colour", "unknown key"),
    ("[relay]\nheartbeat_intervall = 3\n" + BASE.split("[relay]")[1], "relay", "heartbeat_intervall", "unknown key"),
    (BASE.replace("[relay]", "[relay]\nheartbeat_interval = soon"), "relay", "heartbeat_interval", "not a number"),
    (BASE.replace("[relay]", "[relay]\nconnection_timeout = -1"), "relay", "connection_timeout", "positive"),
    (BASE.replace("[relay]", "[relay]\nmax_message_size = 0"), "relay", "max_message_size", "greater than 0"),
    (BASE.replace("[relay]", "[relay]\norigin_gone_close_code = 1000"), "relay", "origin_gone_close_code", "1011"),
    (BASE.replace("[relay]", "[relay]\ntrusted_proxies = 10.0.0.0/33"), "relay", "trusted_proxies", "CIDR"),
    (BASE.replace("tcp:8080:interface=127.0.0.1", "carrier-pigeon:8080"), "relay", "listen", "endpoint"),
    ("[domain:x.com]\norigins = a:99999\n", "domain:x.com", "origins", "port"),
    ("[domain:x.com]\norigins = http://a\n", "domain:x.com", "origins", "host[:port]"),
    ("[domain:x.com]\norigins = ::1\n", "domain:x.com", "origins", "IPv6"),
    ("[domain:x.com]\nwebsocket = on\n", "domain:x.com", "origins", "required"),
    ("[domain:x.com]\norigins = a\nwebsocket = maybe\n", "domain:x.com", "websocket", "on or off"),
    ("[domain:x.com]\norigins = a\norigin_protocol = ftp\n", "domain:x.com", "origin_protocol", "http, https, follow"),
    ("[domain:x.com]\norigins = a\nallowed_origins = app.example.com\n", "domain:x.com", "allowed_origins", "origin like"),
    ("[domain:x.com]\norigins = a\norigin_host = a b\n", "domain:x.com", "origin_host", "Host header"),
    ("[domain:bad/name]\norigins = a\n", "domain:bad/name", None, "host name"),
    ("[domain:x.com]\norigins = a\norigins = b\n", "domain:x.com", "origins", "twice"),
    ("[domain:x.com]\norigins = a\n[domain:x.com]\norigins = b\n", "domain:x.com", None, "twice"),
    (BASE.replace("[relay]", "[relay]\nbilling = flat"), "relay", "billing", "traffic, bandwidth"),
    ("[domain:x.com]\norigins = a\nbilling_cycle = weekly\n", "domain:x.com", "billing_cycle", "daily, monthly"),
    ("[domain:x.com]\norigins = a\nprice_tiers = 5:0.1\n", "domain:x.com", "price_tiers", "start at 0"),
    ("[domain:x.com]\norigins = a\nplans = 500:2026-11-01:2026-12-01\n", "domain:x.com", "plans", "SIZEGB"),
    (BASE.replace("[relay]", "[relay]\nplans = 5GB:2026-11-01:2026-12-01"), "relay", "plans", "unknown key"),
    ("[relay]\nlisten = tcp:1\n", None, None, "no [domain:NAME]"),
    ("origins = a\n", None, None, "before any [section]"),
])
def test_mistakes_name_file_section_and_key(text, section, key, words):
    message = config_error(text, section, key)
    assert message.startswith("etc/relay.ini: ")
    assert "\n" not in message
    if section:
        assert f"[{section}]" in message
    if key:
        assert key in message
    assert words in message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(str(tmp_path / "nope.ini"))


def test_contradicting_timeouts_warn():
    config = parse_config("""
[relay]
heartbeat_interval = 120
connection_timeout = 60
[domain:a.com]
origins = o
[domain:b.com]
origins = o
heartbeat_interval = 0
connection_timeout = 0
""", "x.ini")
    assert len(config.warnings) == 2
    assert "[domain:a.com]" in config.warnings[0] and "heartbeat_interval (120) > connection_timeout (60)" in config.warnings[0]
    assert "[domain:b.com]" in config.warnings[1] and "never noticed" in config.warnings[1]


def test_config_is_immutable():
    config = parse_config(BASE, "x.ini")
    with pytest.raises(AttributeError):
        config.listen = ()
    with pytest.raises(AttributeError):
        config.catch_all.origins = ()


def test_trusted_proxies_and_allowed_origins():
    config = parse_config(BASE.replace("[relay]", "[relay]\ntrusted_proxies = 10.0.0.0/8 ::1")
                          + "allowed_origins = https://App.example.com http://localhost:3000/\n", "x.ini")
    assert config.is_trusted_proxy("10.1.2.3") and config.is_trusted_proxy("::1")
    assert not config.is_trusted_proxy("11.0.0.1") and not config.is_trusted_proxy("garbage")
    d = config.catch_all
    assert d.origin_allowed("https://app.example.com") and d.origin_allowed("http://localhost:3000")
    assert not d.origin_allowed("https://evil.example.com")
    assert d.origin_allowed(None)  # non-browser clients send no Origin


def test_http_keys_per_domain_with_relay_defaults_and_their_mistakes():
    config = parse_config("[relay]\norigin_read_timeout = 30\nmax_body_size = 1000\nhttp_keepalive_timeout = 5\n"
                          "origin_keepalive = 0\n[domain:a.test]\norigins = o\nhttp = on\nclient_body_timeout = 0\n"
                          "[domain:b.test]\norigins = o\nmax_body_size = 0\norigin_read_timeout = 2\n", "x.ini")
    a, b = config.domains["a.test"], config.domains["b.test"]
    assert (a.http, a.origin_read_timeout, a.client_body_timeout, a.max_body_size) == (True, 30, 0, 1000)
    assert (b.http, b.origin_read_timeout, b.client_body_timeout, b.max_body_size) == (False, 2, 60, 0)
    assert (config.http_keepalive_timeout, config.origin_keepalive, config.serves_http) == (5, 0, True)
    assert not parse_config("[domain:*]\norigins = o\n", "x.ini").serves_http
    for text, key, words in [
        ("[domain:a.test]\nwebsocket = off\nhttp = on\n", "origins", "required while http = on"),
        ("[domain:a.test]\norigins = o\nhttp = maybe\n", "http", "is not on or off"),
        ("[domain:a.test]\norigins = o\norigin_read_timeout = 0\n", "origin_read_timeout", "greater than 0"),
        ("[relay]\nmax_body_size = -1\n[domain:a.test]\norigins = o\n", "max_body_size", "0 or more"),
    ]:
        with pytest.raises(ConfigError, match=words) as caught:
            parse_config(text, "x.ini")
        assert caught.value.key == key
