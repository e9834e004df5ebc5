"""
The live sessions of this process, for GET /v1/sessions and
DELETE /v1/sessions/{id}: plain functions over the relay's session set (no
I/O). A session is listed once both handshakes are done (101); one still
dialling its origin is not.
"""

import ipaddress
import os

from wsrelay.admin.errors import ApiError

DEFAULT_LIMIT = 100
MAX_LIMIT = 10000
MAX_REASON = 123   # bytes of UTF-8 a close frame's reason may hold
LIST_PARAMETERS = {"domain", "client", "limit"}
CLOSE_PARAMETERS = {"code", "reason", "origin_code"}


def session_id(session):
    """A live session's id: this process, the object, its start (unique among live sessions of the relay)."""
    return f"{os.getpid():x}-{id(session):x}-{int(session.started * 1000):x}"


def valid_close_code(code):
    """Codes a Close frame may carry (RFC 6455 7.4): 1000-1003, 1007-1014, 3000-4999."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _leg(leg, index, now):
    counters = leg.counters
    beat = leg.heartbeat
    rtt = getattr(beat, "rtt", None)
    return {
        "messages_in": counters.messages_in, "messages_out": counters.messages_out,
        "bytes_in": counters.bytes_in, "bytes_out": counters.bytes_out,
        "compression": "permessage-deflate" if getattr(leg, "_perMessageCompress", None) is not None else None,
        "ping_rtt": rtt[index] if rtt is not None else None,
    }


def describe(session, now):
    """The JSON-ready view of one live session (docs/openapi.yaml, LiveSession)."""
    idle = getattr(session, "_idle", None)
    last = idle.last if idle is not None else session.opened_at
    return {
        "id": session_id(session),
        "domain": session.domain.name,
        "host": session.host,
        "client": session.client_ip,
        "peer": session.peer,
        "scheme": session.scheme,
        "path": session.path,
        "subprotocol": session.subprotocol,
        "origin": session.origin_address,
        "worker": getattr(session.relay, "worker", None),
        "age": round(now - session.opened_at, 3),
        "idle": round(max(0.0, now - last), 3),
        "client_leg": _leg(session.client, 0, now),
        "origin_leg": _leg(session.origin, 1, now),
    }


def live(sessions):
    return [s for s in sessions if s.status == 101 and not s.ended and s.origin is not None]


def parse_filters(params):
    """(domains, client network or None, limit) from GET /v1/sessions's parameters ({name: [str]})."""
    domains = tuple(params.get("domain", ())) or None
    client = None
    if "client" in params:
        text = params["client"][0].strip()
        try:
            client = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ApiError(400, f"client: {text!r} is not an address or a network (CIDR)")
    limit = DEFAULT_LIMIT
    if "limit" in params:
        text = params["limit"][0].strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise ApiError(400, f"limit: {text!r} is not a whole number from 1 to {MAX_LIMIT}")
        limit = int(text)
    return domains, client, limit


def _client_in(address, network):
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


def select(sessions, domains, client, now):
    """The described live sessions matching the filters, the longest-lived first."""
    found = []
    for session in live(sessions):
        if domains is not None and session.domain.name not in domains:
            continue
        if client is not None and not _client_in(session.client_ip, client):
            continue
        found.append(describe(session, now))
    found.sort(key=lambda s: -s["age"])
    return found


def listing(found, limit):
    """The answer of GET /v1/sessions from every matching session (of one or several processes)."""
    found = sorted(found, key=lambda s: -s["age"])
    return {"count": len(found), "truncated": len(found) > limit, "sessions": found[:limit]}


def parse_close(params):
    """(client code, origin code, reason) of DELETE /v1/sessions/{id}'s parameters."""
    code = 1000
    if "code" in params:
        text = params["code"][0].strip()
        if not text.isdigit() or not valid_close_code(int(text)):
            raise ApiError(400, f"code: {text!r} is not a close code an endpoint may send "
                                "(1000-1003, 1007-1014, 3000-4999)")
        code = int(text)
    reason = params["reason"][0] if "reason" in params else "closed by the operator"
    if len(reason.encode("utf-8")) > MAX_REASON:
        raise ApiError(400, f"reason: at most {MAX_REASON} bytes of UTF-8")
    origin = "1001"
    if "origin_code" in params:
        origin = params["origin_code"][0].strip().lower()
        if origin not in ("1001", "same"):
            raise ApiError(400, f"origin_code: {origin!r} is not 1001 or same")
    return code, (code if origin == "same" else 1001), reason


def find(sessions, wanted):
    for session in live(sessions):
        if session_id(session) == wanted:
            return session
    return None
