"""
Which sessions a new config leaves alone, and closing many sessions spread
over a window instead of in one burst (reload with 1012, SIGTERM with 1001).
(max_session_duration spreads its closes too: timers.lifetime.)

Pure functions plus one small scheduler driven by an injected clock and an
injected random source, so tests decide both.
"""

from dataclasses import dataclass


def route_key(domain):
    """What a live session depends on: its section, its origins (as addresses) and the protocol to them."""
    if domain is None or not domain.websocket:
        return None
    return domain.name, frozenset(domain.origins), domain.origin_protocol


def keeps_route(session_domain, host, new_config):
    """
    Whether a live session served by `session_domain` for Host `host` may keep
    running under `new_config`: its Host still selects the same section, and
    that section is still on with the same origin list and protocol. Weights,
    selector, health, timers and limits may change: they apply to new sessions.
    """
    if session_domain is None:
        return True  # no request read yet: it reads the new config when it does
    return route_key(new_config.domain_for(host)) == route_key(session_domain)


@dataclass(frozen=True)
class ReloadPlan:
    keep: tuple   # sessions that run on untouched
    close: tuple  # sessions whose route changed or went away


def plan_reload(sessions, new_config):
    """Split the live sessions into those that keep running and those that must go."""
    keep, close = [], []
    for session in sessions:
        (keep if keeps_route(session.domain, session.host, new_config) else close).append(session)
    return ReloadPlan(tuple(keep), tuple(close))


def spread(count, window, random):
    """
    `count` delays in [0, window): one in each of `count` equal slots, at a
    random point in its slot (stratified jitter), so closes are both even
    over the window and not on a grid. `random()` returns a float in [0, 1).
    """
    if count <= 0:
        return []
    if window <= 0:
        return [0.0] * count
    slot = window / count
    return [(i + random()) * slot for i in range(count)]


class Stagger:
    """
    Calls `close(item)` for each item at its delay from spread(); `hurry()`
    closes the ones still waiting at once, `cancel()` forgets them.
    """

    def __init__(self, clock, items, window, random, close):
        self._close = close
        self._calls = {}
        order = list(items)
        # the slots go to the items in a random order, not in the order they came
        order.sort(key=lambda _: random())
        for item, delay in zip(order, spread(len(order), window, random)):
            self._calls[item] = clock.callLater(delay, self._fire, item)

    def _fire(self, item):
        self._calls.pop(item, None)
        self._close(item)

    @property
    def waiting(self):
        return len(self._calls)

    def hurry(self):
        calls, self._calls = self._calls, {}
        for item, call in calls.items():
            if call.active():
                call.cancel()
            self._close(item)

    def cancel(self):
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if call.active():
                call.cancel()
