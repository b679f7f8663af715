"""The systemd watchdog: sd_notify over $NOTIFY_SOCKET with the standard library alone.

systemd starts the engine with ``Type=notify`` and ``WatchdogSec=``. The engine says
``READY=1`` once it serves, then ``WATCHDOG=1`` every third of the watchdog interval, but
only while a liveness check passes: when the media clock, the engine loop or a line's
thread stops, the feeding stops, systemd kills the engine and starts it again. A stuck
process that still answers pings is exactly what a watchdog is for, so the check looks
at progress (the media clock's tick count), not at whether threads merely exist.

Outside systemd (no $NOTIFY_SOCKET) every message is dropped quietly: a development run
behaves the same without a watchdog.
"""
import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

# The engine's loop calls tick() every second; this much silence means it is stuck.
LOOP_STALL_SECONDS = 15.0
# The media clock ticks every 20 ms; two seconds without a tick is a stall, not jitter.
CLOCK_STALL_SECONDS = 2.0


def notify(message, socket_path=None):
    """Send one sd_notify message (``READY=1``, ``WATCHDOG=1``, ``STATUS=...``); True if sent."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket, as systemd names them
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(message.encode("utf-8"))
    except OSError as err:
        log.debug("sd_notify %r failed: %s", message, err)
        return False
    return True


def watchdog_interval(environ=None):
    """The watchdog interval systemd asked for, in seconds, or None when there is none."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None  # the watchdog is meant for another process (a parent that exec'd us)
    try:
        seconds = int(usec) / 1e6
    except ValueError:
        return None
    return seconds if seconds > 0 else None


class EngineLiveness:
    """Tells whether the engine still makes progress: media clock, loop, line threads."""

    def __init__(self, media_clock, threads=lambda: (), clock_stall=CLOCK_STALL_SECONDS,
                 loop_stall=LOOP_STALL_SECONDS):
        self.media_clock = media_clock
        self.threads = threads  # a callable giving (name, thread) pairs that must stay alive
        self.clock_stall = clock_stall
        self.loop_stall = loop_stall
        self._ticks = None
        self._ticks_moved = time.monotonic()
        self._loop_seen = time.monotonic()

    def loop_ticked(self):
        """The engine loop ran its periodic tick (called on the loop thread)."""
        self._loop_seen = time.monotonic()

    def problem(self):
        """Why the engine is not alive, or None when it is."""
        now = time.monotonic()
        ticks = self.media_clock.ticks
        if ticks != self._ticks:
            self._ticks, self._ticks_moved = ticks, now
        elif now - self._ticks_moved > self.clock_stall:
            return f"the media clock stalled {now - self._ticks_moved:.1f} s ago"
        if now - self._loop_seen > self.loop_stall:
            return f"the engine loop has not ticked for {now - self._loop_seen:.0f} s"
        for name, thread in self.threads():
            if thread is not None and not thread.is_alive():
                return f"the thread of {name} died"
        return None


class Watchdog:
    """Feeds systemd's watchdog from its own thread while ``problem()`` returns None."""

    def __init__(self, problem, interval=None, socket_path=None):
        self._problem = problem
        self._socket_path = socket_path
        watchdog = interval if interval is not None else watchdog_interval()
        self.interval = watchdog
        # Feed three times per interval, so one late feed never trips it.
        self._period = watchdog / 3 if watchdog else None
        self._stop = threading.Event()
        self._thread = None
        self.feeds = 0
        self.starving = None  # the reason feeding stopped, while it is stopped

    @property
    def enabled(self):
        """Whether systemd expects to be fed."""
        return self._period is not None

    def ready(self, status="ready"):
        """Tell systemd the engine is up and start feeding."""
        self._send(f"READY=1\nSTATUS={status}")
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
            self._thread.start()

    def status(self, text):
        """Set the one-line status ``systemctl status`` shows."""
        self._send(f"STATUS={text}")

    def close(self):
        """Stop feeding and tell systemd the engine is stopping; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._send("STOPPING=1")

    def check_once(self):
        """Run one liveness check; feed the watchdog if it passes. Return the problem or None."""
        try:
            problem = self._problem()
        except Exception as err:  # a broken check must not look like a healthy engine
            problem = f"the liveness check failed: {err}"
        if problem is None:
            if self.starving is not None:
                log.warning("watchdog: the engine is alive again; feeding resumes")
                self.status("ready")
            self.starving = None
            self.feeds += 1
            self._send("WATCHDOG=1")
        elif problem != self.starving:
            # Said once, loudly: this is the last thing in the journal before systemd's kill.
            log.error("watchdog: not feeding systemd: %s", problem)
            self.starving = problem
            self.status(f"unhealthy: {problem}")
        return problem

    def _run(self):
        while not self._stop.wait(self._period):
            self.check_once()

    def _send(self, message):
        return notify(message, self._socket_path)
