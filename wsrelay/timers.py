"""
The two clocks a session runs on, driven by an injected IReactorTime.

Heartbeat pings one leg and declares it dead when no pong comes back in time;
IdleTimer closes a session when no data message passed either way. Neither
costs anything per message beyond one clock read.
"""

import struct

_seq = struct.Struct("!Q").pack


class Heartbeat:
    """Pings a leg every `interval` seconds; calls `on_dead(*args)` when a pong is late."""

    __slots__ = ("_clock", "_interval", "_timeout", "_send_ping", "_on_dead", "_args",
                 "_next", "_deadline", "_sent")

    def __init__(self, clock, interval, timeout, send_ping, on_dead, *args):
        self._clock = clock
        self._interval = interval
        self._timeout = timeout
        self._send_ping = send_ping
        self._on_dead = on_dead
        self._args = args
        self._next = None
        self._deadline = None
        self._sent = 0

    def start(self):
        if self._interval > 0:
            self._next = self._clock.callLater(self._interval, self._ping)

    def _ping(self):
        self._sent += 1
        self._next = self._clock.callLater(self._interval, self._ping)
        if self._deadline is None and self._timeout > 0:
            self._deadline = self._clock.callLater(self._timeout, self._dead)
        self._send_ping(_seq(self._sent))

    def pong(self):
        """Any pong proves the peer is alive and reading."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _dead(self):
        self._deadline = None
        self.stop()
        self._on_dead(*self._args)

    def stop(self):
        for call in (self._next, self._deadline):
            if call is not None and call.active():
                call.cancel()
        self._next = self._deadline = None


class IdleTimer:
    """Calls `on_idle` once no data message was seen for `timeout` seconds."""

    __slots__ = ("_clock", "_timeout", "_on_idle", "_call", "last")

    def __init__(self, clock, timeout, on_idle):
        self._clock = clock
        self._timeout = timeout
        self._on_idle = on_idle
        self._call = None
        self.last = clock.seconds()

    def start(self):
        if self._timeout > 0:
            self.last = self._clock.seconds()
            self._call = self._clock.callLater(self._timeout, self._check)

    def touch(self):
        self.last = self._clock.seconds()

    def _check(self):
        quiet_until = self.last + self._timeout
        now = self._clock.seconds()
        if now >= quiet_until:
            self._call = None
            self._on_idle()
        else:
            self._call = self._clock.callLater(quiet_until - now, self._check)

    def stop(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
