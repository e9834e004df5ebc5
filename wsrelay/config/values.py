"""
The configuration's values: immutable dataclasses the reader builds once per
load (RelayConfig, DomainConfig and their parts), and ConfigError.

Nothing here reads text; downstream code sees only these. Their defaults are
the schema's (tests/test_config_schema.py holds them equal).
"""

import ipaddress
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from wsrelay import hosts, tls
from wsrelay.accounting.billing import BillingSettings


class ConfigError(Exception):
    """A configuration mistake; str() is the one line shown to the operator."""

    def __init__(self, path, section, key, message):
        self.path, self.section, self.key = path, section, key
        where = f"[{section}]" if section else ""
        if key:
            where += f" {key}"
        super().__init__(f"{path}: {where}: {message}" if where else f"{path}: {message}")


ORIGIN_GONE_CODES = (1011, 1012, 1013, 1014)
PROTOCOLS = ("http", "https", "follow")
HEALTH_CHECKS = ("websocket", "http")
MAX_WEIGHT = 1000


@dataclass(frozen=True)
class Origin:
    """
    One origin server as written in `origins`; port None follows the protocol.
    Its identity is its address: the weight is not part of equality or hash.
    """

    host: str
    port: int | None = None
    weight: int = field(default=1, compare=False)

    def port_for(self, scheme):
        """The port to dial when speaking `scheme` ('http' or 'https')."""
        if self.port is not None:
            return self.port
        return 443 if scheme == "https" else 80

    def __str__(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class HealthConfig:
    """How one domain's origins are taken out of rotation and put back."""

    eject_after: int = 3          # failed connects in a row that eject an origin; 0: never
    eject_for: float = 30.0       # seconds an ejected origin stays out before it is tried again
    interval: float = 0.0         # health_interval: seconds between active checks; 0: none
    check: str = "websocket"      # websocket (a real handshake) or http (GET expecting 2xx)
    path: str = "/"
    timeout: float = 2.0
    fall: int = 3                 # failed checks in a row that take an origin out
    rise: int = 2                 # passed checks in a row that put it back
    panic_threshold: int = 50     # % of origins in rotation below which all are balanced over; 0: never


@dataclass(frozen=True)
class DomainConfig:
    """What the relay does for one [domain:...] section."""

    name: str
    websocket: bool = True
    origins: tuple = ()
    origin_protocol: str = "follow"
    origin_host: str | None = None
    allowed_origins: frozenset = frozenset()
    heartbeat_interval: float = 60.0
    heartbeat_timeout: float = 60.0
    connection_timeout: float = 60.0
    max_message_size: int = 1048576
    max_connections: int = 0      # live sessions of this domain in this process; 0: no limit of its own
    max_session_duration: float = 0.0  # seconds a session may last (1001 after it); 0: no limit
    compression: bool = False
    origin_compression: bool = False
    selector: str = "round-robin"
    selector_options: object = None
    health: HealthConfig = HealthConfig()
    certificate: object = None    # tls.ServerCertificate served to clients asking for this name (SNI)
    origin_ca: tuple | None = None  # CA certificates trusted for https origins; None: the system store
    origin_verify: bool = True
    origin_sni: str | None = None
    billing: BillingSettings = BillingSettings()  # how its traffic is billed (the usage report)
    http: bool = False            # plain HTTP requests are proxied to the origins (else 426)
    origin_read_timeout: float = 60.0   # HTTP: seconds the origin may stay silent (504, or the response is cut)
    client_body_timeout: float = 60.0   # HTTP: seconds a request body may stall (408); 0: none
    max_body_size: int = 0        # HTTP: largest request body in bytes (413); 0: no limit
    http2: bool = False           # ssl: listeners offer h2 (ALPN) to clients asking for this name (SNI)

    def origin_scheme(self, client_scheme):
        """'http' or 'https' towards the origin, given the client's own scheme."""
        if self.origin_protocol == "follow":
            return client_scheme
        return self.origin_protocol

    def origin_allowed(self, browser_origin):
        """Whether a browser Origin header value may open a session here."""
        if not self.allowed_origins or browser_origin is None:
            return True
        return browser_origin.strip().lower().rstrip("/") in self.allowed_origins


@dataclass(frozen=True)
class AccountingSettings:
    """The statistics store and how the meter is flushed into it ([relay] accounting, [accounting])."""

    store: str = "sqlite"          # the IAccountingFactory name
    factory: object = None         # that IAccountingFactory
    options: object = None         # what its parse_options returned
    flush_interval: float = 10.0
    node_id: str = ""
    retention_5m: float = 93 * 86400.0
    retention_1h: float = 186 * 86400.0
    retention_1d: float = 366 * 86400.0
    geoip_city_db: str | None = None
    geoip_asn_db: str | None = None
    admin: str | None = None       # the admin API's server endpoint string; None: no admin API
    admin_token: bytes | None = field(default=None, repr=False)  # its bearer token
    metrics_public: bool = False   # GET /metrics answered without the token

    def build(self, reactor):
        return self.factory.build(self.options, reactor)


@dataclass(frozen=True)
class RelayConfig:
    """The whole configuration: swapped as one value, never mutated."""

    path: str
    listen: tuple = ("tcp:8080:interface=127.0.0.1",)
    handshake_timeout: float = 5.0
    origin_connect_timeout: float = 3.0
    origin_gone_close_code: int = 1011
    trusted_proxies: tuple = ()
    domains: dict = field(default_factory=dict)
    wildcards: dict = field(default_factory=dict)
    catch_all: DomainConfig | None = None
    warnings: tuple = ()
    selectors: object = field(default_factory=lambda: MappingProxyType({}))  # name -> ISelectorFactory in use
    certificate: object = None    # the default tls.ServerCertificate: no SNI, or a name without its own
    tls_min_version: str = "1.2"
    drain_window: float = 10.0    # seconds over which reload (1012) and SIGTERM (1001) closes are spread
    drain_timeout: float = 30.0   # SIGTERM: seconds before whatever is left is closed at once
    max_connections: int | None = None  # live sessions per process; None: auto (from the open-files limit); 0: none
    # Off by default, as in nginx, HAProxy and Envoy: behind an L4 balancer or a carrier NAT one
    # address is many users (docs/operations.md says when to turn them on).
    max_connections_per_ip: int = 0  # live sessions per client address per process; 0: no limit
    handshake_rate_per_ip: float = 0.0  # handshakes per second per client address per process; 0: no limit
    handshake_rate: float = 0.0  # handshakes per second per process; 0: no limit
    max_ping_rate: float = 10.0   # pings per second a peer may send on a leg; 0: no limit
    workers: int = 1              # relay processes sharing the listeners (auto: the CPUs this process may use)
    accounting: object = None     # AccountingSettings; None: accounting = off
    http2: bool = False           # h2 offered by ALPN on ssl: listeners (the domains' default; no SNI)
    max_concurrent_streams: int = 100  # HTTP/2 streams open at once on one client connection
    log_interval: float = 0.0     # seconds between records of every open session; 0: off
    log_refusals_per_ip: int = 10  # refusal/violation lines per client address per log_summary_interval
    log_summary_interval: float = 60.0  # seconds over which the lines past log_refusals_per_ip are counted
    max_memory: int = 0           # bytes of resident memory per process before handshakes get 503 (overload.py); 0: off
    http_keepalive_timeout: float = 75.0  # seconds an idle HTTP client connection is kept open
    origin_keepalive: int = 32    # idle HTTP connections kept per origin (per domain); 0: none kept
    request_rate: float = 0.0     # HTTP requests per second per process; 0: no limit
    request_rate_per_ip: float = 0.0  # HTTP requests per second per client address per process; 0: no limit

    def http2_for(self, server_name):
        """Whether a TLS client asking for `server_name` (SNI; None: none sent) is offered h2."""
        domain = self.domain_for(server_name) if server_name else None
        return domain.http2 if domain is not None else self.http2

    @property
    def serves_http(self):
        """Whether some domain proxies plain HTTP (listeners then look at each request head first)."""
        return any(domain.http for domain in self.each_domain())

    def each_domain(self):
        """Every DomainConfig: exact names, wildcards, then the catch-all."""
        return hosts.each_domain(self.domains, self.wildcards, self.catch_all)

    def server_certificates(self):
        """(where, tls.ServerCertificate) for the default and every domain that has one."""
        if self.certificate is not None:
            yield "[relay]", self.certificate
        for domain in self.each_domain():
            if domain.certificate is not None:
                yield f"[domain:{domain.name}]", domain.certificate

    @property
    def tls_listeners(self):
        """The `listen` entries that are TLS listeners (ssl:PORT...)."""
        return tuple(d for d in self.listen if tls.parse_tls_listener(split_listener(d)[0]) is not None)

    def domain_for(self, host):
        """The DomainConfig serving a Host header value, or None (404)."""
        return hosts.domain_for(self.domains, self.wildcards, self.catch_all, host)

    def is_trusted_proxy(self, address):
        """Whether X-Forwarded-For from this peer address is believed."""
        if not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


_PROXY_OPTION = re.compile(r"(?<!\\):proxy_protocol=([^:]*)(?=:|$)", re.IGNORECASE)


def split_listener(entry):
    """
    A `listen` entry -> (the endpoint string without the relay's own option,
    proxy_protocol as on/off text or None when absent). `proxy_protocol=on`
    may be written after any option of the entry: tcp:80:proxy_protocol=on.
    """
    found = _PROXY_OPTION.findall(entry)
    endpoint = _PROXY_OPTION.sub("", entry)
    if len(found) > 1:
        return endpoint, False  # given twice: refused by the parser
    return endpoint, (found[0] if found else None)


def proxy_protocol_of(entry):
    """Whether a (validated) `listen` entry takes a PROXY protocol header first."""
    value = split_listener(entry)[1]
    return bool(value) and value.lower() in ("on", "yes", "true", "1")
