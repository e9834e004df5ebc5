"""
The relay's configuration: an INI file turned, once, into immutable values.

Every key is parsed and validated at load time; nothing downstream sees a
string it must interpret. A mistake raises ConfigError naming the file, the
section and the key, so an operator can fix it from one line of output.
"""

import configparser
import difflib
import ipaddress
import os
import re
import time
from dataclasses import dataclass, field
from types import MappingProxyType

from twisted.internet.endpoints import serverFromString

from wsrelay import hosts, tls
from wsrelay.hosts import normalize_host  # noqa: F401  (callers import it from here)
from wsrelay.accounting.billing import CYCLES, METHODS, BillingSettings, parse_plans, parse_tiers


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
    max_memory: int = 0           # bytes of resident memory per process before handshakes get 503 (overload.py); 0: off
    workers: int = 1              # relay processes sharing the listeners (auto: the CPUs this process may use)
    accounting: object = None     # AccountingSettings; None: accounting = off
    log_interval: float = 0.0     # seconds between records of every open session; 0: off
    log_refusals_per_ip: int = 10  # refusal/violation lines per client address per log_summary_interval
    log_summary_interval: float = 60.0  # seconds over which the lines past log_refusals_per_ip are counted
    http2: bool = False           # h2 offered by ALPN on ssl: listeners (the domains' default; no SNI)
    max_concurrent_streams: int = 100  # HTTP/2 streams open at once on one client connection
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


# --- parsing -----------------------------------------------------------------

DEFAULT_SELECTOR = "round-robin"
HEALTH_KEYS = {
    "eject_after", "eject_for", "health_interval", "health_check", "health_path",
    "health_timeout", "health_fall", "health_rise", "panic_threshold",
}
TLS_KEYS = {"certificate", "private_key"}
RELAY_KEYS = {
    "listen", "heartbeat_interval", "heartbeat_timeout", "connection_timeout",
    "handshake_timeout", "origin_connect_timeout", "max_message_size",
    "origin_gone_close_code", "trusted_proxies", "selector", "tls_min_version",
    "drain_window", "drain_timeout", "max_connections", "max_connections_per_ip",
    "handshake_rate_per_ip", "handshake_rate", "max_ping_rate", "workers",
    "accounting", "geoip_city_db", "geoip_asn_db", "http2", "max_concurrent_streams",
    "log_interval", "log_refusals_per_ip", "log_summary_interval",
    "http_keepalive_timeout", "origin_keepalive", "request_rate", "request_rate_per_ip",
    "origin_read_timeout", "client_body_timeout", "max_body_size",
    "max_session_duration", "max_memory",
} | HEALTH_KEYS | TLS_KEYS | {"billing", "billing_cycle", "price_tiers"}
ACCOUNTING_KEYS = {"flush_interval", "node_id", "retention_5m", "retention_1h", "retention_1d",
                   "admin", "admin_token_file", "metrics_public"}
MIN_TOKEN = 16  # characters of an admin token
DOMAIN_OVERRIDES = ("heartbeat_interval", "heartbeat_timeout", "connection_timeout", "max_message_size",
                    "origin_read_timeout", "client_body_timeout", "max_body_size", "max_session_duration")
ORIGIN_TLS_KEYS = ("origin_ca", "origin_verify", "origin_sni")
DOMAIN_KEYS = {
    "websocket", "origins", "origin_protocol", "origin_host", "allowed_origins",
    "compression", "origin_compression", "selector", "max_connections",
    "billing", "billing_cycle", "price_tiers", "plans", "http", "http2",
} | set(DOMAIN_OVERRIDES) | HEALTH_KEYS | TLS_KEYS | set(ORIGIN_TLS_KEYS)


