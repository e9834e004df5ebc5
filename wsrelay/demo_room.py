"""
The demo origin's WebSocket applications: the comments room (a functional core taking `now`,
returning the messages to send) and the Autobahn protocols around it, /echo and /comments.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionRequest
from twisted.internet import defer
from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger(namespace="wsrelay.demo")


MAX_COMMENT_CHARS = 500
HISTORY_SIZE = 20

# Autobahn limits, set explicitly rather than relying on the library defaults.
MAX_PAYLOAD = 65536
PROTOCOL_OPTIONS: dict[str, Any] = dict(
    maxMessagePayloadSize=MAX_PAYLOAD,
    maxFramePayloadSize=MAX_PAYLOAD,
    failByDrop=False,
    autoPingInterval=0,
    openHandshakeTimeout=5,
    closeHandshakeTimeout=1,
    tcpNoDelay=True,
    webStatus=False,  # no Autobahn status page on a plain GET of /echo or /comments
)

SHUTDOWN_CLOSE_CODE = 1001  # "going away"
SHUTDOWN_CLOSE_REASON = "demo origin shutting down"


# ---------------------------------------------------------------------------
# Functional core: the comments room (no sockets, no clock).
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One message for the shell to send: the viewer ids to send it to, and the JSON-able message."""

    to: tuple[int, ...]
    message: dict[str, Any]


