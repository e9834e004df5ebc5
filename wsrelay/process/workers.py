"""
`workers = N`: a parent process that runs N relay processes on the same ports.

Each worker is a whole relay (`twistd -n wsrelay --config FILE --worker I`)
reading the same file and opening its own listeners with SO_REUSEPORT, so the
kernel spreads connections over them and every worker reloads its listeners
by itself. The parent only supervises: it checks the ports are free, starts
the workers, restarts one that dies (sooner or later: restart_delay), passes
SIGHUP and SIGTERM on, and stops once every worker has exited.
"""

import os
import shutil
import signal
import socket
import sys
import tempfile

from twisted.application import service
from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from wsrelay.config import split_listener
from wsrelay.tls import parse_tls_listener

log = Logger(namespace="wsrelay.workers")

RESTART_MIN = 0.5     # seconds before a dead worker is started again
RESTART_MAX = 30.0    # the longest wait, for a worker that keeps dying at startup
STABLE_AFTER = 10.0   # a worker that lived this long starts again after RESTART_MIN
KILL_GRACE = 10.0     # seconds past drain_timeout before workers still alive get SIGKILL
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def restart_delay(lived, previous):
    """Seconds to wait before restarting a worker that lived `lived` seconds (previous wait: `previous`)."""
    if lived >= STABLE_AFTER or previous is None:
        return RESTART_MIN
    return min(RESTART_MAX, previous * 2)


def worker_argv(config_path, index):
    """The command line of worker `index`: the same twistd plugin, same file."""
    return [sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile=", "wsrelay",
            "--config", os.path.abspath(config_path), "--worker", str(index)]


def check_ports_free(listen):
    """
    Bind each TCP listener once without SO_REUSEPORT (then let go): a port
    another program, or another wsrelay, holds fails startup loudly instead of
    being silently shared. Raises OSError naming the listener.
    """
    for entry in listen:
        endpoint, _ = split_listener(entry)
        address = _tcp_address(endpoint)
        if address is None:
            continue
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as e:
                raise OSError(e.errno, f"cannot listen on {entry}: {e.strerror}")


def _tcp_address(endpoint):
    tls = parse_tls_listener(endpoint)
    if tls is not None:
        return tls.interface or "", tls.port
    kind, _, rest = endpoint.partition(":")
    if kind.lower() not in ("tcp", "tcp6"):
        return None
    parts = rest.replace("\\:", "\0").split(":")
    options = dict(p.partition("=")[::2] for p in parts[1:] if "=" in p)
    port = options.get("port") or (parts[0] if "=" not in parts[0] else None)
    interface = options.get("interface", "::" if kind.lower() == "tcp6" else "").replace("\0", ":")
    return interface, int(port)


class Worker(ProcessProtocol):
    """One worker process, as the parent sees it."""

    def __init__(self, group, index, started):
        self.group = group
        self.index = index
        self.started = started
        self.pid = None
        self.ended = defer.Deferred()

    def connectionMade(self):
        self.pid = self.transport.pid

    def processEnded(self, reason):
        self.group.ended(self, reason.value)
        self.ended.callback(None)


class WorkerGroup(service.Service):
    """
    Runs `count` workers for the config file at `path` on `reactor`;
    `spawn` is reactor.spawnProcess's signature (a fake in tests).
    """

    def __init__(self, config, count, reactor, spawn=None, argv=worker_argv, check_ports=check_ports_free,
                 notify=None):
        self.config = config
        self.count = count
        self.reactor = reactor
        self.spawn = spawn if spawn is not None else reactor.spawnProcess
        self.argv = argv
        self.check_ports = check_ports
        self.workers = {}      # index -> Worker, the live ones
        self.delays = {}       # index -> the last restart delay
        self.restarts = {}     # index -> the pending IDelayedCall
        self.stopping = False
        self.notify = notify or (lambda state: False)  # systemd's sd_notify
        self.peers = None      # the directory of the workers' admin sockets (wsrelay.admin.peers)

    def startService(self):
        self.check_ports(self.config.listen)  # before any worker binds with SO_REUSEPORT
        super().startService()
        if self.config.accounting is not None and self.config.accounting.admin:
            self.peers = tempfile.mkdtemp(prefix="wsrelay-workers-")  # mode 0700: the relay's user only
        for index in range(self.count):
            self.start_worker(index)
        self.notify(f"READY=1\nSTATUS={self.count} workers on " + " ".join(self.config.listen))

    def start_worker(self, index):
        self.restarts.pop(index, None)
        worker = Worker(self, index, self.reactor.seconds())
        argv = self.argv(self.config.path, index)
        env = dict(os.environ)
        if self.peers is not None:
            env["WSRELAY_PEERS"] = self.peers
        self.spawn(worker, argv[0], argv, env=env, childFDs={0: 0, 1: 1, 2: 2})
        self.workers[index] = worker
        log.info("worker {index} started (pid {pid})", index=index, pid=worker.pid)
        return worker

    def ended(self, worker, why):
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        if self.stopping:
            log.info("worker {index} (pid {pid}) exited", index=worker.index, pid=worker.pid)
            return
        lived = self.reactor.seconds() - worker.started
        delay = restart_delay(lived, self.delays.get(worker.index))
        self.delays[worker.index] = delay
        log.warn("worker {index} (pid {pid}) died after {lived:.1f}s ({why}); starting it again in {delay:g}s",
                 index=worker.index, pid=worker.pid, lived=lived, why=str(why), delay=delay)
        self.restarts[worker.index] = self.reactor.callLater(delay, self.start_worker, worker.index)

    def signal_all(self, number):
        for worker in list(self.workers.values()):
            if worker.pid is not None:
                try:
                    worker.transport.signalProcess(number)
                except Exception:  # it exited meanwhile
                    pass

    def reload(self):
        log.info("SIGHUP: passed on to {count} workers", count=len(self.workers))
        self.signal_all(signal.SIGHUP)

    def stopService(self):
        """SIGTERM to every worker (each drains); fires once all exited, SIGKILL after the drain bound."""
        super().stopService()
        self.notify("STOPPING=1")
        self.stopping = True
        for call in self.restarts.values():
            if call.active():
                call.cancel()
        self.restarts.clear()
        self.signal_all(signal.SIGTERM)
        waiting = [w.ended for w in self.workers.values()]
        if not waiting:
            if self.peers is not None:
                shutil.rmtree(self.peers, ignore_errors=True)
            return defer.succeed(None)
        killer = self.reactor.callLater(self.config.drain_timeout + KILL_GRACE, self.signal_all, signal.SIGKILL)
        done = defer.DeferredList(waiting)

        def over(result):
            if killer.active():
                killer.cancel()
            if self.peers is not None:
                shutil.rmtree(self.peers, ignore_errors=True)
            return result

        return done.addBoth(over)

    def hurry(self):
        """A second SIGTERM: passed on, so the workers cut their drains short."""
        self.signal_all(signal.SIGTERM)


def become_worker(parent_pid):
    """
    In a worker: leave the parent's process group (a terminal's Ctrl-C or a
    killpg reaches the parent, which passes it on once), and ask Linux for
    SIGTERM should the parent die without stopping us.
    """
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)
