"""
A soak run (not part of CI; see docs/operations.md#soak): a real `twistd -n
wsrelay` process with statistics on, a `websockets` echo origin, and for
--duration seconds three kinds of load at once, all on loopback:

  idle   --idle sessions opened at the start and held (heartbeats only),
  busy   --busy sessions each sending a message of --size bytes --rate times
         a second and reading its echo,
  churn  --churn sessions a second opened, one message each way, closed.

Every --interval seconds one line: the relay's resident size, open
descriptors and CPU share since the last line, and what the load saw
(sessions opened, messages echoed, errors). A summary at the end, and exit
status 1 when anything went wrong (an error, a relay that died, descriptors
not back to where they started once the load stopped).
"""

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(port, origin_port):
    return f"""[relay]
listen = tcp:{port}:interface=127.0.0.1
heartbeat_interval = 30
heartbeat_timeout = 30
connection_timeout = 0
handshake_rate = 0
handshake_rate_per_ip = 0
max_connections_per_ip = 0
[accounting]
database = soak.sqlite
flush_interval = 2
[domain:*]
origins = 127.0.0.1:{origin_port}
origin_protocol = http
"""


class Probe:
    """The relay process as /proc shows it."""

    def __init__(self, pid):
        self.pid = pid
        self.last = (time.monotonic(), self.cpu_seconds())

    def rss_mib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def cpu_share(self):
        """Percent of one CPU since the previous call."""
        now, cpu = time.monotonic(), self.cpu_seconds()
        then, before = self.last
        self.last = (now, cpu)
        return 100 * (cpu - before) / max(now - then, 1e-9)


class Load:
    def __init__(self, url, args):
        self.url, self.args = url, args
        self.opened = self.closed = self.echoed = self.errors = 0
        self.first_error = ""
        self.stopping = asyncio.Event()
        self.idle = []

    def error(self, e):
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(e).__name__}: {e}"

    async def open(self, path):
        ws = await connect(self.url + path, ping_interval=None, max_size=None, compression=None,
                           open_timeout=10, close_timeout=10)
        self.opened += 1
        return ws

    async def hold_idle(self):
        for i in range(self.args.idle):
            try:
                self.idle.append(await self.open(f"/idle/{i}"))
            except Exception as e:
                self.error(e)
            if self.stopping.is_set():
                break

    async def busy(self, i):
        payload = os.urandom(self.args.size)
        pause = 1 / self.args.rate
        try:
            async with await self.open(f"/busy/{i}") as ws:
                while not self.stopping.is_set():
                    await ws.send(payload)
                    if await asyncio.wait_for(ws.recv(), 10) != payload:
                        raise AssertionError("echo differs")
                    self.echoed += 1
                    await asyncio.sleep(pause * (0.5 + random.random()))  # pacing the load
            self.closed += 1
        except Exception as e:
            self.error(e)

    async def churn(self):
        tasks = set()
        n = 0
        while not self.stopping.is_set():
            for _ in range(self.args.churn):
                n += 1
                task = asyncio.create_task(self.one_churn(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(1)  # churn sessions per second
        await asyncio.gather(*tasks)

    async def one_churn(self, n):
        try:
            async with await self.open(f"/churn/{n}") as ws:
                await ws.send("hello")
                if await asyncio.wait_for(ws.recv(), 10) != "hello":
                    raise AssertionError("echo differs")
                self.echoed += 1
            self.closed += 1
        except Exception as e:
            self.error(e)

    async def close_idle(self):
        for ws in self.idle:
            try:
                await ws.close()
                self.closed += 1
            except Exception as e:
                self.error(e)


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:
        pass


async def main(args):
    folder = Path(tempfile.mkdtemp(prefix="wsrelay-soak-"))
    origin_port, port = free_port(), free_port()
    (folder / "relay.ini").write_text(config_text(port, origin_port))
    log = open(folder / "relay.log", "wb")
    twistd = str(Path(sys.executable).with_name("twistd"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    async with serve(echo, "127.0.0.1", origin_port, ping_interval=None, max_size=None, compression=None):
        relay = subprocess.Popen([twistd, "-n", "--pidfile=", "wsrelay", "--config", "relay.ini"],
                                 cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.1)  # the relay is starting
        async with connect(f"ws://127.0.0.1:{port}/warmup") as ws:  # the store opens its files
            await ws.send("warm")
            await ws.recv()
        await asyncio.sleep(3)  # a flush (flush_interval = 2)
        probe = Probe(relay.pid)
        start_fds = probe.fds()
        print(f"soak: relay pid {relay.pid}, folder {folder}; {args.duration:g}s of {args.idle} idle, "
              f"{args.busy} busy ({args.rate:g} msg/s of {args.size} B), {args.churn} churn/s", flush=True)
        print(f"{'t(s)':>6} {'rss MiB':>8} {'fds':>6} {'cpu %':>6} {'opened':>8} {'closed':>8} "
              f"{'echoed':>9} {'errors':>6}", flush=True)
        load = Load(f"ws://127.0.0.1:{port}", args)
        started = time.monotonic()
        tasks = [asyncio.create_task(load.hold_idle()), asyncio.create_task(load.churn())]
        tasks += [asyncio.create_task(load.busy(i)) for i in range(args.busy)]
        rss = []

        def line():
            t = time.monotonic() - started
            rss.append(probe.rss_mib())
            print(f"{t:6.0f} {rss[-1]:8.1f} {probe.fds():6d} {probe.cpu_share():6.1f} {load.opened:8d} "
                  f"{load.closed:8d} {load.echoed:9d} {load.errors:6d}", flush=True)

        try:
            while time.monotonic() - started < args.duration:
                await asyncio.sleep(min(args.interval, args.duration - (time.monotonic() - started)))
                if relay.poll() is not None:
                    print(f"soak: the relay exited with {relay.returncode}", flush=True)
                    break
                line()
        finally:
            load.stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await load.close_idle()
        await asyncio.sleep(3)  # the relay lets go of the closed sessions' descriptors
        alive = relay.poll() is None
        end_fds = probe.fds() if alive else -1
        if alive:
            line()
            relay.send_signal(signal.SIGTERM)
            relay.wait(60)
        log.close()
    print(f"soak: rss first {rss[0]:.1f} MiB, peak {max(rss):.1f} MiB, last under load "
          f"{rss[-2] if len(rss) > 1 else rss[-1]:.1f} MiB; descriptors {start_fds} before, {end_fds} after; "
          f"{load.opened} sessions, {load.echoed} echoes, {load.errors} errors"
          + (f" (first: {load.first_error})" if load.first_error else ""), flush=True)
    return 0 if alive and load.errors == 0 and end_fds == start_fds else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=1800, help="seconds of load (default 1800)")
    parser.add_argument("--interval", type=float, default=60, help="seconds between two lines (default 60)")
    parser.add_argument("--idle", type=int, default=1000, help="idle sessions held (default 1000)")
    parser.add_argument("--busy", type=int, default=50, help="busy sessions (default 50)")
    parser.add_argument("--rate", type=float, default=10, help="messages a second per busy session (default 10)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per busy message (default 1024)")
    parser.add_argument("--churn", type=int, default=10, help="sessions opened and closed a second (default 10)")
    sys.exit(asyncio.run(main(parser.parse_args())))
