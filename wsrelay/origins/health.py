"""
Which of a domain's origins are in rotation.

HealthBoard is the state machine, a plain class fed with events and `now`:
passive (failures in a row that the origin caused eject it for a cool-down,
then it is tried again) and active (failed checks in a row take it out, passed
checks in a row put it back); and the panic threshold (Envoy's): when fewer
than `panic_threshold` percent of the origins are in rotation, the health
verdicts are doubted and the selector balances over all of them. Each method returns the Change it caused, or None, so the
caller logs a state once per change, never once per request.

HealthChecks and `probe` are the active checks' shell: a real WebSocket
handshake (or an HTTP GET expecting 2xx) to each origin, on the relay's clock.
"""

import math
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol

from wsrelay.origins.endpoint import origin_endpoint
from wsrelay.edge.frames import frame_header, new_mask
from wsrelay.edge.http import accept_for, new_key, status_of

EJECTED, RETRYING, DOWN, UP = "ejected", "retrying", "down", "up"
MAX_HEAD = 16384


@dataclass(frozen=True)
class Change:
    """An origin entered `state` (ejected, retrying, down or up) for `reason`."""

    origin: object
    state: str
    reason: str


class _State:
    __slots__ = ("failures", "ejected_until", "probation", "down", "fails", "passes")

    def __init__(self):
        self.failures = 0            # failed connects in a row
        self.ejected_until = None    # passive: out of rotation until then
        self.probation = False       # back after a cool-down: one failure ejects again
        self.down = False            # active: out until `rise` checks pass
        self.fails = 0               # failed checks in a row
        self.passes = 0              # passed checks in a row (since the last ejection)

    @property
    def in_rotation(self):
        return self.ejected_until is None and not self.down


class HealthBoard:
    """
    One domain's origins and whether each is in rotation (`available`), and
    what the selector chooses from (`candidates`: the available ones, or all
    of them in `panic`); recomputed only on a change.
    """

    def __init__(self, origins, config):
        self.origins = tuple(origins)
        self.config = config
        self._state = {origin: _State() for origin in self.origins}
        self.available = self.candidates = self.origins
        self.panic = False

    def _changed(self):
        self.available = tuple(o for o in self.origins if self._state[o].in_rotation)
        threshold = self.config.panic_threshold
        self.panic = len(self.available) * 100 < threshold * len(self.origins)
        self.candidates = self.origins if self.panic else self.available

    def state_of(self, origin):
        s = self._state[origin]
        if s.down:
            return DOWN
        if s.ejected_until is not None:
            return EJECTED
        return RETRYING if s.probation else UP

    # -- passive: what the relay's own dials saw --------------------------------

    def connect_failed(self, origin, now, reason):
        s = self._state.get(origin)
        limit = self.config.eject_after
        if s is None or not limit or not s.in_rotation:
            return None
        s.failures += 1
        if s.failures < limit:
            return None
        why = "failed again after its cool-down" if s.probation else f"{limit} failed connects in a row"
        s.failures, s.passes, s.probation = 0, 0, False
        s.ejected_until = now + self.config.eject_for
        self._changed()
        return Change(origin, EJECTED, f"{why}; out for {self.config.eject_for:g}s (last: {reason})")

    def connect_succeeded(self, origin):
        s = self._state.get(origin)
        if s is None:
            return None
        s.failures = 0
        if s.probation:
            s.probation = False
            return Change(origin, UP, "a session opened after its cool-down")
        return None

    def cooldown_over(self, origin, now):
        """Called when an ejection's cool-down has run out: the origin is tried again."""
        s = self._state.get(origin)
        if s is None or s.ejected_until is None or now < s.ejected_until:
            return None
        s.ejected_until = None
        s.probation = True
        s.failures = max(self.config.eject_after - 1, 0)
        self._changed()
        if s.down:
            return None  # still out: the active checks decide
        return Change(origin, RETRYING, f"cool-down of {self.config.eject_for:g}s over, trying it again")

    # -- active: what the health checks found -----------------------------------

    def check_failed(self, origin, reason):
        s = self._state.get(origin)
        if s is None:
            return None
        s.passes = 0
        s.fails += 1
        if s.down or s.fails < self.config.fall:
            return None
        s.down = True
        self._changed()
        return Change(origin, DOWN, f"{self.config.fall} health checks failed in a row (last: {reason})")

    def check_passed(self, origin):
        s = self._state.get(origin)
        if s is None:
            return None
        s.fails = 0
        s.passes += 1
        if s.in_rotation or s.passes < self.config.rise:
            return None
        s.down, s.ejected_until, s.probation, s.failures = False, None, False, 0
        self._changed()
        return Change(origin, UP, f"{self.config.rise} health checks passed in a row")

    def retry_after(self, now):
        """Seconds a client should wait when no origin is in rotation (for Retry-After)."""
        waits = []
        for s in self._state.values():
            if s.down:
                waits.append(self.config.interval * self.config.rise)
            elif s.ejected_until is not None:
                waits.append(s.ejected_until - now)
        return max(1, math.ceil(min(waits))) if waits else 1


