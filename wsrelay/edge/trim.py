"""
Giving memory back after many sessions have ended.

CPython hands objects over 512 bytes (every protocol's attribute dict, every
socket buffer copy) to glibc's malloc, which keeps freed chunks in its heap:
after a reconnect storm the relay would stay at its peak RSS for good. Once
`threshold` sessions have ended since the last trim, malloc_trim(0) runs
`delay` seconds later (one call for a whole burst of closes), returning the
free pages to the kernel. Where there is no glibc it does nothing.
"""

import ctypes
import ctypes.util


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


class Trimmer:
    """Counts ended sessions on an injected clock and trims the heap after each `threshold` of them."""

    __slots__ = ("_clock", "_threshold", "_delay", "_trim", "_ended", "_call", "trims")

    def __init__(self, clock, threshold=500, delay=2.0, trim=None):
        self._clock = clock
        self._threshold = threshold
        self._delay = delay
        self._trim = trim if trim is not None else glibc_malloc_trim()
        self._ended = 0
        self._call = None
        self.trims = 0

    def session_ended(self):
        self._ended += 1
        if self._ended >= self._threshold and self._call is None and self._trim is not None:
            self._call = self._clock.callLater(self._delay, self._run)

    def _run(self):
        self._call = None
        self._ended = 0
        self.trims += 1
        self._trim(0)

    def stop(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
