"""
The flush: the meter's batches reach the store every flush_interval on the
relay's clock; a failing store never loses or doubles a count, is logged
once, and memory holds aggregates meanwhile.
"""

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from wsrelay.accounting.geo import Locator
from wsrelay.accounting.service import Accounting
from wsrelay.accounting.testing import MemoryStore
from wsrelay.config import parse_config

CONFIG = """
[relay]
[domain:chat.example.com]
origins = 127.0.0.1:9
[accounting]
flush_interval = 10
"""


class Counters:
    def __init__(self, bytes_in=0):
        self.bytes_in, self.bytes_out = bytes_in, 0
        self.frames_in = self.frames_out = self.messages_in = self.messages_out = 0


class Leg:
    def __init__(self, bytes_in=0):
        self.counters = Counters(bytes_in)

    def close_info(self):
        return 1000, "", "client"


class Domain:
    name = "chat.example.com"


class FakeSession:
    def __init__(self, bytes_in):
        self.client, self.origin = Leg(bytes_in), Leg()
        self.client_ip = "127.0.0.1"
        self.domain = Domain()
        self.status = 101


class FlushTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.store = MemoryStore()
        settings = parse_config(CONFIG, "/nonexistent/relay.ini").accounting
        self.accounting = Accounting(settings, self.store, Locator(), self.clock, "run1")
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.accounting.startService()

    def failures(self):
        return [e for e in self.events if e.get("log_namespace") == "wsrelay.accounting"
                and "log_failure" in e]

    def test_live_sessions_are_flushed_every_interval(self):
        session = FakeSession(100)
        self.accounting.session_opened(session)
        self.clock.advance(10)
        self.assertEqual(self.store.total("client_bytes_in"), 100)
        session.client.counters.bytes_in = 250
        self.clock.advance(10)
        self.assertEqual(self.store.total("client_bytes_in"), 250)

    def test_a_failing_store_is_logged_once_and_nothing_is_lost_or_doubled(self):
        session = FakeSession(100)
        self.accounting.session_opened(session)
        self.store.fail = OSError("database is locked")
        for step in range(1, 30):
            session.client.counters.bytes_in = 100 + step
            self.clock.advance(10)
        self.assertEqual(len(self.failures()), 1)
        self.assertEqual(self.store.total("client_bytes_in"), 0)
        self.assertLess(len(self.accounting.meter), 10)  # aggregates, not events
        self.store.fail = None
        self.accounting.session_ended(session)
        self.clock.advance(10)
        self.clock.advance(10)
        self.assertEqual(self.store.total("client_bytes_in"), 129)
        self.assertEqual(self.store.total("closed"), 1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_a_batch_whose_reply_was_lost_is_not_counted_twice(self):
        session = FakeSession(100)
        self.accounting.session_opened(session)
        self.store.lose_reply = True
        self.clock.advance(10)  # written, but reported failed: retried with the same id
        self.clock.advance(10)
        session.client.counters.bytes_in = 300
        self.clock.advance(10)
        self.assertEqual(self.store.total("client_bytes_in"), 300)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)

    def test_stopping_flushes_what_is_left_and_closes_the_store(self):
        session = FakeSession(100)
        self.accounting.session_opened(session)
        session.client.counters.bytes_in = 400
        self.accounting.session_ended(session)
        d = self.accounting.stopService()
        self.successResultOf(d)
        self.assertEqual(self.store.total("client_bytes_in"), 400)
        self.assertTrue(self.store.closed)

    def test_billing_settings_are_recorded_when_they_change_dated_by_the_relays_clock(self):
        config = parse_config(CONFIG, "/nonexistent/relay.ini")
        self.accounting.note_billing(config)
        self.store.fail = OSError("database is locked")  # recorded late, still dated when noted
        self.clock.advance(10)
        self.accounting.note_billing(config)  # a reload changing nothing notes nothing
        changed = parse_config(CONFIG.replace("[accounting]", "billing = bandwidth\nbilling_cycle = daily\n"
                                                              "[accounting]"), "/nonexistent/relay.ini")
        self.clock.advance(5)
        self.accounting.note_billing(changed)
        self.store.fail = None
        self.clock.advance(5)
        self.assertEqual([row[:4] for row in self.store.billing], [
            ("chat.example.com", 1_700_000_000, "traffic", "monthly"),
            ("chat.example.com", 1_700_000_015, "bandwidth", "daily")])
        self.assertEqual({row[4] for row in self.store.billing}, {self.accounting.meter.node})
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
