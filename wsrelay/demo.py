"""
The bundled demo origin: a small WebSocket application to put the relay in front of.

Run it with::

    python -m wsrelay.demo [--port 8081] [--interface 127.0.0.1]
                           [--relay-url ws://127.0.0.1:8080 | same-host] [--lifetime SECONDS]

It serves, on one port:

- ``GET /``: an HTML page whose JavaScript connects to the *relay* (the relay
  URL is put into the page's ``<meta name="wsrelay-relay-url">``), with an echo
  box and a "live comments" room. With ``--relay-url same-host`` the page
  connects to the host it was loaded from: served through a relay whose domain
  has ``http = on`` (what ``scripts/demo`` does), the page, its WebSockets and
  everything else go through that one relay port;
- ``/echo``: a WebSocket echo (text stays text, binary stays binary; the first
  subprotocol the client offers is selected, if it offers any);
- ``/comments``: a WebSocket broadcast room (see :class:`CommentRoom`).

The room (wsrelay/demo_room.py) is a functional core with no sockets: :class:`CommentRoom` takes
``now`` as an argument and returns the messages to send. The Autobahn
protocols around it are a thin shell.
"""

from __future__ import annotations

import argparse
import html
import importlib.resources
import ipaddress
import secrets
import sys
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.util import parse_url
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import Site

from wsrelay.demo_room import (
    SHUTDOWN_CLOSE_CODE, SHUTDOWN_CLOSE_REASON, CommentRoom, CommentsFactory, EchoFactory, _Connections,
)

log = Logger(namespace="wsrelay.demo")

DEFAULT_PORT = 8081
DEFAULT_INTERFACE = "127.0.0.1"
DEFAULT_RELAY_URL = "ws://127.0.0.1:8080"
SAME_HOST = "same-host"  # --relay-url: the page's own host (the page itself came through the relay)


# ---------------------------------------------------------------------------
# The page and the site.
# ---------------------------------------------------------------------------


def load_page_template() -> str:
    return importlib.resources.files("wsrelay").joinpath("demo_page.html").read_text(encoding="utf-8")


def check_relay_url(url: str) -> str:
    """Return ``url`` if it is a ws:// or wss:// URL (or ``same-host``), else raise ValueError."""
    if url == SAME_HOST:
        return url
    try:
        parse_url(url)
    except Exception as e:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r} ({e})") from None
    return url


class PageResource(Resource):
    isLeaf = True

    def __init__(self, relay_url: str, template: str) -> None:
        super().__init__()
        self.relay_url = relay_url
        self.template = template

    def render_GET(self, request: Any) -> bytes:
        if request.postpath not in ([], [b""]):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        nonce = secrets.token_urlsafe(16)
        relay_url = "" if self.relay_url == SAME_HOST else self.relay_url  # the page fills in its own host
        page = self.template.replace("{{RELAY_URL}}", html.escape(relay_url, quote=True)).replace(
            "{{NONCE}}", nonce
        )
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(
            b"content-security-policy",
            (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ).encode("ascii"),
        )
        return page.encode("utf-8")

    def render_HEAD(self, request: Any) -> bytes:
        return self.render_GET(request)


class _Root(Resource):
    def getChild(self, path: bytes, request: Any) -> Resource:
        return notFound()


class DemoSite(Site):
    """The demo origin's site. ``room`` and ``connections`` are there for tests and shutdown."""

    room: CommentRoom
    connections: _Connections

    def close_websockets(self, code: int = SHUTDOWN_CLOSE_CODE, reason: str = SHUTDOWN_CLOSE_REASON,
                         timeout: float = 3.0) -> defer.Deferred[None]:
        """
        Start a close handshake on every open WebSocket connection; fire when all are gone.
        Connections still there after ``timeout`` seconds are aborted.
        """
        done = self.connections.when_all_closed()
        if done.called:
            return done
        for proto in list(self.connections.open):
            if proto.state == WebSocketServerProtocol.STATE_OPEN:
                # sendClose() only takes application codes (1000, 3000-4999);
                # 1001 "going away" is a protocol-level code, sent like this.
                proto.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8"), isReply=False)
            elif proto.state != WebSocketServerProtocol.STATE_CLOSING:
                proto.transport.abortConnection()

        def abort_stragglers() -> None:
            for proto in list(self.connections.open):
                proto.transport.abortConnection()

        timer = self.reactor.callLater(timeout, abort_stragglers)

        def cancel_timer(result: None) -> None:
            if timer.active():
                timer.cancel()
            return result

        return done.addBoth(cancel_timer)