def _iso(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CommentRoom:
    """
    A broadcast room. Viewers are numbered 1, 2, 3... in order of joining.

    Every method returns the list of :class:`Outgoing` messages to send, in order:

    - :meth:`join`: to the joiner ``{"type":"hello","you":N}``, then the last
      ``history`` comments (each marked ``"replay": true``), then to everyone
      (joiner included) ``{"type":"viewers","count":N}``;
    - :meth:`leave`: to everyone left, ``{"type":"viewers","count":N}``;
    - :meth:`post`: to everyone (sender included)
      ``{"type":"comment","text":...,"from":N,"at":ISO-time}``; or, for a
      comment that is empty or longer than ``max_chars`` characters, only to the
      sender ``{"type":"error","error":...}`` and the comment is dropped.
    """

    def __init__(self, history: int = HISTORY_SIZE, max_chars: int = MAX_COMMENT_CHARS) -> None:
        self.max_chars = max_chars
        self._viewers: dict[int, None] = {}  # insertion-ordered set
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self._next_id = 1

    @property
    def viewers(self) -> tuple[int, ...]:
        return tuple(self._viewers)

    @property
    def history(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._history)

    def _viewer_count(self) -> Outgoing:
        return Outgoing(self.viewers, {"type": "viewers", "count": len(self._viewers)})

    def join(self, now: datetime) -> tuple[int, list[Outgoing]]:
        viewer = self._next_id
        self._next_id += 1
        self._viewers[viewer] = None
        out = [Outgoing((viewer,), {"type": "hello", "you": viewer})]
        out.extend(Outgoing((viewer,), {**c, "replay": True}) for c in self._history)
        out.append(self._viewer_count())
        return viewer, out

    def leave(self, viewer: int, now: datetime) -> list[Outgoing]:
        if viewer not in self._viewers:
            return []
        del self._viewers[viewer]
        if not self._viewers:
            return []
        return [self._viewer_count()]

    def post(self, viewer: int, text: str, now: datetime) -> list[Outgoing]:
        if viewer not in self._viewers:
            return []
        if len(text) > self.max_chars:
            return [
                Outgoing(
                    (viewer,),
                    {
                        "type": "error",
                        "error": f"comment too long: {len(text)} characters, at most {self.max_chars}; it was not posted",
                    },
                )
            ]
        if not text.strip():
            return [Outgoing((viewer,), {"type": "error", "error": "empty comment; it was not posted"})]
        comment = {"type": "comment", "text": text, "from": viewer, "at": _iso(now)}
        self._history.append(comment)
        return [Outgoing(self.viewers, comment)]

    def reject(self, viewer: int, error: str) -> list[Outgoing]:
        """An error for one viewer only (e.g. a binary message was sent)."""
        if viewer not in self._viewers:
            return []
        return [Outgoing((viewer,), {"type": "error", "error": error})]


# ---------------------------------------------------------------------------
# Thin Autobahn shell.
# ---------------------------------------------------------------------------


class _Connections:
    """The open WebSocket connections of one demo site, so that it can close them on shutdown."""

    def __init__(self) -> None:
        self.open: set[_DemoProtocol] = set()
        self._waiters: list[defer.Deferred[None]] = []

    def add(self, proto: _DemoProtocol) -> None:
        self.open.add(proto)

    def remove(self, proto: _DemoProtocol) -> None:
        self.open.discard(proto)
        if not self.open:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def when_all_closed(self) -> defer.Deferred[None]:
        if not self.open:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(d)
        return d


class _DemoProtocol(WebSocketServerProtocol):
    """Shared shell: TCP_NODELAY, connection tracking, structured logs."""

    def connectionMade(self) -> None:
        super().connectionMade()
        # Set it ourselves rather than trusting the library to.
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        self.factory.connections.add(self)

    def connectionLost(self, reason: Failure) -> None:
        try:
            super().connectionLost(reason)
            self.left()
        finally:
            self.factory.connections.remove(self)

    def left(self) -> None:
        """Called once the connection is gone."""

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        log.info(
            "{endpoint} connection from {peer} closed: clean={clean} code={code} reason={reason!r}",
            endpoint=self.factory.endpoint_name,
            peer=self.peer,
            clean=wasClean,
            code=code,
            reason=reason,
        )


class EchoProtocol(_DemoProtocol):
    def onConnect(self, request: ConnectionRequest) -> str | None:
        chosen = request.protocols[0] if request.protocols else None
        log.info(
            "echo connection from {peer}: offered subprotocols {offered}, selected {subprotocol}",
            peer=request.peer,
            offered=request.protocols,
            subprotocol=chosen,
        )
        return chosen

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


class CommentsProtocol(_DemoProtocol):
    viewer: int | None = None

    def onOpen(self) -> None:
        factory: CommentsFactory = self.factory
        self.viewer, out = factory.room.join(factory.now())
        factory.protocols[self.viewer] = self
        log.info(
            "viewer {viewer} ({peer}) joined the comments room; {count} viewers",
            viewer=self.viewer,
            peer=self.peer,
            count=len(factory.room.viewers),
        )
        factory.deliver(out)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        factory: CommentsFactory = self.factory
        if self.viewer is None:
            return
        if isBinary:
            out = factory.room.reject(self.viewer, "binary messages are not accepted; send text")
        else:
            text = payload.decode("utf-8")  # Autobahn has already validated the UTF-8
            out = factory.room.post(self.viewer, text, factory.now())
            log.info(
                "viewer {viewer} posted {length} characters: {outcome}",
                viewer=self.viewer,
                length=len(text),
                outcome=out[0].message["type"] if out else "dropped",
            )
        factory.deliver(out)

    def left(self) -> None:
        factory: CommentsFactory = self.factory
        viewer, self.viewer = self.viewer, None
        if viewer is None:
            return
        factory.protocols.pop(viewer, None)
        out = factory.room.leave(viewer, factory.now())
        log.info(
            "viewer {viewer} left the comments room; {count} viewers",
            viewer=viewer,
            count=len(factory.room.viewers),
        )
        factory.deliver(out)


class _DemoFactory(WebSocketServerFactory):
    endpoint_name = "?"

    def __init__(self, reactor: Any, connections: _Connections) -> None:
        # No url: Autobahn then checks no Host header port, which is right
        # behind a relay and with --port 0.
        super().__init__(server="wsrelay-demo", reactor=reactor)
        self.setProtocolOptions(**PROTOCOL_OPTIONS)
        self.connections = connections
        self.noisy = False


class EchoFactory(_DemoFactory):
    protocol = EchoProtocol
    endpoint_name = "echo"


class CommentsFactory(_DemoFactory):
    protocol = CommentsProtocol
    endpoint_name = "comments"

    def __init__(self, reactor: Any, connections: _Connections, room: CommentRoom) -> None:
        super().__init__(reactor, connections)
        self.room = room
        self.protocols: dict[int, CommentsProtocol] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), tz=timezone.utc)

    def deliver(self, out: Iterable[Outgoing]) -> None:
        for item in out:
            payload = json.dumps(item.message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            prepared = self.prepareMessage(payload, isBinary=False)
            for viewer in item.to:
                proto = self.protocols.get(viewer)
                if proto is not None and proto.state == WebSocketServerProtocol.STATE_OPEN:
                    proto.sendPreparedMessage(prepared)
