"""
What a leg keeps while its session is open, and what it lets go when the session ends.

Memory per session (bench/README.md). Autobahn copies its options from the factory into
every protocol and keeps some forty more attributes that stay None/False for most of a
session: an 80-entry dict per leg. The legs read the options from their factory instead
(_Leg.__getattr__), and once a session is open (compact) an attribute still at its usual
value lives on the class, and what only the handshake needed goes. When the session has
ended (release), the references that make a leg, its session, its transport and its timers
a reference cycle are dropped, so that refcounting frees them at once rather than a full
garbage collection some time later (and the memory can go back to the system at once).
"""

from autobahn.wamp.types import TransportDetails
from autobahn.websocket.protocol import TrafficStats, WebSocketProtocol
from autobahn.websocket.utf8validator import Utf8Validator

OPTIONS = frozenset(WebSocketProtocol.CONFIG_ATTRS_COMMON + WebSocketProtocol.CONFIG_ATTRS_SERVER
                    + WebSocketProtocol.CONFIG_ATTRS_CLIENT)
_HANDSHAKE_LEFTOVERS = (
    "http_request_data", "http_headers", "http_request_params", "http_response_data", "http_status_line",
    "http_request_uri", "http_request_path", "http_request_host", "websocket_origin", "websocket_protocols",
    "websocket_extensions", "_wskey", "websocket_key", "_request", "_client_open", "_head_timer",
    "is_open", "_transport_details", "_valid_events", "_results", "answered", "serverConnectionDropTimeoutCall")
# Options read only during the handshake: a leg's own copy goes, the factory's shows through.
_HANDSHAKE_OPTIONS = frozenset(("perMessageCompressionAccept", "perMessageCompressionOffers"))
# Attributes at these values (==) live on the class once a session is open.
_USUAL = {"data": b"", "send_state": 0, "autoPingPendingSeq": 0, "websocket_extensions_in_use": []}
_AT_REST = dict.fromkeys(_HANDSHAKE_LEFTOVERS + (
    "trackedTimings", "_perMessageCompress", "wasNotCleanReason", "localCloseCode", "localCloseReason",
    "remoteCloseCode", "remoteCloseReason", "openHandshakeTimeoutCall", "closeHandshakeTimeoutCall",
    "autoPingTimeoutCall", "autoPingPendingCall", "autoPingPending", "autoPingPendingSeq",
    "autoPingPendingSent", "current_frame", "websocket_protocol_in_use"), None)
_AT_REST.update(dict.fromkeys((
    "triggered", "wasMaxFramePayloadSizeExceeded", "wasMaxMessagePayloadSizeExceeded", "closedByMe",
    "failedByMe", "droppedByMe", "wasClean", "wasServerConnectionDropTimeout", "wasOpenHandshakeTimeout",
    "wasCloseHandshakeTimeout", "wasServingFlashSocketPolicyFile", "inside_message", "_awaiting_origin",
    "_registered"), False))
# What release() drops: each is part of a cycle (the other leg, the session and the heartbeat
# refer back to the leg; a transport's connector to the transport; Autobahn's closed Deferred
# holds the leg as its result; a timer holds a bound method of the leg).
_CYCLES = ("other", "session", "heartbeat", "transport", "_sock", "_close_timer", "is_closed", "is_open",
           "_head_timer", "_client_open", "answered", "_pings")


class _NobodyWaits:
    """What Autobahn resolves at a compacted leg's close when nobody waits for it: nothing to do."""

    called = False

    def callback(self, result):
        pass

    def errback(self, failure=None):
        pass


_NOBODY_WAITS = _NobodyWaits()


class _LazyValidator:
    """A leg's UTF-8 validator, made at first use after compact() dropped it (the pump has its own check)."""

    def __get__(self, leg, owner=None):
        if leg is None:
            return self
        validator = leg.__dict__["utf8validator"] = Utf8Validator()
        return validator


def settle_class(cls):
    """Put the values compact() leaves out on the leg class, where every leg reads them."""
    for name, value in _AT_REST.items():
        if not hasattr(cls, name):
            setattr(cls, name, value)
    for name, value in _USUAL.items():
        setattr(cls, name, () if value == [] else value)
    cls.send_queue = ()                # empty: nothing is ever queued (see compact)
    cls.is_closed = _NOBODY_WAITS      # Autobahn resolves it at the close; nobody waits on a leg's
    cls.is_open = _NOBODY_WAITS        # compact() runs inside onOpen: Autobahn resolves it right after
    cls._transport_details = TransportDetails()  # read (not written: not secure) by Autobahn's _onOpen
    cls.utf8validator = _LazyValidator()
    cls.trafficStats = TrafficStats()  # one sink for every compacted leg's (unread) statistics


def compact(leg):
    """
    The session is open: let go of the handshake's bytes and headers, and keep in the leg's
    own dict only what differs from the class's values (a fresh, small dict: a dict never
    shrinks by itself, and one of up to 21 entries stays under pymalloc's 512 bytes).
    """
    keep = {}
    for name, value in leg.__dict__.items():
        if name in _AT_REST and (name in _HANDSHAKE_LEFTOVERS or value is _AT_REST[name]):
            continue
        if name in _HANDSHAKE_OPTIONS or (name in _USUAL and value == _USUAL[name]):
            continue
        if name == "send_queue" and not value:  # only Autobahn's sendData (replaced by the legs) queues
            continue
        if name in ("trafficStats", "utf8validator"):  # nobody reads Autobahn's; made again when needed
            continue
        if name == "is_closed" and not value.called and getattr(value, "_callbacks", None) == []:
            continue                            # nobody waits for it: _NOBODY_WAITS takes the close
        keep[name] = value
    leg.__dict__ = keep


def release(leg):
    """
    The leg's session has ended (both legs lost): drop what ties it into reference cycles, so
    refcounting frees it at once. Its counters and close codes stay (Session.record reads them).
    """
    transport = leg.__dict__.get("transport")
    connector = getattr(transport, "connector", None)
    if connector is not None:
        if getattr(connector, "transport", None) is transport:
            connector.transport = None  # a Twisted client transport and its connector refer to each other
        wrapping = getattr(connector, "factory", None)  # and an endpoint's factory and its connector
        if getattr(wrapping, "_connector", None) is connector:
            wrapping._connector = None  # (only read to cancel a connect in progress)
    state = leg.__dict__
    for name in _CYCLES:
        state.pop(name, None)
