"""The engine's loop: one thread runs every decision, posted work and timers in order.

Line threads, the media clock and control requests hand work over with ``post``; code on
the loop thread sets timers with ``later``. The clock is injectable, so that a test can
drive timers with a ``FakeClock`` and ``run_pending`` in milliseconds instead of seconds.
"""
import heapq
import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future

from .errors import ApplianceError

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.5  # the longest the loop sleeps, so that stop() is noticed soon
COMPACT_MIN = 64  # cancelled timers the heap may hold before it is rebuilt without them
REQUEST_TIMEOUT = 5.0


def safely(action, *args):
    """Run ``action(*args)``; log what it raises instead of letting it end the loop."""
    try:
        action(*args)
    except ApplianceError as err:
        log.error("%s failed: %s", getattr(action, "__name__", action), err)
    except Exception:  # a bug in one call's handling must not stop the box
        log.exception("engine action %r failed", action)


def _nothing():
    """What ``stop`` posts to wake the loop."""


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start=1000.0):
        self.now = start

    def __call__(self):
        """The current fake time in seconds."""
        return self.now

    def advance(self, seconds):
        """Move the clock forward by ``seconds``."""
        self.now += seconds


class Timer:
    """A pending ``later``: it can be cancelled before it fires."""

    __slots__ = ("due", "action", "args", "cancelled", "_on_cancel")

    def __init__(self, due, action, args, on_cancel=None):
        self.due, self.action, self.args, self.cancelled = due, action, args, False
        self._on_cancel = on_cancel

    def cancel(self):
        """Do not run this timer's action; let go of it at once."""
        if self.cancelled:
            return
        self.cancelled = True
        self.action, self.args = None, ()  # a ten-minute limit must not keep its call's objects till then
        if self._on_cancel is not None:
            self._on_cancel()


class Loop:
    """Posted actions and timers, run one at a time on the thread that calls ``run``."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._queue = queue.Queue()
        self._timers = []
        self._cancelled = 0  # cancelled timers still in the heap
        self._sequence = itertools.count()  # equal due times fire in the order they were set
        self._stop = threading.Event()
        self._thread = None

    def post(self, action, *args):
        """Run ``action(*args)`` on the loop thread (callable from any thread)."""
        self._queue.put((action, args))

    def later(self, seconds, action, *args):
        """Run ``action(*args)`` on the loop thread after ``seconds`` (loop thread only)."""
        timer = Timer(self.clock() + seconds, action, args, self._timer_cancelled)
        heapq.heappush(self._timers, (timer.due, next(self._sequence), timer))
        return timer

    def call(self, function, *args, timeout=REQUEST_TIMEOUT):
        """Run ``function(*args)`` on the loop thread and wait for its result (not from the loop)."""
        future = Future()

        def run():
            try:
                future.set_result(function(*args))
            except Exception as err:  # handed to the requester, not lost in the loop
                future.set_exception(err)

        self.post(run)
        return future.result(timeout=timeout)

    @property
    def stopped(self):
        """Whether ``stop()`` was called."""
        return self._stop.is_set()

    def run(self):
        """Run posted actions and timers until ``stop()``."""
        while not self._stop.is_set():
            self.run_once(self._until_next_timer())

    def run_once(self, timeout=0.0):
        """Wait up to ``timeout`` for one posted action, run it, then the timers that are due."""
        try:
            action, args = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            pass
        else:
            safely(action, *args)
        self.run_due()

    def run_pending(self):
        """Run everything posted and every timer due by the clock, until nothing is left (tests)."""
        while not self._queue.empty() or self._due():
            self.run_once()

    def _due(self):
        return bool(self._timers) and self._timers[0][0] <= self.clock()

    def run_due(self):
        """Fire the timers whose time has come, earliest first."""
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if timer.cancelled:
                self._cancelled -= 1
            else:
                timer._on_cancel = None  # out of the heap: cancelling it from now on counts nothing
                safely(timer.action, *timer.args)

    def _timer_cancelled(self):
        # Every call cancels its limits when it ends; left in the heap until due, ten minutes
        # of them would pile up (a thousand at two calls a second) and hold memory the whole time.
        self._cancelled += 1
        if self._cancelled > COMPACT_MIN and self._cancelled * 2 > len(self._timers):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0

    def pending_timers(self):
        """How many timers are set and not cancelled."""
        return sum(not entry[2].cancelled for entry in self._timers)

    def start(self, name="engine-loop"):
        """Run the loop on a thread of its own."""
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        """End the loop; join its own thread if ``start`` made one."""
        self._stop.set()
        self.post(_nothing)  # wakes a loop waiting for work, so that it ends now
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _until_next_timer(self):
        if not self._timers:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.0, self._timers[0][0] - self.clock()))