# -- active checks ------------------------------------------------------------------

class HealthChecks:
    """
    One domain's active checks: `run` (called every health_interval by a
    TimerService) probes each origin whose previous probe has finished, and
    tells `route` each result.
    """

    def __init__(self, route, probe):
        self.route = route
        self._probe = probe          # origin -> Deferred: fires on pass, fails with the reason
        self._running = {}

    def run(self):
        for origin in self.route.origins:
            if origin in self._running:
                continue
            d = self._running[origin] = defer.maybeDeferred(self._probe, origin)
            d.addCallbacks(self._passed, self._failed, callbackArgs=(origin,), errbackArgs=(origin,))

    def stop(self):
        for d in list(self._running.values()):
            d.cancel()

    def _passed(self, _, origin):
        self._running.pop(origin, None)
        self.route.check_passed(origin)

    def _failed(self, failure, origin):
        self._running.pop(origin, None)
        if not failure.check(defer.CancelledError):
            self.route.check_failed(origin, failure.getErrorMessage())


class ProbeFailed(Exception):
    """An active check did not pass; str() says why."""


def check_request(kind, path, host, key):
    """The request a check sends: a WebSocket opening handshake, or a plain GET."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "User-Agent: wsrelay-health-check"]
    if kind == "websocket":
        lines += ["Upgrade: websocket", "Connection: Upgrade",
                  f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
    else:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _close_frame():
    mask = new_mask()
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate((1000).to_bytes(2, "big")))
    return frame_header(0x8, True, 2, 0, mask) + payload


class CheckProtocol(Protocol):
    """Sends the check request and judges the answer's head; `done` fires None (pass) or a reason."""

    def __init__(self, request, accept, done):
        self.request = request
        self.accept = accept         # the expected Sec-WebSocket-Accept; None: an HTTP check
        self.done = done
        self.buffer = b""

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        if self.done is None:
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self.finish("answer head too large")
                self.transport.abortConnection()
            return
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        status = status_of(lines[0])
        problem = None
        if self.accept is None:
            if status is None or not 200 <= status < 300:
                problem = f"answered {status or 'garbage'} to GET"
        elif status != 101:
            problem = f"answered {status or 'garbage'} instead of 101"
        else:
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("sec-websocket-accept") != self.accept:
                problem = "answered 101 with a wrong Sec-WebSocket-Accept"
            else:
                self.transport.write(_close_frame())
        self.finish(problem)
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.finish("connection closed before a complete answer")

    def finish(self, problem):
        done, self.done = self.done, None
        if done is not None:
            done.callback(problem)


class _OneProtocol(Factory):
    noisy = False

    def __init__(self, protocol):
        self.protocol_instance = protocol

    def buildProtocol(self, addr):
        return self.protocol_instance


def probe(reactor, endpoint, kind, path, host, timeout):
    """
    One active check over `endpoint`: a Deferred that fires on a pass and
    fails with ProbeFailed otherwise, within `timeout` seconds. Cancelling it
    drops the connection.
    """
    key = new_key()
    proto = CheckProtocol(check_request(kind, path, host, key),
                          accept_for(key) if kind == "websocket" else None, None)

    def stop():
        if timer.active():
            timer.cancel()
        if proto.transport is not None:
            proto.transport.abortConnection()
        else:
            connecting.cancel()

    def cancel(_):
        proto.done = None
        stop()

    def deadline():
        proto.finish(f"no answer within {timeout:g}s")
        stop()

    def connect_failed(failure):
        if not failure.check(defer.CancelledError):
            proto.finish(f"connect failed: {failure.getErrorMessage()}")

    def judged(problem):
        if timer.active():
            timer.cancel()
        if problem is not None:
            raise ProbeFailed(problem)

    outcome = proto.done = defer.Deferred(canceller=cancel)
    timer = reactor.callLater(timeout, deadline)
    connecting = endpoint.connect(_OneProtocol(proto))
    connecting.addErrback(connect_failed)
    return outcome.addCallback(judged)


def origin_probe(reactor, domain):
    """The probe function (origin -> Deferred) for a domain's configured active checks."""
    health = domain.health
    scheme = "https" if domain.origin_protocol == "https" else "http"

    def check(origin):
        endpoint = origin_endpoint(reactor, origin, scheme, health.timeout, sni=domain.origin_host)
        return probe(reactor, endpoint, health.check, health.path, domain.origin_host or str(origin),
                     health.timeout)

    return check
