"""
The types a config key is declared with: how its text becomes a value, and
the one-line message when it cannot.

A Kind's parse(section, key, default) reads section.raw(key) and returns the
value (the default when the key is absent or empty) or calls section.fail,
which raises ConfigError naming file, section and key. The schema declares
every key with one of these; the docs' "type" words come from `words`.
"""

import ipaddress
import os

from twisted.internet.endpoints import serverFromString

from wsrelay import tls
from wsrelay.accounting.billing import parse_plans, parse_tiers
from wsrelay.config.values import MAX_WEIGHT, ORIGIN_GONE_CODES, Origin, split_listener

ON = ("on", "yes", "true", "1")
OFF = ("off", "no", "false", "0")


class Kind:
    """A value type; subclasses parse. `words` say in the docs what is written."""

    words = "text"

    def parse(self, section, key, default):
        value = section.raw(key)
        return default if value is None or value == "" else value


class Text(Kind):
    """Any text, kept as written (stripped)."""


class Seconds(Kind):
    """Seconds, 0 or positive, fractions allowed; `zero` refuses 0 with that message."""

    words = "seconds"

    def __init__(self, zero=None, off=False):
        self.zero, self.off = zero, off

    def parse(self, section, key, default):
        if self.off and (section.raw(key) or "").lower() == "off":
            return 0.0
        value = non_negative(section, key, default, "of seconds", "")
        if self.zero and value == 0:
            section.fail(key, self.zero)
        return value


class Rate(Kind):
    """A number per second, 0 (no limit) or positive, fractions allowed."""

    words = "per second"

    def parse(self, section, key, default):
        return non_negative(section, key, default, "per second", " (no limit)")


