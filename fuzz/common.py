"""
What the harnesses share: atheris's entry point, and an in-memory relay
(an injected clock, StringTransports, no sockets) to push bytes through the
real protocol code. Run a harness with `python fuzz/fuzz_NAME.py [libFuzzer
options] [corpus dirs]`; see docs/fuzzing.md.
"""

import sys

import atheris

with atheris.instrument_imports(include=["wsrelay"]):
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import MemoryReactorClock, StringTransport
    from twisted.python.failure import Failure

    from wsrelay.config import parse_config
    from wsrelay.edge.http import accept_for
    from wsrelay.process.service import Relay, RelayFactory

PEER = IPv4Address("TCP", "192.0.2.7", 50000)


class Wire(StringTransport):
    """A StringTransport that, like a socket, sends nothing written after abortConnection."""

    sent_before_abort = None

    def abortConnection(self):
        if self.sent_before_abort is None:
            self.sent_before_abort = len(self.value())
        super().abortConnection()

    def sent(self):
        return self.value() if self.sent_before_abort is None else self.value()[:self.sent_before_abort]

    def clear(self):
        super().clear()
        self.sent_before_abort = None


def run(test_one_input):
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


class InMemoryRelay:
    """One Relay on a MemoryReactorClock; connect() gives a ClientLeg on a StringTransport."""

    def __init__(self, config_text):
        self.reactor = MemoryReactorClock()
        self.relay = Relay(parse_config(config_text, "fuzz.ini"), self.reactor)
        self.factory = RelayFactory(self.relay)

    def connect(self):
        client = self.factory.buildProtocol(PEER)
        wire = Wire(peerAddress=PEER)
        client.makeConnection(wire)
        return client, wire

    def origin_for(self, answer=True):
        """The OriginLeg the relay dialled last, on a StringTransport, answered 101 when `answer`."""
        host, port, factory, *_ = self.reactor.tcpClients.pop()
        wrapper = factory.buildProtocol(IPv4Address("TCP", host, port))
        wire = Wire()
        wrapper.makeConnection(wire)
        origin = getattr(wrapper, "_wrappedProtocol", wrapper)  # the endpoint's wrapper: the OriginLeg in it
        if answer:
            sent = wire.value().decode("latin-1")
            key = [l.split(":", 1)[1].strip() for l in sent.split("\r\n")
                   if l.lower().startswith("sec-websocket-key")][0]
            origin.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                                + accept_for(key.encode()).encode() + b"\r\n\r\n")
        return origin, wire

    def settle_one(self, proto):
        proto.connectionLost(Failure(ConnectionDone()))

    def settle(self, *pairs):
        """Deliver the connectionLost a socket would to every protocol whose transport was closed."""
        for proto, wire in pairs:
            if not proto.lost:
                proto.connectionLost(Failure(ConnectionDone()))
        self.reactor.advance(10)  # close timers and the like
        assert not [s for s in self.relay.sessions if not s.ended], "a session outlived both its connections"
        assert self.relay.limits.total == 0, "an admission ticket was never given back"
        self.relay.sessions.clear()
