"""
TLS towards clients: which certificate a server name (SNI) selects
(CertificateMap), whether the Host agrees with it (misdirected: 421), the
`ssl:PORT` listener form, and the pyOpenSSL contexts with one policy for
every certificate (ServerTLS, choosing the context by SNI, ALPN h2/http1.1).
"""

import ipaddress
import secrets
from dataclasses import dataclass, field
from types import MappingProxyType

from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from wsrelay.tls.certificates import (
    EDGE_CIPHERS, EDGE_PROTOCOLS, HTTP2_PROTOCOLS, OP_NO_RENEGOTIATION, SESSION_TIMEOUT, ServerCertificate,
)

log = Logger(namespace="wsrelay.tls")


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
    if getattr(transport, "is_http2_stream", False):  # wsrelay.edge.h2stream: the name the stream is held to
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
