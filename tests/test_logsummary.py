"""The quiet-log rules on an injected clock: refusal lines per address, their summary, log_interval records."""

from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from wsrelay.observability import logsummary
from wsrelay.observability.logsummary import LogGate, OpenSessionLog, kind_of


def refused(address="192.0.2.1", status=404):
    return {"client_ip": address, "status": status, "client_close_code": None, "client_closed_by": None}


def closed(address="192.0.2.1", code=1000, by="client"):
    return {"client_ip": address, "status": 101, "client_close_code": code, "client_closed_by": by}


def test_kinds():
    assert kind_of(refused()) == "refused"
    assert kind_of(refused(status=None)) == "refused"
    assert kind_of(closed(code=1002, by="relay")) == "violation"
    assert kind_of(closed(code=1009, by="relay")) == "violation"
    assert kind_of(closed(code=1002, by="client")) is None  # the client said so itself: not the relay's verdict
    assert kind_of(closed(code=1011, by="relay")) is None
    assert kind_of(closed()) is None


def test_the_first_lines_per_address_are_written_the_rest_summarised_once_per_interval():
    clock = Clock()
    gate = LogGate(clock, 3, 60)
    with capturedLogs() as events:
        written = [gate.admit(refused()) for _ in range(10)]
        written += [gate.admit(closed(code=1008, by="relay")) for _ in range(2)]
        other = [gate.admit(refused("192.0.2.2", 429)) for _ in range(3)]
        ordinary = [gate.admit(closed()) for _ in range(50)]
        clock.advance(59.9)
        assert events == []
        clock.advance(0.1)
    assert written == [True] * 3 + [False] * 9
    assert other == [True] * 3 and all(ordinary)
    assert [formatEvent(e) for e in events] == [
        "192.0.2.1: 7 refused handshakes (404: 7) and 2 sessions closed for protocol violations (1008: 2) "
        "in the last 60s, not logged one by one"]
    assert events[0]["count"] == 9 and events[0]["refused"] == {"404": 7}
    # a new interval: lines again, and no timer left running while nothing happens
    assert gate.admit(refused()) is True
    clock.advance(60)
    assert clock.getDelayedCalls() == []


def test_zero_summarises_everything_and_addresses_past_the_bound_share_a_line(monkeypatch):
    monkeypatch.setattr(logsummary, "MAX_ADDRESSES", 2)
    clock = Clock()
    gate = LogGate(clock, 0, 10)
    with capturedLogs() as events:
        assert not any(gate.admit(refused(f"198.51.100.{i}")) for i in range(5))
        clock.advance(10)
    lines = sorted(formatEvent(e) for e in events)
    assert lines == ["198.51.100.0: 1 refused handshakes (404: 1) in the last 10s, not logged one by one",
                     "198.51.100.1: 1 refused handshakes (404: 1) in the last 10s, not logged one by one",
                     "other addresses: 3 refused handshakes (404: 3) in the last 10s, not logged one by one"]


def test_stop_writes_what_is_held():
    clock = Clock()
    gate = LogGate(clock, 1, 60)
    with capturedLogs() as events:
        gate.admit(refused())
        gate.admit(refused())
        gate.stop()
    assert len(events) == 1 and clock.getDelayedCalls() == []


class FakeSession:
    def __init__(self, status, path):
        self.status, self.ended, self.path = status, False, path

    def record(self):
        return {"client_ip": "192.0.2.9", "domain": "*", "path": self.path, "origin": "o:1",
                "client_messages_in": 2, "client_bytes_in": 300, "client_messages_out": 1,
                "client_bytes_out": 40, "duration": 12.5, "event": "session"}


def test_log_interval_records_every_open_session_with_its_running_counters():
    clock = Clock()
    relay = SimpleNamespace(reactor=clock, config=SimpleNamespace(log_interval=30.0),
                            sessions={FakeSession(101, "/live"), FakeSession(None, "/dialling")})
    records = OpenSessionLog(relay)
    with capturedLogs() as events:
        records.start()
        clock.advance(29)
        assert events == []
        clock.advance(1)
        clock.advance(30)
    assert [formatEvent(e) for e in events] == ['192.0.2.9 * "/live" open o:1 in=2/300B out=1/40B 12.500s so far'] * 2
    assert {e["event"] for e in events} == {"session_open"}
    records.stop()
    assert clock.getDelayedCalls() == []


def test_log_interval_off_schedules_nothing():
    clock = Clock()
    relay = SimpleNamespace(reactor=clock, config=SimpleNamespace(log_interval=0.0), sessions=set())
    OpenSessionLog(relay).start()
    assert clock.getDelayedCalls() == []