def _did_you_mean(key, known):
    """'; did you mean X?' for a misspelt key close to one of `known`, else ''."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


class _Reader:
    """Typed access to one section, raising ConfigError with file/section/key."""

    def __init__(self, path, name, section):
        self.path, self.name, self.section = path, name, section

    def fail(self, key, message):
        raise ConfigError(self.path, self.name, key, message)

    def raw(self, key):
        value = self.section.get(key)
        if value is not None and "\0" in value:  # no value has one; as a path it would raise ValueError in open()
            self.fail(key, "contains a NUL character")
        return None if value is None else value.strip()

    def _non_negative(self, key, default, unit, zero):
        value = self.raw(key)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except ValueError:
            self.fail(key, f"{value!r} is not a number {unit}")
        if number < 0 or number != number or number == float("inf"):
            self.fail(key, f"{value!r} must be 0{zero} or a positive number {unit}")
        return number

    def seconds(self, key, default):
        return self._non_negative(key, default, "of seconds", "")

    def rate(self, key, default):
        """A number per second, 0 (no limit) or positive, fractions allowed."""
        return self._non_negative(key, default, "per second", " (no limit)")

    def count_or_auto(self, key, default):
        """A whole number >= 0, or auto (None)."""
        value = self.raw(key)
        if value is None or value == "":
            return default
        if value.lower() == "auto":
            return None
        return self.positive_int(key, default, minimum=0)

    def positive_int(self, key, default, minimum=1):
        value = self.raw(key)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            self.fail(key, f"{value!r} is not a whole number")
        if number < minimum:
            self.fail(key, f"{value!r} must be greater than 0" if minimum == 1 else
                      f"{value!r} must be {minimum} or more")
        return number

    def size(self, key, default):
        """Bytes: a whole number, or with K, M or G after it (KiB, MiB, GiB)."""
        value = self.raw(key)
        if value is None or value == "":
            return default
        text = value.upper().removesuffix("IB").removesuffix("B")
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if scale > 1 else text
        if not digits.strip().isdigit():
            self.fail(key, f"{value!r} is not a size in bytes (a whole number, or with K, M or G after it)")
        return int(digits) * scale

    def boolean(self, key, default):
        value = self.raw(key)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered in ("on", "yes", "true", "1"):
            return True
        if lowered in ("off", "no", "false", "0"):
            return False
        self.fail(key, f"{value!r} is not on or off")

    def choice(self, key, default, choices):
        value = self.raw(key)
        if value is None or value == "":
            return default
        if value.lower() not in choices:
            self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value.lower()


def _parse_origin(reader, key, word):
    if "://" in word:
        reader.fail(key, f"{word!r} is not host[:port]: leave the scheme out, origin_protocol sets it")
    if word.startswith("["):
        end = word.find("]")
        if end < 0:
            reader.fail(key, f"{word!r} is not host[:port]")
        host, rest = word[1:end], word[end + 1:]
        if rest and not rest.startswith(":"):
            reader.fail(key, f"{word!r} is not host[:port]")
        port_text = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            reader.fail(key, f"{word!r}: {host!r} is not an IPv6 address")
    else:
        if word.count(":") > 1:
            reader.fail(key, f"{word!r}: write IPv6 origins as [address]:port")
        host, _, port_text = word.partition(":")
        port_text = port_text if ":" in word else None
    if not host or any(c in host for c in "/?#@ "):
        reader.fail(key, f"{word!r} is not host[:port]")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            reader.fail(key, f"{word!r}: port must be 1-65535")
        port = int(port_text)
    return Origin(host.lower(), port)


def _parse_origins(reader, key):
    """`host[:port] [weight=N] ...`: a weight applies to the origin before it."""
    origins, seen, weighted = [], set(), set()
    for word in (reader.raw(key) or "").split():
        if word.lower().startswith("weight="):
            text = word[len("weight="):]
            if not origins:
                reader.fail(key, f"{word!r} must follow the origin it weighs (a:8000 weight=3)")
            if not text.isdigit() or not 1 <= int(text) <= MAX_WEIGHT:
                reader.fail(key, f"{word!r}: a weight is a whole number from 1 to {MAX_WEIGHT}")
            last = origins[-1]
            if last in weighted:
                reader.fail(key, f"{word!r}: {last} has a weight already")
            weighted.add(last)
            origins[-1] = Origin(last.host, last.port, int(text))
            continue
        origin = _parse_origin(reader, key, word)
        if origin in seen:
            reader.fail(key, f"{word!r} is listed twice (give it a weight=N instead)")
        seen.add(origin)
        origins.append(origin)
    return tuple(origins)


def _parse_health(reader, base):
    """The health keys of one section, defaulting to `base` (the [relay] values)."""
    health = HealthConfig(
        eject_after=reader.positive_int("eject_after", base.eject_after, minimum=0),
        eject_for=reader.seconds("eject_for", base.eject_for),
        interval=reader.seconds("health_interval", base.interval),
        check=reader.choice("health_check", base.check, HEALTH_CHECKS),
        path=_health_path(reader, "health_path", base.path),
        timeout=reader.seconds("health_timeout", base.timeout),
        fall=reader.positive_int("health_fall", base.fall),
        rise=reader.positive_int("health_rise", base.rise),
        panic_threshold=_percent(reader, "panic_threshold", base.panic_threshold),
    )
    if health.eject_for == 0:
        reader.fail("eject_for", "must be greater than 0 (eject_after = 0 turns ejection off)")
    if health.timeout == 0:
        reader.fail("health_timeout", "must be greater than 0")
    if health.interval and health.timeout > health.interval:
        named = reader.raw("health_timeout") or not reader.raw("health_interval")
        key = "health_timeout" if named else "health_interval"
        reader.fail(key, f"health_timeout ({health.timeout:g}) is longer than health_interval ({health.interval:g})")
    return health


def _percent(reader, key, default):
    """A whole percentage, 0 to 100, written with or without its % sign."""
    value = reader.raw(key)
    if not value:
        return default
    text = value[:-1].strip() if value.endswith("%") else value
    if not text.isdigit() or int(text) > 100:
        reader.fail(key, f"{value!r} is not a whole percentage from 0 to 100")
    return int(text)


def _health_path(reader, key, default):
    value = reader.raw(key)
    if not value:
        return default
    if not value.startswith("/") or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
        reader.fail(key, f"{value!r} is not a request path like /health")
    return value


def _installed_selectors(path):
    from wsrelay.selectors import installed

    factories = installed()
    if not factories:
        raise ConfigError(path, None, None,
                          "no origin selector is installed (twisted/plugins/wsrelay_selectors.py missing?)")
    return factories


def _selector_factory(reader, key, factories, name=None):
    name = (name if name is not None else reader.raw(key) or "").strip().lower()
    factory = factories.get(name)
    if factory is None:
        reader.fail(key, f"{name!r} is not an installed selector (installed: {', '.join(sorted(factories))})")
    return factory


def _selector_sections(path, parser, factories):
    """The [selector:NAME] sections, checked: each NAME installed, each key one of its options."""
    sections = {}
    for name in parser.sections():
        if not name.startswith("selector:"):
            continue
        reader = _Reader(path, name, parser[name])
        selector = name[len("selector:"):].strip().lower()
        factory = factories.get(selector)
        if factory is None:
            raise ConfigError(path, name, None, f"{selector!r} is not an installed selector "
                                                f"(installed: {', '.join(sorted(factories))})")
        for key in reader.section:
            if key not in factory.options:
                known = ", ".join(sorted(factory.options)) or "none"
                reader.fail(key, f"unknown key (the options of {selector} are: {known})"
                                 + _did_you_mean(key, factory.options))
        sections[selector] = reader
    return sections


def _selector_options(reader, factory, defaults):
    """The domain's options for its selector: [selector:NAME] values (`defaults`), then the domain's own."""
    raw, source = {}, {}
    for section in (defaults, reader) if defaults is not None else (reader,):
        for key in section.section:
            if key in factory.options:
                raw[key], source[key] = section.raw(key), section.name
    from wsrelay.selectors import OptionError

    try:
        return factory.parse_options(raw)
    except OptionError as e:
        raise ConfigError(reader.path, source.get(e.key, reader.name), e.key or "selector", str(e))


def _parse_listen(reader, key, default):
    value = reader.raw(key)
    if value is None or value == "":
        return default
    words = tuple(value.split())
    for word in words:
        if words.count(word) > 1:
            reader.fail(key, f"{word!r} is listed twice")
        endpoint, proxy = split_listener(word)
        if proxy is False:
            reader.fail(key, f"{word!r}: proxy_protocol= is given twice")
        if proxy is not None and proxy.lower() not in ("on", "off", "yes", "no", "true", "false", "1", "0"):
            reader.fail(key, f"{word!r}: proxy_protocol={proxy} is not on or off")
        if endpoint.lower().startswith("systemd:"):
            _check_systemd_listener(reader, key, endpoint)
            continue
        try:
            if tls.parse_tls_listener(endpoint) is None:
                serverFromString(None, endpoint)  # parsing only; nothing listens yet
        except Exception as e:  # the parser raises ValueError, KeyError, ...
            reader.fail(key, f"{word!r} is not a Twisted server endpoint string ({e})")
    return words


def _check_systemd_listener(reader, key, word):
    """
    systemd:domain=INET:index=N (or name=NAME): a socket inherited from systemd.
    Only its form is checked here; Twisted resolves it from LISTEN_FDS at startup.
    """
    options = dict(part.partition("=")[::2] for part in word.split(":")[1:])
    if options.get("domain") not in ("INET", "INET6", "UNIX"):
        reader.fail(key, f"{word!r}: a systemd: listener needs domain=INET, INET6 or UNIX")
    if not (options.get("index", "").isdigit() or options.get("name")):
        reader.fail(key, f"{word!r}: a systemd: listener needs index=N or name=NAME")
    unknown = set(options) - {"domain", "index", "name"}
    if unknown:
        reader.fail(key, f"{word!r}: unknown option {sorted(unknown)[0]!r}")


def _pem_path(reader, key):
    """A PEM file named by `key`: relative paths are taken from the config file's directory."""
    value = reader.raw(key)
    if not value:
        return None
    return os.path.join(os.path.dirname(reader.path), os.path.expanduser(value))


