"""
The relay assembled: one Relay holding the current config and live sessions,
an Autobahn server factory per listener, and the twistd service tree (the
listeners, TLS ones choosing their certificate by SNI, the health checks and
the daily certificate expiry check).
"""

import copy

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketServerFactory
from twisted.application import service
from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger

from wsrelay.http import client_address
from wsrelay.legs import ClientLeg
from wsrelay.origin import OriginDial, origin_endpoint, origin_probe
from wsrelay.routing import Routes
from wsrelay.tls import (
    EXPIRY_CHECK_INTERVAL, CertificateMap, OriginTLS, ServerTLS, expiring, parse_tls_listener,
)

log = Logger(namespace="wsrelay.service")

SHUTDOWN_GRACE = 3.0   # seconds the closing handshakes get at SIGTERM before the rest is dropped
LISTEN_BACKLOG = 1024  # Twisted's default is 50; an edge needs more


# Options common to both legs. Autobahn's defaults are wide open (see
# docs/wire.md): every limit is set here, and the timers the relay runs on its
# own injected clock are turned off in Autobahn.
_COMMON = dict(
    utf8validateIncoming=True, applyMask=True, maxFramePayloadSize=0, autoFragmentSize=0,
    failByDrop=False, echoCloseCodeReason=True, openHandshakeTimeout=0, closeHandshakeTimeout=0,
    tcpNoDelay=True, autoPingInterval=0, autoPingTimeout=0,
)


class Relay:
    """The relay's state: the config new connections get, and the sessions alive now."""

    def __init__(self, config, reactor):
        self.config = config
        self.reactor = reactor
        self.sessions = set()
        self.routes = Routes(config, reactor)  # per-domain selectors and origin health
        template = WebSocketClientFactory(url="ws://origin.invalid/", reactor=reactor)
        template.setProtocolOptions(
            version=13, maskClientFrames=True, acceptMaskedServerFrames=False,
            serverConnectionDropTimeout=0, perMessageCompressionOffers=[], **_COMMON)
        template.useragent = None
        self._origin_template = template
        self._origin_tls = {}  # domain name -> OriginTLS, built at its first https dial

    # -- called by the protocols ----------------------------------------------

    def session_started(self, session):
        self.sessions.add(session)

    def session_ended(self, session):
        self.sessions.discard(session)

    def scheme_of(self, transport):
        return "https" if ISSLTransport.providedBy(transport) else "http"

    def client_address(self, peer, forwarded_for):
        return client_address(peer, forwarded_for, self.config.is_trusted_proxy)

    def origin_factory(self, protocols):
        factory = copy.copy(self._origin_template)
        factory.protocols = protocols
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

    # -- shutdown --------------------------------------------------------------

    def close_all(self, grace=SHUTDOWN_GRACE):
        """1001 on every leg; a Deferred that fires once all are gone or after `grace`."""
        sessions = list(self.sessions)
        for session in sessions:
            session.shutdown()
        if not self.sessions:
            return defer.succeed(None)
        done = defer.Deferred()
        deadline = self.reactor.seconds() + grace

        def check():
            if not self.sessions:
                done.callback(None)
            elif self.reactor.seconds() >= deadline:
                for session in list(self.sessions):
                    for leg in (session.client, session.origin):
                        if leg is not None:
                            leg.abort()
                done.callback(None)
            else:
                self.reactor.callLater(0.05, check)

        check()
        return done


class RelayFactory(WebSocketServerFactory):
    """Builds a ClientLeg for each accepted connection of one listener."""

    protocol = ClientLeg

    def __init__(self, relay):
        super().__init__(reactor=relay.reactor)
        self.relay = relay
        self.server = None  # no Server header with a version in it
        self.setProtocolOptions(
            versions=[13], webStatus=False, requireMaskedClientFrames=True, maskServerFrames=False,
            serveFlashSocketPolicy=False, allowedOrigins=["*"], allowNullOrigin=True,
            maxConnections=0, trustXForwardedFor=0, maxMessagePayloadSize=1048576, **_COMMON)


class RelayService(service.MultiService):
    """The listeners plus the relay; on stop, sessions are closed before the process exits."""

    def __init__(self, relay):
        super().__init__()
        self.relay = relay
        self.factory = RelayFactory(relay)
        self.ports = []
        relay.routes.health_service(probe_for=relay.health_probe).setServiceParent(self)
        config = relay.config
        self.tls = None
        if config.tls_listeners:
            self.tls = ServerTLS(CertificateMap.from_config(config), config.tls_min_version)
        if any(config.server_certificates()):
            expiry = TimerService(EXPIRY_CHECK_INTERVAL, self.check_expiry)
            expiry.clock = relay.reactor
            expiry.setServiceParent(self)

    def check_expiry(self):
        """Warn about each certificate that expires within 14 days (at startup, then daily)."""
        config = self.relay.config
        for found in expiring(config.server_certificates(), self.relay.reactor.seconds()):
            emit = log.error if found.left <= 0 else log.warn
            emit("{message}", message=found.message(), where=found.where, path=found.path,
                 not_after=found.not_after, seconds_left=found.left)

    def endpoint_for(self, description):
        """The server endpoint of one `listen` entry: ssl:PORT with the relay's ServerTLS, or Twisted's own."""
        listener = parse_tls_listener(description)
        if listener is None:
            return serverFromString(self.relay.reactor, with_backlog(description))
        return SSL4ServerEndpoint(self.relay.reactor, listener.port, self.tls,
                                  backlog=listener.backlog or LISTEN_BACKLOG, interface=listener.interface)

    def startService(self):
        for line in self.relay.config.warnings:
            log.warn("{warning}", warning=line)
        super().startService()
        for description in self.relay.config.listen:
            endpoint = self.endpoint_for(description)
            failed = []
            endpoint.listen(self.factory).addCallbacks(self.ports.append, failed.append)
            if failed:  # a port in use stops startup, loudly
                failed[0].raiseException()

    def stopService(self):
        stopped = super().stopService()
        self.relay.routes.stop()
        listening = [defer.maybeDeferred(port.stopListening) for port in self.ports]
        self.ports = []
        return defer.gatherResults([stopped, *listening, self.relay.close_all()])


def with_backlog(description):
    """A server endpoint string with a listen backlog of at least LISTEN_BACKLOG."""
    kind = description.split(":", 1)[0].lower()
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return f"{description}:backlog={LISTEN_BACKLOG}"
    return description


def build_service(config, reactor):
    """The whole relay as a service, for twistd or a test."""
    return RelayService(Relay(config, reactor))
