"""
Request and response heads: the same bytes as a client's request (the
relay's own checks in wsrelay/http.py and the whole handshake path of a
ClientLeg in memory) and as an origin's answer to a good request. Whatever
arrives, the relay answers a well-formed HTTP status, dials an origin, or
waits for more; an exception escaping is a crash. The pure helpers are held
to their contracts on the same bytes.
"""

import atheris

from common import InMemoryRelay, run

with atheris.instrument_imports(include=["wsrelay"]):
    from wsrelay.edge.http import check_request_head, request_target, response_headers, status_of

CONFIG = """
[relay]
handshake_timeout = 5
handshake_rate = 0
handshake_rate_per_ip = 0
eject_after = 0
[domain:chat.test]
origins = 10.0.0.5:8000
origin_protocol = http
allowed_origins = https://chat.test
[domain:*.wild.test]
origins = 10.0.0.6:8000
[domain:off.test]
websocket = off
"""

relay = InMemoryRelay(CONFIG)
STATUSES = {400, 403, 404, 405, 421, 426, 429, 431, 503, 505}  # docs/wire.md


def test_one_input(data):
    head_end = data.find(b"\r\n\r\n")
    if head_end >= 0:
        problem = check_request_head(data[:head_end + 4])
        assert problem is None or isinstance(problem, str)
        line = data[:data.find(b"\r\n")].decode("latin-1")
        code = status_of(line)
        assert code is None or 100 <= code <= 599
        for name, value in response_headers(data[:head_end + 4], refusal=bool(data[:1] == b"H")):
            assert "\r" not in value and "\n" not in value and "\0" not in value
        parts = line.split(" ")
        if len(parts) > 1:
            target = request_target(parts[1])
            assert target is None or target.startswith("/")

    client, wire = relay.connect()
    dials = len(relay.reactor.tcpClients)
    client.dataReceived(data)
    answer = wire.value()
    if answer:
        status = answer.split(b"\r\n", 1)[0].split(b" ")
        assert status[0] == b"HTTP/1.1" and int(status[1]) in STATUSES, answer[:80]
        assert b"\r\n\r\n" in answer
        assert len(relay.reactor.tcpClients) == dials  # an answered request dials nothing
    legs = [(client, wire)]
    if len(relay.reactor.tcpClients) > dials:
        # dialled: the request the origin gets is one head, no smuggled line
        origin, origin_wire = relay.origin_for(answer=False)
        sent = origin_wire.value()
        assert sent.count(b"\r\n\r\n") == 1 and sent.endswith(b"\r\n\r\n"), sent
        assert check_request_head(sent) is None, sent
        legs.append((origin, origin_wire))
    relay.settle(*legs)

    # the same bytes as the origin's answer
    client, wire = relay.connect()
    client.dataReceived(GOOD)
    origin, origin_wire = relay.origin_for(answer=False)
    origin.dataReceived(data)
    answer = wire.value()
    if answer:
        status = answer.split(b"\r\n", 1)[0].split(b" ")
        assert status[0] == b"HTTP/1.1" and 100 <= int(status[1]) <= 599, answer[:80]
    relay.settle((origin, origin_wire), (client, wire))


GOOD = (b"GET /room HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


if __name__ == "__main__":
    run(test_one_input)
