"""
How an origin is reached: the client endpoint for one origin, TCP (IPv4, IPv6
or a name to resolve) or TLS on top with the name it is asked for (SNI).

Both the dialling of a handshake (origin.py) and the active health checks
(health.py) use it; it imports neither, so they need not import each other.
"""

import ipaddress

from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS


def origin_endpoint(reactor, origin, scheme, timeout, sni=None, tls=None):
    """
    A client endpoint for one origin; TLS when the scheme is https, asking
    for and checking the name `sni` (else the origin's host) with `tls`, a
    wsrelay.tls.OriginTLS (else the system trust store).
    """
    port = origin.port_for(scheme)
    try:
        address = ipaddress.ip_address(origin.host)
    except ValueError:
        endpoint = HostnameEndpoint(reactor, origin.host, port, timeout=timeout)
    else:
        kind = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
        endpoint = kind(reactor, origin.host, port, timeout=timeout)
    if scheme == "https":
        name = sni or origin.host
        if tls is None:
            from twisted.internet.ssl import optionsForClientTLS

            creator = optionsForClientTLS(name)
        else:
            creator = tls.connection_creator(name)
        endpoint = wrapClientTLS(creator, endpoint)
    return endpoint
