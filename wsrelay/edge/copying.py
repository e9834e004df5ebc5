"""
How a leg copies frames onto the other: the pump that forwards whole text and binary frames
straight from the socket, Autobahn's streaming callbacks for everything else (a frame's header
written as soon as it is read, its payload as each piece comes in, no message ever held whole),
and the writes, which hold control frames back while a frame is being written. FrameCopy is a
base of the legs' _Leg (legs.py), which adds the session's life around it.
"""

from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.xormasker import create_xor_masker
from twisted.internet import tcp

from wsrelay.edge.frames import frame_header, new_mask

OPEN = WebSocketProtocol.STATE_OPEN
CONNECTING = WebSocketProtocol.STATE_CONNECTING
CLOSED = WebSocketProtocol.STATE_CLOSED
_IDLE, _STREAM, _REFRAME = 0, 1, 2

# Transports whose socket the legs may write to directly (plain TCP; TLS and
# PROXY-protocol wrappers go through transport.write).
_PLAIN_TCP = (tcp.Server, tcp.Client)

# First header byte of the frames the pump forwards itself: FIN, no RSV bits,
# text or binary. Anything else (continuations, control frames, RSV) is Autobahn's.
_TEXT, _BINARY = 0x81, 0x82


def _unmask(payload, key):
    """The plain bytes of a masked payload (for validating a text frame the pump forwards still masked)."""
    n = len(payload)
    if not n:
        return payload
    mask = int.from_bytes((key * ((n + 3) >> 2))[:n], "little")
    return (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")


class FrameCopy:
    """The frame copying of a leg (see the module's docstring); its state lives on _Leg."""

    def dataReceived(self, data):
        """
        The frame pump: while the session is open and Autobahn is between
        frames, whole text/binary frames (FIN set, no RSV, the right MASK bit,
        minimal length encoding, within max_message_size, text valid UTF-8) are
        forwarded to the other leg byte for byte, in one write per read, with
        no per-frame objects. A binary frame that ends in a later read passes
        through as it arrives. The first frame that is anything else, and all
        after it in this read, go to Autobahn (docs/wire.md).
        """
        n = len(data)
        self.counters.bytes_in += n
        other = self.other
        pos = 0
        left = self._pass_left
        if left:
            pos = left if left < n else n
            self._pass_left = left - pos
            if not other.lost:
                other._send(data if pos == n else data[:pos])
            if self._pass_left == 0:
                other.end_frame()
            if pos == n:
                return
        if (other is None or self.state != OPEN or other.state != OPEN or other._sink
                or self.data or self.current_frame is not None or self.inside_message
                or self._perMessageCompress is not None or other._perMessageCompress is not None):
            self._dataReceived(data[pos:] if pos else data)
            return
        start = pos
        frames = 0
        want_mask = self._in_mask
        limit = self.maxMessagePayloadSize
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            if (b0 != _BINARY and b0 != _TEXT) or (b1 & 0x80) != want_mask:
                break
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if n - head < 2:
                    break
                length = data[head] << 8 | data[head + 1]
                head += 2
                if length < 126:
                    break
            elif length == 127:
                if n - head < 8:
                    break
                length = int.from_bytes(data[head:head + 8], "big")
                head += 8
                if length < 0x10000 or length >> 63:
                    break
            if want_mask:
                head += 4
            if head > n or (limit and length > limit):
                break
            end = head + length
            if b0 == _TEXT:
                if end > n:
                    break
                payload = data[head:end]
                if want_mask:
                    payload = _unmask(payload, data[head - 4:head])
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    break  # Autobahn fails it with 1007
            frames += 1
            if end > n:  # a binary frame that goes on in later reads
                self._pass_left = end - n
                pos = n
                break
            pos = end
        if frames:
            counters, out = self.counters, other.counters
            counters.frames_in += frames
            counters.messages_in += frames
            out.frames_out += frames
            out.messages_out += frames
            self.session.touch()
            other._send(data if start == 0 and pos == n else data[start:pos])
            if self._pass_left:
                other._sink, other._held = _STREAM, []
        if pos < n:
            self._dataReceived(data[pos:] if pos else data)

    def _send(self, data):
        """
        Write bytes onto this leg: straight to the socket when nothing is
        buffered ahead of them (saving the reactor a writer registration and a
        wake-up per frame), else, and for what the socket does not take,
        through the transport, whose buffer and producer handle backpressure.
        """
        if self.aborted:  # dropped: the rest of a read after the other leg failed (fuzz/fuzz_frames.py)
            return
        self.counters.bytes_out += len(data)
        transport = self.transport
        sock = self._sock
        if (sock is not None and not transport._tempDataLen and transport.offset == len(transport.dataBuffer)
                and transport.connected and not transport.disconnecting and not transport._writeDisconnected):
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # the transport's own write finds the error and ends the connection as always
            if sent == len(data):
                return
            if sent:
                data = data[sent:]
        transport.write(data)

    def sendData(self, data, sync=False, chopsize=None):
        if self.aborted:
            return
        self.counters.bytes_out += len(data)
        self.transport.write(data)

    def sendFrame(self, opcode, payload=b"", fin=True, rsv=0, mask=None,
                  payload_len=None, chopsize=None, sync=False):
        # Autobahn sends only control frames through here for the relay.
        if self._sink == _STREAM:
            self._held.append((opcode, payload))
            return
        super().sendFrame(opcode, payload, fin, rsv, mask)

    def onMessageBegin(self, isBinary):
        self.message_data_total_length = 0
        self.counters.messages_in += 1
        other = self.other
        self._forward = other is not None and other.state == OPEN and self.state == OPEN
        if self._forward:
            other.counters.messages_out += 1
            self.session.touch()

    def onMessageFrameBegin(self, length):
        total = self.message_data_total_length + length
        self.message_data_total_length = total
        if 0 < self.maxMessagePayloadSize < total:
            self.wasMaxMessagePayloadSizeExceeded = True
            self._max_message_size_exceeded(
                total, self.maxMessagePayloadSize,
                f"message larger than {self.maxMessagePayloadSize} bytes")
            return
        self.counters.frames_in += 1
        if self._forward:
            frame = self.current_frame
            known = None if self._isMessageCompressed else length
            self._forward = self.other.begin_frame(frame.opcode, frame.fin, known)

    def onMessageFrameData(self, payload):
        if self._forward and not self.failedByMe:
            self.other.frame_data(payload)

    def onMessageFrameEnd(self):
        if self._forward and not self.failedByMe:
            self.other.end_frame()

    def onMessageEnd(self):
        pass

    def begin_frame(self, opcode, fin, length):
        """
        Start copying a frame onto this leg. When its length is known and this
        leg does not compress, the frame is copied as it is (_STREAM). Otherwise
        (inflated or deflated on the way) each piece goes out as a frame of its
        own and the source frame's end as a final one (_REFRAME): fragmentation
        changes, the message does not, and nothing is held.
        """
        if self.state != OPEN or self.aborted:
            return False
        compressor = self._perMessageCompress
        if opcode:  # a new message; a continuation keeps what is still to be written
            self._next_opcode = opcode
            if compressor is not None:
                compressor.start_compress_message()
        if length is None or compressor is not None:
            self._sink = _REFRAME
            self._frame_fin = fin
            return True
        self.counters.frames_out += 1
        self._next_opcode = 0
        mask = new_mask() if self._masks else None
        self._write(frame_header(opcode, fin, length, 0, mask))
        if length:
            self._sink = _STREAM
            self._held = []
            self._masker = create_xor_masker(mask, length) if mask else None
        return True

    def frame_data(self, payload):
        if self._sink == _STREAM:
            if self._masker is not None:
                payload = self._masker.process(payload)
            self._write(payload)
        elif self._sink == _REFRAME:
            compressor = self._perMessageCompress
            if compressor is not None:
                payload = compressor.compress_message_data(payload)
            if payload:
                self._emit(payload, False)

    def end_frame(self):
        sink, self._sink = self._sink, _IDLE
        if sink == _STREAM:
            held, self._held, self._masker = self._held, None, None
            for opcode, payload in held:
                super().sendFrame(opcode, payload)
        elif sink == _REFRAME:
            compressor = self._perMessageCompress
            tail = compressor.end_compress_message() if compressor is not None and self._frame_fin else b""
            if tail or self._frame_fin:
                self._emit(tail, self._frame_fin)

    def _emit(self, data, fin):
        """Write one whole frame of a message being re-framed."""
        opcode, self._next_opcode = self._next_opcode, 0
        rsv = 4 if opcode and self._perMessageCompress is not None else 0
        mask = new_mask() if self._masks else None
        if mask is not None and data:
            data = create_xor_masker(mask, len(data)).process(data)
        self.counters.frames_out += 1
        self._write(frame_header(opcode, fin, len(data), rsv, mask) + data)

    _write = _send
