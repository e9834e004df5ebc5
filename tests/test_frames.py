"""Frame headers the relay writes, checked against a reference parser (websockets)."""

import pytest
from websockets.frames import Frame
from websockets.streams import StreamReader

from wsrelay.edge.frames import frame_header, header_size


def parse(data, mask):
    reader = StreamReader()
    reader.feed_data(data)
    gen = Frame.parse(reader.read_exact, mask=mask)
    try:
        next(gen)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 200000])
@pytest.mark.parametrize("mask", [None, b"\x01\x02\x03\x04"])
def test_headers_parse_back(length, mask):
    payload = bytes(length)
    masked = payload if mask is None else bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    head = frame_header(2, True, length, 0, mask)
    assert len(head) == header_size(length, mask is not None)
    frame = parse(head + masked, mask is not None)
    assert frame.opcode.value == 2 and frame.fin and frame.data == payload


def test_fin_opcode_and_rsv_bits():
    assert frame_header(1, False, 3) == b"\x01\x03"
    assert frame_header(0, True, 3) == b"\x80\x03"
    assert frame_header(1, True, 3, rsv=4) == b"\xc1\x03"
