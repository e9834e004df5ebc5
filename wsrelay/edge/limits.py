"""
Admission limits, checked once per handshake before any origin is dialled:
live sessions (per process, per domain, per client address) and handshake
rates (per process, per client address). Plain HTTP requests in flight count
as live sessions (they hold descriptors the same way) and have request rates
of their own (request_rate, request_rate_per_ip). Pure bookkeeping: the time is passed
in, nothing here touches a socket. All counts are per relay process.
"""

import math
from dataclasses import dataclass

PRUNE_EVERY = 60.0  # seconds between sweeps of idle per-address buckets
AUTO_RESERVE = 64   # descriptors kept for listeners, logs, origin dials in progress, health checks


def auto_max_connections(open_files_limit):
    """max_connections = auto: as many sessions as the open-files limit holds, two descriptors each."""
    return max(1, (open_files_limit - AUTO_RESERVE) // 2)


@dataclass(frozen=True)
class Refusal:
    status: int          # 503 (the relay is full) or 429 (this client asks too much)
    reason: str
    retry_after: int     # whole seconds, at least 1


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; a handshake takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, now, burst=None):
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.stamp = now

    def _refill(self, now):
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def ready(self, now):
        """Whether a token is there (none is taken)."""
        self._refill(now)
        return self.tokens >= 1

    def take(self, now):
        """True and one token less, or False when empty."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait(self, now):
        """Seconds until a token is there."""
        self._refill(now)
        return max(0.0, (1 - self.tokens) / self.rate)

    def full(self, now):
        self._refill(now)
        return self.tokens >= self.burst


class Ticket:
    """One admitted session's place in the counts; release() exactly once."""

    def __init__(self, limits, address, domain):
        self._limits, self.address, self.domain = limits, address, domain

    def release(self):
        limits, self._limits = self._limits, None
        if limits is not None:
            limits._release(self)


class Limits:
    """The counters and buckets of one process, for one config's limits."""

    def __init__(self, config, open_files_limit):
        self.total = 0
        self.per_domain = {}
        self.per_address = {}
        self._pruned = None
        self.configure(config, open_files_limit)

    def configure(self, config, open_files_limit):
        """Take the limits of a (re)loaded config; counts of live sessions carry over."""
        maximum = config.max_connections
        self.max_connections = auto_max_connections(open_files_limit) if maximum is None else maximum
        self.per_ip = config.max_connections_per_ip
        if (config.handshake_rate, config.handshake_rate_per_ip) != (getattr(self, "rate", None),
                                                                     getattr(self, "rate_per_ip", None)):
            self._rate, self._rates = None, {}  # new rates start with full buckets
        self.rate = config.handshake_rate
        self.rate_per_ip = config.handshake_rate_per_ip
        requests = (config.request_rate, config.request_rate_per_ip)
        if requests != getattr(self, "_request_rates", None):
            self._request_rates = requests
            self._request_rate, self._request_rates_per_ip = None, {}

    def admit_request(self, address, domain, now):
        """A Ticket for a plain HTTP request (released when it ends), or a Refusal."""
        self._prune(now)
        refused = self._full(address, domain)
        if refused is not None:
            return refused
        rate, rate_per_ip = self._request_rates
        bucket = None
        if rate_per_ip:
            bucket = self._request_rates_per_ip.get(address)
            if bucket is None:
                bucket = self._request_rates_per_ip[address] = TokenBucket(rate_per_ip, now)
            if not bucket.ready(now):
                return Refusal(429, "too many requests from your address", _seconds(bucket.wait(now)))
        if rate:
            if self._request_rate is None:
                self._request_rate = TokenBucket(rate, now)
            if not self._request_rate.take(now):
                return Refusal(503, "the relay is taking too many requests", _seconds(self._request_rate.wait(now)))
        if bucket is not None:
            bucket.take(now)
        return self._ticket(address, domain)

    def _full(self, address, domain):
        if self.max_connections and self.total >= self.max_connections:
            return Refusal(503, "the relay is at its connection limit", 5)
        if domain.max_connections and self.per_domain.get(domain.name, 0) >= domain.max_connections:
            return Refusal(503, "this domain is at its connection limit", 5)
        if self.per_ip and self.per_address.get(address, 0) >= self.per_ip:
            return Refusal(429, "too many connections from your address", 5)
        return None

    def _ticket(self, address, domain):
        self.total += 1
        self.per_domain[domain.name] = self.per_domain.get(domain.name, 0) + 1
        self.per_address[address] = self.per_address.get(address, 0) + 1
        return Ticket(self, address, domain.name)

    def admit(self, address, domain, now):
        """A Ticket for a handshake from `address` to `domain` (a DomainConfig), or a Refusal."""
        self._prune(now)
        refused = self._full(address, domain)
        if refused is not None:
            return refused
        # A refused handshake takes no token from either bucket.
        bucket = None
        if self.rate_per_ip:
            bucket = self._rates.get(address)
            if bucket is None:
                bucket = self._rates[address] = TokenBucket(self.rate_per_ip, now)
            if not bucket.ready(now):
                return Refusal(429, "too many handshakes from your address", _seconds(bucket.wait(now)))
        if self.rate:
            if self._rate is None:
                self._rate = TokenBucket(self.rate, now)
            if not self._rate.take(now):
                return Refusal(503, "the relay is taking too many handshakes", _seconds(self._rate.wait(now)))
        if bucket is not None:
            bucket.take(now)
        return self._ticket(address, domain)

    def _release(self, ticket):
        self.total -= 1
        _decrement(self.per_domain, ticket.domain)
        _decrement(self.per_address, ticket.address)

    def _prune(self, now):
        """Forget per-address buckets that are full again (they would behave as new ones)."""
        if self._pruned is None:
            self._pruned = now
        if now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        for rates in (self._rates, self._request_rates_per_ip):
            for address in [a for a, b in rates.items() if b.full(now)]:
                del rates[address]


def _decrement(counts, key):
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def _seconds(wait):
    return max(1, math.ceil(wait))


class PingLimit:
    """A peer may send `rate` pings per second (a burst of one second's worth); 0: any number."""

    def __init__(self, rate, now):
        self._bucket = TokenBucket(rate, now) if rate else None

    def allow(self, now):
        return self._bucket is None or self._bucket.take(now)