def _server_certificate(reader, now, loaded):
    """The section's certificate and private_key, loaded and checked once per pair of files."""
    certificate_path = _pem_path(reader, "certificate")
    key_path = _pem_path(reader, "private_key")
    if certificate_path is None:
        if key_path is not None:
            reader.fail("private_key", "is set without certificate")
        return None
    key_path = key_path or certificate_path
    pair = (certificate_path, key_path)
    if pair not in loaded:
        try:
            loaded[pair] = tls.load_server_certificate(certificate_path, key_path, now)
        except tls.CertificateError as e:
            reader.fail(e.key, str(e))
    return loaded[pair]


def _origin_ca(reader, loaded):
    path = _pem_path(reader, "origin_ca")
    if path is None:
        return None
    if path not in loaded:
        try:
            loaded[path] = tls.load_ca_bundle(path)
        except tls.CertificateError as e:
            reader.fail(e.key, str(e))
    return loaded[path]


def _server_name(reader, key):
    value = reader.raw(key)
    if not value:
        return None
    name = value.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    labels = name.split(".")
    if not all(label and len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) for label in labels):
        reader.fail(key, f"{value!r} is not a host name")
    return name


def _certificate_warnings(path, name, pattern, certificate):
    if certificate is None or certificate.covers(pattern):
        return []
    names = ", ".join(certificate.names) or "no subjectAltName"
    return [f"{path}: [{name}] certificate: {certificate.certificate_path} is not for {pattern} "
            f"(it names {names}): clients will refuse it"]