def build_site(reactor: Any, relay_url: str = DEFAULT_RELAY_URL, *, room: CommentRoom | None = None) -> DemoSite:
    """The demo origin's ``twisted.web`` site: ``/``, ``/echo`` and ``/comments``."""
    check_relay_url(relay_url)
    connections = _Connections()
    room = room if room is not None else CommentRoom()
    root = _Root()
    page = PageResource(relay_url, load_page_template())
    root.putChild(b"", page)
    root.putChild(b"index.html", page)
    root.putChild(b"echo", WebSocketResource(EchoFactory(reactor, connections)))
    root.putChild(b"comments", WebSocketResource(CommentsFactory(reactor, connections, room)))
    site = DemoSite(root, reactor=reactor)
    site.noisy = False
    site.displayTracebacks = False
    site.room = room
    site.connections = connections
    return site


class DemoOriginService(Service):
    """Listens with the demo site; on stop, stops listening and closes WebSockets with 1001."""

    name = "wsrelay-demo-origin"

    def __init__(self, reactor: Any, endpoint: Any, site: DemoSite) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.site = site
        self._port: IListeningPort | None = None
        self._result: IListeningPort | Failure | None = None
        self._listening: defer.Deferred[IListeningPort] | None = None
        self._waiters: list[defer.Deferred[IListeningPort]] = []

    def startService(self) -> None:
        super().startService()
        self._listening = self.endpoint.listen(self.site)

        def settled(result: IListeningPort | Failure) -> None:
            if isinstance(result, Failure):
                log.error("demo origin could not listen: {error}", error=result.getErrorMessage())
            else:
                self._port = result
            self._result = result
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                self._fire(d)

        self._listening.addBoth(settled)

    def _fire(self, d: defer.Deferred[IListeningPort]) -> None:
        if isinstance(self._result, Failure):
            d.errback(self._result)
        else:
            d.callback(self._result)

    def whenListening(self) -> defer.Deferred[IListeningPort]:
        """Fires with the listening port once listening, or with the failure to listen."""
        d: defer.Deferred[IListeningPort] = defer.Deferred()
        if self._result is not None:
            self._fire(d)
        else:
            self._waiters.append(d)
        return d

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self._port is not None:
            port, self._port = self._port, None
            yield port.stopListening()
        elif self._listening is not None and not self._listening.called:
            self._listening.cancel()
        yield self.site.close_websockets()


def makeService(
    reactor: Any,
    *,
    port: int = DEFAULT_PORT,
    interface: str = DEFAULT_INTERFACE,
    relay_url: str = DEFAULT_RELAY_URL,
    room: CommentRoom | None = None,
) -> DemoOriginService:
    site = build_site(reactor, relay_url, room=room)
    if ipaddress.ip_address(interface).version == 6:
        endpoint = TCP6ServerEndpoint(reactor, port, interface=interface)
    else:
        endpoint = TCP4ServerEndpoint(reactor, port, interface=interface)
    return DemoOriginService(reactor, endpoint, site)


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------


def _http_url(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m wsrelay.demo",
        description="The wsrelay demo origin: a page, /echo and /comments, to put the relay in front of.",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free port; default %(default)s)")
    p.add_argument("--interface", default=DEFAULT_INTERFACE, help="IP address to listen on (default %(default)s)")
    p.add_argument(
        "--relay-url",
        default=DEFAULT_RELAY_URL,
        help="ws:// or wss:// URL of the relay the page connects to, or same-host: the host the page "
        "was loaded from, when it is served through the relay (default %(default)s)",
    )
    p.add_argument("--lifetime", type=float, default=None, metavar="SECONDS", help="exit by itself after SECONDS")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be 0..65535, not {args.port}")
    try:
        ipaddress.ip_address(args.interface)
    except ValueError:
        p.error(f"--interface must be an IP address, not {args.interface!r}")
    try:
        check_relay_url(args.relay_url)
    except ValueError as e:
        p.error(f"--relay-url: {e}")
    if args.lifetime is not None and not args.lifetime >= 0:
        p.error("--lifetime must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr),
                [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)],
            )
        ],
        redirectStandardIO=False,
    )

    if not ipaddress.ip_address(args.interface).is_loopback:
        log.warn("the demo origin listens on {interface}, not on loopback", interface=args.interface)

    service = makeService(reactor, port=args.port, interface=args.interface, relay_url=args.relay_url)
    exit_code = [0]

    def listening(port: IListeningPort) -> None:
        url = _http_url(args.interface, port.getHost().port)
        print(
            f"demo origin listening on {url} (open the page through: {url} ; "
            f"it talks to the relay at {args.relay_url})",
            flush=True,
        )
        if args.lifetime is not None:
            reactor.callLater(args.lifetime, reactor.stop)

    def failed(f: Failure) -> None:
        print(f"demo origin could not listen on {args.interface}:{args.port}: {f.getErrorMessage()}",
              file=sys.stderr, flush=True)
        exit_code[0] = 1
        reactor.stop()

    def start() -> None:
        service.startService()
        service.whenListening().addCallbacks(listening, failed)
        reactor.addSystemEventTrigger("before", "shutdown", service.stopService)

    reactor.callWhenRunning(start)
    reactor.run()  # installs SIGINT/SIGTERM handlers that stop the reactor
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
