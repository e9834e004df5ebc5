"""Memory is reclaimed once per burst of ended sessions, on the injected clock."""

from twisted.internet.task import Clock

from wsrelay.edge.trim import Trimmer, collect_and_trim, glibc_malloc_trim


def make(threshold=3):
    clock, calls = Clock(), []
    return clock, calls, Trimmer(clock, threshold=threshold, delay=2.0, max_wait=10.0,
                                 reclaim=lambda: calls.append(clock.seconds()))


def test_one_reclaim_when_a_burst_of_closes_pauses():
    clock, calls, trimmer = make()
    trimmer.session_ended(), trimmer.session_ended()
    clock.advance(10)
    assert calls == []                      # below the threshold: nothing
    for _ in range(5):                      # a burst crossing it: one reclaim, 2 s after its last close
        trimmer.session_ended()
        clock.advance(1)
    assert calls == []
    clock.advance(1)
    assert calls == [16] and trimmer.reclaims == 1


def test_a_storm_that_never_pauses_is_reclaimed_every_max_wait():
    clock, calls, trimmer = make()
    for _ in range(30):                     # a close every second for 30 s
        trimmer.session_ended()
        clock.advance(1)
    assert calls == [12, 24]                # 10 s after the 3rd close (t=2, t=14), each time


def test_stop_cancels_a_pending_reclaim():
    clock, calls, trimmer = make()
    for _ in range(3):
        trimmer.session_ended()
    trimmer.stop()
    clock.advance(30)
    assert calls == [] and clock.getDelayedCalls() == []


def test_glibc_trim_and_the_collection_run_here():
    trim = glibc_malloc_trim()
    assert trim is not None and trim(0) in (0, 1)
    collect_and_trim()


def make_live(threshold=3):
    clock, calls, live = Clock(), [], [0]
    trimmer = Trimmer(clock, threshold=threshold, delay=2.0, max_wait=10.0, live=lambda: live[0],
                      reclaim=lambda: calls.append(("collect", live[0])),
                      trim=lambda: calls.append(("trim", live[0])))
    return clock, calls, live, trimmer


def test_the_heap_is_trimmed_as_soon_as_live_sessions_halve_and_when_the_last_has_gone():
    clock, calls, live, trimmer = make_live(threshold=3)
    live[0] = 20
    for _ in range(9):                      # 20 -> 11 live: not yet half
        live[0] -= 1
        trimmer.session_ended()
    clock.advance(0)
    assert calls == []
    live[0] -= 1
    trimmer.session_ended()                 # 10 live: half of 20, with 10 >= 3 ended
    assert calls == []                      # not inside the close itself
    clock.advance(0)
    assert calls == [("trim", 10)]          # at once, not after a pause
    for _ in range(8):                      # 10 -> 2: trimmed again at 5; at 2 (under 3 left) collected too
        live[0] -= 1
        trimmer.session_ended()
        clock.advance(0)
    assert calls == [("trim", 10), ("trim", 5), ("collect", 2)]
    live[0] -= 2
    trimmer.session_ended(), trimmer.session_ended()
    clock.advance(0)
    assert calls[3:] == [("collect", 0)]    # the storm's last close, though fewer than 3 ended since
    assert trimmer.trims == 4


def test_a_few_closes_among_many_sessions_trim_nothing():
    clock, calls, live, trimmer = make_live(threshold=3)
    live[0] = 100
    for _ in range(40):                     # 40 of 100 closing: never half
        live[0] -= 1
        trimmer.session_ended()
        clock.advance(0.1)
    assert calls == []
    clock.advance(2)                        # but the burst's pause still collects once
    assert calls == [("collect", 60)]
