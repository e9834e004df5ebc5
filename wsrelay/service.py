"""
The relay assembled: one Relay holding the current config and live sessions,
an Autobahn server factory per listener, and the twistd service tree (the
listeners, TLS ones choosing their certificate by SNI, the health checks and
the daily certificate expiry check).
"""

import copy
import random as _random
import resource

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketServerFactory
from twisted.application import service
from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, serverFromString
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from wsrelay.config import ConfigError, load_config, proxy_protocol_of, split_listener
from wsrelay.drain import Stagger, plan_reload
from wsrelay.emfile import quiet_emfile
from wsrelay.h2edge import ALPNFactory
from wsrelay.http import client_address
from wsrelay.limits import Limits, Refusal
from wsrelay.logsummary import LogGate, OpenSessionLog
from wsrelay.metrics import Metrics
from wsrelay.legs import ClientLeg
from wsrelay.proxywrap import ProxyProtocolFactory
from wsrelay.reuseport import ReusePortEndpoint
from wsrelay.origin import OriginDial, origin_endpoint, origin_probe
from wsrelay.overload import OverloadGuard
from wsrelay.routing import Routes
from wsrelay.sdnotify import sd_notify
from wsrelay.trim import Trimmer
from wsrelay.timers import TimerWheel
from wsrelay.tls import (
    EXPIRY_CHECK_INTERVAL, CertificateMap, OriginTLS, ServerTLS, expiring, parse_tls_listener,
)

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
        self.h2_connections = set()  # wsrelay.h2edge.H2Edge: HTTP/2 client connections open now
        self.worker = None  # this process's pid when it is one worker of several (in the session log)
        self.routes = Routes(config, reactor)  # per-domain selectors and origin health
        self.limits = Limits(config, self.files_limit())
        self.trimmer = Trimmer(reactor)  # memory back to the kernel after mass closes (wsrelay/trim.py)
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

    # -- plain HTTP (wsrelay.httpproxy) ------------------------------------------------

    def admit_request(self, address, domain):
        """The limits' Ticket for a plain HTTP request, or a limits.Refusal."""
        return self.limits.admit_request(address, domain, self.reactor.seconds())

    def http_pool(self, domain, scheme, server_name):
        """The origin connection pool of a domain for a scheme and TLS name (made at first use)."""
        key = (domain.name, scheme, server_name if scheme == "https" else None)
        pool = self._http_pools.get(key)
        if pool is None:
            from wsrelay.httporigin import OriginPool

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


class RelayFactory(WebSocketServerFactory):
    """
    Builds a ClientLeg for each accepted connection of one listener; while
    some domain has http = on, a Front that looks at each request head first
    (wsrelay.httpserver).
    """

    protocol = ClientLeg

    def buildProtocol(self, addr):
        if self.relay.config.serves_http:
            from wsrelay.httpserver import Front

            return Front(self, addr)
        return self.build_leg(addr)

    def build_leg(self, addr):
        return super().buildProtocol(addr)

    def __init__(self, relay):
        super().__init__(reactor=relay.reactor)
        self.relay = relay
        self.server = None  # no Server header with a version in it
        self.setProtocolOptions(
            versions=[13], webStatus=False, requireMaskedClientFrames=True, maskServerFrames=False,
            serveFlashSocketPolicy=False, allowedOrigins=["*"], allowNullOrigin=True,
            maxConnections=0, trustXForwardedFor=0, maxMessagePayloadSize=1048576, **_COMMON)


