"""The engine's loop: posted work and timers, in order, with a fake clock (milliseconds)."""
import threading

import pytest

from appliance.errors import ApplianceError
from appliance.loop import COMPACT_MIN, FakeClock, Loop, safely


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def loop(clock):
    return Loop(clock)


def test_timers_fire_in_order_of_their_time_not_of_setting(loop, clock):
    fired = []
    loop.later(3, fired.append, "c")
    loop.later(1, fired.append, "a")
    loop.later(2, fired.append, "b")
    clock.advance(2.5)
    loop.run_pending()
    assert fired == ["a", "b"]
    clock.advance(1)
    loop.run_pending()
    assert fired == ["a", "b", "c"]


def test_timers_due_at_the_same_time_fire_in_the_order_they_were_set(loop, clock):
    fired = []
    for name in "xyz":
        loop.later(1, fired.append, name)
    clock.advance(1)
    loop.run_due()
    assert fired == ["x", "y", "z"]


def test_a_timer_does_not_fire_before_its_time(loop, clock):
    fired = []
    loop.later(1, fired.append, "late")
    clock.advance(0.999)
    loop.run_pending()
    assert fired == [] and loop.pending_timers() == 1


def test_posted_actions_run_in_order_before_due_timers(loop, clock):
    done = []
    loop.later(0, done.append, "timer")
    loop.post(done.append, "first")
    loop.post(done.append, "second")
    loop.run_once()
    assert done == ["first", "timer"]
    loop.run_pending()
    assert done == ["first", "timer", "second"]


def test_a_timer_set_by_a_timer_fires_when_its_own_time_comes(loop, clock):
    fired = []

    def again():
        fired.append(clock())
        if len(fired) < 3:
            loop.later(1, again)

    loop.later(1, again)
    for _ in range(5):
        clock.advance(1)
        loop.run_pending()
    assert fired == [1001.0, 1002.0, 1003.0]


def test_a_cancelled_timer_is_ignored(loop, clock):
    fired = []
    timer = loop.later(1, fired.append, "no")
    loop.later(1, fired.append, "yes")
    timer.cancel()
    assert loop.pending_timers() == 1
    clock.advance(1)
    loop.run_pending()
    assert fired == ["yes"]


def test_cancelled_timers_do_not_pile_up_in_the_heap(loop, clock):
    fired = []
    loop.later(5, fired.append, "kept")
    for _ in range(1000):  # each call's ten-minute limit, cancelled when the call ends
        loop.later(600, fired.append, "no").cancel()
    assert len(loop._timers) <= 2 * COMPACT_MIN and loop.pending_timers() == 1
    clock.advance(600)
    loop.run_pending()
    assert fired == ["kept"] and loop._timers == []


def test_a_failing_action_is_logged_and_the_loop_goes_on(loop, clock, caplog):
    done = []

    def broken():
        raise RuntimeError("a bug in one call")

    def refused():
        raise ApplianceError("the modem said no")

    loop.post(broken)
    loop.later(0, refused)
    loop.post(done.append, "after")
    loop.run_pending()
    assert done == ["after"]
    assert "a bug in one call" in caplog.text and "the modem said no" in caplog.text


def test_safely_swallows_and_logs(caplog):
    safely(lambda: 1 / 0)
    assert "ZeroDivisionError" in caplog.text


def test_call_waits_for_the_result_from_the_loop_thread(clock):
    loop = Loop(clock).start()
    try:
        assert loop.call(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(KeyError):
            loop.call({}.__getitem__, "missing")  # the requester gets the loop's exception
    finally:
        loop.stop()
    assert loop.stopped


def test_post_from_another_thread_reaches_the_loop_thread(clock):
    loop = Loop(clock).start()
    seen = threading.Event()
    names = []
    try:
        threading.Thread(target=loop.post, args=(lambda: (names.append(threading.current_thread().name),
                                                          seen.set()),)).start()
        assert seen.wait(2)
    finally:
        loop.stop()
    assert names == ["engine-loop"]


def test_the_loop_thread_survives_a_failing_action(clock):
    loop = Loop(clock).start()
    try:
        loop.post(lambda: 1 / 0)
        assert loop.call(lambda: "alive") == "alive"
    finally:
        loop.stop()


def test_the_real_clock_is_the_default():
    import time

    loop = Loop()
    assert loop.clock is time.monotonic
