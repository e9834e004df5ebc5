"""
The one place an origin is chosen for a handshake. A later selector plugin
replaces OriginRotation; callers only use `pick`.
"""


class OriginRotation:
    """Round-robin over each domain's origins, remembering where each left off."""

    def __init__(self):
        self._next = {}

    def pick(self, domain):
        """The origins to try, in order: the chosen one, then one to retry on."""
        origins = domain.origins
        start = self._next.get(domain.name, 0) % len(origins)
        self._next[domain.name] = start + 1
        return [origins[(start + k) % len(origins)] for k in range(min(2, len(origins)))]
