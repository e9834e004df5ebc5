"""The meter: exact counters folded into 5-minute UTC buckets, with no I/O and no clock of its own."""

from wsrelay.accounting.meter import COUNTS, TRAFFIC, Meter, bucket_of, split_ms

DIMS = ("chat.example.com", "US-CA", "Example Telecom")
I_BYTES_OUT = COUNTS.index("client_bytes_out")


def traffic(client_in=0, client_out=0):
    values = [0] * len(TRAFFIC)
    values[0], values[1] = client_in, client_out
    return tuple(values)


def column(batch, name, bucket=None):
    i = COUNTS.index(name)
    return sum(row[i] for key, row in batch.traffic.items() if bucket in (None, key[1]))


def test_buckets_are_five_utc_minutes():
    assert bucket_of(0) == 0
    assert bucket_of(299.999) == 0
    assert bucket_of(300) == 300
    assert bucket_of(1_700_000_123.5) == 1_700_000_100


def test_session_time_is_cut_at_bucket_boundaries():
    assert split_ms(290_000, 310_000) == [(0, 10_000), (300, 10_000)]
    assert split_ms(0, 900_000) == [(0, 300_000), (300, 300_000), (600, 300_000)]
    assert split_ms(5, 5) == []


def test_a_long_session_s_bytes_land_in_the_buckets_where_they_flowed():
    meter = Meter("n1", "run")
    meter.opened("s", DIMS, traffic(200, 150), now=100.0)     # handshake bytes
    meter.fold_all(lambda token: traffic(1200, 1150), now=250.0)
    meter.fold_all(lambda token: traffic(5200, 9150), now=3 * 3600.0 + 10)
    meter.ended("s", DIMS, traffic(5300, 9160), now=3 * 3600.0 + 20, status=101,
                closes=[("client", 1000, "client"), ("origin", 1000, "relay")])
    batch = meter.take()
    assert column(batch, "client_bytes_in") == 5300
    assert column(batch, "client_bytes_out") == 9160
    assert column(batch, "client_bytes_in", bucket=0) == 1200
    assert column(batch, "client_bytes_in", bucket=bucket_of(3 * 3600.0)) == 4100
    assert column(batch, "opened") == 1 and column(batch, "closed") == 1
    # every second of the session counted once, in the bucket it elapsed in
    assert column(batch, "session_ms") == int((3 * 3600 + 20 - 100) * 1000)
    assert column(batch, "session_ms", bucket=600) == 300_000
    assert batch.statuses == {(DIMS[0], 0, DIMS[1], DIMS[2], 101): 1}
    assert batch.closes[(DIMS[0], 10800, DIMS[1], DIMS[2], "origin", 1000, "relay")] == 1


def test_a_refused_handshake_is_counted_whole_with_its_status():
    meter = Meter("n1", "run")
    meter.ended("x", DIMS, traffic(180, 120), now=10.0, status=403)
    batch = meter.take()
    assert column(batch, "client_bytes_in") == 180
    assert column(batch, "opened") == 0
    assert batch.statuses == {(DIMS[0], 0, DIMS[1], DIMS[2], 403): 1}


def test_peak_concurrent_sessions_per_bucket():
    meter = Meter("n1", "run")
    for i in range(3):
        meter.opened(i, DIMS, traffic(), now=10.0 + i)
    meter.ended(0, DIMS, traffic(), now=20.0)
    meter.ended(1, DIMS, traffic(), now=20.0)
    meter.fold_all(lambda token: traffic(), now=310.0)  # one still live in the next bucket
    batch = meter.take()
    assert batch.peaks[(DIMS[0], 0, DIMS[1], DIMS[2])] == 3
    assert batch.peaks[(DIMS[0], 300, DIMS[1], DIMS[2])] == 1


def test_take_starts_again_at_zero_and_numbers_batches():
    meter = Meter("n1", "run")
    meter.opened("s", DIMS, traffic(10, 10), now=1.0)
    first = meter.take()
    meter.fold_all(lambda token: traffic(15, 10), now=2.0)
    second = meter.take()
    assert (first.seq, second.seq) == (1, 2)
    assert column(first, "client_bytes_in") == 10
    assert column(second, "client_bytes_in") == 5
    assert not meter.take()  # nothing new: an empty batch


