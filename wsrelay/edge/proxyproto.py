"""
The PROXY protocol (HAProxy's, versions 1 and 2) as pure functions on bytes.

An L4 balancer that speaks it sends one header before the client's own bytes,
naming the client's address and port. parse_header() looks at what arrived so
far and says: not enough yet (None), a Header (with how many bytes it took),
or a ProxyHeaderError with the reason. No sockets here; see proxywrap.py.

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

import ipaddress
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107                      # the longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16                     # signature, version/command, family, length
V2_MAX = V2_FIXED + 0xFFFF        # bounded by the 16-bit length field

LOCAL, PROXY = "local", "proxy"


class ProxyHeaderError(ValueError):
    """A header that is not a PROXY protocol header; str() is the reason, for the log."""


@dataclass(frozen=True)
class Header:
    """
    One parsed header. `source`/`destination` are (address, port), or None
    when the connection's own addresses stand (v2 LOCAL: the balancer's own
    health check; v1 UNKNOWN and v2 UNSPEC: the balancer does not know).
    """

    version: int
    command: str
    source: tuple | None
    destination: tuple | None
    length: int                   # bytes the header took; the client's own data follows

    @property
    def family(self):
        if self.source is None:
            return None
        return "TCP6" if ":" in self.source[0] else "TCP4"


def parse_header(data):
    """
    Header, None (a prefix of a possible header: wait for more), or raise
    ProxyHeaderError. `data` is every byte received on the connection so far.
    """
    if data[:len(V2_SIGNATURE)] == V2_SIGNATURE[:len(data)]:
        if len(data) < V2_FIXED:
            return None
        return _parse_v2(data)
    if data[:len(V1_PREFIX)] == V1_PREFIX[:len(data)]:
        return _parse_v1(data)
    raise ProxyHeaderError("no PROXY protocol header")


def _parse_v1(data):
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data:
            raise ProxyHeaderError("PROXY v1 line too long or not ended by CRLF")
        return None
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII")
    words = line.split(" ")
    if len(words) >= 2 and words[1] == "UNKNOWN":  # the rest of the line is to be ignored
        return Header(1, PROXY, None, None, end + 2)
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"malformed PROXY v1 line {line[:V1_MAX]!r}")
    _, family, source, destination, source_port, destination_port = words
    version = 4 if family == "TCP4" else 6
    return Header(1, PROXY, (_address(source, version), _port(source_port)),
                  (_address(destination, version), _port(destination_port)), end + 2)


def _address(text, version):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IPv{version} address")
    if address.version != version or (version == 4 and str(address) != text):
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IPv{version} address")
    return str(address)


def _port(text):
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not a port")
    return int(text)


_V2_ADDRESSES = {0x11: (4, 12), 0x21: (6, 36)}   # TCP over IPv4, TCP over IPv6: (version, bytes)


def _parse_v2(data):
    version_command, family, length = struct.unpack("!BBH", data[12:16])
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"PROXY v2: unknown version {version_command >> 4}")
    command = version_command & 0x0F
    if command not in (0, 1):
        raise ProxyHeaderError(f"PROXY v2: unknown command {command}")
    total = V2_FIXED + length
    if len(data) < total:
        return None
    if command == 0:  # LOCAL: the balancer's own connection (a health check); family ignored
        return Header(2, LOCAL, None, None, total)
    if family == 0x00:  # UNSPEC: the balancer does not know either
        return Header(2, PROXY, None, None, total)
    if family not in _V2_ADDRESSES:
        raise ProxyHeaderError(f"PROXY v2: unsupported address family/protocol 0x{family:02x} (TCP only)")
    version, size = _V2_ADDRESSES[family]
    if length < size:
        raise ProxyHeaderError(f"PROXY v2: {length} address bytes, TCP over IPv{version} needs {size}")
    body = data[V2_FIXED:V2_FIXED + size]
    half = (size - 4) // 2
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    source, destination = make(body[:half]), make(body[half:2 * half])
    source_port, destination_port = struct.unpack("!HH", body[2 * half:])
    return Header(2, PROXY, (str(source), source_port), (str(destination), destination_port), total)  # TLVs skipped


# -- building headers (what a balancer sends; used by tests and tools) ------------

def v1_header(source, destination):
    """The v1 line for (address, port) pairs; None for PROXY UNKNOWN."""
    if source is None:
        return b"PROXY UNKNOWN\r\n"
    family = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def v2_header(source=None, destination=None, local=False, tlvs=b""):
    """The v2 header for (address, port) pairs (TCP), LOCAL, or UNSPEC when source is None."""
    if local or source is None:
        body = tlvs
        family = 0x00
    else:
        six = ":" in source[0]
        family = 0x21 if six else 0x11
        packed = [ipaddress.ip_address(a).packed for a in (source[0], destination[0])]
        body = packed[0] + packed[1] + struct.pack("!HH", source[1], destination[1]) + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 if local else 0x21, family, len(body)) + body