def _origin_tls_warnings(path, name, reader, domain):
    where = f"{path}: [{name}]"
    if domain.origin_protocol == "http":
        named = [key for key in ORIGIN_TLS_KEYS if reader.raw(key)]
        if named:
            return [f"{where}: {', '.join(named)} has no effect with origin_protocol = http"]
        return []
    if not domain.origin_verify:
        return [f"{where}: origin_verify = off: origin certificates are not checked, "
                "anyone on the path to the origin can pose as it"]
    return []


def _parse_proxies(reader, key):
    value = reader.raw(key) or ""
    nets = []
    for word in value.split():
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            reader.fail(key, f"{word!r} is not an address or CIDR")
    return tuple(nets)


def _parse_allowed_origins(reader, key):
    value = reader.raw(key) or ""
    result = set()
    for word in value.split():
        word = word.lower().rstrip("/")
        scheme, sep, rest = word.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
            reader.fail(key, f"{word!r} is not an origin like https://app.example.com")
        result.add(word)
    return frozenset(result)


def _check_domain_name(path, name):
    pattern = name[len("domain:"):].strip().lower().rstrip(".")
    if pattern == "*":
        return pattern
    bare = pattern[2:] if pattern.startswith("*.") else pattern
    labels = bare.split(".")
    ok = bare and all(
        label and len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    )
    if not ok:
        try:
            ipaddress.ip_address(bare.strip("[]"))
            return bare.strip("[]")
        except ValueError:
            raise ConfigError(
                path, name, None,
                "the domain must be a host name, *.parent.name, an IP address or *",
            )
    return pattern


