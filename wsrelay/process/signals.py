"""
The process's signals, as a thin shell over RelayService: SIGHUP reloads the
config file; SIGTERM and SIGINT stop the reactor as twistd always does (the
service drains on stop), and a second one cuts the drain short.

SIGHUP is installed when the service starts, before any listener opens and
before systemd hears READY=1 (a reload sent right after READY must not meet
the default action, which kills the process); SIGTERM and SIGINT once the
reactor runs, after Twisted installed the handlers they wrap. Each handler
only schedules work with callFromThread, never runs it inside the handler.
"""

import signal

from twisted.application import service
from twisted.logger import Logger

log = Logger(namespace="wsrelay.service")


class SignalHook(service.Service):
    """
    Routes SIGHUP, SIGTERM and SIGINT to `target`: a RelayService, or the
    parent's WorkerGroup. The target offers reload(), hurry() and `stopping`.
    """

    def __init__(self, target, reactor, install=signal.signal, current=signal.getsignal):
        self.target = target
        self.reactor = reactor
        self._install = install
        self._current = current
        self._stop_handlers = {}

    def startService(self):
        super().startService()
        self._install(signal.SIGHUP, self._hup)
        self.reactor.callWhenRunning(self.install)

    def install(self):
        for number in (signal.SIGTERM, signal.SIGINT):
            previous = self._current(number)
            if callable(previous):  # Twisted's: stops the reactor and records the exit signal
                self._stop_handlers[number] = previous
                self._install(number, self._stop)

    def _hup(self, number, frame):
        self.reactor.callFromThread(self._reload)

    def _reload(self):
        log.info("SIGHUP: reloading the configuration")
        self.target.reload()

    def _stop(self, number, frame):
        if self.target.stopping:  # a second SIGTERM/SIGINT cuts the drain short
            self.reactor.callFromThread(self.target.hurry)
        else:
            self._stop_handlers[number](number, frame)
