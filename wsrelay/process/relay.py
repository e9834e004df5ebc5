"""
The running relay's state: the current config and the live sessions, what a leg asks of it
(admission, the origin's endpoint and TLS, the client address), and reload and drain: which
sessions a new config closes and how the closes are spread. The service tree around it (the
listeners, the health checks, statistics and the admin API) is in service.py.
"""

import copy
import random as _random
import resource

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger

from wsrelay.process.drain import Stagger, plan_reload
from wsrelay.edge.http import client_address
from wsrelay.edge.limits import Limits, Refusal
from wsrelay.observability.logsummary import LogGate, OpenSessionLog
from wsrelay.observability.metrics import Metrics
from wsrelay.origins.dial import OriginDial, origin_endpoint, origin_probe
from wsrelay.origins.routing import Routes
from wsrelay.edge.trim import Trimmer
from wsrelay.edge.timers import TimerWheel
from wsrelay.tls import OriginTLS

log = Logger(namespace="wsrelay.service")


HURRY_GRACE = 2.0      # seconds closing handshakes get once the drain is cut short, before the rest is dropped
LISTEN_BACKLOG = 1024  # Twisted's default is 50; an edge needs more


# Options common to both legs. Autobahn's defaults are wide open (see
# docs/wire.md): every limit is set here, and the timers the relay runs on its
# own injected clock are turned off in Autobahn.
_COMMON = dict(
    utf8validateIncoming=True, applyMask=True, maxFramePayloadSize=0, autoFragmentSize=0,
    failByDrop=False, echoCloseCodeReason=True, openHandshakeTimeout=0, closeHandshakeTimeout=0,
    tcpNoDelay=True, autoPingInterval=0, autoPingTimeout=0,
)


