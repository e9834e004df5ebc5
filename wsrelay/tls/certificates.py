"""
Certificates and keys as checked values: PEM files read once and checked (a
missing, mismatched, expired or not yet valid one is a CertificateError
naming the key and file), the names a certificate covers, expiry against an
injected `now`, and the TLS policy's constants. No sockets here.
"""

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from twisted.logger import Logger

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
