"""
systemd: the units pass `systemd-analyze verify`, readiness is sent with
sd_notify once every listener is open (and around reloads and the drain),
and `systemd:` endpoint strings serve on an inherited socket.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support import ROOT, TWISTD, WAIT, RelayProcess, raw_request, run, status_of
from wsrelay.config import parse_config
from wsrelay.process.sdnotify import sd_notify


def analyze():
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: run scripts/install-system-tools "
                    "(it installs Debian's systemd package) or scripts/test")
    return found


def test_units_pass_systemd_analyze_verify(tmp_path):
    """`systemd-analyze verify` of both units, with ExecStart pointed at this checkout's twistd."""
    service = (ROOT / "etc" / "wsrelay.service").read_text()
    assert "ExecStart=/opt/wsrelay/bin/twistd " in service
    (tmp_path / "wsrelay.service").write_text(service.replace("/opt/wsrelay/bin/twistd", TWISTD))
    shutil.copy(ROOT / "etc" / "wsrelay.socket", tmp_path / "wsrelay.socket")
    result = subprocess.run([analyze(), "verify", str(tmp_path / "wsrelay.service"), str(tmp_path / "wsrelay.socket")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
    for directive in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=wsrelay", "NoNewPrivileges=yes",
                      "ProtectSystem=strict", "PrivateTmp=yes", "StateDirectory=wsrelay", "LimitNOFILE="):
        assert f"\n{directive}" in service


def listen_notify(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(WAIT)
    return sock, path


def test_sd_notify_sends_one_datagram_and_nothing_outside_systemd(tmp_path):
    sock, path = listen_notify(tmp_path)
    with sock:
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1"
    assert not sd_notify("READY=1", {})


def test_twistd_says_ready_once_listening_and_reloading_and_stopping(tmp_path, monkeypatch):
    sock, path = listen_notify(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    relay = RelayProcess(tmp_path / "relay", """
        [relay]
        listen = tcp:{port}:interface=127.0.0.1
        drain_window = 0
        [domain:*]
        origins = 127.0.0.1:9
    """)
    with sock:
        try:
            relay.start()
            message = sock.recv(4096).decode()
            assert message.startswith("READY=1\nSTATUS=listening on tcp:")
            relay.signal(signal.SIGHUP)
            assert sock.recv(4096) == b"RELOADING=1"
            assert sock.recv(4096).startswith(b"READY=1")
            relay.signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            relay.wait()
        finally:
            relay.stop()


# What systemd does before it starts a socket-activated service: the socket as
# fd 3, LISTEN_PID the service's own pid (kept by exec).
ACTIVATE = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_systemd_endpoint_serves_an_inherited_socket(tmp_path):
    """Socket activation: fd 3 from the 'manager', LISTEN_FDS=1 and LISTEN_PID of the relay."""
    config = "[relay]\nlisten = systemd:domain=INET:index=0\n[domain:*]\norigins = 127.0.0.1:9\n"
    parse_config(config, "x.ini")  # accepted by the config checks
    (tmp_path / "relay.ini").write_text(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    log = open(tmp_path / "relay.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(ROOT), LISTEN_FDS="1", LISTEN_FDNAMES="wsrelay.socket")
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", ACTIVATE, str(fd), TWISTD, "-n", "--pidfile=", "wsrelay",
         "--config", str(tmp_path / "relay.ini")],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env, pass_fds=[fd], start_new_session=True)
    listener.close()  # only the relay holds it now
    try:
        deadline = time.monotonic() + WAIT
        while "Starting factory" not in (tmp_path / "relay.log").read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "relay.log").read_text()
            time.sleep(0.05)  # polling the log for startup, bounded
        answer = run(raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert status_of(answer) == 426
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(WAIT)
        log.close()


def test_systemd_listener_form_is_checked():
    from wsrelay.config import ConfigError

    for word, message in [("systemd:index=0", "needs domain=INET, INET6 or UNIX"),
                          ("systemd:domain=INET", "needs index=N or name=NAME"),
                          ("systemd:domain=INET:index=0:port=80", "unknown option 'port'")]:
        with pytest.raises(ConfigError, match=rf"\[relay\] listen: '{word}': a systemd: listener {message}"
                           if "unknown" not in message else rf"\[relay\] listen: '{word}': {message}"):
            parse_config(f"[relay]\nlisten = {word}\n[domain:*]\norigins = o\n", "x.ini")