def _timeout_warnings(where, d):
    warnings = []
    if d.heartbeat_interval and d.connection_timeout and d.heartbeat_interval > d.connection_timeout:
        warnings.append(
            f"{where}: heartbeat_interval ({d.heartbeat_interval:g}) > connection_timeout "
            f"({d.connection_timeout:g}): idle sessions are closed before a ping is ever sent"
        )
    if not d.heartbeat_interval and not d.connection_timeout:
        warnings.append(
            f"{where}: heartbeat_interval and connection_timeout are both 0: "
            "a dead peer is never noticed and its session is kept forever"
        )
    return warnings


def parse_config(text, path="<string>", now=None):
    """
    Parse INI text into a RelayConfig; raise ConfigError on any mistake.
    PEM files are read and checked here, certificate validity against `now`
    (seconds since the epoch; the wall clock when None). Relative PEM paths
    are taken from the directory of `path`.
    """
    now = time.time() if now is None else now
    parser = configparser.ConfigParser(
        interpolation=None,
        inline_comment_prefixes=(";", "#"),
        comment_prefixes=(";", "#"),
        default_section="\0none",
        strict=True,
        empty_lines_in_values=False,
    )
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateSectionError as e:
        raise ConfigError(path, e.section, None, "section appears twice")
    except configparser.DuplicateOptionError as e:
        raise ConfigError(path, e.section, e.option, "key appears twice in the section")
    except configparser.MissingSectionHeaderError as e:
        raise ConfigError(path, None, None, f"line {e.lineno}: a key before any [section]")
    except configparser.Error as e:
        raise ConfigError(path, None, None, str(e).splitlines()[0])

    for name in parser.sections():
        if name not in ("relay", "accounting") and not name.startswith(("domain:", "selector:")):
            raise ConfigError(path, name, None, "unknown section (expected [relay], [accounting], "
                                                "[domain:NAME] or [selector:NAME])")

    factories = _installed_selectors(path)
    relay = _Reader(path, "relay", parser["relay"] if parser.has_section("relay") else {})
    for key in relay.section:
        if key not in RELAY_KEYS:
            owners = sorted(n for n, f in factories.items() if key in f.options)
            hint = f" (an option of selector {owners[0]}: set it in [selector:{owners[0]}])" if owners else ""
            relay.fail(key, "unknown key" + (hint or _did_you_mean(key, RELAY_KEYS)))

    base = DomainConfig(
        name="*",
        heartbeat_interval=relay.seconds("heartbeat_interval", 60.0),
        heartbeat_timeout=relay.seconds("heartbeat_timeout", 60.0),
        connection_timeout=relay.seconds("connection_timeout", 60.0),
        max_message_size=relay.positive_int("max_message_size", 1048576),
        max_session_duration=relay.seconds("max_session_duration", 0.0),
        origin_read_timeout=_positive_seconds(relay, "origin_read_timeout", 60.0),
        client_body_timeout=relay.seconds("client_body_timeout", 60.0),
        max_body_size=relay.positive_int("max_body_size", 0, minimum=0),
    )
    code_text = relay.raw("origin_gone_close_code")
    origin_gone = 1011
    if code_text:
        if not code_text.isdigit() or int(code_text) not in ORIGIN_GONE_CODES:
            relay.fail("origin_gone_close_code", f"{code_text!r} is not one of 1011, 1012, 1013, 1014")
        origin_gone = int(code_text)

    handshake_timeout = relay.seconds("handshake_timeout", 5.0)
    origin_connect_timeout = relay.seconds("origin_connect_timeout", 3.0)
    if handshake_timeout == 0:
        relay.fail("handshake_timeout", "must be greater than 0")
    if origin_connect_timeout == 0:
        relay.fail("origin_connect_timeout", "must be greater than 0")

    default_selector = _selector_factory(relay, "selector", factories,
                                         relay.raw("selector") or DEFAULT_SELECTOR)
    base_health = _parse_health(relay, HealthConfig())
    base_billing = _parse_billing(relay, BillingSettings())
    http2 = relay.boolean("http2", False)
    selector_sections = _selector_sections(path, parser, factories)
    tls_min_version = relay.choice("tls_min_version", "1.2", tls.MIN_VERSIONS)
    loaded, bundles = {}, {}
    default_certificate = _server_certificate(relay, now, loaded)

    warnings = []
    in_use = {}
    domains, wildcards, catch_all = {}, {}, None
    for name in parser.sections():
        if not name.startswith("domain:"):
            continue
        pattern = _check_domain_name(path, name)
        reader = _Reader(path, name, parser[name])
        factory = _selector_factory(reader, "selector", factories) if reader.raw("selector") else default_selector
        for key in reader.section:
            if key not in DOMAIN_KEYS and key not in factory.options:
                owners = sorted(n for n, f in factories.items() if key in f.options)
                hint = f" (an option of selector {', '.join(owners)}; this domain uses {factory.name})"
                reader.fail(key, "unknown key" + (hint if owners else _did_you_mean(key, DOMAIN_KEYS | set(factory.options))))
        websocket = reader.boolean("websocket", True)
        serve_http = reader.boolean("http", False)
        origins = _parse_origins(reader, "origins")
        if websocket and not origins:
            reader.fail("origins", "at least one origin (host[:port]) is required while websocket = on")
        if serve_http and not origins:
            reader.fail("origins", "at least one origin (host[:port]) is required while http = on")
        if pattern == "*" or _is_address(pattern):
            for key in ("certificate", "private_key"):
                if reader.raw(key):
                    reader.fail(key, "clients never ask for this section by name (SNI): "
                                     "set the default certificate in [relay] instead")
        certificate = _server_certificate(reader, now, loaded)
        domain = DomainConfig(
            name=pattern,
            websocket=websocket,
            origins=origins,
            origin_protocol=reader.choice("origin_protocol", "follow", PROTOCOLS),
            origin_host=_header_value(reader, "origin_host"),
            allowed_origins=_parse_allowed_origins(reader, "allowed_origins"),
            heartbeat_interval=reader.seconds("heartbeat_interval", base.heartbeat_interval),
            heartbeat_timeout=reader.seconds("heartbeat_timeout", base.heartbeat_timeout),
            connection_timeout=reader.seconds("connection_timeout", base.connection_timeout),
            max_message_size=reader.positive_int("max_message_size", base.max_message_size),
            max_session_duration=reader.seconds("max_session_duration", base.max_session_duration),
            max_connections=reader.positive_int("max_connections", 0, minimum=0),
            compression=reader.boolean("compression", False),
            origin_compression=reader.boolean("origin_compression", False),
            selector=factory.name,
            selector_options=_selector_options(reader, factory, selector_sections.get(factory.name)),
            health=_parse_health(reader, base_health),
            certificate=certificate,
            origin_ca=_origin_ca(reader, bundles),
            origin_verify=reader.boolean("origin_verify", True),
            origin_sni=_server_name(reader, "origin_sni"),
            billing=_parse_billing(reader, base_billing),
            http=serve_http,
            origin_read_timeout=_positive_seconds(reader, "origin_read_timeout", base.origin_read_timeout),
            client_body_timeout=reader.seconds("client_body_timeout", base.client_body_timeout),
            max_body_size=reader.positive_int("max_body_size", base.max_body_size, minimum=0),
            http2=reader.boolean("http2", http2),
        )
        if websocket or serve_http:
            in_use[factory.name] = factory
        warnings.extend(_timeout_warnings(f"{path}: [{name}]", domain))
        warnings.extend(_certificate_warnings(path, name, pattern, certificate))
        warnings.extend(_origin_tls_warnings(path, name, reader, domain))
        if pattern == "*":
            catch_all = domain
        elif pattern.startswith("*."):
            wildcards[pattern[2:]] = domain
        else:
            domains[pattern] = domain
    if not (domains or wildcards or catch_all):
        raise ConfigError(path, None, None, "no [domain:NAME] section: the relay would answer every request 404")

    listen = _parse_listen(relay, "listen", RelayConfig.listen)
    has_certificates = bool(loaded)  # the default and every domain's
    tls_listeners = [word for word in listen if tls.parse_tls_listener(split_listener(word)[0]) is not None]
    if tls_listeners and not has_certificates:
        relay.fail("listen", f"{tls_listeners[0]!r} is a TLS listener but no certificate is configured "
                             "(certificate = in [relay] or in a [domain:...])")
    if has_certificates and not tls_listeners:
        warnings.append(f"{path}: [relay] listen: certificates are configured but no listener is TLS "
                        "(ssl:PORT): they are not used")

    trusted_proxies = _parse_proxies(relay, "trusted_proxies")
    proxied = [word for word in listen if proxy_protocol_of(word)]
    if proxied and not trusted_proxies:
        relay.fail("listen", f"{proxied[0]!r}: proxy_protocol=on takes the PROXY header only from "
                             "trusted_proxies, and trusted_proxies is empty")

    workers = relay.count_or_auto("workers", 1)
    if workers == 0:
        relay.fail("workers", "'0' must be 1 or more, or auto")
    workers = workers if workers is not None else max(1, len(os.sched_getaffinity(0)))
    if workers > 1:
        for word in listen:
            if not split_listener(word)[0].lower().startswith(("tcp:", "tcp6:", "ssl:")):
                relay.fail("workers", f"{workers} workers share tcp:, tcp6: and ssl: listeners only "
                                      f"(SO_REUSEPORT), not {word!r}")

    drain_window = relay.seconds("drain_window", RelayConfig.drain_window)
    drain_timeout = relay.seconds("drain_timeout", RelayConfig.drain_timeout)
    if drain_timeout == 0:
        relay.fail("drain_timeout", "must be greater than 0")
    if drain_window > drain_timeout:
        warnings.append(f"{path}: [relay] drain_window ({drain_window:g}) is longer than drain_timeout "
                        f"({drain_timeout:g}): at SIGTERM the sessions left after drain_timeout are closed at once")

    return RelayConfig(
        path=path,
        drain_window=drain_window,
        drain_timeout=drain_timeout,
        max_connections=relay.count_or_auto("max_connections", RelayConfig.max_connections),
        max_connections_per_ip=relay.positive_int(
            "max_connections_per_ip", RelayConfig.max_connections_per_ip, minimum=0),
        handshake_rate_per_ip=relay.rate("handshake_rate_per_ip", RelayConfig.handshake_rate_per_ip),
        handshake_rate=relay.rate("handshake_rate", RelayConfig.handshake_rate),
        max_ping_rate=relay.rate("max_ping_rate", RelayConfig.max_ping_rate),
        max_memory=relay.size("max_memory", RelayConfig.max_memory),
        workers=workers,
        listen=listen,
        handshake_timeout=handshake_timeout,
        origin_connect_timeout=origin_connect_timeout,
        origin_gone_close_code=origin_gone,
        trusted_proxies=trusted_proxies,
        domains=domains,
        wildcards=wildcards,
        catch_all=catch_all,
        warnings=tuple(warnings),
        selectors=MappingProxyType(in_use),
        certificate=default_certificate,
        tls_min_version=tls_min_version,
        accounting=_parse_accounting(path, parser, relay),
        log_interval=0.0 if (relay.raw("log_interval") or "").lower() == "off" else
        relay.seconds("log_interval", RelayConfig.log_interval),
        log_refusals_per_ip=relay.positive_int("log_refusals_per_ip", RelayConfig.log_refusals_per_ip, minimum=0),
        log_summary_interval=_summary_interval(relay),
        http_keepalive_timeout=_positive_seconds(relay, "http_keepalive_timeout", RelayConfig.http_keepalive_timeout),
        origin_keepalive=relay.positive_int("origin_keepalive", RelayConfig.origin_keepalive, minimum=0),
        request_rate=relay.rate("request_rate", RelayConfig.request_rate),
        request_rate_per_ip=relay.rate("request_rate_per_ip", RelayConfig.request_rate_per_ip),
        http2=http2,
        max_concurrent_streams=relay.positive_int("max_concurrent_streams", RelayConfig.max_concurrent_streams),
    )


