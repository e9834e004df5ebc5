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

The package: certificates.py (PEM files to checked values, expiry), edge.py
(SNI, the listener form, contexts towards clients), origin.py (TLS towards
origins). Everything is imported here, so `wsrelay.tls.NAME` works as before.
"""

from wsrelay.tls.certificates import (  # noqa: F401
    CertificateError, EDGE_CIPHERS, EDGE_PROTOCOLS, EXPIRY_CHECK_INTERVAL, EXPIRY_WARNING, Expiry,
    HTTP2_PROTOCOLS, MIN_VERSIONS, OP_NO_RENEGOTIATION, ORIGIN_PROTOCOLS, SESSION_TIMEOUT,
    ServerCertificate, TLSUnavailable, covered, expiring, load_ca_bundle, load_server_certificate,
    names_of, require_service_identity, utc,
)
from wsrelay.tls.edge import (  # noqa: F401
    CertificateMap, ServerTLS, TLSListener, alpn_by_name, edge_context, misdirected,
    misdirected_request, parse_tls_listener, policy_context, select_protocol, server_context,
    server_name_of,
)
from wsrelay.tls.origin import (  # noqa: F401
    OriginCertificateError, OriginTLS, check_server_name, name_problem, origin_server_name,
    tls_handshake_problem, verify_problem,
)
