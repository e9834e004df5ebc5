"""
TLS on both legs.

The functional core, without sockets: PEM files turned into checked values
(load_server_certificate, load_ca_bundle), the certificate a TLS server name
selects (CertificateMap), the SNI/Host agreement (misdirected), expiry
(expiring, taking `now`), and the `ssl:PORT` listener form
(parse_tls_listener).

The shell: pyOpenSSL contexts with one policy for every certificate
(ServerTLS, picking the context by SNI), and OriginTLS, which connects to an
origin with SNI and checks its chain and name with service_identity, turning
a refusal into an OriginCertificateError that says why.

twisted.internet.ssl and service_identity are imported where they are used,
so that a missing service_identity is reported by require_service_identity,
not by an import error deep in Twisted.
"""

import datetime
import ipaddress
import secrets
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator, ISSLTransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsrelay.hosts import normalize_host

log = Logger(namespace="wsrelay.tls")

MIN_VERSIONS = ("1.2", "1.3")
EXPIRY_WARNING = 14 * 86400     # a certificate expiring this soon is warned about
EXPIRY_CHECK_INTERVAL = 86400   # and again once a day
OP_NO_RENEGOTIATION = 0x40000000  # SSL_OP_NO_RENEGOTIATION, for pyOpenSSL without the constant
# TLS 1.2 suites offered to clients: forward secret and AEAD only (Mozilla's
# "intermediate" profile without DHE, which Twisted leaves off without DH
# parameters). TLS 1.3 suites are OpenSSL's, all AEAD. Origins get Twisted's
# wider default list: an internal origin may be older than any browser.
EDGE_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# What the relay speaks after a TLS handshake, in its order of preference
# (RFC 7301 ALPN). Browsers offer http/1.1 on every wss:// connection, most
# HTTP clients "h2, http/1.1"; h2 joins the list once HTTP/2 is served.
EDGE_PROTOCOLS = (b"http/1.1",)
HTTP2_PROTOCOLS = (b"h2", b"http/1.1")   # where http2 = on (for the name the client asked for)
ORIGIN_PROTOCOLS = (b"http/1.1",)   # offered to origins: the origin leg speaks HTTP/1.1
SESSION_TIMEOUT = 300  # seconds a TLS session may be resumed (OpenSSL's default, nginx's ssl_session_timeout)


class TLSUnavailable(Exception):
    """A package the relay's TLS needs is missing; str() tells the operator what to install."""


def require_service_identity():
    """Raise TLSUnavailable unless service_identity (host name checks of origins) is importable."""
    try:
        import service_identity  # noqa: F401
        from service_identity.cryptography import verify_certificate_hostname  # noqa: F401
    except ImportError as e:
        raise TLSUnavailable(
            f"the Python package service_identity is not installed ({e}); without it origin "
            "certificates cannot be checked against their host names: pip install service-identity")


# --- certificates and keys ------------------------------------------------------

class CertificateError(Exception):
    """A PEM file the relay cannot use: `key` is the config key that named it, `path` the file."""

    def __init__(self, key, path, message):
        super().__init__(f"{path}: {message}")
        self.key, self.path, self.message = key, path, message


@dataclass(frozen=True, eq=False)
class ServerCertificate:
    """A certificate chain (leaf first, as in its file) with the leaf's private key, checked."""

    certificate_path: str
    key_path: str
    chain: tuple
    key: object

    @property
    def leaf(self):
        return self.chain[0]

    @property
    def not_after(self):
        return _not_after(self.leaf)

    @property
    def names(self):
        """The DNS names and IP addresses of the leaf's subjectAltName, lower case."""
        return names_of(self.leaf)

    def covers(self, name):
        """Whether the leaf names `name` (exactly, or by a one-label `*.` wildcard)."""
        return covered(self.names, name)