def _positive_seconds(reader, key, default):
    value = reader.seconds(key, default)
    if value == 0:
        reader.fail(key, "must be greater than 0")
    return value


def _parse_billing(reader, base):
    """billing, billing_cycle, price_tiers (defaults from [relay]) and a domain's own plans."""
    tiers, plans = base.tiers, base.plans
    for key, parse in (("price_tiers", parse_tiers), ("plans", parse_plans)):
        text = reader.raw(key)
        if text:
            try:
                value = parse(text)
            except ValueError as e:
                reader.fail(key, str(e))
            if key == "price_tiers":
                tiers = value
            else:
                plans = value
    return BillingSettings(method=reader.choice("billing", base.method, METHODS),
                           cycle=reader.choice("billing_cycle", base.cycle, CYCLES), tiers=tiers, plans=plans)


def _days(reader, key, default):
    days = reader.seconds(key, default / 86400.0)
    if days < 1:
        reader.fail(key, f"{reader.raw(key)!r} must be at least 1 (days)")
    return days * 86400.0


def _parse_accounting(path, parser, relay):
    """[relay] accounting (a store name or off), geoip_*_db, and the [accounting] section."""
    from wsrelay.accounting import OptionError, installed

    section = _Reader(path, "accounting", parser["accounting"] if parser.has_section("accounting") else {})
    name = (relay.raw("accounting") or "sqlite").lower()
    if name == "off":
        return None
    factories = installed()
    factory = factories.get(name)
    if factory is None:
        relay.fail("accounting", f"{name!r} is not an installed statistics store "
                                 f"(installed: {', '.join(sorted(factories)) or 'none'}; or off)")
    for key in section.section:
        if key not in ACCOUNTING_KEYS and key not in factory.options:
            known = ", ".join(sorted(ACCOUNTING_KEYS | set(factory.options)))
            section.fail(key, f"unknown key (with accounting = {name}: {known})"
                              + _did_you_mean(key, ACCOUNTING_KEYS | set(factory.options)))
    try:
        options = factory.parse_options({k: section.raw(k) for k in section.section if k in factory.options},
                                        os.path.dirname(path))
    except OptionError as e:
        section.fail(e.key, str(e))
    flush_interval = section.seconds("flush_interval", 10.0)
    if not 0 < flush_interval <= 300:
        section.fail("flush_interval", f"{section.raw('flush_interval')!r} must be more than 0 and at most 300")
    node_id = section.raw("node_id") or os.uname().nodename
    if not node_id.isprintable() or len(node_id) > 100:
        section.fail("node_id", f"{node_id!r} is not a printable name of at most 100 characters")
    geo = {}
    for key in ("geoip_city_db", "geoip_asn_db"):
        geo[key] = _pem_path(relay, key)
        if geo[key] is not None:
            from wsrelay.accounting.geo import check_database

            problem = check_database(geo[key])
            if problem:
                relay.fail(key, f"{geo[key]} is not a readable MaxMind database ({problem})")
    admin, token = _parse_admin(section)
    return AccountingSettings(
        store=name, factory=factory, options=options, flush_interval=flush_interval, node_id=node_id,
        admin=admin, admin_token=token, metrics_public=section.boolean("metrics_public", False),
        retention_5m=_days(section, "retention_5m", 93 * 86400.0),
        retention_1h=_days(section, "retention_1h", 186 * 86400.0),
        retention_1d=_days(section, "retention_1d", 366 * 86400.0),
        **geo)


