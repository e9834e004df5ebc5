"""
The frame path (wsrelay/frames.py, legs.py) on an open session in memory:
arbitrary bytes from the client (masked frames expected) or from the origin,
delivered in arbitrary pieces. No exception may escape; what the relay writes
towards the origin is always a valid stream of masked frames; the data it
copies is a prefix of the data that came in (never invented, never
reordered), and all of it when the input was well-formed binary frames.
"""

import atheris

from common import InMemoryRelay, run

with atheris.instrument_imports(include=["wsrelay"]):
    from websockets.exceptions import PayloadTooBig, ProtocolError
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    from wsrelay.edge.frames import frame_header

CONFIG = """
[relay]
handshake_rate = 0
handshake_rate_per_ip = 0
heartbeat_interval = 0
connection_timeout = 0
max_message_size = 4096
[domain:*]
origins = 10.0.0.5:8000
origin_protocol = http
"""

REQUEST = (b"GET / HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
relay = InMemoryRelay(CONFIG)
DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


def frames(data, mask):
    """(frames parsed, "clean" | "cut" (an incomplete frame at the end) | "invalid")."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parsed = []
    while reader.buffer:
        gen = Frame.parse(reader.read_exact, mask=mask, max_size=1 << 20, extensions=[])
        try:
            next(gen)
            raise AssertionError("the reader has every byte")
        except StopIteration as done:
            parsed.append(done.value)
        except EOFError:
            return parsed, "cut"
        except (ProtocolError, PayloadTooBig):
            return parsed, "invalid"
    return parsed, "clean"


def data_of(parsed):
    return b"".join(f.data for f in parsed if f.opcode in DATA)


def test_one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    from_client = fdp.ConsumeBool()
    pieces = [fdp.ConsumeIntInRange(1, 64) for _ in range(4)]
    body = fdp.ConsumeBytes(fdp.remaining_bytes())

    client, client_wire = relay.connect()
    client.dataReceived(REQUEST)
    origin, origin_wire = relay.origin_for()
    client_wire.clear()
    origin_wire.clear()
    sender, receiver = (client, origin) if from_client else (origin, client)
    counted = receiver.counters.bytes_out, sender.counters.bytes_in
    at, i = 0, 0
    while at < len(body) and not sender.lost:
        size = pieces[i % len(pieces)]
        sender.dataReceived(body[at:at + size])
        at, i = at + size, i + 1
        for leg, wire in ((client, client_wire), (origin, origin_wire)):
            if wire.sent_before_abort is not None and not leg.lost:
                relay.settle_one(leg)  # the reactor delivers connectionLost before the next read

    wire = origin_wire if from_client else client_wire
    out = wire.sent()
    # exact accounting: what was counted is what went out, and every byte read
    assert receiver.counters.bytes_out - counted[0] == len(out), (receiver.counters.bytes_out - counted[0], len(out))
    assert sender.counters.bytes_in - counted[1] == min(at, len(body))
    written, state = frames(out, mask=from_client)
    assert state != "invalid", out[:80]
    incoming, state = frames(body, mask=not from_client)
    clean = state == "clean"
    got, sent = data_of(written), data_of(incoming)
    assert sent.startswith(got) or not clean, (got[:40], sent[:40])
    if clean and all(f.opcode in (Opcode.BINARY, Opcode.CONT) for f in incoming) and incoming \
            and incoming[0].opcode == Opcode.BINARY and incoming[-1].fin \
            and sum(len(f.data) for f in incoming) <= 4096 \
            and all(f.opcode == Opcode.CONT for f in incoming[1:]) \
            and not any(f.rsv1 or f.rsv2 or f.rsv3 for f in incoming):
        assert got == sent
    for opcode, fin, length in ((1, True, len(body) % 70000), (2, False, len(body))):
        head = frame_header(opcode, fin, length, 0, b"abcd")
        parsed, _ = frames(head + bytes(length), mask=True)
        assert len(parsed) == 1 and parsed[0].fin == fin and len(parsed[0].data) == length
    relay.settle((client, client_wire), (origin, origin_wire))


if __name__ == "__main__":
    run(test_one_input)
