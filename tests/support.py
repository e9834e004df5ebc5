"""
Helpers for tests that run the relay as a real process on loopback, with the
`websockets` library as client and origin. Every wait is bounded.
"""

import asyncio
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWISTD = str(Path(sys.executable).with_name("twistd"))
WAIT = 10.0  # upper bound for any single wait in these tests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RelayProcess:
    """`twistd -n wsrelay --config FILE` in its own process group, log captured."""

    def __init__(self, tmp_path, config_text):
        self.port = free_port()
        self.dir = Path(tmp_path)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "relay.ini"
        text = "\n".join(line.strip() for line in config_text.splitlines())
        self.config.write_text(text.replace("{port}", str(self.port)))
        self.log_path = self.dir / "relay.log"
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "wsrelay", "--config", str(self.config)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir, env=env,
            start_new_session=True)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)  # polling a port that is not open yet; bounded by WAIT
        self.stop()
        raise RuntimeError(f"relay did not listen within {WAIT}s:\n{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def session_lines(self, count):
        """The relay's session log lines, once there are `count` of them (bounded wait)."""
        deadline = time.monotonic() + WAIT
        while True:
            lines = [l for l in self.log().splitlines() if "[wsrelay.session#info]" in l]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)  # the relay writes its line right after the socket closes

    def url(self, path="/", host=None):
        return f"ws://127.0.0.1:{self.port}{path}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=WAIT):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(WAIT)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class LoopbackOrigin:
    """
    A `websockets` origin on a free loopback port: subclasses give `handle(ws)`
    and may widen `serve_options()`. An async context manager, or start()/stop().
    """

    def __init__(self):
        self.port = free_port()
        self.server = None

    def serve_options(self):
        return {"ping_interval": None}

    async def start(self):
        from websockets.asyncio.server import serve

        self.server = await serve(self.handle, "127.0.0.1", self.port, **self.serve_options())
        return self

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()


def read_first_line(proc, what, timeout=WAIT):
    """The first line `proc` prints on stdout (a pipe), waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{what} printed no line within {timeout}s; got {buf!r}")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                stderr = f"; stderr: {proc.stderr.read()!r}" if proc.stderr is not None else ""
                raise AssertionError(f"{what} exited (status {proc.wait(WAIT)}) without printing a line{stderr}")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def run(coro, timeout=WAIT * 3):
    """Run one test coroutine with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def raw_request(port, head, read_until_close=True, timeout=WAIT):
    """Send raw bytes to the relay and return everything it answers before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(-1) if read_until_close else reader.read(65536), timeout)
    writer.close()
    return data


def upgrade_request(host="example.com", path="/", extra=""):
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


def status_of(response):
    line = response.split(b"\r\n", 1)[0].decode()
    return int(line.split()[1]) if line.startswith("HTTP/1.1 ") else None
