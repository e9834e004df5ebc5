"""
Origin choice for every domain: the selector the config names, the health of
the domain's origins, and the timers and log lines around them.

One DomainRoute per domain, all held by one Routes object that the Relay
owns, keyed by domain name: a new config builds a new Routes, and sessions
keep reporting to the route that opened them.
"""

from twisted.application.service import MultiService
from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

from wsrelay.origins.health import EJECTED, HealthBoard, HealthChecks, origin_probe

log = Logger(namespace="wsrelay.health")


class NoOrigin(Exception):
    """No origin can take the handshake (503); `retry_after` is the hint in seconds."""

    def __init__(self, reason, retry_after):
        super().__init__(reason)
        self.retry_after = retry_after


class DomainRoute:
    """One domain's selector and origin health; everything the dial and the session call."""

    def __init__(self, domain, selector, reactor):
        self.domain = domain
        self.name = domain.name
        self.origins = domain.origins
        self.selector = selector
        self.reactor = reactor
        self.board = HealthBoard(domain.origins, domain.health)
        self._configured = frozenset(domain.origins)
        self._cooldowns = {}
        self._all_out = False
        self._panic = False

    # -- the handshake ----------------------------------------------------------

    def choose(self, handshake):
        """A Deferred firing with the origins to try (the first, then one for the retry); NoOrigin: 503."""
        available = self.board.candidates
        if not available:
            return defer.fail(NoOrigin("no origin of this domain is in rotation",
                                       self.board.retry_after(self.reactor.seconds())))
        return defer.maybeDeferred(self.selector.choose, handshake, available).addCallbacks(
            self._chosen, self._selector_failed)

    def _chosen(self, origins):
        # Only configured origins are ever dialled, whatever a selector returns.
        chosen = [origin for origin in origins if origin in self._configured][:2]
        if not chosen:
            log.error("selector {selector} of {domain} chose no configured origin: {origins!r}",
                      selector=self.domain.selector, domain=self.name, origins=origins)
            raise NoOrigin("the selector chose no origin", 1)
        return chosen

    def _selector_failed(self, failure):
        if failure.check(defer.CancelledError):
            return failure
        log.failure("selector {selector} of {domain} failed", failure,
                    selector=self.domain.selector, domain=self.name)
        raise NoOrigin("the selector failed", 1)

    # -- what became of each dial ------------------------------------------------

    def opened(self, origin):
        self._tell("connection_opened", origin)
        self._note(self.board.connect_succeeded(origin))

    def closed(self, origin):
        self._tell("connection_closed", origin)

    def failed(self, origin, reason):
        """The origin failed the dial (refused, reset, closed, answered wrongly, too slow): it counts."""
        self._tell("connection_failed", origin, reason)
        change = self._note(self.board.connect_failed(origin, self.reactor.seconds(), reason))
        if change is not None and change.state == EJECTED:
            self._cancel_cooldown(origin)
            self._cooldowns[origin] = self.reactor.callLater(
                self.domain.health.eject_for, self._cooldown_over, origin)

    def failed_here(self, origin, reason):
        """
        The dial failed for the relay's own reason (its event loop too late to
        judge a timeout, its descriptors or ports exhausted): the selector hears
        of it, the origin's health does not.
        """
        self._tell("connection_failed", origin, reason)

    def _tell(self, method, *args):
        try:
            getattr(self.selector, method)(*args)
        except Exception:
            log.failure("selector {selector} of {domain}: {method} failed",
                        selector=self.domain.selector, domain=self.name, method=method)

    # -- health ------------------------------------------------------------------

    def check_passed(self, origin):
        change = self._note(self.board.check_passed(origin))
        if change is not None:
            self._cancel_cooldown(origin)

    def check_failed(self, origin, reason):
        self._note(self.board.check_failed(origin, reason))

    def _cooldown_over(self, origin):
        self._cooldowns.pop(origin, None)
        self._note(self.board.cooldown_over(origin, self.reactor.seconds()))

    def _cancel_cooldown(self, origin):
        timer = self._cooldowns.pop(origin, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _note(self, change):
        """Log a state change (once: the board reports each change once)."""
        if change is None:
            return None
        emit = log.warn if change.state in ("ejected", "down") else log.info
        emit("origin {origin} of {domain} {state}: {reason}", origin=str(change.origin),
             domain=self.name, state=change.state, reason=change.reason)
        board = self.board
        panic = board.panic
        all_out = not board.candidates  # nothing to dial: handshakes get 503
        if panic != self._panic:
            self._panic = panic
            if panic:
                log.warn("{domain}: {out} of {total} origins out of rotation, under panic_threshold "
                          "{threshold}%: balancing over all of them", domain=self.name,
                          out=len(board.origins) - len(board.available), total=len(board.origins),
                          threshold=self.domain.health.panic_threshold)
            else:
                log.info("{domain}: enough origins in rotation again (panic_threshold {threshold}%): "
                         "balancing over those", domain=self.name, threshold=self.domain.health.panic_threshold)
        if all_out != self._all_out:
            self._all_out = all_out
            if all_out:
                log.error("every origin of {domain} is out of rotation: handshakes get 503", domain=self.name)
            else:
                log.info("{domain} has an origin in rotation again", domain=self.name)
        return change

    def stop(self):
        for origin in list(self._cooldowns):
            self._cancel_cooldown(origin)


def _choice_key(domain):
    """Everything that decides how a domain's origins are chosen and judged."""
    origins = tuple((o.host, o.port, o.weight) for o in domain.origins)
    return (origins, domain.origin_protocol, domain.origin_host, domain.selector,
            domain.selector_options, domain.health)


class Routes:
    """
    Every domain's DomainRoute, keyed by domain name, built from one config.
    With `previous` (the Routes of the config before a reload), a domain whose
    origins, selector and health settings are the same keeps its DomainRoute:
    its selector state and its origins' health carry over.
    """

    def __init__(self, config, reactor, previous=None):
        self.reactor = reactor
        self._routes = {}
        self.reused = set()
        for domain in config.each_domain():
            if not (domain.websocket or domain.http):
                continue
            old = previous._routes.get(domain.name) if previous is not None else None
            if old is not None and _choice_key(old.domain) == _choice_key(domain):
                self._routes[domain.name] = old
                self.reused.add(domain.name)
                continue
            selector = config.selectors[domain.selector].build(domain, reactor)
            self._routes[domain.name] = DomainRoute(domain, selector, reactor)

    def retire(self, replacement):
        """This config is replaced: stop the timers of the routes `replacement` did not take over."""
        for name, route in self._routes.items():
            if replacement._routes.get(name) is not route:
                route.stop()

    def __getitem__(self, name):
        return self._routes[name]

    def __iter__(self):
        return iter(self._routes.values())

    def health_service(self, probe_for=origin_probe):
        """A service running the active checks of every domain that has them, on the relay's clock."""
        top = MultiService()
        for route in self:
            health = route.domain.health
            if health.interval > 0:
                checks = HealthChecks(route, probe_for(self.reactor, route.domain))
                timer = _ChecksService(health.interval, checks)
                timer.clock = self.reactor
                timer.setServiceParent(top)
        return top

    def stop(self):
        for route in self:
            route.stop()


class _ChecksService(TimerService):
    """A TimerService running one domain's checks; stopping it drops the probes in flight."""

    def __init__(self, interval, checks):
        super().__init__(interval, checks.run)
        self.checks = checks

    def stopService(self):
        self.checks.stop()
        return super().stopService()
