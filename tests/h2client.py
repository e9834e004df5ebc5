"""
An HTTP/2 client for the tests: one TLS connection (ALPN h2) driven by the
`h2` package on asyncio, carrying plain requests and WebSockets over
extended CONNECT (RFC 8441). The WebSocket side of each stream is the
`websockets` library's own sans-I/O client protocol, so framing, masking,
compression and closing handshakes are a real client's, not the test's.

Every wait is bounded (tests.support.WAIT).
"""

import asyncio
import base64
import hashlib

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated, DataReceived, RemoteSettingsChanged, ResponseReceived, StreamEnded,
    StreamReset, WindowUpdated,
)
from h2.frame_buffer import FrameBuffer
from hyperframe.frame import GoAwayFrame
from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.uri import parse_uri

from tests.support import WAIT

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Stream:
    """What arrived on one stream."""

    def __init__(self, stream_id):
        self.stream_id = stream_id
        self.headers = None
        self.status = None
        self.body = bytearray()
        self.ended = False
        self.reset = None            # the error code of an RST_STREAM from the server
        self.stalled = False         # DATA is not acknowledged: the server's window closes
        self.unacknowledged = 0
        self.changed = asyncio.Event()
        self.websocket = None

    def poke(self):
        self.changed.set()


class H2Client:
    def __init__(self):
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.streams = {}
        self.terminated = None      # the ConnectionTerminated event (GOAWAY) from the server
        self.error = None           # what h2 raised on the server's bytes, if it did
        self.goaways = []           # every GOAWAY frame received (h2 itself allows nothing after one)
        self.raw = FrameBuffer()
        self.raw.max_frame_size = (1 << 24) - 1
        self.closed = asyncio.Event()
        self.settings = asyncio.Event()
        self.reader = self.writer = None
        self._task = None

    @classmethod
    async def connect(cls, port, server_name, context):
        self = cls()
        context.set_alpn_protocols(["h2", "http/1.1"])
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=server_name), WAIT)
        self.alpn = self.writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if self.alpn == "h2":
            self.conn.initiate_connection()
            # As browsers do (Chromium: 15 MB): a stalled stream must not use up the connection's window.
            self.conn.increment_flow_control_window(15 * 1024 * 1024)
            self.flush()
            self._task = asyncio.create_task(self._read())
            await asyncio.wait_for(self.settings.wait(), WAIT)
        return self

    @property
    def connect_protocol(self):
        return self.conn.remote_settings.enable_connect_protocol

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.raw.add_data(data)
                for frame in self.raw:   # GOAWAY frames as sent, whatever h2 makes of what follows
                    if isinstance(frame, GoAwayFrame):
                        self.goaways.append(frame)
                for event in self.conn.receive_data(data):
                    self._event(event)
                self.flush()
        except (ConnectionError, OSError):
            pass
        except Exception as e:  # h2 refusing what the server sent: the test reads self.error
            self.error = e
        finally:
            self.closed.set()
            for stream in self.streams.values():
                stream.poke()

    def _event(self, event):
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, RemoteSettingsChanged):
            self.settings.set()
        elif isinstance(event, ConnectionTerminated):
            self.terminated = event
        elif isinstance(event, ResponseReceived) and stream is not None:
            stream.headers = event.headers
            stream.status = int(dict(event.headers)[b":status"])
            if stream.websocket is not None:
                stream.websocket.answered(stream)
        elif isinstance(event, DataReceived) and stream is not None:
            stream.body += event.data
            if stream.websocket is not None:
                stream.websocket.received(event.data)
            if stream.stalled:
                stream.unacknowledged += event.flow_controlled_length
            else:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded) and stream is not None:
            stream.ended = True
            if stream.websocket is not None:
                stream.websocket.ended()
        elif isinstance(event, StreamReset) and stream is not None:
            stream.reset = event.error_code
            if stream.websocket is not None:
                stream.websocket.ended()
        elif isinstance(event, WindowUpdated):
            for waiting in self.streams.values():   # a sender may go on
                waiting.poke()
        if stream is not None:
            stream.poke()

    async def wait_for(self, stream, predicate, what, timeout=WAIT):
        async def wait():
            while not predicate():
                if self.closed.is_set():
                    raise AssertionError(f"connection closed while waiting for {what}")
                stream.changed.clear()
                await stream.changed.wait()
        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s") from None

    def open(self, headers, end_stream=False, stalled=False):
        stream_id = self.conn.get_next_available_stream_id()
        stream = self.streams[stream_id] = Stream(stream_id)
        stream.stalled = stalled
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.flush()
        return stream

    async def request(self, authority, path="/", method="GET", body=None, headers=()):
        head = [(b":method", method.encode()), (b":scheme", b"https"),
                (b":authority", authority.encode()), (b":path", path.encode()), *headers]
        stream = self.open(head, end_stream=body is None)
        if body is not None:
            await self.send_body(stream, body)
        await self.wait_for(stream, lambda: stream.ended or stream.reset is not None, f"an answer to {path}")
        return stream

    async def send_body(self, stream, body, end=True):
        """Send `body` on the stream as the server's windows allow (bounded wait), then END_STREAM."""
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(stream.stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                await self.wait_for(stream, lambda: stream.reset is not None or
                                    self.conn.local_flow_control_window(stream.stream_id) > 0, "a window to send in")
                if stream.reset is not None:
                    return
                continue
            self.conn.send_data(stream.stream_id, bytes(view[:window]))
            view = view[window:]
            self.flush()
            await self.writer.drain()
        if end:
            self.conn.end_stream(stream.stream_id)
            self.flush()

    async def websocket(self, authority, path="/", extensions=None, subprotocols=None, extra=(), stalled=False):
        ws = H2WebSocket(self, authority, path, extensions, subprotocols)
        headers = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
                   (b":authority", authority.encode()), (b":path", path.encode()),
                   (b"sec-websocket-version", b"13")]
        request = ws.protocol.connect()
        for name in ("Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"):
            if name in request.headers:
                headers.append((name.lower().encode(), request.headers[name].encode()))
        headers.extend(extra)
        ws.key = request.headers["Sec-WebSocket-Key"]
        stream = self.open(headers, stalled=stalled)
        stream.websocket = ws
        ws.stream = stream
        await self.wait_for(stream, lambda: stream.status is not None or stream.reset is not None or stream.ended,
                            f"an answer to CONNECT {path}")
        return ws

    def stall(self, stream):
        stream.stalled = True

    def unstall(self, stream):
        stream.stalled = False
        if stream.unacknowledged:
            self.conn.acknowledge_received_data(stream.unacknowledged, stream.stream_id)
            stream.unacknowledged = 0
            self.flush()

    def reset(self, stream, code=8):
        self.conn.reset_stream(stream.stream_id, code)
        self.flush()

    async def close(self):
        if self._task is not None:
            self._task.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass


