"""
WebSocket frame headers as the relay writes them, and their sizes on the wire.

The relay copies frames from one leg to the other without joining them into
messages, so it writes frame headers itself: same opcode, same FIN bit, same
payload length; only masking (client-to-server frames only) and compression
(per leg) differ between the two sides.
"""

import random
import struct

_pack_h = struct.Struct("!H").pack
_pack_q = struct.Struct("!Q").pack


def frame_header(opcode, fin, length, rsv=0, mask=None):
    """The bytes that start a frame carrying `length` payload bytes."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked = 0x80 if mask else 0
    if length <= 125:
        head = bytes((b0, masked | length))
    elif length <= 0xFFFF:
        head = bytes((b0, masked | 126)) + _pack_h(length)
    else:
        head = bytes((b0, masked | 127)) + _pack_q(length)
    return head + mask if mask else head


def header_size(length, masked):
    """Size on the wire of the header of a frame with this payload length."""
    size = 2 if length <= 125 else 4 if length <= 0xFFFF else 10
    return size + 4 if masked else size


def new_mask():
    """A masking key; it only has to be unpredictable to the page, not secret."""
    return random.getrandbits(32).to_bytes(4, "big")
