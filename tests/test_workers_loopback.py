"""
`workers = 2` with a real `twistd -n wsrelay` on loopback: both workers take
connections (their pids in the session log), a killed worker is replaced,
SIGTERM to the parent stops the whole group. Bounded polls, no sleeps for events.
"""

import asyncio
import os
import re
import signal
import time

from websockets.asyncio.client import connect

from tests.support import WAIT, RelayProcess, run
from tests.test_reload_loopback import CountingOrigin


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def poll(check, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)  # polling a condition with a deadline
    return check()


def started_workers(relay):
    """{index: pid} of the workers the parent started, the latest per index."""
    return {int(i): int(p) for i, p in re.findall(r"worker (\d+) started \(pid (\d+)\)", relay.log())}


def test_two_workers_accept_one_killed_is_replaced_sigterm_stops_all(tmp_path):
    async def main():
        async with CountingOrigin("o") as origin:
            relay = RelayProcess(tmp_path, f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                workers = 2
                drain_window = 0
                ; the test opens many sessions from 127.0.0.1 in a burst: no per-address rate here
                handshake_rate_per_ip = 0
                [domain:*]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
            """)
            pids = set()
            try:
                relay.start()
                first = await asyncio.to_thread(poll, lambda: len(started_workers(relay)) == 2 and started_workers(relay))
                pids.update(first.values())
                assert len(first) == 2 and all(alive(pid) for pid in first.values())

                async def sessions(count):
                    clients = [await connect(relay.url(f"/{i}"), ping_interval=None) for i in range(count)]
                    for ws in clients:
                        await ws.send("x")
                        assert await ws.recv() == "x"
                    for ws in clients:
                        await ws.close()

                def workers_seen():
                    return {int(p) for p in re.findall(r"worker=(\d+)", relay.log())}

                deadline = time.monotonic() + WAIT
                while workers_seen() != set(first.values()) and time.monotonic() < deadline:
                    await sessions(20)  # the kernel spreads new connections over both sockets
                assert workers_seen() == set(first.values())

                victim = first[0]
                os.kill(victim, signal.SIGKILL)
                again = await asyncio.to_thread(poll, lambda: started_workers(relay).get(0) != victim)
                assert again
                replacement = started_workers(relay)[0]
                pids.add(replacement)
                assert "worker 0 (pid %d) died" % victim in relay.log()
                assert alive(replacement) and replacement != victim
                await sessions(5)  # still relaying

                relay.signal(signal.SIGTERM)
                await asyncio.to_thread(relay.wait)
                gone = await asyncio.to_thread(poll, lambda: not any(alive(pid) for pid in pids))
                assert gone, relay.log()
            finally:
                for pid in pids:
                    if alive(pid):
                        os.kill(pid, signal.SIGKILL)
                relay.stop()

    run(main())


# -- units: the supervisor on a fake clock and fake processes -------------------------

import pytest  # noqa: E402
from twisted.internet.testing import MemoryReactorClock  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from wsrelay.config import ConfigError, parse_config  # noqa: E402
from wsrelay.process.workers import WorkerGroup, restart_delay  # noqa: E402


class FakeProcess:
    def __init__(self, pid):
        self.pid = pid
        self.signals = []

    def signalProcess(self, number):
        self.signals.append(number)


def group_of(count=2):
    reactor = MemoryReactorClock()
    spawned, notified = [], []

    def spawn(protocol, executable, argv, env, childFDs):
        protocol.makeConnection(FakeProcess(1000 + len(spawned)))
        spawned.append((protocol, argv))

    config = parse_config(f"[relay]\nworkers = {count}\n[domain:*]\norigins = o\n", "/etc/x.ini")
    group = WorkerGroup(config, count, reactor, spawn=spawn, check_ports=lambda listen: None,
                        notify=notified.append)
    return reactor, group, spawned, notified


def test_workers_start_restart_with_backoff_and_stop_on_sigterm():
    reactor, group, spawned, notified = group_of()
    group.startService()
    assert [argv[-3:] for _, argv in spawned] == [["/etc/x.ini", "--worker", "0"], ["/etc/x.ini", "--worker", "1"]]
    assert notified[0].startswith("READY=1")
    worker0 = spawned[0][0]
    worker0.processEnded(Failure(Exception("killed")))  # died at once: restarted after RESTART_MIN
    reactor.advance(0.4)
    assert len(spawned) == 2
    reactor.advance(0.2)
    assert len(spawned) == 3 and group.workers[0] is spawned[2][0]
    spawned[2][0].processEnded(Failure(Exception("killed")))  # dying again soon: the wait doubles
    reactor.advance(0.9)
    assert len(spawned) == 3
    reactor.advance(0.2)
    assert len(spawned) == 4
    group.reload()
    assert [p.transport.signals for p in group.workers.values()] == [[signal.SIGHUP], [signal.SIGHUP]]
    stopped = group.stopService()
    assert not stopped.called
    assert all(p.transport.signals[-1] == signal.SIGTERM for p in group.workers.values())
    for protocol in list(group.workers.values()):
        protocol.processEnded(Failure(Exception("exited")))
    assert stopped.called and len(spawned) == 4 and not reactor.getDelayedCalls()


def test_restart_delay():
    assert restart_delay(0.1, None) == 0.5 and restart_delay(0.1, 0.5) == 1.0
    assert restart_delay(0.1, 20) == 30 and restart_delay(60, 30) == 0.5


@pytest.mark.parametrize("text, message", [
    ("workers = 0", "workers: '0' must be 1 or more, or auto"),
    ("workers = many", "workers: 'many' is not a whole number"),
    ("workers = 2\nlisten = unix:/tmp/x.sock", "workers: 2 workers share tcp:, tcp6: and ssl: listeners only"),
])
def test_workers_key_mistakes(text, message):
    with pytest.raises(ConfigError, match=r"x.ini: \[relay\] " + re.escape(message)):
        parse_config(f"[relay]\n{text}\n[domain:*]\norigins = o\n", "x.ini")


def test_workers_default_and_auto():
    assert parse_config("[domain:*]\norigins = o\n", "x.ini").workers == 1
    assert parse_config("[relay]\nworkers = auto\n[domain:*]\norigins = o\n", "x.ini").workers == len(
        os.sched_getaffinity(0))