def covered(names, name):
    """Whether certificate `names` (names_of) cover `name`, exactly or by a one-label `*.` wildcard."""
    name = name.lower().rstrip(".")
    for pattern in names:
        if pattern == name:
            return True
        if pattern.startswith("*.") and not name.startswith("*."):
            head, dot, parent = name.partition(".")
            if dot and head and parent == pattern[2:]:
                return True
    return False


def names_of(certificate):
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(n.lower() for n in san.get_values_for_type(x509.DNSName)) + tuple(
        str(ip) for ip in san.get_values_for_type(x509.IPAddress))


def _not_after(certificate):
    return certificate.not_valid_after_utc.timestamp()


def _not_before(certificate):
    return certificate.not_valid_before_utc.timestamp()


def utc(seconds):
    """An epoch time as the text used in messages: 2026-03-01 12:00 UTC."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _read(key, path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CertificateError(key, path, "no such file")
    except IsADirectoryError:
        raise CertificateError(key, path, "is a directory, not a PEM file")
    except OSError as e:
        raise CertificateError(key, path, f"cannot be read ({e.strerror})")


def _certificates(key, path, data):
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise CertificateError(key, path, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")


def _spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_server_certificate(certificate_path, key_path, now):
    """
    Read and check a certificate chain and its private key (they may share
    one file): both readable PEM, the key unencrypted and matching the first
    certificate, which must be valid at `now`. Raises CertificateError.
    """
    data = _read("certificate", certificate_path)
    chain = _certificates("certificate", certificate_path, data)
    key_data = data if key_path == certificate_path else _read("private_key", key_path)
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise CertificateError("private_key", key_path, "the private key is encrypted (passphrases are not supported)")
    except (ValueError, UnsupportedAlgorithm):
        more = " (set private_key)" if key_path == certificate_path else ""
        raise CertificateError("private_key", key_path, f"holds no usable PEM private key{more}")
    leaf = chain[0]
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise CertificateError("private_key", key_path,
                               f"does not match the certificate in {certificate_path} ({leaf.subject.rfc4514_string()})")
    if _not_after(leaf) <= now:
        raise CertificateError("certificate", certificate_path,
                               f"the certificate expired on {utc(_not_after(leaf))}")
    if _not_before(leaf) > now:
        raise CertificateError("certificate", certificate_path,
                               f"the certificate is not valid before {utc(_not_before(leaf))}")
    return ServerCertificate(certificate_path, key_path, chain, key)


def load_ca_bundle(path):
    """The certificates of a PEM bundle, to trust instead of the system store. Raises CertificateError."""
    return _certificates("origin_ca", path, _read("origin_ca", path))


@dataclass(frozen=True)
class Expiry:
    """A server certificate that has expired (`left` <= 0) or expires within the warning period."""

    where: str        # "[relay]" or "[domain:NAME]"
    path: str
    not_after: float
    left: float       # seconds from `now`

    def message(self):
        if self.left <= 0:
            return f"{self.where} certificate {self.path} has expired ({utc(self.not_after)}): clients refuse it"
        days = self.left / 86400
        return f"{self.where} certificate {self.path} expires in {days:.1f} days ({utc(self.not_after)}): renew it"


def expiring(certificates, now, within=EXPIRY_WARNING):
    """(where, ServerCertificate) pairs -> an Expiry for each that expires before now + within."""
    found = []
    for where, certificate in certificates:
        left = certificate.not_after - now
        if left < within:
            found.append(Expiry(where, certificate.certificate_path, certificate.not_after, left))
    return found


# --- which certificate a server name gets, and whether Host agrees --------------

@dataclass(frozen=True)
class CertificateMap:
    """
    SNI -> certificate: an exact name's own, else its `*.parent` domain's,
    else the [relay] default (also for clients sending no SNI), else None
    (the handshake fails).
    """

    exact: object = field(default_factory=lambda: MappingProxyType({}))
    wildcards: object = field(default_factory=lambda: MappingProxyType({}))   # parent name -> certificate
    default: ServerCertificate | None = None

    @classmethod
    def from_config(cls, config):
        exact, wildcards = {}, {}
        for domain in config.each_domain():
            if domain.certificate is None:
                continue
            if domain.name.startswith("*."):
                wildcards[domain.name[2:]] = domain.certificate
            else:
                exact[domain.name] = domain.certificate
        return cls(MappingProxyType(exact), MappingProxyType(wildcards), config.certificate)

    def select(self, server_name):
        if server_name:
            name = server_name.lower().rstrip(".")
            found = self.exact.get(name)
            if found is None:
                head, dot, parent = name.partition(".")
                if dot and head:
                    found = self.wildcards.get(parent)
            if found is not None:
                return found
        return self.default

    def all(self):
        """Every distinct certificate, default first."""
        seen = [] if self.default is None else [self.default]
        for certificate in (*self.exact.values(), *self.wildcards.values()):
            if certificate not in seen:
                seen.append(certificate)
        return seen


def misdirected(config, server_name, domain):
    """
    Why a request served by `domain` (from its Host) may not use a TLS
    connection opened for `server_name` (SNI): a reason for 421, or None.
    Without SNI (plain listeners, clients sending none) anything goes.
    """
    if not server_name:
        return None
    if config.domain_for(server_name) is domain:
        return None
    return f"this connection was opened for {server_name} (TLS SNI); open another one for this Host"


def server_name_of(transport):
    """The SNI a client sent on a TLS transport, as lower-case text; None otherwise."""
    if getattr(transport, "is_http2_stream", False):  # wsrelay.h2stream: the name the stream is held to
        name = transport.server_name
        return name.decode("ascii", "replace").lower() if name else None
    if not ISSLTransport.providedBy(transport):
        return None
    get = getattr(transport.getHandle(), "get_servername", None)
    name = get() if get is not None else None
    return name.decode("ascii", "replace").lower() if name else None


def misdirected_request(config, transport, domain):
    """misdirected() for a client transport: the reason for 421, or None."""
    return misdirected(config, server_name_of(transport), domain)


# --- the listener string ---------------------------------------------------------

_CERTIFICATE_ARGS = ("privateKey", "certKey", "extraCertChain", "sslmethod", "dhParameters")


@dataclass(frozen=True)
class TLSListener:
    port: int
    interface: str = ""
    backlog: int | None = None


def _split(description):
    r"""Split an endpoint string on ':' (a '\:' is a literal colon)."""
    parts, current, chars = [], [], iter(description)
    for c in chars:
        if c == "\\":
            current.append(next(chars, ""))
        elif c == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return parts


def parse_tls_listener(description):
    """
    `ssl:PORT[:interface=ADDR][:backlog=N]` -> TLSListener; another kind of
    endpoint string -> None. The certificates come from the config, never from
    the string: certificate options and Twisted's `tls:` form are refused
    (ValueError), so that one policy covers every TLS listener.
    """
    kind, _, rest = description.partition(":")
    kind = kind.lower()
    if kind == "tls":
        raise ValueError("tls:... is Twisted's own directory-of-PEMs listener; the relay's TLS "
                         "listener is ssl:PORT[:interface=ADDR], with certificate = in the config")
    if kind != "ssl":
        return None
    positional, named = [], {}
    for part in _split(rest):
        key, eq, value = part.partition("=")
        if eq:
            if key in _CERTIFICATE_ARGS:
                raise ValueError(f"{key}= is not taken here: certificates are set with the certificate "
                                 "and private_key keys of [relay] and [domain:...]")
            if key not in ("port", "interface", "backlog") or key in named:
                raise ValueError(f"unknown or repeated option {key}= (ssl:PORT[:interface=ADDR][:backlog=N])")
            named[key] = value
        else:
            positional.append(part)
    if positional and "port" not in named:
        named["port"] = positional.pop(0)
    if positional:
        raise ValueError("ssl:PORT takes one positional argument, the port")
    port = named.get("port", "")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"port {port!r} is not 0-65535")
    interface = named.get("interface", "")
    if interface:
        try:
            ipaddress.ip_address(interface)
        except ValueError:
            raise ValueError(f"interface {interface!r} is not an IP address")
    backlog = named.get("backlog")
    if backlog is not None and (not backlog.isdigit() or int(backlog) < 1):
        raise ValueError(f"backlog {backlog!r} is not a whole number above 0")
    return TLSListener(int(port), interface, None if backlog is None else int(backlog))


# --- contexts: the same policy for every certificate ----------------------------

def policy_context(min_version="1.2", ciphers=EDGE_CIPHERS):
    """
    A fresh pyOpenSSL context with the relay's TLS policy and no certificate:
    TLS 1.2 or 1.3 at least, `ciphers` (an OpenSSL cipher string; None:
    Twisted's default list) in the server's order of preference, no
    compression, no renegotiation, no session tickets.
    """
    from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion

    minimum = TLSVersion.TLSv1_3 if min_version == "1.3" else TLSVersion.TLSv1_2
    acceptable = None if ciphers is None else AcceptableCiphers.fromOpenSSLCipherString(ciphers)
    context = CertificateOptions(raiseMinimumTo=minimum, acceptableCiphers=acceptable).getContext()
    context.set_options(getattr(SSL, "OP_NO_RENEGOTIATION", OP_NO_RENEGOTIATION))
    context.set_min_proto_version(SSL.TLS1_3_VERSION if min_version == "1.3" else SSL.TLS1_2_VERSION)
    return context


def select_protocol(offered, spoken=EDGE_PROTOCOLS):
    """
    ALPN: the first protocol in `spoken` (the relay's preference) that the
    client `offered`, or None when they share none; then the handshake goes
    on without a protocol (RFC 7301 section 3.2 allows it, and clients that
    offered http/1.1 among others still speak it).
    """
    for protocol in spoken:
        if protocol in offered:
            return protocol
    return None


def _alpn_select(connection, offered):
    # Twisted's CertificateOptions installs a callback answering b"" when it has
    # no acceptableProtocols, which OpenSSL 3 turns into an internal_error alert
    # for every client offering ALPN (every browser): this one replaces it.
    return select_protocol(offered) or SSL.NO_OVERLAPPING_PROTOCOLS


def alpn_by_name(http2_for):
    """
    An ALPN select callback offering h2 first to clients whose SNI names a
    domain with http2 = on (`http2_for(server name or None)`), http/1.1 to
    the others. OpenSSL runs it after the SNI callback, so the name is known.
    """
    def select(connection, offered):
        try:
            name = connection.get_servername()
            spoken = HTTP2_PROTOCOLS if http2_for(name.decode("ascii", "replace") if name else None) \
                else EDGE_PROTOCOLS
        except Exception:  # an exception inside an OpenSSL callback would be lost
            log.failure("choosing an ALPN protocol failed")
            spoken = EDGE_PROTOCOLS
        return select_protocol(offered, spoken) or SSL.NO_OVERLAPPING_PROTOCOLS

    return select


def edge_context(context, session_id, alpn=None):
    """
    Give a server context what every context of a TLS listener must share,
    the one the SNI callback switches to included (OpenSSL reads the ALPN
    callback and the session settings from the context in use): ALPN, and
    resumption of TLS sessions from a server-side cache under one session ID
    context, so that a browser reconnecting resumes instead of doing a full
    handshake. Session tickets stay off (no long-lived ticket key to protect).
    """
    context.set_alpn_select_callback(alpn or _alpn_select)
    context.set_session_id(session_id)
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    context.set_timeout(SESSION_TIMEOUT)
    return context


def _use_certificate(context, certificate):
    try:  # pyOpenSSL >= 24.3 takes cryptography's objects (and deprecates its own)
        context.use_certificate(certificate.leaf)
        for extra in certificate.chain[1:]:
            context.add_extra_chain_cert(extra)
        context.use_privatekey(certificate.key)
    except TypeError:
        context.use_certificate(crypto.X509.from_cryptography(certificate.leaf))
        for extra in certificate.chain[1:]:
            context.add_extra_chain_cert(crypto.X509.from_cryptography(extra))
        context.use_privatekey(crypto.PKey.from_cryptography_key(certificate.key))
    context.check_privatekey()


def server_context(certificate, min_version="1.2"):
    """A policy_context serving `certificate` and its chain."""
    context = policy_context(min_version)
    _use_certificate(context, certificate)
    return context


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The TLS side of every TLS listener: one context per certificate, all with
    the same policy (pyOpenSSL's set_context on SNI swaps only the certificate,
    so the policy is on each), chosen by the client's server name.
    """

    def __init__(self, certificates, min_version="1.2", http2_for=None):
        self.certificates = certificates
        session_id = secrets.token_hex(8).encode("ascii")
        alpn = alpn_by_name(http2_for) if http2_for is not None else None
        self.contexts = {c: edge_context(server_context(c, min_version), session_id, alpn)
                         for c in certificates.all()}
        default = certificates.default
        self.initial = self.contexts[default] if default is not None \
            else edge_context(policy_context(min_version), session_id, alpn)
        self.initial.set_tlsext_servername_callback(self._server_name)

    def adopt(self, other):
        """
        Serve `other`'s certificates and policy from now on (a reload): the
        listeners keep this object, new TLS connections get the new contexts,
        connections already made keep theirs.
        """
        self.certificates, self.contexts, self.initial = other.certificates, other.contexts, other.initial
        self.initial.set_tlsext_servername_callback(self._server_name)

    def context_for(self, server_name):
        """The context SNI `server_name` (text or None) gets; None: no certificate, the handshake fails."""
        certificate = self.certificates.select(server_name)
        return None if certificate is None else self.contexts[certificate]

    def _server_name(self, connection):
        try:
            name = connection.get_servername()
            context = self.context_for(name.decode("ascii", "replace") if name else None)
            if context is not None and context is not self.initial:
                connection.set_context(context)
        except Exception:
            log.failure("choosing a certificate by SNI failed")

    def serverConnectionForTLS(self, protocol):
        return SSL.Connection(self.initial, None)


# --- to the origin -----------------------------------------------------------------

class OriginCertificateError(Exception):
    """The origin's certificate was refused; str() says why (expired, wrong name, unknown CA ...)."""


# X509_V_ERR_* codes (stable across OpenSSL versions) worth a plain-words reason.
_VERIFY_ERRORS = {
    2: "unknown CA (the issuer's certificate is not trusted)",
    7: "bad certificate signature",
    9: "the certificate is not valid yet",
    10: "the certificate has expired",
    18: "unknown CA (a self-signed certificate)",
    19: "unknown CA (a self-signed certificate in the chain)",
    20: "unknown CA (unable to get the local issuer certificate)",
    21: "unknown CA (unable to verify the first certificate; a missing intermediate?)",
    23: "the certificate is revoked",
    24: "an invalid CA certificate in the chain",
    26: "the certificate is not meant for TLS servers",
}


def verify_problem(code, certificate, depth):
    """Plain words for an OpenSSL verification error on `certificate` (cryptography) at `depth`."""
    why = _VERIFY_ERRORS.get(code, f"verification error {code}")
    subject = certificate.subject.rfc4514_string() or "(no subject)"
    which = "the origin's certificate" if depth == 0 else f"chain certificate {depth}"
    if code in (9, 10):
        when = _not_before(certificate) if code == 9 else _not_after(certificate)
        why += f" ({'not before' if code == 9 else 'not after'} {utc(when)})"
    return f"{why}: {which}, {subject}"


def name_problem(certificate, name):
    """Why `certificate` (cryptography) does not serve `name`, per service_identity; None if it does."""
    import service_identity
    from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address

    try:
        if _is_ip(name):
            verify_certificate_ip_address(certificate, name)
        else:
            verify_certificate_hostname(certificate, name)
    except (service_identity.VerificationError, service_identity.CertificateError):
        names = ", ".join(names_of(certificate)) or "no subjectAltName"
        return f"wrong name: the certificate is not for {name} (it names {names})"
    return None


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_server_name(domain, host_header):
    """The name an origin is asked for (SNI) and checked against: origin_sni, else the Host it is sent."""
    return domain.origin_sni or normalize_host(host_header)


def check_server_name(domain, origin):
    """The same for the active health checks, which have no client Host: origin_sni, origin_host, the domain, the origin."""
    if domain.origin_sni:
        return domain.origin_sni
    if domain.origin_host:
        return normalize_host(domain.origin_host)
    if domain.name != "*" and not domain.name.startswith("*."):
        return domain.name
    return origin.host


class OriginTLS:
    """
    One domain's TLS towards its origins: a context trusting origin_ca (or the
    system store), TLS 1.2 at least, no renegotiation; connection_creator()
    gives the creator for one connection to one server name.
    """

    def __init__(self, ca_certificates=None, verify=True):
        self.verify = verify
        self.context = policy_context("1.2", ciphers=None)
        self.context.set_alpn_protos(list(ORIGIN_PROTOCOLS))
        if verify:
            if ca_certificates is None:
                self.context.set_default_verify_paths()
            else:
                store = self.context.get_cert_store()
                for certificate in ca_certificates:
                    store.add_cert(crypto.X509.from_cryptography(certificate))
        self._verify_mode = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT

    @classmethod
    def for_domain(cls, domain):
        return cls(domain.origin_ca, domain.origin_verify)

    def connection_creator(self, server_name):
        return _OriginConnection(self, server_name)


@implementer(IOpenSSLClientConnectionCreator)
class _OriginConnection:
    def __init__(self, tls, server_name):
        self.tls = tls
        self.server_name = server_name

    def clientConnectionForTLS(self, tls_protocol):
        connection = SSL.Connection(self.tls.context, None)
        name = self.server_name
        if name and not _is_ip(name):  # RFC 6066: no addresses in SNI
            try:
                connection.set_tlsext_host_name(name.encode("ascii"))
            except UnicodeEncodeError:
                connection.set_tlsext_host_name(name.encode("idna"))
        if self.tls.verify:
            connection.set_verify(self.tls._verify_mode, _verifier(tls_protocol, name))
        return connection


def _verifier(tls_protocol, name):
    """
    An OpenSSL verify callback: the chain as OpenSSL judged it, then the
    leaf's name by service_identity. A refusal reaches the origin leg's
    connectionLost as an OriginCertificateError saying why.
    """
    held = [tls_protocol]   # dropped once judged, so no cycle outlives the handshake

    def refuse(why):
        if held:
            held.pop().failVerification(Failure(OriginCertificateError(why)))
        return False

    def callback(connection, certificate, code, depth, ok):
        try:
            if not ok:
                return refuse(verify_problem(code, certificate.to_cryptography(), depth))
            if depth == 0:
                problem = name_problem(certificate.to_cryptography(), name) if name else "no name to check it against"
                if problem:
                    return refuse(problem)
                held.clear()
            return True
        except Exception:  # an exception inside an OpenSSL callback would be lost
            log.failure("checking an origin certificate failed")
            return refuse("the certificate could not be checked")

    return callback


def tls_handshake_problem(failure):
    """Plain words for a TLS error (an SSL.Error) that ended a connection, or None if it is not one."""
    if failure.check(SSL.Error):
        args = failure.value.args
        entries = args[0] if args and isinstance(args[0], list) else ()
        reasons = [e[2] for e in entries if isinstance(e, tuple) and len(e) == 3 and e[2]]
        return "TLS handshake failed: " + ("; ".join(reasons) or str(failure.value) or "connection closed")
    return None
