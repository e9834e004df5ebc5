"""
Host names as the relay compares them: a Host header or SNI value made into a
bare lower-case name, and the lookup of the [domain:...] section serving one.

It sits below both the configuration and TLS (which each need it) so that
neither has to import the other for it.
"""


def normalize_host(host):
    """Host header value -> lower-case name without port or trailing dot."""
    if host is None:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        return host[1:end]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    return host or None


def domain_for(domains, wildcards, catch_all, host):
    """
    The value serving `host`: an exact name in `domains` first, then a wildcard
    for exactly one more label (`wildcards` keyed by the parent name), then
    `catch_all`; None when the host is empty or malformed.
    """
    name = normalize_host(host)
    if name is None:
        return None
    found = domains.get(name)
    if found is not None:
        return found
    head, dot, parent = name.partition(".")
    if dot and head:
        found = wildcards.get(parent)
        if found is not None:
            return found
    return catch_all


def each_domain(domains, wildcards, catch_all):
    """Every value: exact names, wildcards, then the catch-all."""
    yield from domains.values()
    yield from wildcards.values()
    if catch_all is not None:
        yield catch_all
