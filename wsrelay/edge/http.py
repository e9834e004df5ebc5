"""
The HTTP side of the handshake, as plain functions: request checks, the
request sent to the origin, the status line it answers with, and the error
responses the relay gives. No sockets here.
"""

import base64
import hashlib
import os
import re
from http import HTTPStatus

# Headers that belong to the hop or to the WebSocket handshake itself: the
# relay writes its own; the client's are never copied to the origin.
HOP_HEADERS = frozenset({
    "host", "connection", "upgrade", "keep-alive", "proxy-connection", "te", "trailer",
    "transfer-encoding", "content-length", "proxy-authorization", "proxy-authenticate",
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-protocol", "sec-websocket-accept",
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
    "forwarded", "x-real-ip",
})

# Hop-by-hop headers (RFC 9110 7.6.1): never copied from one connection to the
# next, whichever way, on either path; every header a Connection header names
# is hop-by-hop too (see end_to_end).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
})

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A header name: one or more token characters (a regex: a per-character loop was 1.5 % of a connect).
_HEADER_NAME = re.compile(b"[" + re.escape("".join(sorted(_TOKEN_CHARS)).encode()) + b"]+")


def check_request_head(head):
    """
    Return None if the raw request head (up to and including the blank line)
    is well formed, else a short reason for a 400. Autobahn's parser splits on
    bare CR or LF and drops lines without a colon; this refuses them instead,
    so nothing smuggled that way reaches the origin.
    """
    if b"\0" in head:
        return "NUL byte in request head"
    lines = head[:-4].split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            return "bare CR or LF in request head"
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            return "obsolete header line folding"
        name, colon, _ = line.partition(b":")
        if not colon or _HEADER_NAME.fullmatch(name) is None:
            return "malformed header line"
    return None


def nominated(connection_values):
    """The lower-case header names a message's Connection header values name (RFC 9110 7.6.1)."""
    names = set()
    for value in connection_values:
        for token in value.split(","):
            token = token.strip().lower()
            if token:
                names.add(token)
    return names


def end_to_end(pairs, drop=HOP_BY_HOP):
    """
    The (name, value) pairs of a message's headers that may cross the relay:
    without the hop-by-hop ones, those the message's own Connection header
    names ("Connection: Upgrade, X-Hop-Secret" drops X-Hop-Secret), and those
    in `drop` (lower-case). Used by the WebSocket and the HTTP path alike,
    both ways. Names are compared case-insensitively; order is kept.
    """
    pairs = list(pairs)
    hop = nominated(value for name, value in pairs if name.lower() == "connection")
    if hop:
        drop = drop | hop
    return [(name, value) for name, value in pairs if name.lower() not in drop]


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # what a header value may not hold (HTAB may)


def valid_header_value(value):
    """A header value the relay may write: no CR, LF, NUL or other control characters."""
    return _CONTROL.search(value) is None


def client_address(peer, forwarded_for, trusted):
    """
    The address the session is attributed to: the peer itself, unless the peer
    is a trusted proxy, in which case the right-most X-Forwarded-For entry that
    is not itself a trusted proxy (nginx's real_ip_recursive).
    """
    if not forwarded_for or not trusted(peer):
        return peer
    for entry in reversed([e.strip() for e in forwarded_for.split(",")]):
        if entry and not trusted(entry):
            return entry
    return peer


def forwarded_headers(peer, forwarded_for, client_ip, peer_trusted, scheme, host):
    """The X-Forwarded-* and Forwarded headers the origin sees, as (name, value) pairs."""
    if peer_trusted and forwarded_for:
        chain = f"{forwarded_for}, {peer}"
    else:
        chain = peer
    node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
    host_param = host if all(c in _TOKEN_CHARS or c == ":" for c in host) else '"' + host.replace('"', "") + '"'
    return [
        ("X-Forwarded-For", chain),
        ("X-Forwarded-Proto", scheme),
        ("X-Forwarded-Host", host),
        ("Forwarded", f"for={node};proto={scheme};host={host_param}"),
    ]


def new_key():
    """A fresh Sec-WebSocket-Key."""
    return base64.b64encode(os.urandom(16))


def accept_for(key):
    """The Sec-WebSocket-Accept value an origin must answer `key` with."""
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()


def origin_request(target, host, key, client_headers, extra_headers, protocols, extensions=None):
    """
    The opening handshake sent to the origin. `client_headers` is the client's
    header dict (lower-case names); end-to-end headers are copied, hop and
    handshake headers are the relay's own, and any value that could split the
    request is left out.
    """
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if protocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
    if extensions:
        lines.append("Sec-WebSocket-Extensions: " + extensions)
    for name, value in end_to_end(client_headers.items(), HOP_HEADERS):
        if not valid_header_value(value):
            continue
        lines.append(f"{_canonical(name)}: {value}")
    for name, value in extra_headers:
        if valid_header_value(value):
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def canonical(name):
    """Header-Name capitalisation (what most servers write; HTTP/1.1 names are case-insensitive)."""
    return "-".join(part[:1].upper() + part[1:] for part in name.lower().split("-"))


def _canonical(name):
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def status_of(status_line):
    """The numeric status in an HTTP/1.x status line, or None if it is not one."""
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    code = int(parts[1])
    return code if 100 <= code <= 599 else None


def error_response(code, body=None, headers=()):
    """A complete, closed HTTP/1.1 error response with a short text body."""
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Error"
    text = (body if body is not None else phrase) + "\n"
    payload = text.encode("utf-8")
    lines = [
        f"HTTP/1.1 {code} {phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Connection: close",
    ]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def request_target(uri):
    """The origin-form target (path and query) of a request line's URI."""
    if uri.startswith("/"):
        return uri
    scheme, sep, rest = uri.partition("://")
    if sep:
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    return None


# Headers of the origin's answer that reach the client. On a 101 every
# end-to-end header does (Set-Cookie, say); on a refusal only the few that
# make the status usable.
_NOT_FROM_ORIGIN = HOP_HEADERS | {"server", "date"}
REFUSAL_HEADERS = frozenset({"location", "retry-after", "www-authenticate", "set-cookie", "sec-websocket-version"})


def response_headers(head, refusal):
    """(name, value) pairs of an origin response head that the client may see."""
    found = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        lowered = name.strip().lower()
        value = value.strip()
        if colon and lowered and valid_header_value(value):
            found.append((lowered, value))
    pairs = []
    for lowered, value in end_to_end(found, HOP_HEADERS):
        if (lowered in REFUSAL_HEADERS) if refusal else (lowered not in _NOT_FROM_ORIGIN):
            pairs.append((_canonical(lowered), value))
    return pairs
