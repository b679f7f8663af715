"""CPU priorities: the media clock's real-time claim, the slow work's nice value and its children."""
import os
import resource
import subprocess
import threading

from appliance.media import MediaClock
from appliance.priority import ENGINE_NICE, claim_real_time, lower_priority, raise_priority


def in_thread(work):
    """Run ``work`` on a fresh thread (priorities are per thread on Linux) and return its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def test_the_clock_thread_says_how_it_is_scheduled():
    clock = MediaClock()
    assert clock.stats()["scheduling"] == "not started"
    clock.start()
    try:
        clock._stop.wait(0.1)
        scheduling = clock.stats()["scheduling"]
        policy = os.sched_getscheduler(clock._thread.native_id)
    finally:
        clock.stop()
    assert (scheduling, policy) in (("SCHED_FIFO 10", os.SCHED_FIFO), ) or \
        (scheduling.startswith("normal (") and policy == os.SCHED_OTHER)
    if os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 10:
        assert scheduling == "SCHED_FIFO 10" or "not permitted" in scheduling  # root without CAP_SYS_NICE


def test_a_real_time_claim_applies_to_its_thread_only():
    def claim():
        said = claim_real_time()
        return said, os.sched_getscheduler(0)
    said, policy = in_thread(claim)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this thread is untouched
    assert policy == (os.SCHED_FIFO if said.startswith("SCHED_FIFO") else os.SCHED_OTHER)


def test_a_lowered_thread_passes_its_nice_value_to_the_programs_it_starts():
    def lowered():
        lower_priority(7)
        return int(subprocess.run(["nice"], capture_output=True, text=True, check=True).stdout)
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert in_thread(lowered) == max(7, before)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_lowering_never_raises_a_thread_above_where_it_is():
    def twice():
        lower_priority(12)
        lower_priority(3)  # asks for less: stays at 12
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert in_thread(twice) == max(12, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))


def test_the_engine_thread_goes_above_ordinary_programs_where_it_may():
    def raised():
        raise_priority()
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    after = in_thread(raised)
    may = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20 - ENGINE_NICE
    assert after == (min(before, ENGINE_NICE) if may else before)
