"""Close-code mapping between the legs."""

import pytest

from wsrelay.edge.closing import (
    IDLE, PEER_CLOSED, PEER_DEAD, PEER_ERROR, PEER_GONE, SHUTDOWN, close_for_other_leg, encode_reason,
)


@pytest.mark.parametrize("side, event, code, reason, expected", [
    ("client", PEER_CLOSED, 4000, "bye", (4000, "bye")),
    ("origin", PEER_CLOSED, 1000, None, (1000, None)),
    ("origin", PEER_CLOSED, None, None, (None, None)),
    ("origin", PEER_CLOSED, 1012, "restart", (1012, "restart")),
    ("client", PEER_GONE, None, None, (1001, "client gone")),
    ("origin", PEER_GONE, None, None, (1011, "origin gone")),
    ("client", PEER_DEAD, None, None, (1001, "client not answering pings")),
    ("origin", PEER_DEAD, None, None, (1011, "origin not answering pings")),
    ("client", PEER_ERROR, 1009, "too big", (1001, "client protocol error 1009")),
    ("origin", PEER_ERROR, 1007, "bad utf-8", (1011, "origin protocol error 1007")),
    ("relay", IDLE, None, None, (1001, "connection timeout")),
    ("relay", SHUTDOWN, None, None, (1001, "relay shutting down")),
])
def test_mapping(side, event, code, reason, expected):
    assert close_for_other_leg(side, event, code, reason) == expected


@pytest.mark.parametrize("reserved", [1005, 1006, 1015])
def test_reserved_codes_never_go_on_the_wire(reserved):
    assert close_for_other_leg("origin", PEER_CLOSED, reserved, None, origin_gone_code=1013) == (1013, "origin gone")
    assert close_for_other_leg("client", PEER_CLOSED, reserved, None)[0] == 1001


def test_origin_gone_code_is_configurable():
    assert close_for_other_leg("origin", PEER_GONE, origin_gone_code=1012)[0] == 1012


def test_reason_is_cut_on_a_character_boundary():
    assert encode_reason("ok") == b"ok"
    assert encode_reason(None) is None
    cut = encode_reason("ż" * 100)
    assert len(cut) <= 123 and cut.decode("utf-8") == "ż" * 61
