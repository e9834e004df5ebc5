"""The heap is trimmed once per burst of ended sessions, on the injected clock."""

from twisted.internet.task import Clock

from wsrelay.edge.trim import Trimmer, glibc_malloc_trim


def test_one_trim_after_each_threshold_of_ended_sessions():
    clock, calls = Clock(), []
    trimmer = Trimmer(clock, threshold=3, delay=2.0, trim=calls.append)
    trimmer.session_ended(), trimmer.session_ended()
    clock.advance(10)
    assert calls == []                      # below the threshold: nothing
    for _ in range(5):                      # a burst crossing it: one trim, 2 s later
        trimmer.session_ended()
    clock.advance(1.9)
    assert calls == []
    clock.advance(0.1)
    assert calls == [0] and trimmer.trims == 1
    for _ in range(3):
        trimmer.session_ended()
    trimmer.stop()                          # stopping cancels a pending trim
    clock.advance(5)
    assert calls == [0] and clock.getDelayedCalls() == []


def test_glibc_trim_is_callable_here():
    trim = glibc_malloc_trim()
    assert trim is not None and trim(0) in (0, 1)
