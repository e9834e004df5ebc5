"""Autobahn (Python 3) WebSocket echo server: the origin for the client-side conformance run.

    python conformance/echo_origin.py --port PORT [--interface 127.0.0.1]

Echoes every message as it came (text or binary), accepts permessage-deflate offers,
and is set up like Autobahn's own testee: failByDrop=False, generous size limits.
It does not check the Host header (no server URL is set), so a proxy may pass the
client's Host through.  Runs until killed.
"""
import argparse
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import reactor
from twisted.python import log

MAX_SIZE = 64 * 1024 * 1024   # the largest Autobahn case (9.*) sends 16 MiB


class EchoServerProtocol(WebSocketServerProtocol):
    def connectionMade(self):
        super().connectionMade()
        # Autobahn does not manage to set TCP_NODELAY itself; do it so that the
        # durations measured through a relay are not dominated by Nagle on this leg.
        self.transport.setTcpNoDelay(True)

    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


def accept_deflate(offers):
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="log Twisted events to stdout")
    args = parser.parse_args(argv)
    if args.verbose:
        log.startLogging(sys.stdout)

    factory = WebSocketServerFactory(server="wsrelay-conformance-echo")
    factory.protocol = EchoServerProtocol
    factory.setProtocolOptions(
        failByDrop=False,
        maxFramePayloadSize=MAX_SIZE,
        maxMessagePayloadSize=MAX_SIZE,
        perMessageCompressionAccept=accept_deflate,
        webStatus=False,
        openHandshakeTimeout=30,
    )
    port = reactor.listenTCP(args.port, factory, backlog=128, interface=args.interface)
    print("echo origin listening on %s:%d" % (args.interface, port.getHost().port), flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