def test_http_requests_are_metered_apart_from_sessions_with_their_status_when_they_end():
    meter = Meter("n1", "run")
    meter.opened("s", DIMS, traffic(100, 100), now=10.0)                     # a WebSocket session
    meter.opened("r1", DIMS, traffic(80, 0), now=11.0, status=None, kind="http")
    meter.opened("r2", DIMS, traffic(90, 0), now=12.0, status=None, kind="http")
    meter.fold_all(lambda token: {"s": traffic(150, 150), "r1": traffic(80, 400), "r2": traffic(90, 0)}[token],
                   now=250.0)  # a long response (server-sent events) folded while it streams
    meter.ended("r1", DIMS, traffic(80, 900), now=330.0, status=200)
    meter.ended("r2", DIMS, traffic(95, 60), now=331.0, status=502)
    meter.ended("x", DIMS, traffic(40, 120), now=332.0, status=404, kind="http")  # refused: never live
    batch = meter.take()
    assert column(batch, "client_bytes_in") == 150 and column(batch, "opened") == 1  # the session alone
    http = batch.http_traffic
    i = COUNTS.index

    def total(name, bucket=None):
        return sum(row[i(name)] for key, row in http.items() if bucket in (None, key[1]))

    assert (total("client_bytes_in"), total("client_bytes_out")) == (80 + 95 + 40, 900 + 60 + 120)
    assert total("client_bytes_out", bucket=0) == 400 and total("client_bytes_out", bucket=300) == 680
    assert (total("opened"), total("closed")) == (2, 2)
    assert batch.http_statuses == {(DIMS[0], 300, DIMS[1], DIMS[2], 200): 1,
                                   (DIMS[0], 300, DIMS[1], DIMS[2], 502): 1,
                                   (DIMS[0], 300, DIMS[1], DIMS[2], 404): 1}
    assert batch.statuses == {(DIMS[0], 0, DIMS[1], DIMS[2], 101): 1}
    assert batch.http_peaks[(DIMS[0], 0, DIMS[1], DIMS[2])] == 2 and batch.peaks[(DIMS[0], 0, DIMS[1], DIMS[2])] == 1


def test_sessions_and_client_bytes_are_counted_by_protocol_in_the_buckets_of_the_traffic():
    """h1 and h2 sessions (and requests, and a refused handshake) land apart and add up to the traffic exactly."""
    meter = Meter("n1", "run")
    meter.opened("a", DIMS, traffic(200, 150), now=100.0)                       # HTTP/1.1
    meter.opened("b", DIMS, traffic(180, 90), now=110.0, protocol="h2")
    meter.fold_all(lambda token: {"a": traffic(700, 650), "b": traffic(380, 1090)}[token], now=250.0)
    meter.ended("a", DIMS, traffic(900, 660), now=400.0, status=101)
    meter.ended("b", DIMS, traffic(400, 2090), now=410.0, status=101, protocol="h1")  # the live session's own
    meter.ended("x", DIMS, traffic(60, 40), now=420.0, status=421, protocol="h2")      # never opened
    meter.opened("r", DIMS, traffic(50, 0), now=430.0, status=None, kind="http", protocol="h2")
    meter.ended("r", DIMS, traffic(50, 500), now=431.0, status=200, kind="http")
    batch = meter.take()
    key = (DIMS[0], 0, DIMS[1], DIMS[2])
    later = (DIMS[0], 300, DIMS[1], DIMS[2])
    assert batch.protocols == {(*key, "h1"): (1, 700, 650), (*key, "h2"): (1, 380, 1090),
                               (*later, "h1"): (0, 200, 10), (*later, "h2"): (0, 80, 1040)}
    assert batch.http_protocols == {(*later, "h2"): (1, 50, 500)}
    for bucket, keyed in ((0, key), (300, later)):
        for name, i in (("client_bytes_in", 1), ("client_bytes_out", 2)):
            assert column(batch, name, bucket) == sum(row[i] for k, row in batch.protocols.items() if k[:4] == keyed)
    assert column(batch, "opened") == sum(row[0] for row in batch.protocols.values()) == 2
    assert meter.take().protocols == {}


def test_a_taken_batch_stays_as_taken_while_the_meter_counts_on():
    # a batch the store could not write is retried as it is: what the meter counts after the take
    # (the meter's tables are kept and emptied, not made anew) must not reach it
    meter = Meter("n1", "run")
    meter.ended("a", DIMS, traffic(10, 20), now=100.0, status=403)
    meter.ended("b", DIMS, traffic(10, 20), now=100.0, status=101, closes=[("client", 1000, "client")])
    first = meter.take()
    before = (dict(first.traffic), dict(first.statuses), dict(first.closes), dict(first.peaks),
              dict(first.protocols))
    meter.opened("c", DIMS, traffic(5, 5), now=100.0)
    meter.ended("c", DIMS, traffic(5, 5), now=110.0, status=101, closes=[("client", 1001, "client")])
    meter.ended("d", DIMS, traffic(1, 1), now=110.0, status=403)
    second = meter.take()
    assert (first.traffic, first.statuses, first.closes, first.peaks, first.protocols) == before
    assert sum(first.statuses.values()) == 2 and sum(second.statuses.values()) == 2
    assert second.peaks and not first.peaks
