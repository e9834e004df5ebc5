"""
max_memory: keeping the process under a memory ceiling so that the kernel's
OOM killer never ends every session at once (Envoy's overload manager with
its stop-accepting and shrink-heap actions is the model).

Over the ceiling new handshakes get 503 with Retry-After until the resident
size is back under LOW_WATER of it (so the relay does not flap around the
ceiling), and meanwhile the sessions holding the most unsent data are closed
with 1013 (Try Again Later) until what they hold covers the excess over
LOW_WATER. A pure decision core (Overload) and a thin shell
(OverloadGuard) that samples the resident size on the injected clock, once
every SAMPLE_INTERVAL seconds, never per packet.
"""

import os
from dataclasses import dataclass

from twisted.application import service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from wsrelay.edge.legs import unsent
from wsrelay.edge.trim import collect_and_trim

log = Logger(namespace="wsrelay.overload")

SAMPLE_INTERVAL = 1.0  # seconds between two samples of the resident size
LOW_WATER = 0.95       # handshakes are taken again under this share of max_memory
MIN_SHED = 16384       # a session holding less unsent data frees next to nothing when closed
RELEASE_DELAY = 0.1    # seconds after the closes before their memory is handed back (connectionLost ran)
SHED_CODE = 1013
SHED_REASON = "the relay is short of memory"


@dataclass(frozen=True)
class Verdict:
    refuse: bool   # new handshakes get 503
    shed: tuple    # the items (sessions) to close now, largest first


class Overload:
    """The decision, from numbers only: fed a sample, it says what to do."""

    def __init__(self):
        self.refusing = False

    def assess(self, limit, rss, held):
        """
        `limit`: max_memory in bytes (0: off); `rss`: the resident size now;
        `held`: (item, unsent bytes) of the live sessions.
        """
        if not limit:
            self.refusing = False
            return Verdict(False, ())
        if rss >= limit:
            self.refusing = True
        elif rss < limit * LOW_WATER:
            self.refusing = False
        # while refusing, down to the low water mark: under the limit but above it, nothing else would move
        shed = pick_largest(held, rss - limit * LOW_WATER) if self.refusing else ()
        return Verdict(self.refusing, shed)


def pick_largest(held, need):
    """The items holding the most, largest first, until they hold `need` bytes (none under MIN_SHED)."""
    chosen, freed = [], 0
    for item, size in sorted(held, key=lambda pair: pair[1], reverse=True):
        if freed >= need or size < MIN_SHED:
            break
        chosen.append(item)
        freed += size
    return tuple(chosen)


def held_by(session):
    """Unsent bytes of both legs of a session."""
    return sum(unsent(leg.transport) for leg in (session.client, session.origin)
               if leg is not None and not leg.lost)


def resident_bytes(statm="/proc/self/statm"):
    """This process's resident set size (Linux)."""
    with open(statm) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release_free_memory():
    """
    Hand the closed sessions' memory back to the system (Envoy's shrink-heap
    action): whatever is left in reference cycles is collected, and glibc's
    freed heap pages are unmapped (wsrelay/edge/trim.py, shared with the
    relay's trims after mass closes). Only after closes, never on a timer.
    """
    collect_and_trim()


class OverloadGuard(service.Service):
    """
    Samples the resident size while max_memory is set (configure() after a
    reload turns it on or off), refuses handshakes while Overload says so,
    closes the sessions it picks and gives their memory back to the system.
    """

    def __init__(self, relay, clock, read_rss=resident_bytes, release=release_free_memory,
                 interval=SAMPLE_INTERVAL):
        self.relay = relay
        self.clock = clock
        self.read_rss = read_rss
        self.release = release
        self.interval = interval
        self.state = Overload()
        self._loop = None

    @property
    def refusing(self):
        return self.state.refusing

    def startService(self):
        super().startService()
        self.configure()

    def stopService(self):
        self._stop()
        return super().stopService()

    def configure(self):
        """Sample while max_memory is set (or handshakes are still refused); nothing at all otherwise."""
        wanted = self.running and bool(self.relay.config.max_memory or self.state.refusing)
        if wanted and self._loop is None:
            self._loop = LoopingCall(self.sample)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=True)
        elif not wanted:
            self._stop()

    def _stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def sample(self):
        limit = self.relay.config.max_memory
        was = self.state.refusing
        if was:  # what the sessions closed since (shed or ended) freed goes back before judging again
            self.release()
        rss = self.read_rss()
        live = [s for s in self.relay.sessions if s.status == 101 and not s.ended]
        verdict = self.state.assess(limit, rss, ((s, held_by(s)) for s in live))
        if verdict.refuse and not was:
            log.warn("memory {rss_mib:.0f} MiB is over max_memory {limit_mib:.0f} MiB: new handshakes "
                     "get 503 until it is under {low_mib:.0f} MiB", rss=rss, limit=limit,
                     rss_mib=rss / 2**20, limit_mib=limit / 2**20, low_mib=limit * LOW_WATER / 2**20)
        elif was and not verdict.refuse:
            log.info("memory {rss_mib:.0f} MiB is back under max_memory: taking handshakes again",
                     rss=rss, limit=limit, rss_mib=rss / 2**20)
        if verdict.shed:
            freed = sum(held_by(s) for s in verdict.shed)
            for session in verdict.shed:
                session.shed(SHED_CODE, SHED_REASON, lambda leg: unsent(leg.transport) > 0)
            log.warn("memory {rss_mib:.0f} MiB is over max_memory {limit_mib:.0f} MiB: closed the "
                     "{count} sessions holding the most unsent data ({held_kib:.0f} KiB) with 1013",
                     rss=rss, limit=limit, count=len(verdict.shed), held=freed,
                     rss_mib=rss / 2**20, limit_mib=limit / 2**20, held_kib=freed / 1024)
            self.clock.callLater(RELEASE_DELAY, self.release)  # once the dropped connections are gone
        if not limit and not verdict.refuse:
            self._stop()  # max_memory was turned off by a reload
