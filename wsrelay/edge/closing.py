"""
Which close code and reason one leg gets when something happens on the other.

The rule: a close frame is carried across unchanged (code and reason, or no
code at all); anything else is turned into a code the relay may send:
1001 towards the origin when the client side failed, the configured
origin_gone_close_code towards the client when the origin side failed, and
1001 on both legs for the relay's own reasons (idle timeout, shutdown).
Reserved codes (1005, 1006, 1015) never go on the wire.
"""

NEVER_SENT = frozenset({1005, 1006, 1015})
GOING_AWAY = 1001

# what happened on a leg
PEER_CLOSED = "closed"      # the peer sent a close frame
PEER_GONE = "gone"          # the TCP connection ended without a close frame
PEER_DEAD = "dead"          # no pong within heartbeat_timeout
PEER_ERROR = "error"        # the peer broke the protocol; the relay failed that leg
IDLE = "idle"               # connection_timeout: no data message either way
SHUTDOWN = "shutdown"       # the relay is stopping
RELOAD = "reload"           # a reloaded config changed or removed the session's route
EXPIRED = "expired"         # the session reached its domain's max_session_duration
SERVICE_RESTART = 1012

_WHY = {
    PEER_GONE: "{side} gone",
    PEER_DEAD: "{side} not answering pings",
    PEER_ERROR: "{side} protocol error {code}",
}


def close_for_other_leg(side, event, code=None, reason=None, origin_gone_code=1011):
    """
    The (code, reason) to close the other leg with, after `event` happened on
    the `side` leg ("client" or "origin"). code None means a close frame
    without a status code (what the peer itself sent).
    """
    if event == PEER_CLOSED and code not in NEVER_SENT:
        return code, (reason if code is not None else None)
    if event == IDLE:
        return GOING_AWAY, "connection timeout"
    if event == SHUTDOWN:
        return GOING_AWAY, "relay shutting down"
    if event == EXPIRED:
        return GOING_AWAY, "session reached its maximum duration"
    if event == RELOAD:
        return SERVICE_RESTART, "relay configuration changed"
    why = _WHY.get(event, "{side} gone").format(side=side, code=code)
    if side == "client":
        return GOING_AWAY, why
    return origin_gone_code, why


def encode_reason(reason):
    """A close reason as UTF-8, cut on a character boundary to fit 123 bytes."""
    if reason is None:
        return None
    data = reason.encode("utf-8")
    if len(data) <= 123:
        return data
    return data[:123].decode("utf-8", "ignore").encode("utf-8")
