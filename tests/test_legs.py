"""
The handshake on an injected clock with in-memory transports: what the client
sees before, during and after the origin answers. No sockets.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from wsrelay.config import parse_config
from wsrelay.edge.http import accept_for
from wsrelay.process.service import RelayFactory
from wsrelay.process.relay import Relay

CONFIG = """
[relay]
origin_connect_timeout = 3
handshake_timeout = 5
[domain:chat.test]
origins = 10.0.0.5:8000 10.0.0.6:8000
origin_protocol = http
[domain:off.test]
websocket = off
"""


def request(host="chat.test", path="/room?x=1", extra=b""):
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() +
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


class Harness:
    def __init__(self, text=CONFIG):
        self.reactor = MemoryReactorClock()
        self.relay = Relay(parse_config(text, "test.ini"), self.reactor)
        self.factory = RelayFactory(self.relay)
        self.client = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 50000))
        self.client_wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
        self.client.makeConnection(self.client_wire)

    def send(self, data):
        self.client.dataReceived(data)

    def status(self):
        line = self.client_wire.value().split(b"\r\n", 1)[0]
        return int(line.split()[1]) if line else None

    def dials(self):
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def connect_origin(self, index=-1):
        factory = self.reactor.tcpClients[index][2]
        proto = factory.buildProtocol(IPv4Address("TCP", "10.0.0.5", 8000))
        wire = StringTransport()
        proto.makeConnection(wire)
        return proto, wire

    def answer(self, proto, wire, status_line=b"HTTP/1.1 101 Switching Protocols", extra=b"", accept=None):
        sent = wire.value().decode()
        key = [l.split(":", 1)[1].strip() for l in sent.split("\r\n") if l.startswith("Sec-WebSocket-Key")][0]
        accept = accept or accept_for(key.encode())
        proto.dataReceived(status_line + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n" + extra + b"\r\n")
        self.settle(proto, wire)

    @staticmethod
    def settle(proto, wire):
        """StringTransport only records a drop; deliver the connectionLost a socket would."""
        if wire.disconnecting:
            proto.connectionLost(Failure(ConnectionDone()))


def test_client_101_waits_for_origin_101():
    h = Harness()
    h.send(request())
    assert h.dials() == [("10.0.0.5", 8000)]
    assert h.client_wire.value() == b""          # nothing for the client yet
    proto, wire = h.connect_origin()
    sent = wire.value().decode()
    assert sent.startswith("GET /room?x=1 HTTP/1.1\r\nHost: chat.test\r\n")
    assert "X-Forwarded-For: 192.0.2.7\r\n" in sent
    assert h.client_wire.value() == b""
    h.answer(proto, wire, extra=b"Set-Cookie: sid=1\r\n")
    response = h.client_wire.value()
    assert h.status() == 101
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response
    assert b"Set-Cookie: sid=1" in response


def test_origin_refusal_status_is_passed_through():
    h = Harness()
    h.send(request())
    proto, wire = h.connect_origin()
    h.answer(proto, wire, status_line=b"HTTP/1.1 403 Forbidden")
    assert h.status() == 403
    assert h.client_wire.disconnecting


def test_wrong_accept_is_502_never_101():
    h = Harness()
    h.send(request())
    proto, wire = h.connect_origin()
    h.answer(proto, wire, accept="d3JvbmcgYWNjZXB0IHZhbHVlIQ==")
    assert h.status() == 502


def test_origin_handshake_timeout_is_504():
    h = Harness()
    h.send(request())
    proto, wire = h.connect_origin()
    h.reactor.advance(2.9)
    assert h.client_wire.value() == b""
    h.reactor.advance(0.1)
    h.settle(proto, wire)
    assert h.status() == 504


def test_refused_connect_is_retried_once_on_the_next_origin_then_502():
    h = Harness()
    h.send(request())
    h.reactor.tcpClients[0][2].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    assert h.dials() == [("10.0.0.5", 8000), ("10.0.0.6", 8000)]
    assert h.client_wire.value() == b""
    h.reactor.tcpClients[1][2].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    assert h.dials() == [("10.0.0.5", 8000), ("10.0.0.6", 8000)]  # only one retry
    assert h.status() == 502


def test_round_robin_starts_at_the_next_origin_each_time():
    first, second = Harness(), None
    first.send(request())
    second_client = first.factory.buildProtocol(None)
    wire = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.8", 1))
    second_client.makeConnection(wire)
    second_client.dataReceived(request())
    assert first.dials() == [("10.0.0.5", 8000), ("10.0.0.6", 8000)]


def test_refusals_dial_nothing():
    for host, code in [("nowhere.test", 404), ("off.test", 403)]:
        h = Harness()
        h.send(request(host))
        assert h.status() == code
        assert h.dials() == []


def test_client_that_never_finishes_its_head_is_dropped_after_handshake_timeout():
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: chat.test\r\n")
    h.reactor.advance(4.9)
    assert not h.client_wire.disconnecting
    h.reactor.advance(0.1)
    assert h.client_wire.disconnecting or h.client_wire.disconnected
    assert h.dials() == []


def test_head_over_16k_is_431_before_it_ends():
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: chat.test\r\n" + b"X-Pad: " + b"a" * 17000)
    assert h.status() == 431
    assert h.dials() == []


def test_client_leaving_while_origin_connects_cancels_the_dial():
    h = Harness()
    h.send(request())
    proto, wire = h.connect_origin()
    h.client.connectionLost(Failure(ConnectionRefusedError()))
    assert wire.disconnecting or wire.disconnected
    assert h.relay.sessions == set()


# -- an open session, in memory ---------------------------------------------------

from websockets.frames import Frame, Opcode  # noqa: E402  (a reference encoder for test frames)


def client_frame(opcode, data, fin=True):
    """A masked frame as a browser would send it."""
    return Frame(opcode, data, fin).serialize(mask=True, extensions=[])


def origin_frame(opcode, data, fin=True):
    return Frame(opcode, data, fin).serialize(mask=False, extensions=[])


def open_session():
    h = Harness()
    h.send(request())
    proto, wire = h.connect_origin()
    h.answer(proto, wire)
    h.client_wire.clear()
    wire.clear()
    return h, proto, wire


def test_frames_are_copied_as_they_arrive_and_pongs_wait_for_the_frame_to_end():
    h, origin, origin_wire = open_session()
    payload = bytes(range(100))
    whole = origin_frame(Opcode.BINARY, payload)
    origin.dataReceived(whole[:40])               # header and 38 payload bytes
    assert h.client_wire.value() == whole[:40]    # copied at once, not held for the rest
    h.send(client_frame(Opcode.PING, b"are you there"))
    assert h.client_wire.value() == whole[:40]    # the pong may not cut into the frame
    origin.dataReceived(whole[40:])
    pong = origin_frame(Opcode.PONG, b"are you there")
    assert h.client_wire.value() == whole + pong
    assert origin_wire.value() == b""             # pings are answered, not forwarded


def test_client_frames_are_masked_towards_the_origin_and_fragments_kept():
    h, origin, origin_wire = open_session()
    h.send(client_frame(Opcode.TEXT, b"frag", fin=False))
    h.send(client_frame(Opcode.CONT, "ment ✓".encode(), fin=True))
    sent = origin_wire.value()
    first = len(client_frame(Opcode.TEXT, b"frag", fin=False))
    assert sent[0] == 0x01 and sent[first] == 0x80       # FIN clear, then a FIN continuation
    assert parse_masked(sent[:first]) == (Opcode.TEXT, b"frag")
    assert parse_masked(sent[first:]) == (Opcode.CONT, "ment ✓".encode())


def test_origin_close_is_carried_to_the_client_with_code_and_reason():
    h, origin, origin_wire = open_session()
    origin.dataReceived(origin_frame(Opcode.CLOSE, b"\x0f\xa1going"))  # 4001 "going"
    assert h.client_wire.value() == origin_frame(Opcode.CLOSE, b"\x0f\xa1going")
    assert origin_wire.value()[:1] == b"\x88"  # the relay answered the origin's close


def test_idle_session_is_closed_on_both_legs_after_connection_timeout():
    h, origin, origin_wire = open_session()
    h.reactor.advance(59)
    h.send(client_frame(Opcode.TEXT, b"still here"))
    h.reactor.advance(59)
    assert h.client_wire.value() == origin_frame(Opcode.PING, b"\0" * 7 + b"\1")  # the heartbeat at 60 s
    h.client_wire.clear()
    origin_wire.clear()
    h.reactor.advance(1)                          # 60 s after the last message
    assert h.client_wire.value() == origin_frame(Opcode.CLOSE, b"\x03\xe9connection timeout")
    assert parse_masked(origin_wire.value()) == (Opcode.CLOSE, b"\x03\xe9connection timeout")


def parse_masked(data):
    from websockets.streams import StreamReader
    reader = StreamReader()
    reader.feed_data(data)
    gen = Frame.parse(reader.read_exact, mask=True)
    try:
        next(gen)
    except StopIteration as done:
        return done.value.opcode, done.value.data
    raise AssertionError("incomplete frame")


def test_shutdown_while_the_origin_is_dialled_answers_503():
    h = Harness()
    h.send(request())
    h.relay.close_all()
    assert h.status() == 503
    assert b"Retry-After: 5" in h.client_wire.value()


# -- the frame pump (docs/wire.md): plain frames byte for byte, everything else through Autobahn --

def sent_close(wire):
    """The code of the (unmasked) close frame the relay wrote on a client wire, after any data frames."""
    data = wire.value()
    at = data.rfind(b"\x88")
    assert at >= 0 and data[at + 1] < 126, data
    return int.from_bytes(data[at + 2:at + 4], "big")

def test_client_frames_reach_the_origin_as_sent_all_frames_of_a_read_in_one_write():
    h, origin, origin_wire = open_session()
    session = h.relay.sessions.copy().pop()
    before = session.record()
    frames = [client_frame(Opcode.BINARY, bytes(range(200))), client_frame(Opcode.TEXT, "ż ✓".encode()),
              client_frame(Opcode.BINARY, b""), client_frame(Opcode.BINARY, b"x" * 70000)]
    h.send(b"".join(frames))
    assert origin_wire.value() == b"".join(frames)   # the client's own masking keys, untouched
    assert [parse_masked(f) for f in frames[:2]] == [(Opcode.BINARY, bytes(range(200))),
                                                     (Opcode.TEXT, "ż ✓".encode())]
    sent = origin_frame(Opcode.TEXT, b"hello") + origin_frame(Opcode.BINARY, b"\0" * 300)
    origin.dataReceived(sent)
    assert h.client_wire.value() == sent
    after = session.record()
    grew = {k: after[k] - before[k] for k in after if k.endswith(("_in", "_out"))}
    assert grew == {"client_bytes_in": sum(map(len, frames)), "client_frames_in": 4, "client_messages_in": 4,
                    "origin_bytes_out": sum(map(len, frames)), "origin_frames_out": 4, "origin_messages_out": 4,
                    "origin_bytes_in": len(sent), "origin_frames_in": 2, "origin_messages_in": 2,
                    "client_bytes_out": len(sent), "client_frames_out": 2, "client_messages_out": 2}


def test_a_binary_frame_split_over_reads_passes_through_and_holds_the_relays_pong():
    h, origin, origin_wire = open_session()
    big = client_frame(Opcode.BINARY, bytes(range(256)) * 400)
    after = client_frame(Opcode.TEXT, b"next")
    h.send(big[:1000])
    origin.dataReceived(origin_frame(Opcode.PING, b"hi"))   # the origin pings mid-frame
    assert origin_wire.value() == big[:1000]                # the pong may not cut into the frame
    h.send(big[1000:50000])
    h.send(big[50000:] + after)
    pong = origin_wire.value()[len(big):len(big) + 8]   # 2 + 4 (mask) + 2
    assert origin_wire.value()[:len(big)] == big
    assert parse_masked(pong) == (Opcode.PONG, b"hi")
    assert origin_wire.value()[len(big) + 8:] == after


def test_frames_the_pump_may_not_forward_are_policed_by_autobahn():
    # invalid UTF-8 after a good frame in the same read: the good one is forwarded, then 1007
    h, origin, origin_wire = open_session()
    good = client_frame(Opcode.TEXT, b"fine")
    h.send(good + client_frame(Opcode.TEXT, b"\xff\xfe bad"))
    assert origin_wire.value()[:len(good)] == good
    assert sent_close(h.client_wire) == 1007
    # an unmasked frame from a client: 1002
    h, origin, origin_wire = open_session()
    h.send(origin_frame(Opcode.BINARY, b"not masked"))
    assert sent_close(h.client_wire) == 1002 and origin_wire.value()[:1] != b"\x82"
    # a masked frame from the origin: 1002 to the origin
    h, origin, origin_wire = open_session()
    origin.dataReceived(client_frame(Opcode.BINARY, b"masked"))
    assert parse_masked(origin_wire.value())[1][:2] == b"\x03\xea" and h.client_wire.value()[:1] != b"\x82"
    # RSV bits without an extension: 1002
    h, origin, origin_wire = open_session()
    frame = bytearray(client_frame(Opcode.BINARY, b"rsv"))
    frame[0] |= 0x40
    h.send(bytes(frame))
    assert sent_close(h.client_wire) == 1002
    # a length in a longer encoding than needed: 1002
    h, origin, origin_wire = open_session()
    h.send(b"\x82\xfe\x00\x05" + b"\0\0\0\0" + b"short")
    assert sent_close(h.client_wire) == 1002 and origin_wire.value()[:1] == b"\x88"  # no data, a close


def test_the_pump_keeps_max_message_size():
    h = Harness(CONFIG.replace("origin_protocol = http", "origin_protocol = http\nmax_message_size = 100"))
    h.send(request())
    origin, origin_wire = h.connect_origin()
    h.answer(origin, origin_wire)
    h.client_wire.clear(), origin_wire.clear()
    ok = client_frame(Opcode.BINARY, b"a" * 100)
    h.send(ok + client_frame(Opcode.BINARY, b"a" * 101))
    assert origin_wire.value()[:len(ok)] == ok
    assert sent_close(h.client_wire) == 1009


def test_a_handshake_pretty_prints_nothing_for_a_dropped_debug_line(monkeypatch):
    """Autobahn's per-connection debug lines (every option, the transport's details) cost a
    fifth of a connect when pretty-printed eagerly; they are formatted only when read."""
    import pprint

    from autobahn.websocket import protocol

    printed = []
    real = pprint.PrettyPrinter.pformat
    monkeypatch.setattr(pprint.PrettyPrinter, "pformat", lambda self, obj: printed.append(obj) or real(self, obj))
    h = Harness()
    h.send(request())
    proto, wire = h.connect_origin()
    h.answer(proto, wire)
    assert h.status() == 101
    assert printed == []
    # the line a debug observer would read is the same text as before
    options = [("openHandshakeTimeout", 5, "RelayFactory")]
    assert "\n{attrs}".format(attrs=protocol.pformat(options)) == "\n" + real(pprint.PrettyPrinter(), options)
    assert printed == [options]


def test_a_handshake_colours_no_debug_argument_for_a_dropped_debug_line(monkeypatch):
    """Autobahn colours a function's name or a value (hltype, hlval, through click) for a dozen
    debug lines per connection; they are formatted only when read, and then read the same."""
    from autobahn import util
    from autobahn.twisted import websocket as twisted_websocket
    from autobahn.websocket import protocol

    coloured = []
    real = util.hl
    monkeypatch.setattr(util, "hl", lambda text, **kw: coloured.append(text) or real(text, **kw))
    h = Harness()
    h.send(request())
    proto, wire = h.connect_origin()
    h.answer(proto, wire)
    assert h.status() == 101
    assert coloured == []
    assert "{func}".format(func=protocol.hltype(_coloured_marker)) == util.hltype(_coloured_marker)
    assert str(twisted_websocket.hlval(42)) == util.hlval(42)
    assert coloured


def _coloured_marker():
    """A function for the hltype comparison above (its qualified name is what is coloured)."""