class RelayService(service.MultiService):
    """
    The listeners plus the relay. reload() re-reads the config file (SIGHUP);
    stopService() drains the sessions before the process exits (SIGTERM).
    """

    reuse_port = False  # True in a worker of several: listeners share their ports with SO_REUSEPORT

    def __init__(self, relay, load=load_config, notify=sd_notify, accounting=None):
        super().__init__()
        self.relay = relay
        # Started with the relay but stopped only after the drain, so the last flush sees every session.
        self.accounting = relay.accounting = accounting
        self.load = load
        self.notify = notify  # systemd's sd_notify: READY=1 once every listener is open
        self.factory = RelayFactory(relay)
        self.listeners = {}  # `listen` entry -> its listening port
        self.health = None
        # The admin endpoint's listening service, when one is configured: started with the relay,
        # stopped only after the drain, so that /readyz answers 503 (and /metrics answers) meanwhile.
        self.admin = None
        self._start_health()
        config = relay.config
        self.tls = None
        if config.tls_listeners:
            self.tls = ServerTLS(CertificateMap.from_config(config), config.tls_min_version, config.http2_for)
        self.overload = relay.overload = OverloadGuard(relay, relay.reactor)
        self.overload.setServiceParent(self)
        expiry = TimerService(EXPIRY_CHECK_INTERVAL, self.check_expiry)
        expiry.clock = relay.reactor
        expiry.setServiceParent(self)

    @property
    def ports(self):
        return list(self.listeners.values())

    def _start_health(self):
        """The active health checks of the relay's current routes, as a child service."""
        if self.health is not None:
            self.health.disownServiceParent()  # stops it when running
        self.health = self.relay.routes.health_service(probe_for=self.relay.health_probe)
        self.health.setServiceParent(self)

    def check_expiry(self):
        """Warn about each certificate that expires within 14 days (at startup, then daily)."""
        config = self.relay.config
        for found in expiring(config.server_certificates(), self.relay.reactor.seconds()):
            emit = log.error if found.left <= 0 else log.warn
            emit("{message}", message=found.message(), where=found.where, path=found.path,
                 not_after=found.not_after, seconds_left=found.left)

    def endpoint_for(self, description, tls=None):
        """
        (server endpoint, factory) of one `listen` entry. ssl:PORT gets the
        relay's ServerTLS; proxy_protocol=on wraps the factory so the PROXY
        header is read first (before the TLS ClientHello on ssl: listeners);
        with reuse_port (a worker of several) TCP listeners set SO_REUSEPORT.
        """
        reactor = self.relay.reactor
        endpoint, _ = split_listener(description)
        factory = self.factory
        listener = parse_tls_listener(endpoint)
        if listener is not None:
            factory = ALPNFactory(factory)  # HTTP/1.1 or HTTP/2, as the client chose by ALPN
        if listener is None:
            server = serverFromString(reactor, with_backlog(endpoint))
            if self.reuse_port:
                server = ReusePortEndpoint.replacing(reactor, server)
        else:
            backlog = listener.backlog or LISTEN_BACKLOG
            if self.reuse_port or proxy_protocol_of(description):
                # what listenSSL does, with the TLS layer inside the PROXY wrapper
                factory = TLSMemoryBIOFactory(tls or self.tls, False, factory)
                server = (ReusePortEndpoint if self.reuse_port else TCP4ServerEndpoint)(
                    reactor, listener.port, backlog=backlog, interface=listener.interface)
            else:
                server = SSL4ServerEndpoint(reactor, listener.port, tls or self.tls,
                                            backlog=backlog, interface=listener.interface)
        if proxy_protocol_of(description):
            relay = self.relay
            factory = ProxyProtocolFactory(
                factory, lambda address: relay.config.is_trusted_proxy(address), reactor,
                lambda: relay.config.handshake_timeout, listener=description)
        return server, factory

    def _listen(self, descriptions, tls=None):
        """Open listeners; a Deferred firing {description: port}, or failing after closing those it opened."""
        opened, attempts = {}, []
        for description in descriptions:
            def listen(description=description):
                server, factory = self.endpoint_for(description, tls)
                return server.listen(factory)

            d = defer.maybeDeferred(listen)
            d.addCallback(quiet_emfile, self.relay.reactor, description, self.relay.files_limit)
            attempts.append(d.addCallback(lambda port, description=description: opened.update({description: port})))

        def failed(failure):
            failure = failure.value.subFailure if isinstance(failure.value, defer.FirstError) else failure
            closing = [defer.maybeDeferred(port.stopListening) for port in opened.values()]
            return defer.gatherResults(closing).addBoth(lambda _: failure)

        return defer.gatherResults(attempts, consumeErrors=True).addCallbacks(lambda _: opened, failed)

    def startService(self):
        for line in self.relay.config.warnings:
            log.warn("{warning}", warning=line)
        super().startService()
        if self.admin is not None:
            self.admin.startService()
        self.relay.open_log.start()
        failed = []

        def opened(ports):
            self.listeners.update(ports)
            if self.accounting is not None:  # not before: a failed startup must leave no store thread
                self.accounting.note_billing(self.relay.config)
                self.accounting.startService()
            self.notify("READY=1\nSTATUS=listening on " + " ".join(self.listeners))

        self._listen(self.relay.config.listen).addCallbacks(opened, failed.append)
        if failed:  # a port in use stops startup, loudly
            failed[0].raiseException()

    # -- SIGHUP -------------------------------------------------------------------

    def reload(self):
        """
        Re-read the config file and apply it (see Relay.reload); open the
        listeners it adds and close those it removes, with certificates read
        anew. A file that does not load, or a listener that cannot be opened,
        changes nothing. A Deferred firing with the ReloadPlan, or None.
        """
        old = self.relay.config
        self.notify("RELOADING=1")
        done = "READY=1\nSTATUS=listening on {}"
        try:
            config = self.load(old.path)
        except ConfigError as e:
            log.error("reload of {path} refused, the running configuration stays: {error}",
                      path=e.path, section=e.section, key=e.key, error=str(e))
            self.notify(done.format(" ".join(self.listeners)))
            return defer.succeed(None)
        tls = ServerTLS(CertificateMap.from_config(config), config.tls_min_version, config.http2_for) \
            if config.tls_listeners else None
        fresh = self.tls if self.tls is not None else tls
        added = [d for d in config.listen if d not in self.listeners]
        removed = [d for d in self.listeners if d not in config.listen]

        def opened(ports):
            if tls is not None:
                if self.tls is None:
                    self.tls = tls
                else:
                    self.tls.adopt(tls)
            self.listeners.update(ports)
            for line in config.warnings:
                log.warn("{warning}", warning=line)
            plan = self.relay.reload(config)
            self.overload.configure()
            if self.accounting is not None:
                self.accounting.note_billing(config)
            if self.running:
                self._start_health()
            for description in removed:
                port = self.listeners.pop(description)
                port.stopListening()
                log.info("listener {listener} closed", listener=description)
            for description in added:
                log.info("listener {listener} opened", listener=description)
            self.notify(done.format(" ".join(self.listeners)))
            return plan

        def failed(failure):
            log.error("reload of {path} refused, the running configuration stays: "
                      "cannot listen: {error}", path=old.path, error=failure.getErrorMessage())
            self.notify(done.format(" ".join(self.listeners)))
            return None

        return self._listen(added, fresh).addCallbacks(opened, failed)

    # -- SIGTERM --------------------------------------------------------------------

    def stopService(self):
        """Drain the sessions (new handshakes meanwhile get 503), then close the listeners."""
        self.notify("STOPPING=1")
        self.relay.routes.stop()
        self.relay.open_log.stop()
        stopped = super().stopService()

        def close_listeners(_):
            listening = [defer.maybeDeferred(port.stopListening) for port in self.listeners.values()]
            self.listeners = {}
            self.relay.abort_all()  # handshakes answered 503 meanwhile, idle connections
            return defer.gatherResults(listening)

        def last_flush(_):
            if self.accounting is not None and self.accounting.running:
                return self.accounting.stopService()

        def close_admin(_):
            if self.admin is not None and self.admin.running:
                return self.admin.stopService()

        drained = self.relay.drain().addCallback(close_listeners).addCallback(last_flush)
        drained.addCallback(close_admin)
        drained.addBoth(lambda result: self.relay.log_gate.stop() or result)
        return defer.gatherResults([stopped, drained])

    @property
    def stopping(self):
        """Draining after a SIGTERM: a second one cuts the drain short."""
        return self.relay.draining

    def hurry(self):
        """A second SIGTERM: the drain is cut short."""
        if self.relay.draining:
            self.relay.hurry()