class H2WebSocket:
    """A WebSocket over one stream: websockets' ClientProtocol fed the stream's bytes."""

    def __init__(self, client, authority, path, extensions, subprotocols):
        self.client = client
        kwargs = {}
        if extensions is not None:
            kwargs["extensions"] = extensions
        if subprotocols is not None:
            kwargs["subprotocols"] = subprotocols
        self.protocol = ClientProtocol(parse_uri(f"wss://{authority}{path}"), **kwargs)
        self.stream = None
        self.key = None
        self.messages = asyncio.Queue()
        self.close_frame = None

    @property
    def status(self):
        return self.stream.status

    def answered(self, stream):
        if stream.status != 200:
            return
        # What the HTTP/1.1 handshake would have said: websockets checks the rest as it would there.
        accept = base64.b64encode(hashlib.sha1(self.key.encode() + GUID).digest()).decode()
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Accept: {accept}"]
        for name, value in stream.headers:
            if name in (b"sec-websocket-extensions", b"sec-websocket-protocol"):
                lines.append(f"{name.decode()}: {value.decode()}")
        self.protocol.data_to_send()  # the HTTP/1.1 request it made: not sent, CONNECT replaced it
        self.protocol.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._pump()

    @property
    def subprotocol(self):
        return self.protocol.subprotocol

    def received(self, data):
        self.protocol.receive_data(data)
        self._pump()

    def ended(self):
        self.protocol.receive_eof()
        self._pump()

    def _pump(self):
        for event in self.protocol.events_received():
            if hasattr(event, "opcode"):
                if event.opcode.name in ("TEXT", "BINARY", "CONT"):
                    self.messages.put_nowait(event)
                elif event.opcode.name == "CLOSE":
                    self.close_frame = Close.parse(event.data) if event.data else Close(1005, "")
        self._send_out()

    def _send_out(self):
        data = b"".join(self.protocol.data_to_send())
        if data and not self.client.conn.state_machine.state.name == "CLOSED":
            try:
                self.client.conn.send_data(self.stream.stream_id, data)
            except Exception:
                return
            self.client.flush()

    def send(self, message):
        if isinstance(message, str):
            self.protocol.send_text(message.encode())
        else:
            self.protocol.send_binary(message)
        self._send_out()

    async def send_within_windows(self, message):
        """Send a binary message as the relay's windows allow (waits, bounded, for WINDOW_UPDATE)."""
        self.protocol.send_binary(message)
        await self.client.send_body(self.stream, b"".join(self.protocol.data_to_send()), end=False)

    async def recv(self, timeout=WAIT):
        """The next whole message (frames joined), as str or bytes."""
        parts, text = [], None
        while True:
            frame = await asyncio.wait_for(self.messages.get(), timeout)
            if text is None:
                text = frame.opcode.name == "TEXT"
            parts.append(frame.data)
            if frame.fin:
                data = b"".join(parts)
                return data.decode() if text else data

    async def close(self, code=1000, reason=""):
        self.protocol.send_close(code, reason)
        self._send_out()
        await self.client.wait_for(self.stream, lambda: self.close_frame is not None or self.stream.reset is not None,
                                   "the close reply")
        return self.close_frame
