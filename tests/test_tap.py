"""The twistd plugin: discovery, options, and how a config mistake is reported."""

import os
import subprocess

import pytest
from twisted.application.service import IServiceCollection
from twisted.internet.testing import MemoryReactorClock

from tests.support import ROOT, TWISTD
from wsrelay.config import parse_config
from wsrelay.process.service import build_service, with_backlog
from wsrelay.process.tap import Options


def twistd(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([TWISTD, *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)


def test_twistd_lists_the_plugin():
    result = twistd("--help")
    assert result.returncode == 0
    assert any(line.split()[:1] == ["wsrelay"] for line in result.stdout.splitlines())


def test_config_mistake_stops_startup_with_one_clear_line(tmp_path):
    bad = tmp_path / "relay.ini"
    bad.write_text("[relay]\nheartbeat_intervall = 3\n[domain:*]\norigins = a\n")
    result = twistd("-n", "--pidfile=", "wsrelay", "--config", str(bad))
    assert result.returncode == 1
    # the one line alone: no twistd usage text before it, a suggestion for the misspelt key
    assert result.stdout == ""
    assert result.stderr == f"{bad}: [relay] heartbeat_intervall: unknown key; did you mean heartbeat_interval?\n"


def test_options_load_the_config_and_refuse_a_missing_file(tmp_path):
    options = Options()
    options.parseOptions(["--config", str(ROOT / "etc" / "relay.ini")])
    assert options.config.catch_all is not None
    with pytest.raises(SystemExit, match="nope.ini: cannot read the file"):
        Options().parseOptions(["--config", str(tmp_path / "nope.ini")])


def test_one_listener_per_endpoint_with_a_real_backlog():
    config = parse_config("[relay]\nlisten = tcp:0:interface=127.0.0.1 tcp:0:interface=127.0.0.1:backlog=99\n"
                          "[domain:*]\norigins = o\n", "x.ini")
    reactor = MemoryReactorClock()
    top = build_service(config, reactor)
    assert IServiceCollection.providedBy(top)
    top.startService()
    try:
        assert [port[2] for port in reactor.tcpServers] == [1024, 99]
    finally:
        top.stopService()


def test_a_started_relay_collects_its_young_generation_less_often():
    """A connect allocates a few hundred objects that live as long as their session; at
    CPython's 700 the collector passed over them again and again (13 % of a connect)."""
    import gc

    from wsrelay.process.service import GC_YOUNG

    before = gc.get_threshold()
    gc.set_threshold(700, before[1], before[2])
    config = parse_config("[relay]\nlisten = tcp:0:interface=127.0.0.1\n[domain:*]\norigins = o\n", "x.ini")
    top = build_service(config, MemoryReactorClock())
    try:
        assert gc.get_threshold()[0] == 700  # not at import or build time: only a relay that runs
        top.startService()
        assert gc.get_threshold() == (GC_YOUNG, before[1], before[2])
        assert GC_YOUNG > 700
    finally:
        top.stopService()
        gc.set_threshold(*before)


def test_with_backlog():
    assert with_backlog("tcp:80") == "tcp:80:backlog=1024"
    assert with_backlog("tcp:80:backlog=5") == "tcp:80:backlog=5"
    assert with_backlog("unix:/run/ws.sock") == "unix:/run/ws.sock"


def test_a_port_in_use_stops_startup(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "relay.ini"
        config.write_text(f"[relay]\nlisten = tcp:{port}:interface=127.0.0.1\n[domain:*]\norigins = a\n")
        result = twistd("-n", "--pidfile=", "wsrelay", "--config", str(config))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"{config}: [relay] listen: tcp:{port}:interface=127.0.0.1: cannot listen on 127.0.0.1:{port}: " \
           "Address already in use" in output
    assert "Traceback" not in output
