"""
HTTP/2 at the edge: a TLS connection whose client chose `h2` by ALPN is
served here, with the `h2` package's state machine.

Each extended CONNECT with `:protocol = websocket` (RFC 8441) becomes a
stream transport (wsrelay.edge.h2stream) carrying an ordinary ClientLeg, fed the
equivalent HTTP/1.1 upgrade request: routing, origin choice, the held
handshake, heartbeats, timeouts, close codes, compression and statistics
are those of an HTTP/1.1 session, and the origin gets an HTTP/1.1 upgrade.
Other requests are answered by the relay itself (404, 421, 426), as over
HTTP/1.1.

What one client may cost is bounded: streams at once
(max_concurrent_streams; h2 ends a connection that opens more), header lists (MAX_HEADER_LIST,
HPACK bombs end the connection), flow-control windows per stream, and
floods of resets (CVE-2023-44487), SETTINGS and PING frames, each
answered with GOAWAY ENHANCE_YOUR_CALM.
"""

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated, DataReceived, PingReceived, RemoteSettingsChanged, RequestReceived,
    StreamEnded, StreamReset, WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame
from twisted.internet import error
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from wsrelay.hosts import normalize_host
from wsrelay.edge.h2stream import StreamTransport, response_head, safe
from wsrelay.edge.http import error_response, new_key
from wsrelay.edge.legs import MAX_HEAD, UPGRADE_TEXT
from wsrelay.tls import covered, misdirected, names_of

log = Logger(namespace="wsrelay.h2edge")

MAX_HEADER_LIST = MAX_HEAD      # SETTINGS_MAX_HEADER_LIST_SIZE: the HTTP/1.1 head limit (431 there)
STREAM_WINDOW = 65535           # each stream's receive window (RFC 9113's initial value)
CLOSE_GRACE = 2.0               # seconds a closed connection's client has to end TLS before it is dropped
IDLE_TIMEOUT = 75.0             # seconds an HTTP/2 connection with no stream open is kept (nginx's keepalive_timeout)
FLOOD_INTERVAL = 10.0           # seconds over which the flood counters below run
MAX_PINGS = 100                 # PING frames per FLOOD_INTERVAL
MAX_SETTINGS = 100              # SETTINGS frames per FLOOD_INTERVAL
RESETS_PER_STREAM = 2           # reset streams per FLOOD_INTERVAL, per max_concurrent_streams (at least 100)

# Request fields the relay writes itself into the HTTP/1.1 upgrade, or that have no meaning there.
_OWN = frozenset((b"host", b"connection", b"upgrade", b"sec-websocket-key", b"keep-alive",
                  b"proxy-connection", b"transfer-encoding", b"te", b"content-length"))


class Flood:
    """Counts one kind of frame over FLOOD_INTERVAL; allow() turns False past `limit`."""

    __slots__ = ("limit", "start", "count")

    def __init__(self, limit):
        self.limit = limit
        self.start = None
        self.count = 0

    def allow(self, now):
        if self.start is None or now - self.start >= FLOOD_INTERVAL:
            self.start, self.count = now, 0
        self.count += 1
        return self.count <= self.limit


def upgrade_head(path, authority, headers):
    """
    The HTTP/1.1 upgrade request equivalent to an extended CONNECT (RFC 8441
    5): its regular fields, repeated Cookie fields joined (RFC 9113 8.2.3).
    None if a field could split the head.
    """
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: " + authority,
             b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Key: " + new_key()]
    cookies = []
    for name, value in headers:
        if any(c in name or c in value for c in (b"\r", b"\n", b"\0")) or b":" in name:
            return None
        if name in _OWN:
            continue
        if name == b"cookie":
            cookies.append(value)
        else:
            lines.append(name + b": " + value)
    if cookies:
        lines.append(b"cookie: " + b"; ".join(cookies))
    return b"\r\n".join(lines) + b"\r\n\r\n"


