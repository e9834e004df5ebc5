"""
What an operator sees from the real `twistd` (a subprocess): `--check`
(nginx -t), `--version`, one line for every mistake that stops a start (a
misspelt key with a suggestion, a statistics store that cannot be opened, a
port in use naming its listen or admin entry), never usage text or a
traceback; and the systemd install keeping the statistics in the unit's
state directory.
"""

import os
import re
import socket
import subprocess

import pytest

from tests.support import ROOT, TWISTD, free_port
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)
from wsrelay import __version__
from wsrelay.config import load_config, parse_config


def twistd(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([TWISTD, *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def check(config):
    return twistd("-n", "wsrelay", "--check", "--config", str(config))


def start(config):
    return twistd("-n", "--pidfile=", "wsrelay", "--config", str(config))


def held_port():
    """A listening socket on a free loopback port: nobody else can listen there."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def test_version():
    result = twistd("wsrelay", "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"wsrelay {__version__}\n", "")


def test_check_says_ok_opening_no_port_and_creating_nothing(tmp_path, pki):  # noqa: F811
    issued = pki.issue("check-ok", ["chat.test"])
    (tmp_path / "admin.token").write_text("a" * 32)
    listener, port = held_port()
    admin, admin_port = held_port()
    with listener, admin:                      # both ports taken: --check must not try them
        config = tmp_path / "relay.ini"
        config.write_text(f"[relay]\nlisten = ssl:{port}:interface=127.0.0.1\n"
                          f"certificate = {issued.certificate}\nprivate_key = {issued.key}\n"
                          f"[accounting]\ndatabase = state/stats.sqlite\nadmin = tcp:{admin_port}:interface=127.0.0.1\n"
                          "admin_token_file = admin.token\n[domain:chat.test]\norigins = 127.0.0.1:9000\n")
        result = check(config)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("what", ["expired", "wrong key", "missing"])
def test_check_refuses_a_bad_certificate_in_one_line(tmp_path, pki, what):  # noqa: F811
    good = pki.issue(f"check-{what.replace(' ', '-')}", ["chat.test"])
    if what == "expired":
        issued = pki.issue("check-expired-leaf", ["chat.test"], valid_from=-30, valid_days=20)
        certificate, key = issued.certificate, issued.key
    elif what == "wrong key":
        other = pki.issue("check-other", ["chat.test"])
        certificate, key = good.certificate, other.key
    else:
        certificate, key = tmp_path / "nope.pem", good.key
    config = tmp_path / "relay.ini"
    config.write_text(f"[relay]\nlisten = ssl:{free_port()}:interface=127.0.0.1\naccounting = off\n"
                      f"[domain:chat.test]\norigins = 127.0.0.1:9000\ncertificate = {certificate}\n"
                      f"private_key = {key}\n")
    result = check(config)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"{config}: [domain:chat.test] ") and "Usage:" not in result.stderr


@pytest.mark.parametrize("section, line, suggestion", [
    ("relay", "heartbeat_intervall = 3", "heartbeat_interval"),
    ("relay", "origin_conect_timeout = 3", "origin_connect_timeout"),
    ("domain:*", "health_intervall = 5", "health_interval"),
    ("domain:*", "alowed_origins = https://a.test", "allowed_origins"),
    ("accounting", "flush_intervall = 5", "flush_interval"),
    ("accounting", "databse = x.sqlite", "database"),
    ("selector:hash", "hash_kye = path", "hash_key"),
])
def test_a_misspelt_key_gets_did_you_mean(section, line, suggestion):
    sections = {"relay": "", "accounting": "", "domain:*": "origins = o\n", "selector:hash": ""}
    sections[section] += line + "\n"
    text = "".join(f"[{name}]\n{body}" for name, body in sections.items())
    key = line.split(" =")[0]
    with pytest.raises(Exception, match=re.escape(f"x.ini: [{section}] {key}: unknown key") + ".*"
                       + re.escape(f"; did you mean {suggestion}?") + "$"):
        parse_config(text, "x.ini")


def test_a_key_like_none_gets_no_suggestion():
    with pytest.raises(Exception, match=r"\[relay\] colour: unknown key$"):
        parse_config("[relay]\ncolour = blue\n[domain:*]\norigins = o\n", "x.ini")


def test_a_store_that_cannot_be_opened_stops_startup_in_one_line(tmp_path):
    (tmp_path / "var").write_text("a file where the database's directory should be\n")
    port = free_port()
    config = tmp_path / "relay.ini"
    config.write_text(f"[relay]\nlisten = tcp:{port}:interface=127.0.0.1\n"
                      "[accounting]\ndatabase = var/wsrelay.sqlite\n[domain:*]\norigins = 127.0.0.1:9000\n")
    database = tmp_path / "var" / "wsrelay.sqlite"
    line = f"{config}: [accounting] database: cannot create {database}: {tmp_path / 'var'} is not a writable directory\n"
    for result in (check(config), start(config)):
        assert (result.returncode, result.stdout, result.stderr) == (1, "", line)
    with socket.socket() as probe:             # and nothing was left listening
        probe.bind(("127.0.0.1", port))


def test_a_store_that_opens_is_created_at_startup_not_at_the_first_flush(tmp_path):
    port = free_port()
    config = tmp_path / "relay.ini"
    config.write_text(f"[relay]\nlisten = tcp:{port}:interface=127.0.0.1\n[accounting]\n"
                      "database = state/wsrelay.sqlite\n[domain:*]\norigins = 127.0.0.1:9000\n")
    with socket.socket() as taken:             # startup then stops at the port, after the store
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = start(config)
    assert result.returncode == 1
    assert (tmp_path / "state" / "wsrelay.sqlite").stat().st_size > 0    # schema written


def test_an_admin_port_in_use_is_one_line_naming_the_admin_entry(tmp_path):
    (tmp_path / "admin.token").write_text("b" * 32)
    taken, port = held_port()
    with taken:
        config = tmp_path / "relay.ini"
        entry = f"tcp:{port}:interface=127.0.0.1"
        config.write_text(f"[relay]\nlisten = tcp:{free_port()}:interface=127.0.0.1\n[accounting]\n"
                          f"database = wsrelay.sqlite\nadmin = {entry}\nadmin_token_file = admin.token\n"
                          "[domain:*]\norigins = 127.0.0.1:9000\n")
        result = start(config)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"[wsrelay.tap#critical] {config}: [accounting] admin: {entry}: cannot listen on 127.0.0.1:{port}: " \
           "Address already in use\n" in output


def test_a_port_in_use_with_workers_is_one_line_too(tmp_path):
    taken, port = held_port()
    with taken:
        config = tmp_path / "relay.ini"
        config.write_text(f"[relay]\nlisten = tcp:{port}:interface=127.0.0.1\nworkers = 2\naccounting = off\n"
                          "[domain:*]\norigins = 127.0.0.1:9000\n")
        result = start(config)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"[wsrelay.tap#critical] {config}: [relay] listen: cannot listen on tcp:{port}:interface=127.0.0.1: " \
           "Address already in use\n" in output


def test_the_documented_systemd_install_keeps_the_statistics_in_the_state_directory(tmp_path):
    """Run the install steps of docs/operations.md that write the config, then load it as the unit would."""
    unit = (ROOT / "etc" / "wsrelay.service").read_text()
    state = "/var/lib/" + re.search(r"^StateDirectory=(\S+)$", unit, re.M).group(1)
    config_path = re.search(r"--config (\S+)$", re.search(r"^ExecStart=.*$", unit, re.M).group(0)).group(1)
    guide = (ROOT / "docs" / "operations.md").read_text()
    block = guide.split("## Installing with systemd", 1)[1].split("\n\n", 2)[1]
    root = tmp_path / "root"
    ran = 0
    for line in (l.strip() for l in block.splitlines()):
        if line.startswith("install -D -m 0644 etc/relay.ini ") or line.startswith("sed -i "):
            command = line.split("#")[0].replace(config_path, str(root) + config_path)
            subprocess.run(["sh", "-c", f"mkdir -p {root / 'etc/wsrelay'} && {command}"], cwd=ROOT, check=True)
            ran += 1
    assert ran == 2
    config = load_config(str(root) + config_path)
    database = config.accounting.options[0]
    assert os.path.dirname(database) == state, f"the documented install puts the database at {database}"
    assert f"sed -i 's|^database = .*|database = {state}/wsrelay.sqlite|' {config_path}" in unit
