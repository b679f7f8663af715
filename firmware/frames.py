"""Telephony audio frames: what a frame is, and the bounded buffer each port keeps of them.

Every line carries 8 kHz 16-bit mono PCM in 20 ms frames of 160 samples (320 bytes);
this is the one place that says so. A port holds at most ``MAX_BUFFERED_FRAMES`` (200 ms)
each way: more than that is delay, not jitter, so a full ``FrameBuffer`` pushes out its
oldest frame instead of blocking whoever writes, and counts what it pushed out.

A leaf module: it imports nothing of the project, so firmware, appliance and the virtual
hardware can all take the constants from here.
"""
import collections
import threading
import time

SAMPLE_RATE = 8000
SAMPLE_BYTES = 2  # 16-bit signed little-endian
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
SILENCE = bytes(FRAME_BYTES)
MAX_BUFFERED_FRAMES = 10  # 200 ms: more than that is delay, not jitter


def frame_deadlines(stop, resync_after=10 * FRAME_SECONDS):
    """Yield each 20 ms frame's deadline once it has come, until ``stop`` (an Event) is set.

    A loop that falls more than ``resync_after`` s behind starts again from now: after a
    stall, sending the missed frames in a burst would only add delay.
    """
    deadline = time.monotonic()
    while True:
        deadline += FRAME_SECONDS
        delay = deadline - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        if stop.is_set():
            return
        yield deadline
        now = time.monotonic()
        if now - deadline > resync_after:
            deadline = now


class FrameBuffer:
    """A bounded FIFO of frames between threads: when full, a new frame pushes out the oldest.

    ``put`` and ``get`` never block (one runs on a media clock, which must never wait);
    ``take`` waits for a frame, for a thread whose only job is to move frames on.
    """

    def __init__(self, maxlen=MAX_BUFFERED_FRAMES):
        self.maxlen = maxlen
        self.dropped = 0  # frames pushed out unread
        self._frames = collections.deque(maxlen=maxlen)
        # One plain lock, taken for a few bytecodes: the count of dropped frames stays exact
        # with several writers, and the Condition is only used when someone waits.
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._sleepers = 0
        self._closed = False

    def __len__(self):
        return len(self._frames)

    def put(self, frame):
        """Add ``frame``; when full, the oldest frame is dropped (and counted). Never blocks."""
        with self._lock:
            if len(self._frames) == self.maxlen:
                self.dropped += 1
            self._frames.append(frame)
            if self._sleepers:
                self._ready.notify()

    def get(self):
        """The oldest frame, or None when there is none. Never blocks."""
        with self._lock:
            return self._frames.popleft() if self._frames else None

    def take(self, timeout):
        """The oldest frame, waiting up to ``timeout`` s for one; None if none came (or closed)."""
        with self._lock:
            if not self._frames and not self._closed:
                self._sleepers += 1
                try:
                    self._ready.wait(timeout)
                finally:
                    self._sleepers -= 1
            return self._frames.popleft() if self._frames else None

    def clear(self):
        """Forget every frame held (a call starts, or ends)."""
        with self._lock:
            self._frames.clear()

    def close(self):
        """Wake every ``take`` now and let later ones return at once; frames held can still be read."""
        with self._lock:
            self._closed = True
            self._ready.notify_all()


class FramedAudio:
    """A line's audio as the engine sees it: ``read_frame``, ``write_frame``, ``flush``, never blocking.

    Frames from the far end wait in ``_incoming``, frames for it in ``_outgoing``; the port's
    own threads (or pjmedia's clock) fill and drain the other ends.
    """

    def __init__(self):
        self._incoming = FrameBuffer()
        self._outgoing = FrameBuffer()
        self.unsent_writes = 0  # frames taken from the queue that the line then failed to send

    @property
    def dropped_writes(self):
        """Frames the far end never got: pushed out of a full queue, or not sent."""
        return self._outgoing.dropped + self.unsent_writes

    def read_frame(self):
        """Return the oldest frame from the far end, or None when none has arrived."""
        return self._incoming.get()

    def write_frame(self, frame):
        """Queue one frame for the far end; never blocks (a full queue drops its oldest)."""
        self._check_writable()
        self._outgoing.put(frame)

    def flush(self):
        """Forget audio received before now (called when a call starts)."""
        self._incoming.clear()

    def _check_writable(self):
        """Raise the port's own error when it can take no more frames (a hook: all are taken here)."""