def _summary_interval(relay):
    interval = relay.seconds("log_summary_interval", RelayConfig.log_summary_interval)
    if interval == 0:
        relay.fail("log_summary_interval", "must be greater than 0")
    return interval


def _parse_admin(section):
    """[accounting] admin (one server endpoint string) and admin_token_file (required with it)."""
    admin = section.raw("admin") or None
    token_file = _pem_path(section, "admin_token_file")
    if admin is None:
        if token_file is not None:
            section.fail("admin_token_file", "set, but admin is not (no admin API listens)")
        return None, None
    if len(admin.split()) != 1:
        section.fail("admin", f"{admin!r} must be one server endpoint string")
    try:
        serverFromString(None, admin)  # parsing only; nothing listens yet
    except Exception as e:  # the parser raises ValueError, KeyError, ...
        section.fail("admin", f"{admin!r} is not a Twisted server endpoint string ({e})")
    if token_file is None:
        section.fail("admin_token_file", "required with admin: a file holding the API's bearer token")
    try:
        with open(token_file, "rb") as f:
            token = f.read().strip()
    except OSError as e:
        section.fail("admin_token_file", f"cannot read {token_file} ({e.strerror})")
    if len(token) < MIN_TOKEN or any(b < 0x21 or b > 0x7E for b in token):
        section.fail("admin_token_file", f"{token_file} must hold one token of at least {MIN_TOKEN} "
                                         f"printable ASCII characters, no spaces")
    return admin, token


def _is_address(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _header_value(reader, key):
    value = reader.raw(key)
    if not value:
        return None
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in value):
        reader.fail(key, f"{value!r} is not a valid Host header value")
    return value


def load_config(path, now=None):
    """Read and parse a config file; a missing or unreadable file is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, None, None, f"cannot read the file ({e.strerror})")
    except UnicodeDecodeError:
        raise ConfigError(path, None, None, "the file is not UTF-8 text")
    return parse_config(text, path, now)
