"""
Giving memory back after many sessions have ended.

A session frees itself when it ends (Session.release breaks its reference
cycles), but what CPython frees in objects over 512 bytes (and what it frees
in the small-object arenas it can let go) stays in glibc's heap until
malloc_trim(0): after a reconnect storm the relay would stay near its peak
RSS. So, once `threshold` sessions have ended since the last trim and the
live sessions have fallen to half of their peak since then, the heap is
trimmed at once, and again when the last one has gone (one trim per halving: a few per storm, each about a
millisecond; with fewer than `threshold` sessions left, a full collection
first, cheap then, which also empties CPython's free lists). And when the closes of a burst of `threshold` or more pause for
`delay` seconds (at most `max_wait` after the threshold was crossed), one full
garbage collection and one trim run, for whatever else a storm left in cycles.
Without glibc only the collection runs. The OverloadGuard (max_memory) uses
the same collect_and_trim.
"""

import ctypes
import ctypes.util
import gc

_trim = []


def glibc_malloc_trim():
    """libc's malloc_trim, or None (musl, macOS, no libc found); looked up once per process."""
    if not _trim:
        _trim.append(_find_malloc_trim())
    return _trim[0]


def _find_malloc_trim():
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap():
    """Free heap pages back to the system (glibc); nothing elsewhere, where free() does it."""
    trim = glibc_malloc_trim()
    if trim is not None:
        trim(0)


def collect_and_trim():
    """One full collection (objects in reference cycles), then the heap trimmed."""
    gc.collect()
    trim_heap()


class Trimmer:
    """
    Counts ended sessions on an injected clock: trims the heap as soon as the live sessions
    (`live()`) halve after `threshold` or more have ended, and reclaims (collection and trim)
    once per burst of `threshold` or more when its closes pause.
    """

    __slots__ = ("_clock", "_threshold", "_delay", "_max_wait", "_reclaim", "_trim", "_live", "_ended",
                 "_call", "_deadline", "_since_trim", "_peak", "_storm", "_trim_call", "reclaims", "trims")

    def __init__(self, clock, threshold=500, delay=2.0, max_wait=10.0, reclaim=collect_and_trim,
                 trim=trim_heap, live=None):
        self._clock = clock
        self._threshold = threshold
        self._delay = delay
        self._max_wait = max_wait
        self._reclaim = reclaim
        self._trim = trim
        self._live = live
        self._ended = 0          # ended since the last reclaim (the pause rule)
        self._since_trim = 0     # ended since the last trim (the halving rule)
        self._peak = 0           # most sessions alive since the last trim, as seen at each end
        self._storm = False      # a trim ran with sessions still closing: the last close trims again
        self._call = None
        self._deadline = None
        self._trim_call = None
        self.reclaims = 0
        self.trims = 0

    def session_ended(self):
        self._ended += 1
        self._since_trim += 1
        if self._live is not None:
            live = self._live()
            self._peak = max(self._peak, live + 1)
            halved = self._since_trim >= self._threshold and live <= self._peak // 2
            if (halved or (live == 0 and self._storm)) and self._trim_call is None:
                self._trim_call = self._clock.callLater(0, self._run_trim)  # once this close is done
        if self._ended < self._threshold:
            return
        now = self._clock.seconds()
        if self._call is None:
            self._deadline = now + self._max_wait
            self._call = self._clock.callLater(self._delay, self._run)
        else:  # still closing: wait for the pause, but not past the deadline
            self._call.reset(max(0.0, min(self._delay, self._deadline - now)))

    def _run_trim(self):
        self._trim_call = None
        self._since_trim = 0
        self._peak = live = self._live()
        self._storm = live > 0  # the last of a storm's closes gets its trim too
        self.trims += 1
        if live < self._threshold:  # few left: a full collection is cheap now, and empties the free lists
            self._reclaim()
        else:
            self._trim()

    def _run(self):
        self._call = self._deadline = None
        self._ended = 0
        self.reclaims += 1
        self._reclaim()

    def stop(self):
        for call in (self._call, self._trim_call):
            if call is not None and call.active():
                call.cancel()
        self._call = self._deadline = self._trim_call = None
