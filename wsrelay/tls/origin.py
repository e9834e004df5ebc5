"""
TLS towards origins: the name an origin is asked for (SNI) and checked
against, OriginTLS connecting with the domain's trust (origin_ca or the
system store) and checking chain and name with service_identity, and the
one-line reason a refused certificate or a failed handshake is logged with.
"""

import ipaddress

from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsrelay.hosts import normalize_host
from wsrelay.tls.certificates import ORIGIN_PROTOCOLS, _not_after, _not_before, names_of, utc
from wsrelay.tls.edge import policy_context

log = Logger(namespace="wsrelay.tls")


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
