"""
The two clocks a session runs on, driven by an injected IReactorTime.

Heartbeat pings one leg and declares it dead when no pong comes back in time;
IdleTimer closes a session when no data message passed either way. Neither
costs anything per message beyond one clock read.
"""

import struct

_seq = struct.Struct("!Q").pack


class Heartbeat:
    """
    Pings every leg of a session each `interval` seconds with one timer, and
    calls `on_dead(index, *args)` for a leg whose pong is more than `timeout`
    late, counted from its first unanswered ping.
    """

    __slots__ = ("_clock", "_interval", "_timeout", "_send", "_on_dead", "_args",
                 "_next", "_deadline", "_sent", "_waiting", "rtt", "on_rtt")

    def __init__(self, clock, interval, timeout, send_pings, on_dead, *args):
        self._clock = clock
        self._interval = interval
        self._timeout = timeout
        self._send = tuple(send_pings)
        self._on_dead = on_dead
        self._args = args
        self._next = None
        self._deadline = None
        self._sent = 0
        self._waiting = [None] * len(self._send)  # time of each leg's first unanswered ping
        self.rtt = [None] * len(self._send)  # each leg's last ping round trip, seconds
        self.on_rtt = None  # called (index, seconds) at each answered ping (the metrics' histogram)

    def start(self):
        if self._interval > 0:
            self._next = self._clock.callLater(self._interval, self._ping)

    def _ping(self):
        self._sent += 1
        now = self._clock.seconds()
        self._next = self._clock.callLater(self._interval, self._ping)
        waiting = self._waiting
        for index in range(len(waiting)):
            if waiting[index] is None:
                waiting[index] = now
        if self._deadline is None and self._timeout > 0:
            self._deadline = self._clock.callLater(self._timeout, self._check)
        payload = _seq(self._sent)
        for send in self._send:
            send(payload)

    def pong(self, index=0):
        """Any pong proves that leg's peer is alive and reading (and times its last ping)."""
        since = self._waiting[index]
        if since is not None:
            rtt = self.rtt[index] = self._clock.seconds() - since
            if self.on_rtt is not None:
                self.on_rtt(index, rtt)
        self._waiting[index] = None
        if self._deadline is not None and all(since is None for since in self._waiting):
            self._deadline.cancel()
            self._deadline = None

    def _check(self):
        self._deadline = None
        now = self._clock.seconds()
        pending = [since for since in self._waiting if since is not None]
        for index, since in enumerate(self._waiting):
            if since is not None and now - since >= self._timeout:
                self.stop()
                self._on_dead(index, *self._args)
                return
        if pending:
            self._deadline = self._clock.callLater(min(pending) + self._timeout - now, self._check)

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
