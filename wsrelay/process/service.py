"""
The relay assembled: one Relay holding the current config and live sessions,
an Autobahn server factory per listener, and the twistd service tree (the
listeners, TLS ones choosing their certificate by SNI, the health checks and
the daily certificate expiry check).
"""

import gc

from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.application import service
from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, serverFromString
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from wsrelay.config import ConfigError, load_config, proxy_protocol_of, split_listener
from wsrelay.process.emfile import quiet_emfile
from wsrelay.edge.alpn import ALPNFactory
from wsrelay.edge.legs import ClientLeg
from wsrelay.edge.proxywrap import ProxyProtocolFactory
from wsrelay.process.reuseport import ReusePortEndpoint
from wsrelay.process.overload import OverloadGuard
from wsrelay.process.sdnotify import sd_notify
from wsrelay.tls import EXPIRY_CHECK_INTERVAL, CertificateMap, ServerTLS, expiring, parse_tls_listener
from wsrelay.process.relay import LISTEN_BACKLOG, Relay, _COMMON

log = Logger(namespace="wsrelay.service")

GC_YOUNG = 20000  # allocations between young-generation collections (CPython: 700); see tune_collector


class RelayFactory(WebSocketServerFactory):
    """
    Builds a ClientLeg for each accepted connection of one listener; while
    some domain has http = on, a Front that looks at each request head first
    (wsrelay.edge.httpserver).
    """

    protocol = ClientLeg
    _serves_http = (None, False)  # (config, its serves_http): asked once per config, not per accept

    def buildProtocol(self, addr):
        config = self.relay.config
        if self._serves_http[0] is not config:
            self._serves_http = (config, config.serves_http)
        if self._serves_http[1]:
            from wsrelay.edge.httpserver import Front

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
            tune_collector()

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


def tune_collector():
    """
    Collect the young generation every GC_YOUNG allocations instead of CPython's 700. Every
    handshake allocates a few hundred objects that live as long as their session, and each
    young collection passes over them again: at 700 the collector was 13 % of the CPU per
    connect (bench/README.md, "connect rate"). An ended session frees itself by refcounting
    (Session.release breaks its cycles); a full collection still runs after a burst of closes
    (wsrelay.edge.trim).
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)


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