class H2Edge(Protocol):
    """One client's HTTP/2 connection: its streams, its windows, its counters."""

    def __init__(self, factory, addr):
        self.factory = factory        # the listener's RelayFactory: a ClientLeg per WebSocket stream
        self.addr = addr
        self.relay = factory.relay
        self.clock = self.relay.reactor
        self.streams = {}             # stream id -> StreamTransport, while its leg is connected
        self.write_paused = False
        self.closing = False
        self.draining = False
        self._dirty = {}
        self._flush_call = None
        self._timer = None
        self._names = None

    # -- the connection ---------------------------------------------------------------

    def connectionMade(self):
        config = self.relay.config
        self.max_streams = config.max_concurrent_streams
        conn = self.conn = H2Connection(H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True))
        conn.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
        })
        conn.decoder.max_header_list_size = MAX_HEADER_LIST  # HPACK bombs stop here
        conn.initiate_connection()
        # The connection's window covers every stream's, so a stalled stream
        # (its data not acknowledged) never holds up the others.
        conn.increment_flow_control_window(self.max_streams * STREAM_WINDOW)
        self._floods = {"resets": Flood(max(100, RESETS_PER_STREAM * self.max_streams)),
                        "pings": Flood(MAX_PINGS), "settings": Flood(MAX_SETTINGS)}
        try:
            self.transport.setTcpNoDelay(True)
        except Exception:
            pass
        self.transport.registerProducer(self, True)
        self._timer = self.clock.callLater(config.handshake_timeout, self._idle)
        connections = getattr(self.relay, "h2_connections", None)
        if connections is not None:
            connections.add(self)
        self._write()
        if self.relay.draining:
            self.drain()

    def dataReceived(self, data):
        if self.closing:
            return
        try:
            events = self.conn.receive_data(data)
        except H2Error as e:  # h2 has queued the GOAWAY saying why
            self._close(f"protocol error: {e}")
            return
        for event in events:
            handler = self._handlers.get(type(event))
            if handler is not None:
                handler(self, event)
            if self.closing:
                return
        self._flush()

    def connectionLost(self, reason):
        connections = getattr(self.relay, "h2_connections", None)
        if connections is not None:
            connections.discard(self)
        self.closing = True
        for call in (self._timer, self._flush_call):
            if call is not None and call.active():
                call.cancel()
        self._dirty.clear()
        for stream in list(self.streams.values()):
            stream.reset(error.ConnectionLost("the HTTP/2 connection was lost"))
        self.streams.clear()

    def _write(self):
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    def _close(self, why, code=None):
        """GOAWAY (h2's own, or `code`), then close once it is written."""
        if self.closing:
            return
        self.closing = True
        if code is not None:
            safe(self.conn.close_connection, code)
        log.info("HTTP/2 connection from {peer} closed: {why}", peer=_peer(self.transport), why=why)
        self._write()
        for stream in list(self.streams.values()):  # their legs end now, as if the client had left
            stream.reset(error.ConnectionLost(f"HTTP/2 connection closed: {why}"))
        # The TLS layer closes only once no producer is registered; a client that
        # never answers its close_notify is dropped CLOSE_GRACE later.
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.clock.callLater(CLOSE_GRACE, self.transport.abortConnection)

    def _idle(self):
        self._timer = None
        if not self.streams and not self.closing:
            self._close("idle", ErrorCodes.NO_ERROR)

    def drain(self):
        """
        The relay is stopping: GOAWAY NO_ERROR at once (the client opens no
        new stream here, RFC 9113 6.8), and the connection closes as soon as
        its sessions, closed by the drain, are gone.
        """
        if self.draining or self.closing:
            return
        self.draining = True
        self._write()
        # Written past h2, whose state machine allows nothing more after its own GOAWAY,
        # while the streams open still have their closing handshakes to send.
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = self.conn.highest_inbound_stream_id
        goaway.error_code = ErrorCodes.NO_ERROR
        self.transport.write(goaway.serialize())
        if not self.streams:
            self._close("the relay is shutting down")

    def _flooded(self, kind):
        if not self._floods[kind].allow(self.clock.seconds()):
            self._close(f"too many {kind} (more than {self._floods[kind].limit} in {FLOOD_INTERVAL:g}s)",
                        ErrorCodes.ENHANCE_YOUR_CALM)
            return True
        return False

    # -- producer of the connection's bytes: the socket's buffer is full --------------

    def pauseProducing(self):
        self.write_paused = True

    def resumeProducing(self):
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.window_opened()

    def stopProducing(self):
        pass  # connectionLost follows

    # -- what streams ask --------------------------------------------------------------

    def schedule(self, stream):
        """Send what `stream` has queued, soon (writes of one turn go out together)."""
        self._dirty[stream] = None
        if self._flush_call is None and not self.closing:
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self):
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        if self.closing:
            return
        while self._dirty:
            stream = next(iter(self._dirty))
            del self._dirty[stream]
            stream.flush(self._send)
        self._write()

    def _send(self, stream_id, data):
        return safe(self.conn.send_data, stream_id, data)

    def window(self, stream_id, wanted):
        """How much of `wanted` bytes may go out on the stream now."""
        if self.write_paused or self.closing:
            return 0
        try:
            allowed = self.conn.local_flow_control_window(stream_id)
        except H2Error:
            return 0
        return min(wanted, allowed, self.conn.max_outbound_frame_size)

    def send_headers(self, stream_id, headers):
        safe(self.conn.send_headers, stream_id, headers)
        self.schedule_write()

    def end_stream(self, stream_id):
        safe(self.conn.end_stream, stream_id)
        self.schedule_write()

    def reset_stream(self, stream_id, code):
        safe(self.conn.reset_stream, stream_id, code)
        self.schedule_write()

    def acknowledge(self, stream_id, length):
        if length:
            self.conn.acknowledge_received_data(length, stream_id)
            self.schedule_write()

    def schedule_write(self):
        if self._flush_call is None and not self.closing:
            self._flush_call = self.clock.callLater(0, self._flush)

    def later(self, call, *args):
        self.clock.callLater(0, call, *args)

    def stream_gone(self, stream):
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        self._dirty.pop(stream, None)
        if self.draining and not self.streams:
            self._close("the relay is shutting down")
        self._arm_idle()

    def _arm_idle(self):
        if not self.streams and not self.closing and self._timer is None:
            self._timer = self.clock.callLater(IDLE_TIMEOUT, self._idle)

    # -- events --------------------------------------------------------------------------

    def _on_request(self, event):
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        stream_id = event.stream_id
        pseudo, regular = {}, []
        for name, value in event.headers:
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                regular.append((name, value))
        authority = pseudo.get(b":authority") or dict(regular).get(b"host") or b""
        server_name = self._server_name(authority)
        method = pseudo.get(b":method", b"")
        if method == b"CONNECT" and pseudo.get(b":protocol", b"").lower() == b"websocket":
            head = upgrade_head(pseudo.get(b":path", b"/"), authority, regular)
            if head is None:
                self._answer(stream_id, 400, "bad request header field", event.stream_ended)
                self._arm_idle()
                return
            self._websocket(stream_id, head, server_name, event.stream_ended)
            return
        config = self.relay.config
        host = authority.decode("latin-1")
        domain = config.domain_for(host)
        if method != b"CONNECT" and getattr(domain, "http", False):  # HTTP pass-through (http = on)
            from wsrelay.edge.h2http import proxy_request

            proxy_request(self, stream_id, server_name, pseudo, regular, event.stream_ended)
            return
        if domain is None:
            status, text = 404, "no such domain on this relay"
        else:
            reason = misdirected(config, server_name and server_name.decode("ascii", "replace"), domain)
            if reason:
                status, text = 421, reason
            elif method == b"CONNECT":
                status, text = (501, "only the websocket protocol is relayed") if b":protocol" in pseudo \
                    else (405, "CONNECT tunnels are not offered")
            else:
                status, text = 426, UPGRADE_TEXT
        self._answer(stream_id, status, text, event.stream_ended, head_only=method == b"HEAD")
        self._arm_idle()
        log.info("{client_ip} {domain} \"{method} {path}\" {status} h2", client_ip=_peer(self.transport),
                 domain=domain.name if domain else None, method=method.decode("latin-1"),
                 path=pseudo.get(b":path", b"").decode("latin-1"), status=status, protocol="h2")

    def _websocket(self, stream_id, head, server_name, ended):
        stream = StreamTransport(self, stream_id, server_name)
        build = getattr(self.factory, "build_leg", None) or self.factory.buildProtocol  # a ClientLeg, always
        leg = build(self.addr)
        stream.protocol = leg
        self.streams[stream_id] = stream
        leg.makeConnection(stream)
        leg.session.protocol = "h2"
        stream.data_received(head, 0)
        if ended:
            stream.remote_ended()

    def _answer(self, stream_id, status, text, ended, head_only=False):
        """A complete response from the relay itself, as over HTTP/1.1 (wsrelay.edge.http.error_response)."""
        response = error_response(status, text)
        head, _, body = response.partition(b"\r\n\r\n")
        _, headers = response_head(head)
        safe(self.conn.send_headers, stream_id, headers, head_only or not body)
        if body and not head_only:
            safe(self.conn.send_data, stream_id, body, True)  # far below any window
        if not ended:  # the rest of the request is not wanted (RFC 9113 8.1)
            safe(self.conn.reset_stream, stream_id, ErrorCodes.NO_ERROR)
        self.schedule_write()

    def _server_name(self, authority):
        """
        The server name a stream is held to (bytes or None): the connection's
        SNI, or the stream's own :authority when the certificate this
        connection was opened with covers it (a coalesced connection).
        """
        try:
            handle = self.transport.getHandle()
            sni = handle.get_servername()
        except Exception:
            return None
        if not sni:
            return None
        host = normalize_host(authority.decode("latin-1"))
        if host is None or host.encode("ascii", "replace") == sni.lower():
            return sni
        if self._names is None:
            certificate = handle.get_certificate()
            self._names = names_of(certificate.to_cryptography()) if certificate is not None else ()
        if covered(self._names, host):
            return host.encode("ascii", "replace")
        return sni

    def _on_data(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.data_received(event.data, event.flow_controlled_length)
        else:
            self.acknowledge(event.stream_id, event.flow_controlled_length)

    def _on_end(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.remote_ended()

    def _on_reset(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.reset(error.ConnectionLost(f"the client reset the stream ({event.error_code!r})"))
        if event.remote_reset:
            self._flooded("resets")

    def _on_window(self, event):
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.window_opened()
        else:
            for stream in list(self.streams.values()):
                stream.window_opened()

    def _on_settings(self, event):
        if self._flooded("settings"):
            return
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            for stream in list(self.streams.values()):
                stream.window_opened()

    def _on_ping(self, event):
        self._flooded("pings")

    def _on_goaway(self, event):
        self._close(f"the client sent GOAWAY ({event.error_code!r})")

    _handlers = {
        RequestReceived: _on_request, DataReceived: _on_data, StreamEnded: _on_end,
        StreamReset: _on_reset, WindowUpdated: _on_window, RemoteSettingsChanged: _on_settings,
        PingReceived: _on_ping, ConnectionTerminated: _on_goaway,
    }


    def peer_host(self):
        return _peer(self.transport)


def _peer(transport):
    peer = transport.getPeer()
    return getattr(peer, "host", str(peer))
