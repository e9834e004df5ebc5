"""
The signal hook's order at startup: systemd may send SIGHUP (`systemctl reload`)
as soon as it hears READY=1, so the reload handler must be in place before any
READY is sent; a SIGHUP meeting the default action would kill the relay.
"""

import signal

from twisted.internet.testing import MemoryReactorClock

from wsrelay.config import parse_config
from wsrelay.process.service import build_service
from wsrelay.process.signals import SignalHook

CONFIG = "[relay]\nlisten = tcp:0:interface=127.0.0.1\n[domain:*]\norigins = 127.0.0.1:9\n"


class Recorder:
    def __init__(self):
        self.events = []

    def install(self, number, handler):
        self.events.append(("install", signal.Signals(number).name))

    def current(self, number):
        return lambda *a: None  # stands for Twisted's own SIGTERM/SIGINT handler

    def notify(self, state):
        self.events.append(("notify", state.split("\n")[0]))
        return True


def test_sighup_is_handled_before_the_relay_says_ready():
    reactor, seen = MemoryReactorClock(), Recorder()
    top = build_service(parse_config(CONFIG, "relay.ini"), reactor, notify=seen.notify)
    SignalHook(top, reactor, install=seen.install, current=seen.current).setServiceParent(top)
    top.startService()  # the reactor is not running yet: the listeners open, READY is sent
    assert seen.events[:2] == [("install", "SIGHUP"), ("notify", "READY=1")]
    reactor.run()  # now Twisted's own handlers exist: SIGTERM and SIGINT are wrapped
    assert seen.events[2:] == [("install", "SIGTERM"), ("install", "SIGINT")]
    top.stopService()


def test_the_worker_parent_handles_sighup_before_its_group_says_ready(tmp_path):
    from wsrelay.process.tap import Options, makeService
    from wsrelay.process.workers import WorkerGroup

    (tmp_path / "relay.ini").write_text(CONFIG.replace("[relay]\n", "[relay]\nworkers = 2\n"))
    options = Options()
    options.parseOptions(["--config", str(tmp_path / "relay.ini")])
    (top,) = makeService(options)  # built, not started: no worker is spawned
    # a MultiService starts its children in order: the hook (SIGHUP) before the group (READY)
    assert [type(child) for child in top] == [SignalHook, WorkerGroup]