def with_backlog(description):
    """A server endpoint string with a listen backlog of at least LISTEN_BACKLOG."""
    kind = description.split(":", 1)[0].lower()
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return f"{description}:backlog={LISTEN_BACKLOG}"
    return description


def build_service(config, reactor, random=None, load=load_config, files_limit=None, notify=None,
                  reuse_port=False, store=None, locator=None, admin=True, peers=None):
    """
    The whole relay as a service, for twistd or a test (notify: a fake
    sd_notify; None: nothing sent). reuse_port: one worker of several. With
    `store` (an IAccounting) and config.accounting set, statistics are metered
    and flushed into it; `locator` gives (region, isp) of an address (default:
    config's geoip databases). With `admin` (False in every worker but the
    first) and an `admin` endpoint configured, the admin API listens there.
    `peers` (directory, index, count) in a worker of several: worker 0's admin
    endpoint asks the others, which answer on a Unix socket in `directory`.
    """
    relay = Relay(config, reactor, random=random, files_limit=files_limit)
    accounting = None
    if store is not None and config.accounting is not None:
        import uuid

        from wsrelay.accounting.geo import Locator
        from wsrelay.accounting.service import Accounting

        settings = config.accounting
        if locator is None:
            locator = Locator(settings.geoip_city_db, settings.geoip_asn_db)
        accounting = Accounting(settings, store, locator, reactor, uuid.uuid4().hex)
    top = RelayService(relay, load=load, notify=notify or (lambda state: False), accounting=accounting)
    top.reuse_port = reuse_port
    if accounting is not None and admin and config.accounting.admin:
        from twisted.application import strports

        from wsrelay.admin.peers import Peers
        from wsrelay.admin.site import admin_site

        others = Peers(reactor, peers[0], peers[2]) if peers is not None and peers[2] > 1 else None
        site = admin_site(store, config.accounting.admin_token, lambda: relay.config, reactor,
                          service=top, peers=others)
        listener = strports.service(config.accounting.admin, site, reactor=reactor)
        listener._raiseSynchronously = True  # a port in use stops startup, loudly
        top.admin = listener  # not a child: RelayService starts it, and stops it after the drain
    elif accounting is not None and config.accounting.admin and peers is not None:
        import os

        from twisted.application import strports

        from wsrelay.admin.peers import peer_site, socket_path

        path = socket_path(peers[0], peers[1])
        if os.path.exists(path):
            os.unlink(path)  # left by this worker's previous life
        strports.service(f"unix:{path}:mode=600", peer_site(relay), reactor=reactor).setServiceParent(top)
    return top
