"""
Choosing a strategy in the config: `selector`, weights in `origins`,
[selector:NAME] sections, health keys, every mistake naming file, section and
key; `--help-selectors`; and a third-party strategy (from the test plugins
folder) used by the relay itself.
"""

import io
import os
import subprocess

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tests.support import ROOT, TWISTD
from tests.test_config import config_error
from tests.test_selectors import PLUGINS_FOR_TESTS, third_party  # noqa: F401  (a fixture)
from wsrelay.config import (
    DOMAIN_KEYS, HEALTH_KEYS, RELAY_KEYS, ConfigError, HealthConfig, Origin, load_config, parse_config,
)
from wsrelay.edge.http import accept_for
from wsrelay.selectors import installed
from wsrelay.selectors.builtin import HashKey, PrimaryBackupOptions
from wsrelay.process.service import RelayFactory
from wsrelay.process.relay import Relay
from wsrelay.process.tap import Options


def test_defaults_round_robin_and_passive_health_only():
    config = parse_config("[domain:*]\norigins = a b\n", "x.ini")
    d = config.catch_all
    assert d.selector == "round-robin" and d.selector_options is None
    assert d.health == HealthConfig(eject_after=3, eject_for=30, interval=0, check="websocket", path="/",
                                    timeout=2, fall=3, rise=2)
    assert [o.weight for o in d.origins] == [1, 1]
    assert set(config.selectors) == {"round-robin"}


def test_shipped_config_documents_every_new_key_with_its_default():
    config = load_config(str(ROOT / "etc" / "relay.ini"))
    assert config.catch_all.selector == "round-robin" and config.catch_all.health == HealthConfig()
    ini = (ROOT / "etc" / "relay.ini").read_text()
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for key in sorted(HEALTH_KEYS | {"selector"}):
        assert f"\n{key} = " in ini, key
        assert f"`{key}`" in docs, key
    for factory in installed().values():
        assert f"`{factory.name}`" in docs
        if factory.options:
            assert f"[selector:{factory.name}]" in ini
        for key, (default, _) in factory.options.items():
            assert f"\n{key} = {default}" in ini and f"`{key}`" in docs, key
    assert "weight=" in ini and "weight=" in docs


def test_relay_selector_is_every_domains_default_and_a_domain_may_choose_its_own():
    config = parse_config("""
[relay]
selector = least-connections
[selector:hash]
hash_key = cookie:room
[domain:a.test]
origins = a
[domain:b.test]
selector = Hash
origins = a b
[domain:c.test]
selector = hash
hash_key = Header:X-Room
origins = a b
[domain:d.test]
selector = primary-backup
failback = off
origins = a b
""", "x.ini")
    get = config.domain_for
    assert get("a.test").selector == "least-connections"
    assert (get("b.test").selector, get("b.test").selector_options) == ("hash", HashKey("cookie", "room"))
    assert get("c.test").selector_options == HashKey("header", "x-room")
    assert get("d.test").selector_options == PrimaryBackupOptions(failback=False)
    assert set(config.selectors) == {"least-connections", "hash", "primary-backup"}


def test_weights_follow_their_origin():
    d = parse_config("[domain:*]\norigins = a:8000 weight=3 [::1]:9 b WEIGHT=1000\n", "x.ini").catch_all
    assert d.origins == (Origin("a", 8000), Origin("::1", 9), Origin("b"))
    assert [o.weight for o in d.origins] == [3, 1, 1000]
    assert str(d.origins[0]) == "a:8000"
    assert Origin("a", 8000, weight=5) == Origin("a", 8000)      # identity is the address


BASE = "[domain:x.com]\norigins = a b\n"


