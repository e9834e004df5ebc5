"""The handshake's HTTP pieces, without sockets."""

import pytest

from wsrelay.edge.http import (
    accept_for, check_request_head, client_address, error_response, forwarded_headers,
    HOP_BY_HOP, end_to_end, origin_request, request_target, response_headers, status_of, valid_header_value,
)

GOOD = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"


@pytest.mark.parametrize("head, problem", [
    (GOOD, None),
    (b"GET / HTTP/1.1\r\nHost: a\nX-Injected: 1\r\n\r\n", "bare CR or LF"),
    (b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", "bare CR or LF"),
    (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", "NUL"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "folding"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "malformed"),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "malformed"),
    (b"GET / HTTP/1.1\r\nN\xe9me: x\r\n\r\n", "malformed"),
    (b"GET / HTTP/1.1\r\nX(1): x\r\n\r\n", "malformed"),
    (b"GET / HTTP/1.1\r\n: x\r\n\r\n", "malformed"),
    (b"GET / HTTP/1.1\r\nX-A_b.c~1!#$%&'*+^`|: x\r\n\r\n", None),
])
def test_request_head_checks(head, problem):
    result = check_request_head(head)
    assert (result is None) if problem is None else (problem in result)


def test_client_address_believes_forwarded_for_only_from_trusted_peers():
    trusted = lambda ip: ip.startswith("10.")
    assert client_address("1.2.3.4", "6.6.6.6", trusted) == "1.2.3.4"
    assert client_address("10.0.0.1", "6.6.6.6", trusted) == "6.6.6.6"
    assert client_address("10.0.0.1", "6.6.6.6, 10.0.0.9", trusted) == "6.6.6.6"
    assert client_address("10.0.0.1", "7.7.7.7, 6.6.6.6", trusted) == "6.6.6.6"  # right-most untrusted
    assert client_address("10.0.0.1", "10.0.0.2", trusted) == "10.0.0.1"
    assert client_address("10.0.0.1", None, trusted) == "10.0.0.1"


def test_forwarded_headers():
    h = dict(forwarded_headers("1.2.3.4", "9.9.9.9", "1.2.3.4", False, "http", "chat.example.com"))
    assert h == {
        "X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "chat.example.com",
        "Forwarded": "for=1.2.3.4;proto=http;host=chat.example.com",
    }
    h = dict(forwarded_headers("10.0.0.1", "9.9.9.9", "9.9.9.9", True, "https", "a:8443"))
    assert h["X-Forwarded-For"] == "9.9.9.9, 10.0.0.1"
    assert h["Forwarded"] == "for=9.9.9.9;proto=https;host=a:8443"
    h = dict(forwarded_headers("::1", None, "::1", False, "http", "a"))
    assert h["Forwarded"] == 'for="[::1]";proto=http;host=a'


def test_origin_request_copies_end_to_end_headers_only():
    client = {"host": "evil", "cookie": "a=1", "x-forwarded-for": "6.6.6.6", "connection": "Upgrade, x",
              "sec-websocket-extensions": "permessage-deflate", "x-app": "ok", "x-bad": "a\x7fb",
              "user-agent": "ua"}
    raw = origin_request("/p?q=1", "origin.host", b"a2V5a2V5a2V5a2V5a2V5aw==", client,
                         [("X-Forwarded-For", "1.2.3.4")], ["a", "b"])
    text = raw.decode()
    lines = text.split("\r\n")
    assert lines[0] == "GET /p?q=1 HTTP/1.1"
    assert "Host: origin.host" in lines and "Host: evil" not in lines
    assert "Cookie: a=1" in lines and "X-App: ok" in lines and "User-Agent: ua" in lines
    assert "Sec-WebSocket-Protocol: a, b" in lines
    assert "X-Forwarded-For: 1.2.3.4" in lines and "6.6.6.6" not in text
    assert "permessage-deflate" not in text and "X-Bad" not in text
    assert text.endswith("\r\n\r\n") and text.count("\r\n\r\n") == 1


def test_accept_value_matches_rfc6455_example():
    assert accept_for(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("line, code", [
    ("HTTP/1.1 101 Switching Protocols", 101), ("HTTP/1.1 403 Forbidden", 403), ("HTTP/1.0 500", 500),
    ("HTTP/1.1 abc", None), ("garbage", None), ("HTTP/1.1 999 x", None), ("", None),
])
def test_status_of(line, code):
    assert status_of(line) == code


def test_error_response_is_complete_and_closed():
    raw = error_response(426, "use a WebSocket client", [("Upgrade", "websocket")])
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"Content-Length: %d" % len(body) in head
    assert b"Connection: close" in head and b"Upgrade: websocket" in head
    assert body == b"use a WebSocket client\n"


def test_response_headers_for_101_and_refusals():
    head = (b"HTTP/1.1 403 Forbidden\r\nServer: secret/1.0\r\nSet-Cookie: a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\r\n"
            b"Set-Cookie: b=2\r\nRetry-After: 5\r\nX-App: y\r\nUpgrade: websocket\r\n\r\n")
    assert response_headers(head, refusal=True) == [
        ("Set-Cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT"), ("Set-Cookie", "b=2"), ("Retry-After", "5")]
    assert ("X-App", "y") in response_headers(head, refusal=False)
    assert all(name not in ("Server", "Upgrade") for name, _ in response_headers(head, refusal=False))


@pytest.mark.parametrize("uri, target", [
    ("/a?b=c", "/a?b=c"), ("ws://host/x?y", "/x?y"), ("http://host", "/"), ("*", None),
])
def test_request_target(uri, target):
    assert request_target(uri) == target


def test_headers_named_in_connection_are_hop_by_hop_both_ways_on_the_websocket_path():
    """RFC 9110 7.6.1: 'Connection: Upgrade, X-Hop-Secret' makes X-Hop-Secret the hop's, never copied on."""
    client = {"connection": "Upgrade, X-Hop-Secret,keep-alive", "x-hop-secret": "client-only", "x-app": "ok",
              "keep-alive": "timeout=5"}
    text = origin_request("/", "origin.host", b"a2V5a2V5a2V5a2V5a2V5aw==", client, [], []).decode()
    assert "X-App: ok" in text
    assert "client-only" not in text and "X-Hop-Secret" not in text and "Keep-Alive" not in text
    head = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Origin-Secret\r\n"
            b"X-Origin-Secret: origin-only\r\nX-Kept: yes\r\n\r\n")
    assert response_headers(head, refusal=False) == [("X-Kept", "yes")]


def test_end_to_end_drops_hop_by_hop_and_nominated_headers_and_keeps_order():
    pairs = [("Connection", "close, X-A"), ("X-A", "1"), ("x-b", "2"), ("TE", "trailers"), ("X-C", "3"),
             ("connection", "x-c")]
    assert end_to_end(pairs) == [("x-b", "2")]
    assert end_to_end([("X-D", "4"), ("Host", "h")], drop=HOP_BY_HOP | {"host"}) == [("X-D", "4")]


def test_a_header_value_may_hold_any_character_but_the_controls():
    """HTAB and everything from space up pass (obs-text and other Unicode too); NUL, CR, LF, the
    other C0 controls and DEL never reach a peer."""
    for code in range(0x250):
        char = chr(code)
        allowed = char == "\t" or (code >= 0x20 and code != 0x7F)
        assert valid_header_value(f"a{char}b") is allowed, hex(code)
    assert valid_header_value("") and valid_header_value("Mozilla/5.0 (X11) \u00e9\u4e2d")
