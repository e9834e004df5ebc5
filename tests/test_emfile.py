"""
Out of file descriptors: a relay process started with a tiny open-files
limit, flooded with idle connections, closes the excess unanswered, logs it
once without a traceback, and serves again as soon as sockets close.
"""

import os
import resource
import socket
import subprocess
import time

from tests.support import ROOT, TWISTD, WAIT, RelayProcess, raw_request, run, status_of

FILES = 64


class LimitedRelay(RelayProcess):
    """A relay whose process may open only FILES descriptors."""

    def start(self):
        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (FILES, FILES))

        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "wsrelay", "--config", str(self.config)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir, env=env,
            start_new_session=True, preexec_fn=limit)
        deadline = time.monotonic() + WAIT
        while "Starting factory" not in self.log():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log()
            time.sleep(0.05)  # polling the log for startup, bounded
        return self


def closed_by_peer(sock):
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_emfile_closes_the_excess_logs_once_and_recovers(tmp_path):
    relay = LimitedRelay(tmp_path, """
        [relay]
        listen = tcp:{port}:interface=127.0.0.1
        max_connections = 0
        handshake_timeout = 30
        [domain:*]
        origins = 127.0.0.1:9
    """)
    relay.start()
    socks = []
    try:
        for _ in range(FILES + 40):
            socks.append(socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT))
        deadline = time.monotonic() + WAIT
        while sum(closed_by_peer(s) for s in socks) < 20:
            assert time.monotonic() < deadline, "the relay never closed an excess connection"
            time.sleep(0.05)  # polling, bounded
        assert relay.proc.poll() is None  # still running
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + WAIT
    while len(os.listdir(f"/proc/{relay.proc.pid}/fd")) >= FILES // 2:
        # let the relay see the closes first: a probe sent while it is still full would
        # start a second out-of-descriptors episode (and a second log line)
        assert time.monotonic() < deadline, "the relay kept its descriptors after the clients left"
        time.sleep(0.05)  # polling, bounded
    deadline = time.monotonic() + WAIT
    while True:  # recovers by itself once the sockets are closed
        status = status_of(run(raw_request(relay.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
        if status == 426 or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling, bounded
    assert status == 426
    relay.stop()
    text = relay.log()
    assert "Traceback" not in text
    assert text.count("out of file descriptors (limit 64)") == 1
    assert "EMFILE recovery" not in text