@pytest.mark.parametrize("text, section, key, words", [
    (BASE + "selector = fastest\n", "domain:x.com", "selector",
     "'fastest' is not an installed selector (installed: hash, least-connections, primary-backup, round-robin)"),
    ("[relay]\nselector = fastest\n" + BASE, "relay", "selector", "installed: hash, least-connections"),
    ("[selector:fastest]\n" + BASE, "selector:fastest", None, "not an installed selector"),
    ("[selector:hash]\nfailback = on\n" + BASE, "selector:hash", "failback", "options of hash are: hash_key"),
    ("[selector:round-robin]\nhash_key = path\n" + BASE, "selector:round-robin", "hash_key", "are: none"),
    ("[relay]\nhash_key = path\n" + BASE, "relay", "hash_key", "unknown key (an option of selector hash: "
     "set it in [selector:hash])"),
    (BASE + "hash_key = path\n", "domain:x.com", "hash_key",
     "unknown key (an option of selector hash; this domain uses round-robin)"),
    (BASE + "selector = hash\nhash_key = body\n", "domain:x.com", "hash_key", "client_address, path, header:NAME"),
    (BASE + "selector = hash\nhash_key = header:\n", "domain:x.com", "hash_key", "is not one of"),
    (BASE + "selector = hash\nhash_key = header:X Room\n", "domain:x.com", "hash_key", "not a valid header name"),
    (BASE + "selector = hash\nhash_key = path:x\n", "domain:x.com", "hash_key", "is not one of"),
    ("[selector:hash]\nhash_key = cookie:a;b\n" + BASE + "selector = hash\n", "selector:hash", "hash_key",
     "not a valid cookie name"),
    (BASE + "selector = primary-backup\nfailback = sometimes\n", "domain:x.com", "failback", "on or off"),
    ("[domain:x.com]\norigins = weight=2 a\n", "domain:x.com", "origins", "must follow the origin"),
    ("[domain:x.com]\norigins = a weight=0\n", "domain:x.com", "origins", "from 1 to 1000"),
    ("[domain:x.com]\norigins = a weight=heavy\n", "domain:x.com", "origins", "from 1 to 1000"),
    ("[domain:x.com]\norigins = a weight=2 weight=3\n", "domain:x.com", "origins", "has a weight already"),
    ("[domain:x.com]\norigins = a:1 b a:1\n", "domain:x.com", "origins", "listed twice"),
    (BASE + "eject_after = -1\n", "domain:x.com", "eject_after", "0 or more"),
    (BASE + "eject_for = 0\n", "domain:x.com", "eject_for", "greater than 0"),
    ("[relay]\neject_for = soon\n" + BASE, "relay", "eject_for", "not a number"),
    (BASE + "health_interval = -5\n", "domain:x.com", "health_interval", "positive"),
    (BASE + "health_check = ping\n", "domain:x.com", "health_check", "websocket, http"),
    (BASE + "health_path = health\n", "domain:x.com", "health_path", "request path"),
    (BASE + "health_path = /a b\n", "domain:x.com", "health_path", "request path"),
    (BASE + "health_timeout = 0\n", "domain:x.com", "health_timeout", "greater than 0"),
    (BASE + "health_interval = 1\nhealth_timeout = 2\n", "domain:x.com", "health_timeout",
     "health_timeout (2) is longer than health_interval (1)"),
    ("[relay]\nhealth_timeout = 5\n" + BASE + "health_interval = 3\n", "domain:x.com", "health_interval",
     "is longer than"),
    (BASE + "health_fall = 0\n", "domain:x.com", "health_fall", "greater than 0"),
    (BASE + "health_rise = two\n", "domain:x.com", "health_rise", "whole number"),
    ("[relay]\nhealth_rise = 0\n" + BASE, "relay", "health_rise", "greater than 0"),
])
def test_mistakes_name_file_section_and_key(text, section, key, words):
    message = config_error(text, section, key)
    assert message.startswith(f"etc/relay.ini: [{section}]") and "\n" not in message
    assert words in message


def test_health_keys_in_relay_are_defaults_that_domains_override():
    config = parse_config("""
[relay]
eject_after = 5
health_interval = 10
health_check = http
health_path = /healthz
[domain:a.test]
origins = a
[domain:b.test]
origins = b
eject_after = 0
health_interval = 0
health_rise = 4
""", "x.ini")
    a, b = config.domain_for("a.test").health, config.domain_for("b.test").health
    assert (a.eject_after, a.interval, a.check, a.path, a.rise) == (5, 10, "http", "/healthz", 2)
    assert (b.eject_after, b.interval, b.check, b.path, b.rise) == (0, 0, "http", "/healthz", 4)


