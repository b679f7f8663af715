"""CPU priorities: the media clock above everything ordinary, the box's slow work below it.

A frame is late when the clock thread cannot run at its deadline: on a busy box the web
UI (a report, a backup) and the after-call work (ffmpeg, espeak-ng) compete for the same
cores, and the clock can also wait for the GIL held by another engine thread that is
itself waiting for a CPU. Linux schedules threads, not processes, and a child inherits
its thread's nice value, so each thread says what it is: the engine starts at nice -5,
the clock takes SCHED_FIFO, the after-call and phrase workers (and the ffmpeg and
espeak-ng they start) nice 10, and the web UI process nice 5.
"""
import logging
import os
import threading

log = logging.getLogger(__name__)

# The clock's SCHED_FIFO priority: above every ordinary thread, low among real-time ones.
# hotline-engine.service allows it with LimitRTPRIO=; a tick sleeps most of its 20 ms and
# the kernel's real-time throttling caps what a runaway tick could take.
CLOCK_PRIORITY = 10
# The engine's threads above ordinary programs: the clock may wait for the GIL, and the
# thread holding it must not then wait for the CPU behind the web UI or a browser.
ENGINE_NICE = -5
BACKGROUND_NICE = 10  # after-call work: compression, retention, speaking phrases
WEB_NICE = 5  # the web UI: a page may wait a few ms more; a frame may not


def claim_real_time(priority=CLOCK_PRIORITY):
    """Give the calling thread SCHED_FIFO ``priority`` if this process may; say what it runs at."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread on Linux
    except (AttributeError, OSError) as err:
        reason = getattr(err, "strerror", None) or "not supported here"
        log.warning("media clock: no real-time priority (%s); frames may be late on a busy box", reason)
        return f"normal ({reason})"
    return f"SCHED_FIFO {priority}"


def raise_priority(nice=ENGINE_NICE):
    """Lower the calling thread's nice value to ``nice`` where permitted (threads made later inherit it)."""
    _renice(min, nice, logging.INFO)  # unprivileged: the unit's Nice= set it, or nobody did


def lower_priority(nice=BACKGROUND_NICE):
    """Raise the calling thread's nice value to ``nice`` (the processes it starts inherit it)."""
    _renice(max, nice, logging.WARNING)


def _renice(keep, nice, level):
    """Set the calling thread's nice value to ``keep(nice, now)``; log at ``level`` when refused."""
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        if keep(nice, now) != now:
            os.setpriority(os.PRIO_PROCESS, tid, keep(nice, now))
    except (AttributeError, OSError) as err:
        log.log(level, "thread %s stays at its nice value: %s", threading.current_thread().name, err)