def non_negative(section, key, default, unit, zero):
    value = section.raw(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        section.fail(key, f"{value!r} is not a number {unit}")
    if number < 0 or number != number or number == float("inf"):
        section.fail(key, f"{value!r} must be 0{zero} or a positive number {unit}")
    return number


class Count(Kind):
    """A whole number of at least `minimum`."""

    words = "whole number"

    def __init__(self, minimum=1):
        self.minimum = minimum

    def parse(self, section, key, default):
        return whole_number(section, key, default, self.minimum)


def whole_number(section, key, default, minimum):
    value = section.raw(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        section.fail(key, f"{value!r} is not a whole number")
    if number < minimum:
        section.fail(key, f"{value!r} must be greater than 0" if minimum == 1 else
                     f"{value!r} must be {minimum} or more")
    return number


class CountOrAuto(Kind):
    """A whole number >= 0, or auto (None); `zero` refuses 0 with that message."""

    words = "whole number or auto"

    def __init__(self, zero=None):
        self.zero = zero

    def parse(self, section, key, default):
        value = section.raw(key)
        if value is None or value == "":
            return default
        if value.lower() == "auto":
            return None
        number = whole_number(section, key, default, 0)
        if self.zero and number == 0:
            section.fail(key, self.zero)
        return number


class Flag(Kind):
    """on or off (yes/no, true/false, 1/0)."""

    words = "on or off"

    def parse(self, section, key, default):
        value = section.raw(key)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered in ON:
            return True
        if lowered in OFF:
            return False
        section.fail(key, f"{value!r} is not on or off")


class Choice(Kind):
    """One of a few words, any case; the value is lower-cased."""

    def __init__(self, *choices):
        self.choices = choices
        self.words = " or ".join(choices)

    def parse(self, section, key, default):
        value = section.raw(key)
        if value is None or value == "":
            return default
        if value.lower() not in self.choices:
            section.fail(key, f"{value!r} is not one of {', '.join(self.choices)}")
        return value.lower()


class Percent(Kind):
    """A whole percentage, 0 to 100, written with or without its % sign."""

    words = "percent"

    def parse(self, section, key, default):
        value = section.raw(key)
        if not value:
            return default
        text = value[:-1].strip() if value.endswith("%") else value
        if not text.isdigit() or int(text) > 100:
            section.fail(key, f"{value!r} is not a whole percentage from 0 to 100")
        return int(text)


class Size(Kind):
    """Bytes: a whole number, or with K, M or G after it (KiB, MiB, GiB)."""

    words = "bytes (K, M, G)"

    def parse(self, section, key, default):
        value = section.raw(key)
        if value is None or value == "":
            return default
        text = value.upper().removesuffix("IB").removesuffix("B")
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if scale > 1 else text
        if not digits.strip().isdigit():
            section.fail(key, f"{value!r} is not a size in bytes (a whole number, or with K, M or G after it)")
        return int(digits) * scale


class Days(Kind):
    """Days, at least 1, as seconds."""

    words = "days"

    def parse(self, section, key, default):
        days = non_negative(section, key, default / 86400.0, "of seconds", "")
        if days < 1:
            section.fail(key, f"{section.raw(key)!r} must be at least 1 (days)")
        return days * 86400.0


class File(Kind):
    """A file name; relative names are taken from the config file's directory."""

    words = "file"

    def parse(self, section, key, default):
        value = section.raw(key)
        if not value:
            return default
        return os.path.join(os.path.dirname(section.path), os.path.expanduser(value))


class HostHeader(Kind):
    """A Host header value: printable ASCII without spaces."""

    words = "host[:port]"

    def parse(self, section, key, default):
        value = section.raw(key)
        if not value:
            return default
        if any(ord(c) < 0x21 or ord(c) > 0x7E for c in value):
            section.fail(key, f"{value!r} is not a valid Host header value")
        return value


class ServerName(Kind):
    """A host name or IP address (lower-cased, without a trailing dot)."""

    words = "host name"

    def parse(self, section, key, default):
        value = section.raw(key)
        if not value:
            return default
        name = value.lower().rstrip(".")
        try:
            return str(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            pass
        labels = name.split(".")
        if not all(label and len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)
                   for label in labels):
            section.fail(key, f"{value!r} is not a host name")
        return name


class RequestPath(Kind):
    """A request path like /health."""

    words = "path"

    def parse(self, section, key, default):
        value = section.raw(key)
        if not value:
            return default
        if not value.startswith("/") or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
            section.fail(key, f"{value!r} is not a request path like /health")
        return value


class CloseCode(Kind):
    """One of the close codes an origin failure may be reported with."""

    words = "close code"

    def parse(self, section, key, default):
        text = section.raw(key)
        if not text:
            return default
        if not text.isdigit() or int(text) not in ORIGIN_GONE_CODES:
            section.fail(key, f"{text!r} is not one of 1011, 1012, 1013, 1014")
        return int(text)


class Networks(Kind):
    """Addresses or CIDRs, white-space separated."""

    words = "addresses or CIDRs"

    def parse(self, section, key, default):
        nets = []
        for word in (section.raw(key) or "").split():
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                section.fail(key, f"{word!r} is not an address or CIDR")
        return tuple(nets)


class BrowserOrigins(Kind):
    """Browser Origin values like https://app.example.com, white-space separated."""

    words = "origins"

    def parse(self, section, key, default):
        result = set()
        for word in (section.raw(key) or "").split():
            word = word.lower().rstrip("/")
            scheme, sep, rest = word.partition("://")
            if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
                section.fail(key, f"{word!r} is not an origin like https://app.example.com")
            result.add(word)
        return frozenset(result)


class Origins(Kind):
    """`host[:port] [weight=N] ...`: a weight applies to the origin before it."""

    words = "host[:port] [weight=N] ..."

    def parse(self, section, key, default):
        origins, seen, weighted = [], set(), set()
        for word in (section.raw(key) or "").split():
            if word.lower().startswith("weight="):
                text = word[len("weight="):]
                if not origins:
                    section.fail(key, f"{word!r} must follow the origin it weighs (a:8000 weight=3)")
                if not text.isdigit() or not 1 <= int(text) <= MAX_WEIGHT:
                    section.fail(key, f"{word!r}: a weight is a whole number from 1 to {MAX_WEIGHT}")
                last = origins[-1]
                if last in weighted:
                    section.fail(key, f"{word!r}: {last} has a weight already")
                weighted.add(last)
                origins[-1] = Origin(last.host, last.port, int(text))
                continue
            origin = _origin(section, key, word)
            if origin in seen:
                section.fail(key, f"{word!r} is listed twice (give it a weight=N instead)")
            seen.add(origin)
            origins.append(origin)
        return tuple(origins)


def _origin(section, key, word):
    if "://" in word:
        section.fail(key, f"{word!r} is not host[:port]: leave the scheme out, origin_protocol sets it")
    if word.startswith("["):
        end = word.find("]")
        if end < 0:
            section.fail(key, f"{word!r} is not host[:port]")
        host, rest = word[1:end], word[end + 1:]
        if rest and not rest.startswith(":"):
            section.fail(key, f"{word!r} is not host[:port]")
        port_text = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            section.fail(key, f"{word!r}: {host!r} is not an IPv6 address")
    else:
        if word.count(":") > 1:
            section.fail(key, f"{word!r}: write IPv6 origins as [address]:port")
        host, _, port_text = word.partition(":")
        port_text = port_text if ":" in word else None
    if not host or any(c in host for c in "/?#@ "):
        section.fail(key, f"{word!r} is not host[:port]")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            section.fail(key, f"{word!r}: port must be 1-65535")
        port = int(port_text)
    return Origin(host.lower(), port)


class Listeners(Kind):
    """Twisted server endpoint strings (plus the relay's :proxy_protocol=), white-space separated."""

    words = "endpoint strings"

    def parse(self, section, key, default):
        value = section.raw(key)
        if value is None or value == "":
            return default
        words = tuple(value.split())
        for word in words:
            if words.count(word) > 1:
                section.fail(key, f"{word!r} is listed twice")
            endpoint, proxy = split_listener(word)
            if proxy is False:
                section.fail(key, f"{word!r}: proxy_protocol= is given twice")
            if proxy is not None and proxy.lower() not in ON + OFF:
                section.fail(key, f"{word!r}: proxy_protocol={proxy} is not on or off")
            if endpoint.lower().startswith("systemd:"):
                _check_systemd_listener(section, key, endpoint)
                continue
            try:
                if tls.parse_tls_listener(endpoint) is None:
                    serverFromString(None, endpoint)  # parsing only; nothing listens yet
            except Exception as e:  # the parser raises ValueError, KeyError, ...
                section.fail(key, f"{word!r} is not a Twisted server endpoint string ({e})")
        return words


def _check_systemd_listener(section, key, word):
    """
    systemd:domain=INET:index=N (or name=NAME): a socket inherited from systemd.
    Only its form is checked here; Twisted resolves it from LISTEN_FDS at startup.
    """
    options = dict(part.partition("=")[::2] for part in word.split(":")[1:])
    if options.get("domain") not in ("INET", "INET6", "UNIX"):
        section.fail(key, f"{word!r}: a systemd: listener needs domain=INET, INET6 or UNIX")
    if not (options.get("index", "").isdigit() or options.get("name")):
        section.fail(key, f"{word!r}: a systemd: listener needs index=N or name=NAME")
    unknown = set(options) - {"domain", "index", "name"}
    if unknown:
        section.fail(key, f"{word!r}: unknown option {sorted(unknown)[0]!r}")


class Endpoint(Kind):
    """One Twisted server endpoint string (checked, nothing listens yet)."""

    words = "endpoint string"

    def parse(self, section, key, default):
        value = section.raw(key) or default
        if value is None:
            return None
        if len(value.split()) != 1:
            section.fail(key, f"{value!r} must be one server endpoint string")
        try:
            serverFromString(None, value)  # parsing only; nothing listens yet
        except Exception as e:  # the parser raises ValueError, KeyError, ...
            section.fail(key, f"{value!r} is not a Twisted server endpoint string ({e})")
        return value


class Parsed(Kind):
    """Text turned into a value by `function`, whose ValueError is the message."""

    def __init__(self, function, words):
        self.function, self.words = function, words

    def parse(self, section, key, default):
        text = section.raw(key)
        if not text:
            return default
        try:
            return self.function(text)
        except ValueError as e:
            section.fail(key, str(e))


TIERS = Parsed(parse_tiers, "FROM:PRICE ...")
PLANS = Parsed(parse_plans, "SIZEGB:FROM:TO ...")
