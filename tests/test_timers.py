"""Heartbeat and idle timeout on an injected clock."""

from twisted.internet.testing import MemoryReactorClock

from wsrelay.edge.timers import Heartbeat, IdleTimer


def make_heartbeat(interval, timeout):
    clock = MemoryReactorClock()
    pings, dead = [], []
    beat = Heartbeat(clock, interval, timeout, [pings.append], lambda index: dead.append(clock.seconds()))
    beat.start()
    return clock, beat, pings, dead


def test_pings_every_interval_while_pongs_come_back():
    clock, beat, pings, dead = make_heartbeat(10, 5)
    for _ in range(5):
        clock.advance(10)
        beat.pong()
    assert len(pings) == 5 and len(set(pings)) == 5 and dead == []


def test_no_pong_within_timeout_is_dead_once():
    clock, beat, pings, dead = make_heartbeat(10, 5)
    clock.pump([10, 4.9])
    assert dead == []
    clock.advance(0.1)
    assert dead == [15]
    clock.pump([10] * 10)
    assert dead == [15] and len(pings) == 1  # stopped after declaring it dead


def test_timeout_longer_than_interval_counts_from_the_first_unanswered_ping():
    clock, beat, pings, dead = make_heartbeat(10, 25)
    clock.pump([10, 10, 10])
    assert len(pings) == 3 and dead == []
    clock.pump([4, 1])
    assert dead == [35]


def test_one_timer_pings_both_legs_and_names_the_one_that_stopped_answering():
    clock = MemoryReactorClock()
    client, origin, dead = [], [], []
    beat = Heartbeat(clock, 10, 25, [client.append, origin.append], lambda index, tag: dead.append((index, tag, clock.seconds())), "session")
    beat.start()
    clock.advance(10)
    assert client == origin == [b"\0" * 7 + b"\1"]
    beat.pong(0)                        # the client answers every ping, the origin none
    clock.advance(10)
    beat.pong(0)
    clock.advance(10)
    beat.pong(0)
    assert dead == []
    clock.advance(5)                    # 25 s after the origin's first unanswered ping
    assert dead == [(1, "session", 35)]
    assert len(clock.getDelayedCalls()) == 0


def test_a_late_second_leg_is_timed_from_its_own_first_unanswered_ping():
    clock = MemoryReactorClock()
    dead = []
    beat = Heartbeat(clock, 10, 15, [lambda p: None, lambda p: None], lambda index: dead.append((index, clock.seconds())))
    beat.start()
    clock.advance(10)                   # ping 1 at 10: both waiting
    beat.pong(0)
    beat.pong(1)
    clock.advance(10)                   # ping 2 at 20
    beat.pong(1)
    clock.advance(10)                   # ping 3 at 30; client waiting since 20
    beat.pong(1)
    clock.advance(4.9)
    assert dead == []
    clock.advance(0.1)
    assert dead == [(0, 35)]


def test_zero_interval_never_pings_and_stop_cancels_everything():
    clock, beat, pings, dead = make_heartbeat(0, 5)
    clock.advance(1000)
    assert pings == [] and clock.getDelayedCalls() == []
    clock, beat, pings, dead = make_heartbeat(10, 5)
    clock.advance(10)
    beat.stop()
    assert clock.getDelayedCalls() == []


def test_idle_timer_fires_after_quiet_period_measured_from_last_touch():
    clock = MemoryReactorClock()
    fired = []
    idle = IdleTimer(clock, 60, lambda: fired.append(clock.seconds()))
    idle.start()
    clock.advance(50)
    idle.touch()
    clock.advance(50)   # the check at 60 finds activity at 50 and looks again at 110
    assert fired == []
    clock.advance(9.9)
    assert fired == []
    clock.advance(0.1)
    assert fired == [110]
    assert clock.getDelayedCalls() == []


def test_idle_timer_zero_never_fires():
    clock = MemoryReactorClock()
    idle = IdleTimer(clock, 0, lambda: 1 / 0)
    idle.start()
    clock.advance(10 ** 6)
    assert clock.getDelayedCalls() == []


# -- the relay's one timer wheel ------------------------------------------------

from wsrelay.edge.timers import TimerWheel  # noqa: E402


def test_wheel_fires_on_its_tick_never_early_with_one_reactor_timer():
    clock = MemoryReactorClock()
    wheel = TimerWheel(clock, tick=1.0)
    fired = []
    for delay in (0.5, 1.0, 2.2, 2.9, 60):
        wheel.callLater(delay, lambda d=delay: fired.append((d, clock.seconds())))
    assert len(clock.getDelayedCalls()) == 1          # not one per timer
    cancelled = wheel.callLater(2.5, fired.append, "cancelled")
    cancelled.cancel()
    clock.pump([0.5, 0.5, 1, 1])
    assert fired == [(0.5, 1.0), (1.0, 1.0), (2.2, 3.0), (2.9, 3.0)]
    assert not cancelled.active() and wheel.pending() == 1
    clock.advance(57)
    assert fired[-1] == (60, 60.0) and wheel.pending() == 0 and clock.getDelayedCalls() == []


def test_wheel_timers_set_by_its_callbacks_and_earlier_ones_reschedule_it():
    clock = MemoryReactorClock()
    wheel = TimerWheel(clock, tick=0.1)
    seen = []

    def again():
        seen.append(round(clock.seconds(), 3))
        if len(seen) < 3:
            wheel.callLater(0.2, again)
    wheel.callLater(10, seen.append, "late")
    wheel.callLater(0.2, again)                       # earlier than the 10 s one: the wake moves up
    for _ in range(10):
        clock.advance(0.1)
    assert seen == [0.2, 0.4, 0.6]
    clock.advance(9.1)
    assert seen[-1] == "late"


def test_heartbeat_and_idle_timer_run_on_the_wheel():
    clock = MemoryReactorClock()
    wheel = TimerWheel(clock, tick=1.0)
    pings, dead, idle = [], [], []
    beat = Heartbeat(wheel, 10, 5, [pings.append], lambda index: dead.append(clock.seconds()))
    beat.start()
    timer = IdleTimer(wheel, 30, lambda: idle.append(clock.seconds()))
    timer.start()
    clock.pump([10, 4.9])
    assert len(pings) == 1 and dead == []
    clock.advance(0.1)
    assert dead == [15]
    clock.pump([1] * 15)
    assert idle == [30]


def test_wheel_with_every_timer_cancelled_leaves_no_reactor_timer():
    clock = MemoryReactorClock()
    wheel = TimerWheel(clock, tick=1.0)
    timers = [wheel.callLater(delay, lambda: None) for delay in (5, 60, 60)]
    for timer in timers:
        timer.cancel()
    timers[0].cancel()                                # twice: counted once
    assert wheel.pending() == 0 and clock.getDelayedCalls() == []
    fired = []
    wheel.callLater(2, fired.append, 1)               # and it starts again from there
    clock.advance(2)
    assert fired == [1] and clock.getDelayedCalls() == []
