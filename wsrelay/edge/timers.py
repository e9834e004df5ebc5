"""
The two clocks a session runs on, driven by an injected IReactorTime.

Heartbeat pings one leg and declares it dead when no pong comes back in time;
IdleTimer closes a session when no data message passed either way. Neither
costs anything per message beyond one clock read.
"""

import heapq
import math
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
        self.rtt = None     # each leg's last ping round trip, seconds (a list from the first pong)
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
            if self.rtt is None:
                self.rtt = [None] * len(self._send)
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


_EPSILON = 1e-6  # of a tick: sums of float seconds (0.4 + 0.2) land on the tick they mean


class _Timer:
    """One wheel entry: a callable until it fires or is cancelled."""

    __slots__ = ("call", "args", "wheel", "slot")

    def __init__(self, call, args, wheel, slot):
        self.call = call
        self.args = args
        self.wheel = wheel
        self.slot = slot

    def active(self):
        return self.call is not None

    def cancel(self):
        if self.call is not None:
            self.call = self.args = None
            self.wheel._cancelled(self)


class TimerWheel:
    """
    One reactor timer for the clocks of every session of a relay (heartbeats,
    idle timeouts), instead of a DelayedCall per session in the reactor's heap.

    It has the part of IReactorTime that Heartbeat and IdleTimer use
    (seconds, callLater returning something with cancel and active). Timers
    fall due on a grid of `tick` seconds: one fires at the first tick at or
    after its time, never early and at most `tick` late; all that fall due on
    one tick run in one reactor call. A cancelled timer costs only its slot
    until that tick.
    """

    __slots__ = ("_clock", "_tick", "_slots", "_due", "_wake", "_wake_at", "_running", "_live", "seconds")

    def __init__(self, clock, tick=0.1):
        self._clock = clock
        self._tick = tick
        self._slots = {}        # tick number -> [_Timer, ...]
        self._due = []          # heap of the tick numbers in _slots
        self._wake = None       # the one DelayedCall, for the earliest tick with timers
        self._wake_at = None
        self._running = False
        self._live = 0          # timers neither fired nor cancelled: at 0 the reactor timer goes too
        self.seconds = clock.seconds

    def callLater(self, delay, call, *args):
        slot = math.ceil((self._clock.seconds() + delay) / self._tick - _EPSILON)  # never early
        timer = _Timer(call, args, self, slot)
        self._live += 1
        timers = self._slots.get(slot)
        if timers is None:
            self._slots[slot] = {timer: None}   # insertion-ordered; a cancel takes its timer out at once
            heapq.heappush(self._due, slot)
            if not self._running and (self._wake_at is None or slot < self._wake_at):
                self._schedule(slot)
        else:
            timers[timer] = None
        return timer

    def pending(self):
        """Timers not yet fired nor cancelled."""
        return self._live

    def _cancelled(self, timer):
        self._live -= 1
        timers = self._slots.get(timer.slot)
        if timers is not None:
            timers.pop(timer, None)
            if not timers and not self._running:
                del self._slots[timer.slot]     # its tick stays in _due and is skipped
        if self._live == 0 and not self._running:
            self._forget()

    def _schedule(self, slot):
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        self._wake_at = slot
        delay = (slot - _EPSILON) * self._tick - self._clock.seconds()
        self._wake = self._clock.callLater(max(0.0, delay), self._run)

    def _run(self):
        self._wake = self._wake_at = None
        self._running = True  # timers set by the callbacks below are scheduled after this run
        slots, due, tick = self._slots, self._due, self._tick
        try:
            while due and due[0] <= math.floor(self._clock.seconds() / tick + _EPSILON):
                for timer in slots.pop(heapq.heappop(due), ()):
                    call = timer.call
                    if call is not None:
                        args = timer.args
                        timer.call = timer.args = None
                        self._live -= 1
                        call(*args)
        finally:
            self._running = False
            if self._live == 0:
                self._forget()
            else:
                while due[0] not in slots:      # ticks whose timers were all cancelled
                    heapq.heappop(due)
                self._schedule(due[0])

    def stop(self):
        """Forget every timer (the relay is gone)."""
        for timers in self._slots.values():
            for timer in timers:
                timer.call = timer.args = None
        self._live = 0
        self._forget()

    def _forget(self):
        """No live timer left: no slots, no reactor timer."""
        self._slots.clear()
        self._due.clear()
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        self._wake = self._wake_at = None


def lifetime(duration, window, random):
    """
    Seconds one session may live under max_session_duration = `duration`
    (None when 0: no limit): a random point in the last `window` seconds of
    it (drain_window, at most half of it). Sessions opened in one burst (a
    deploy, a network blip) so end spread out instead of in one burst again,
    and none outlives `duration` (what an API gateway in front expects).
    """
    if duration <= 0:
        return None
    return duration - random() * min(window, duration / 2)
