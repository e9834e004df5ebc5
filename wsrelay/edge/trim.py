"""
Giving memory back after many sessions have ended.

A session's objects form reference cycles (each leg and its transport, the
legs and their session), so CPython frees them only in a full garbage
collection, which an idle relay may not run for hours; and what CPython frees
in objects over 512 bytes (every protocol's attribute dict) stays in glibc's
heap. After a reconnect storm the relay would stay at its peak RSS for good.
So once `threshold` sessions have ended, one full collection and one
malloc_trim(0) run when the closes pause for `delay` seconds (at most
`max_wait` after the threshold was crossed): one pause per burst, not per
close. Without glibc only the collection runs.
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
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def collect_and_trim():
    gc.collect()
    trim = glibc_malloc_trim()
    if trim is not None:
        trim(0)


class Trimmer:
    """Counts ended sessions on an injected clock and reclaims memory once per burst of `threshold` or more."""

    __slots__ = ("_clock", "_threshold", "_delay", "_max_wait", "_reclaim", "_ended", "_call", "_deadline",
                 "reclaims")

    def __init__(self, clock, threshold=500, delay=2.0, max_wait=10.0, reclaim=collect_and_trim):
        self._clock = clock
        self._threshold = threshold
        self._delay = delay
        self._max_wait = max_wait
        self._reclaim = reclaim
        self._ended = 0
        self._call = None
        self._deadline = None
        self.reclaims = 0

    def session_ended(self):
        self._ended += 1
        if self._ended < self._threshold:
            return
        now = self._clock.seconds()
        if self._call is None:
            self._deadline = now + self._max_wait
            self._call = self._clock.callLater(self._delay, self._run)
        else:  # still closing: wait for the pause, but not past the deadline
            self._call.reset(max(0.0, min(self._delay, self._deadline - now)))

    def _run(self):
        self._call = self._deadline = None
        self._ended = 0
        self.reclaims += 1
        self._reclaim()

    def stop(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = self._deadline = None