def open_files_limit():
    """The process's soft limit on open files (what max_connections = auto is derived from)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Relay:
    """
    The relay's state: the config new connections get, the sessions alive now,
    and what happens to them when the config is replaced (reload) or the
    relay stops (drain). `random` (floats in [0, 1)) jitters the closes.
    """

    def __init__(self, config, reactor, random=None, files_limit=None):
        self.config = config
        self.reactor = reactor
        self.random = random if random is not None else _random.Random().random
        self.files_limit = files_limit if files_limit is not None else open_files_limit
        self.sessions = set()
        self.h2_connections = set()  # wsrelay.edge.h2edge.H2Edge: HTTP/2 client connections open now
        self.worker = None  # this process's pid when it is one worker of several (in the session log)
        self.routes = Routes(config, reactor)  # per-domain selectors and origin health
        self.limits = Limits(config, self.files_limit())
        # memory back to the system as sessions close in bulk (wsrelay/edge/trim.py)
        self.trimmer = Trimmer(reactor, live=lambda: len(self.sessions))
        self.wheel = TimerWheel(reactor)  # heartbeats and idle clocks of every session (wsrelay/timers.py)
        self.draining = False
        self._staggers = set()     # closes spread over drain_window, still running
        self._drained = None       # (sessions still to end, Deferred) during a drain
        self._hurry_timer = None
        template = WebSocketClientFactory(url="ws://origin.invalid/", reactor=reactor)
        template.setProtocolOptions(
            version=13, maskClientFrames=True, acceptMaskedServerFrames=False,
            serverConnectionDropTimeout=0, perMessageCompressionOffers=[], **_COMMON)
        template.useragent = None
        self._origin_template = template
        self._origin_factories = {}
        self._origin_tls = {}  # domain name -> OriginTLS, built at its first https dial
        self._http_pools = {}  # (domain, scheme, server name) -> httporigin.OriginPool
        self.http_connections = {}  # httpproxy.ClientConnection -> its ProxyChannel, while open
        self.requests = set()  # plain HTTP requests in flight (httpproxy.ProxyRequest)
        self.accounting = None  # wsrelay.accounting.service.Accounting, when statistics are kept
        self.overload = None    # the OverloadGuard (max_memory), set by RelayService
        self.log_gate = LogGate(reactor, config.log_refusals_per_ip, config.log_summary_interval)
        self.open_log = OpenSessionLog(self)  # log_interval records
        self.metrics = Metrics(self)  # /metrics on the admin endpoint

    # -- called by the protocols ----------------------------------------------

    def session_started(self, session):
        self.sessions.add(session)

    def session_opened(self, session):
        """Both handshakes are done (101): the session is metered from now."""
        self.metrics.opened(session)
        if self.accounting is not None:
            self.accounting.session_opened(session)

    def session_ended(self, session):
        self.sessions.discard(session)
        self.metrics.ended(session)
        self.trimmer.session_ended()
        if self.accounting is not None:
            self.accounting.session_ended(session)
        if self._drained is not None:
            self._drained[0].discard(session)
            self._check_drained()

    def _check_drained(self):
        waiting, done = self._drained
        if not waiting and not self.requests and not done.called:
            self._drain_over()

    def admit(self, session, domain):
        """The limits' Ticket for a handshake about to dial an origin, or a limits.Refusal."""
        if self.overload is not None and self.overload.refusing:
            admitted = Refusal(503, "the relay is short of memory", 5)
        else:
            admitted = self.limits.admit(session.client_ip, domain, self.reactor.seconds())
        if isinstance(admitted, Refusal):
            self.metrics.refused(admitted)
        return admitted

    def scheme_of(self, transport):
        secure = ISSLTransport.providedBy(transport) or getattr(transport, "is_http2_stream", False)
        return "https" if secure else "http"

    def client_address(self, peer, forwarded_for):
        return client_address(peer, forwarded_for, self.config.is_trusted_proxy)

    def origin_factory(self, protocols):
        """
        The client factory an OriginLeg reads its options from. Autobahn checks the
        origin's subprotocol against factory.protocols, so there is one per list of
        offered subprotocols; clients offer few distinct lists, so they are shared
        instead of copied per session (a copy costs kilobytes per idle session).
        """
        key = tuple(protocols)
        factory = self._origin_factories.get(key)
        if factory is None:
            if len(self._origin_factories) >= 256:  # a client inventing lists cannot grow this
                self._origin_factories.clear()
            factory = copy.copy(self._origin_template)
            factory.protocols = list(key)
            self._origin_factories[key] = factory
        return factory

    def origin_tls(self, domain):
        """The domain's OriginTLS (trust, verification), one per domain."""
        tls = self._origin_tls.get(domain.name)
        if tls is None:
            tls = self._origin_tls[domain.name] = OriginTLS.for_domain(domain)
        return tls

    def origin_endpoint(self, origin, scheme, timeout, domain, server_name=None):
        tls = self.origin_tls(domain) if scheme == "https" else None
        return origin_endpoint(self.reactor, origin, scheme, timeout, sni=server_name, tls=tls)

    def health_probe(self, reactor, domain):
        """The active checks' probe for a domain, with its origin TLS settings."""
        tls = self.origin_tls(domain) if domain.origin_protocol == "https" else None
        return origin_probe(reactor, domain, tls)

    def connect_origin(self, session, request):
        return OriginDial(self, session, request).start()

    # -- plain HTTP (wsrelay.edge.httpproxy) ------------------------------------------------

    def admit_request(self, address, domain):
        """The limits' Ticket for a plain HTTP request, or a limits.Refusal."""
        return self.limits.admit_request(address, domain, self.reactor.seconds())

    def http_pool(self, domain, scheme, server_name):
        """The origin connection pool of a domain for a scheme and TLS name (made at first use)."""
        key = (domain.name, scheme, server_name if scheme == "https" else None)
        pool = self._http_pools.get(key)
        if pool is None:
            from wsrelay.origins.httporigin import OriginPool

            if len(self._http_pools) >= 1024:  # names invented by clients (wildcards) cannot grow this
                self._close_pools()
            pool = self._http_pools[key] = OriginPool(self, domain, scheme, server_name,
                                                      self.config.origin_keepalive)
        return pool

    def _close_pools(self):
        pools, self._http_pools = self._http_pools, {}
        for pool in pools.values():
            pool.close()

    def http_connection_opened(self, connection, channel):
        self.http_connections[connection] = channel

    def http_connection_closed(self, connection):
        """A client connection stops carrying HTTP requests (closed, or upgraded): its bytes no request took are metered."""
        if self.http_connections.pop(connection, None) is None:
            return
        received, sent = connection.cut()
        if (received or sent) and self.accounting is not None:
            self.accounting.http_leftover(connection, received, sent)
        if self._drained is not None:
            self._check_drained()

    def request_started(self, request):
        self.requests.add(request)
        if self.accounting is not None:
            self.accounting.request_started(request)

    def request_ended(self, request):
        """One access log line and the meter, once per request."""
        self.requests.discard(request)
        request.take_client_bytes()
        if self.accounting is not None:
            self.accounting.request_ended(request)
        request.log_access()
        if self._drained is not None:
            self._check_drained()

    # -- reload ----------------------------------------------------------------

    def reload(self, config):
        """
        Make `config` the one new handshakes get, at once. Sessions whose route
        it leaves alone keep running untouched; the others are closed with 1012
        spread over its drain_window. Returns the drain.ReloadPlan.
        """
        plan = plan_reload([s for s in self.sessions if not s.ended], config)
        routes = Routes(config, self.reactor, previous=self.routes)
        self.routes.retire(routes)
        self.config, self.routes = config, routes
        self._origin_tls = {}
        self._close_pools()  # origins, TLS and keep-alive settings may have changed
        self.limits.configure(config, self.files_limit())
        self.log_gate.configure(config.log_refusals_per_ip, config.log_summary_interval)
        self.open_log.schedule()
        if plan.close:
            self._stagger(plan.close, config.drain_window, lambda session: session.restart())
        log.info("configuration {path} reloaded: {kept} sessions kept, {closing} closed with 1012 "
                 "over {window:g}s", path=config.path, kept=len(plan.keep), closing=len(plan.close),
                 window=config.drain_window)
        return plan

    def _stagger(self, sessions, window, close):
        def fire(session):
            if not stagger.waiting:
                self._staggers.discard(stagger)
            close(session)

        stagger = Stagger(self.reactor, sessions, window, self.random, fire)
        if stagger.waiting:
            self._staggers.add(stagger)
        return stagger

    # -- drain (SIGTERM) ---------------------------------------------------------

    def drain(self):
        """
        Stop taking sessions (new handshakes get 503 with Retry-After), close
        the live ones with 1001 spread over drain_window, and all that are left
        at once after drain_timeout (or on hurry()). A Deferred fires once
        every session that was relaying or dialling is gone.
        """
        if self._drained is not None:
            return self._drained[1]
        self.draining = True
        for connection in list(self.h2_connections):  # GOAWAY: no new streams, close once idle
            connection.drain()
        for stagger in list(self._staggers):  # a reload's 1012 closes become 1001 closes
            stagger.cancel()
        self._staggers.clear()
        done = defer.Deferred()
        waiting = {s for s in self.sessions if not s.ended and (s.status == 101 or s.pending is not None)}
        self._drained = (waiting, done)
        self._hurry_timer = self.reactor.callLater(self.config.drain_timeout, self.hurry, "drain_timeout")
        live = [s for s in waiting if s.status == 101]
        log.info("draining: {count} sessions to close over {window:g}s (at most {timeout:g}s)",
                 count=len(live), window=self.config.drain_window, timeout=self.config.drain_timeout)
        for session in [s for s in waiting if s.status != 101]:
            session.shutdown()  # still dialling: 503 at once
        for channel in list(self.http_connections.values()):
            channel.persistent = False  # the response in flight is the connection's last
            if not channel.requests:
                channel.loseConnection()  # idle keep-alive connections go now
        self._stagger([s for s in live if not s.ended], self.config.drain_window,
                      lambda session: session.shutdown())
        self._check_drained()
        return done

    def hurry(self, why="second SIGTERM"):
        """Close every session left at once (1001); drop whatever is still there HURRY_GRACE later."""
        if self._hurry_timer is not None and self._hurry_timer.active():
            self._hurry_timer.cancel()
        self._hurry_timer = None
        left = [s for s in self.sessions if not s.ended]
        log.info("{why}: closing the {count} sessions left at once", why=why, count=len(left))
        for stagger in list(self._staggers):
            stagger.cancel()
        self._staggers.clear()
        self.close_all()

    def _drain_over(self):
        waiting, done = self._drained
        for stagger in list(self._staggers):
            stagger.cancel()
        self._staggers.clear()
        if self._hurry_timer is not None and self._hurry_timer.active():
            self._hurry_timer.cancel()
        self._hurry_timer = None
        if not done.called:
            done.callback(None)

    def close_all(self, grace=HURRY_GRACE):
        """1001 on every leg at once; a Deferred that fires once all are gone or after `grace`."""
        for session in list(self.sessions):
            session.shutdown()
        if not self.sessions:
            return defer.succeed(None)
        done = defer.Deferred()
        deadline = self.reactor.seconds() + grace

        def check():
            if not self.sessions:
                done.callback(None)
            elif self.reactor.seconds() >= deadline:
                self.abort_all()
                done.callback(None)
            else:
                self.reactor.callLater(0.05, check)

        check()
        return done

    def abort_all(self):
        """Drop every connection left, without a closing handshake."""
        for connection in list(self.http_connections):
            connection.transport.abortConnection()
        for connection in list(self.h2_connections):
            connection.transport.abortConnection()
        for session in list(self.sessions):
            for leg in (session.client, session.origin):
                if leg is not None:
                    leg.abort()