def test_key_lists_cover_the_new_keys():
    assert {"selector"} | HEALTH_KEYS <= RELAY_KEYS and {"selector"} | HEALTH_KEYS <= DOMAIN_KEYS


# -- listing them ---------------------------------------------------------------------------

def test_help_selectors_lists_names_help_and_options():
    options = Options()
    options.selectorOutput = io.StringIO()
    with pytest.raises(SystemExit) as done:
        options.parseOptions(["--help-selectors"])
    assert done.value.code == 0
    text = options.selectorOutput.getvalue()
    for factory in installed().values():
        assert f"  {factory.name} " in text and factory.help in text
    assert "hash_key (default client_address)" in text and "failback (default on)" in text


def twistd(*args, plugins=True):
    path = [str(ROOT)] + ([str(PLUGINS_FOR_TESTS)] if plugins else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    return subprocess.run([TWISTD, *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)


def test_twistd_help_selectors_finds_a_dropped_in_strategy():
    result = twistd("wsrelay", "--help-selectors")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["reverse"] and "Test only" in line for line in lines)
    assert any(line.split()[:1] == ["round-robin"] for line in lines)


def test_unknown_selector_stops_startup_listing_the_installed_ones(tmp_path):
    config = tmp_path / "relay.ini"
    config.write_text("[relay]\nlisten = tcp:0:interface=127.0.0.1\n[domain:*]\norigins = a\nselector = fastest\n")
    result = twistd("-n", "--pidfile=", "wsrelay", "--config", str(config))
    assert result.returncode != 0
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    assert last.endswith(f"{config}: [domain:*] selector: 'fastest' is not an installed selector "
                         "(installed: hash, least-connections, primary-backup, reverse, round-robin)")


# -- a third-party strategy inside the relay --------------------------------------------

THIRD_PARTY = """
[relay]
origin_connect_timeout = 3
[selector:reverse]
reverse_offset = 1
[domain:chat.test]
selector = reverse
origins = 10.0.0.1:8000 10.0.0.2:8000 10.0.0.3:8000
origin_protocol = http
"""


def test_a_third_party_selector_needs_its_plugin():
    with pytest.raises(ConfigError, match="'reverse' is not an installed selector"):
        parse_config(THIRD_PARTY, "x.ini")


def test_a_third_party_selector_is_configured_chosen_and_told_everything(third_party):
    with pytest.raises(ConfigError) as caught:
        parse_config(THIRD_PARTY.replace("reverse_offset = 1", "reverse_offset = many"), "x.ini")
    assert (caught.value.section, caught.value.key) == ("selector:reverse", "reverse_offset")

    clock = MemoryReactorClock()
    relay = Relay(parse_config(THIRD_PARTY, "x.ini"), clock)
    selector = relay.routes["chat.test"].selector
    factory = RelayFactory(relay)
    client = factory.buildProtocol(None)
    client_wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
    client.makeConnection(client_wire)
    client.dataReceived(b"GET / HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    # reversed (3, 2, 1), skipping one: 2 first, then 1 for the retry
    assert [c[0] for c in clock.tcpClients] == ["10.0.0.2"]
    clock.tcpClients[0][2].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    assert [c[0] for c in clock.tcpClients] == ["10.0.0.2", "10.0.0.1"]

    origin = clock.tcpClients[1][2].buildProtocol(IPv4Address("TCP", "10.0.0.1", 8000))
    origin_wire = StringTransport()
    origin.makeConnection(origin_wire)
    key = [line.split(":", 1)[1].strip() for line in origin_wire.value().decode().split("\r\n")
           if line.startswith("Sec-WebSocket-Key")][0]
    origin.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept_for(key.encode()).encode() + b"\r\n\r\n")
    assert client_wire.value().startswith(b"HTTP/1.1 101 ")
    two, one = Origin("10.0.0.2", 8000), Origin("10.0.0.1", 8000)
    assert selector.events == [("failed", two), ("opened", one)]
    client.connectionLost(Failure(ConnectionDone()))
    origin.connectionLost(Failure(ConnectionDone()))
    assert selector.events == [("failed", two), ("opened", one), ("closed", one)]
    assert relay.sessions == set()
