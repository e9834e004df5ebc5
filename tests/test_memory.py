"""
Memory an ended session leaves behind: none, and at once. A session, its legs and their
transports are freed by reference counting when it ends (no garbage collection needed,
which an idle relay may not run for hours), and what is left of an open session is small.
"""

import gc
import weakref

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from websockets.frames import Frame, Opcode

from tests.test_legs import open_session


def origin_frame(opcode, data):
    return Frame(opcode, data).serialize(mask=False, extensions=[])


def client_frame(opcode, data):
    return Frame(opcode, data).serialize(mask=True, extensions=[])


def test_an_ended_session_is_freed_at_once_without_a_collection():
    gc.collect()
    gc.disable()
    try:
        h, origin, origin_wire = open_session()
        client, session = h.client, h.client.session
        refs = [weakref.ref(o) for o in (session, client, origin)]
        origin.dataReceived(origin_frame(Opcode.CLOSE, b"\x0f\xa1going"))  # 4001 "going"
        h.send(client_frame(Opcode.CLOSE, b"\x0f\xa1going"))              # the client's answer
        origin.connectionLost(Failure(ConnectionDone()))
        client.connectionLost(Failure(ConnectionDone()))
        assert session.ended and session not in h.relay.sessions
        record = session.record()                     # still reads what the session line said
        assert (record["client_close_code"], record["origin_close_code"]) == (4001, 4001)
        assert record["client_bytes_in"] > 0 and record["origin_bytes_in"] > 0
        h.reactor.tcpClients.clear()                  # the fake reactor's own list of dials
        del h, origin, origin_wire, client, session, record
        assert [ref() for ref in refs] == [None, None, None]
    finally:
        gc.enable()


def test_an_open_session_keeps_small_legs_and_no_session_dict():
    h, origin, _ = open_session()
    session = h.client.session
    assert not hasattr(session, "__dict__") or not session.__dict__
    for leg in (h.client, origin):
        assert len(leg.__dict__) <= 21, sorted(leg.__dict__)  # a dict of up to 21 keys stays under 512 bytes
        assert "utf8validator" not in leg.__dict__ and "is_closed" not in leg.__dict__
    # a text message after open still gets its UTF-8 validation from Autobahn (the validator is made again)
    assert h.client.utf8validator is h.client.__dict__["utf8validator"]
    assert h.client.state == WebSocketProtocol.STATE_OPEN
