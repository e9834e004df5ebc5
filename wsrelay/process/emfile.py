"""
Running out of file descriptors on accept (EMFILE), logged once.

Twisted's accept loop already recovers by itself: it frees a reserved
descriptor, accepts and closes the waiting connections (they get no answer),
and reserves it again, with no traceback. But it logs one info line for every
connection it closes so, under a flood, the log is flooded too. This
observer, set on each listening port, turns an episode into one warning and
passes every other event through. It relies on twisted.internet.tcp.Port
logging through its `_logger` attribute (Twisted 22.10 to 26.10).
"""

from twisted.logger import Logger, globalLogPublisher

log = Logger(namespace="wsrelay.service")

QUIET_FOR = 60.0  # seconds without EMFILE that end an episode


class EMFILELog:
    """An ILogObserver that reports each EMFILE episode of a port once, as a warning."""

    def __init__(self, clock, listener, files_limit, forward=None):
        self.clock = clock
        self.listener = listener
        self.files_limit = files_limit
        self.forward = forward if forward is not None else globalLogPublisher
        self.last = None
        self.episodes = 0

    def __call__(self, event):
        text = event.get("log_format") or ""
        if "EMFILE" not in text:
            self.forward(event)
            return
        now = self.clock.seconds()
        if self.last is None or now - self.last > QUIET_FOR:
            self.episodes += 1
            log.warn("out of file descriptors (limit {limit}): connections to {listener} are closed "
                     "unanswered until sockets close; lower max_connections or raise LimitNOFILE",
                     limit=self.files_limit(), listener=self.listener)
        self.last = now


def quiet_emfile(port, clock, listener, files_limit):
    """Route `port`'s accept-loop log through an EMFILELog (a no-op for ports without one)."""
    if hasattr(port, "_logger"):
        port._logger = Logger(namespace=port._logger.namespace,
                              observer=EMFILELog(clock, listener, files_limit))
    return port
