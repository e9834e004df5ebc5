"""
Writes the fixed seed corpus in tests/corpus/ (run once; the files are kept
in the repository so every run starts from the same seeds). Each seed is a
well-formed or nearly well-formed input for one harness.
"""

import hashlib
import struct
from pathlib import Path

from websockets.frames import Frame, Opcode

from wsrelay.edge.proxyproto import v1_header, v2_header

ROOT = Path(__file__).resolve().parent.parent / "tests" / "corpus"


def request(target="/room?x=1", host="chat.test", extra=b""):
    return (b"GET " + target.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


HTTP = [
    request(),
    request(host="a.wild.test", extra=b"Origin: https://chat.test\r\nSec-WebSocket-Protocol: mqtt, v2\r\n"),
    request(host="off.test"),
    request(host="nowhere.test"),
    request(target="http://chat.test/abs"),
    request(extra=b"Origin: https://evil.test\r\n"),
    request(extra=b"X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\nCookie: a=b\r\n"),
    request(extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
    request(extra=b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
    request(extra=b"X-Folded: a\r\n b\r\n"),
    b"GET / HTTP/1.1\nHost: chat.test\nUpgrade: websocket\n\n",
    b"GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n",
    b"POST / HTTP/1.0\r\nHost: chat.test\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: chat.test\r\nX: " + b"a" * 17000 + b"\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nSet-Cookie: s=1\r\nServer: x\r\n\r\n",
]

PROXY = [
    v1_header(("203.0.113.9", 51000), ("192.0.2.1", 443)) + b"GET /",
    v1_header(("2001:db8::9", 51000), ("2001:db8::1", 443)),
    v1_header(None, None),
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
    b"PROXY TCP4 01.2.3.4 5.6.7.8 80 443\r\n",
    b"PROXY TCP4 1.2.3.4",
    v2_header(("203.0.113.9", 51000), ("192.0.2.1", 443)) + b"\x16\x03\x01",
    v2_header(("2001:db8::9", 51000), ("2001:db8::1", 443), tlvs=b"\x04\x00\x02hi"),
    v2_header(local=True),
    v2_header(None),
    v2_header(("203.0.113.9", 51000), ("192.0.2.1", 443))[:20],
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x31\x00\x0c" + bytes(12),
]

CONFIG = [
    "[relay]\nlisten = tcp:8080:interface=127.0.0.1\n[domain:*]\norigins = 127.0.0.1:8081\n",
    "[relay]\nheartbeat_interval = 30\nconnection_timeout = 0\nmax_memory = 512M\nmax_session_duration = 7200\n"
    "[domain:chat.example.com]\norigins = 10.0.0.5:8000 weight=3 10.0.0.6:8000\norigin_protocol = http\n"
    "allowed_origins = https://chat.example.com\nselector = hash\nhash_key = cookie:sid\n"
    "[domain:*.example.com]\norigins = [2001:db8::1]:8000\nmax_connections = 10\n",
    "[relay]\nlisten = tcp:80:proxy_protocol=on\ntrusted_proxies = 10.0.0.0/8\nworkers = 2\n"
    "[selector:hash]\nhash_key = ip\n[domain:*]\norigins = a:1 b:2\nhealth_interval = 5\n"
    "health_check = http\nhealth_path = /health\nhealth_timeout = 1\n",
    "[relay]\nbilling = bandwidth\nbilling_cycle = daily\nprice_tiers = 0-10:0.1 10-:0.05\n"
    "[accounting]\nflush_interval = 5\n[domain:x.test]\norigins = x:1\nplans = 500GB:2026-11-01:2026-12-01\n",
    "[relay]\nlisten = ssl:443\ncertificate = cert.pem\n[domain:*]\norigins = a:1\n",
    "[relay]\norigin_gone_close_code = 1014\ndrain_window = 40\ndrain_timeout = 30\n[domain:off.test]\nwebsocket = off\n",
    "[domain:*]\norigins = http://a\n",
    "key = before section\n[relay]\n",
]


def frames(mask, *specs):
    return b"".join(Frame(op, data, fin).serialize(mask=mask, extensions=[]) for op, data, fin in specs)


def frame_seed(from_client, body):
    return bytes([1 if from_client else 0]) + bytes([7, 64, 1, 33]) + body


FRAMES = []
for from_client in (True, False):
    m = from_client
    FRAMES += [
        frame_seed(from_client, frames(m, (Opcode.TEXT, "hello ✓".encode(), True))),
        frame_seed(from_client, frames(m, (Opcode.BINARY, bytes(range(200)), False), (Opcode.CONT, b"end", True))),
        frame_seed(from_client, frames(m, (Opcode.PING, b"hi", True), (Opcode.BINARY, b"x" * 70, True))),
        frame_seed(from_client, frames(m, (Opcode.TEXT, b"\xff\xfe", True))),
        frame_seed(from_client, frames(m, (Opcode.BINARY, bytes(5000), True))),
        frame_seed(from_client, frames(m, (Opcode.CLOSE, struct.pack("!H", 4001) + b"bye", True))),
        frame_seed(from_client, frames(m, (Opcode.TEXT, b"frag", False), (Opcode.PING, b"", True),
                                       (Opcode.CONT, b"ment", True))),
    ]
FRAMES.append(frame_seed(True, frames(False, (Opcode.TEXT, b"unmasked from a client", True))))


def write(name, seeds):
    folder = ROOT / name
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        data = seed.encode() if isinstance(seed, str) else seed
        (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


if __name__ == "__main__":
    write("http", HTTP)
    write("proxyproto", PROXY)
    write("config", CONFIG)
    write("frames", FRAMES)
