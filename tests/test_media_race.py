"""The media clock against the engine: detaching a leg, and finishing a voicemail tap, mid-tick.

Events force the interleaving: a leg or tap blocks inside a tick until the test lets it
go, so the engine-side call is made while that tick is in flight. A call that must wait
is given a bounded chance to return early; with the fix it never can, so the check
cannot fail by chance, and without it the call returns at once and the test fails.
"""
import logging
import threading
import time
import wave

import numpy as np

from appliance.media import CallMedia, MediaClock, Recorder

SETTLE_SECONDS = 0.3  # how long a call that must wait is given to (wrongly) return early
STUCK_SECONDS = 10.0  # a thread not done by then is deadlocked


def frame_of(value):
    return np.full(160, value, dtype="<i2").tobytes()


class MemoryPort:
    """An audio port in memory: always has a frame, keeps nothing written."""

    def read_frame(self):
        return frame_of(5)

    def write_frame(self, frame):
        pass


class Gate:
    """Blocks the thread that reaches it until released; says when it has been reached."""

    def __init__(self):
        self.reached = threading.Event()
        self.released = threading.Event()

    def block(self):
        self.reached.set()
        assert self.released.wait(STUCK_SECONDS), "the test never released the gate"


class BlockingLeg:
    """A leg whose first tick waits at a gate; it notes each tick it ends."""

    def __init__(self, log):
        self.gate = Gate()
        self.log = log
        self.ticks = 0

    def tick(self):
        if self.ticks == 0:
            self.gate.block()
        self.ticks += 1
        self.log.append("tick ended")


class BlockingRecorder(Recorder):
    """A recorder whose first write waits at a gate (the clock is then mid-write)."""

    def __init__(self, path):
        super().__init__(path)
        self.gate = Gate()

    def write(self, heard, said=None):
        if self.frames == 0:
            self.gate.block()
        super().write(heard)


class CountingTap:
    """A tap that counts the frames it was given."""

    def __init__(self):
        self.frames = 0

    def write(self, frame):
        self.frames += 1


def start(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def finish(thread):
    thread.join(STUCK_SECONDS)
    assert not thread.is_alive(), "deadlocked"


def call_media():
    return CallMedia(MemoryPort(), None, lambda p: None, lambda e: None)


# --- MediaClock.detach ---------------------------------------------------------------------

def test_detach_waits_for_the_tick_in_flight():
    order = []
    clock, leg = MediaClock(), BlockingLeg(order)
    clock.attach(leg)
    ticking = start(clock.tick)  # this thread plays the clock thread
    assert leg.gate.reached.wait(STUCK_SECONDS)
    returned = threading.Event()
    detaching = start(lambda: (clock.detach(leg), order.append("detach returned"), returned.set()))
    assert not returned.wait(SETTLE_SECONDS)  # the leg is still being ticked
    leg.gate.released.set()
    finish(ticking), finish(detaching)
    assert order == ["tick ended", "detach returned"]
    clock.tick()
    assert leg.ticks == 1 and clock.stats()["legs"] == 0


def test_a_leg_detaching_itself_mid_tick_does_not_wait_for_its_own_tick():
    clock = MediaClock()

    class SelfDetaching:
        ticks = 0

        def tick(self):
            self.ticks += 1
            clock.detach(self)

    leg, other = SelfDetaching(), CountingTap()
    other.tick = lambda: other.write(None)
    clock.attach(leg), clock.attach(other)
    finish(start(clock.tick))
    finish(start(clock.tick))
    assert leg.ticks == 1 and other.frames == 2 and clock.stats()["legs"] == 1


def test_a_failing_leg_is_detached_by_the_clock_thread_and_the_others_go_on(caplog):
    clock, healthy = MediaClock(), CountingTap()
    healthy.tick = lambda: healthy.write(None)

    class Broken:
        def tick(self):
            raise RuntimeError("port gone")

    clock.attach(Broken()), clock.attach(healthy)
    with caplog.at_level(logging.ERROR, logger="appliance.media"):
        finish(start(clock.tick))
        finish(start(clock.tick))
    assert healthy.frames == 2 and clock.stats()["legs"] == 1
    assert [r.message for r in caplog.records] == ["media leg failed"]


def test_a_running_clock_never_ticks_a_leg_after_detach_returns():
    clock, leg = MediaClock(), CountingTap()
    witness = threading.Semaphore(0)
    leg.tick = lambda: leg.write(None)
    clock.attach(leg)
    clock.attach(type("Witness", (), {"tick": lambda self: witness.release()})())
    clock.start()
    try:
        for _ in range(2):
            assert witness.acquire(timeout=STUCK_SECONDS)
        clock.detach(leg)
        ticked = leg.frames
        for _ in range(3):  # three more whole ticks of the clock
            assert witness.acquire(timeout=STUCK_SECONDS)
        assert leg.frames == ticked
    finally:
        clock.stop()


# --- a leg's taps ----------------------------------------------------------------------------

def test_a_voicemail_tap_finished_mid_write_does_not_fail_the_leg(tmp_path, caplog):
    """What CallSession.stop_voicemail does (remove, then finish) while the clock writes the tap."""
    clock, media = MediaClock(), call_media()
    message = BlockingRecorder(str(tmp_path / "message.wav"))
    media.taps.append(message)
    clock.attach(media)
    with caplog.at_level(logging.ERROR, logger="appliance.media"):
        ticking = start(clock.tick)
        assert message.gate.reached.wait(STUCK_SECONDS)
        finished = threading.Event()
        stopping = start(lambda: (media.taps.remove(message), message.finish(), finished.set()))
        assert not finished.wait(SETTLE_SECONDS)  # the clock is writing to it
        message.gate.released.set()
        finish(ticking), finish(stopping)
        clock.tick()  # and the next tick leaves it alone
    assert not caplog.records and not media.failed and clock.stats()["legs"] == 1
    assert message not in media.taps and len(media.taps) == 0
    with wave.open(message.path) as wav:
        assert wav.getnframes() == 160  # the frame in flight, whole, and nothing after


def test_removing_a_tap_mid_tick_does_not_make_the_next_tap_miss_the_frame(tmp_path):
    media = call_media()
    first, second = BlockingRecorder(str(tmp_path / "first.wav")), CountingTap()
    media.taps.append(first), media.taps.append(second)
    ticking = start(media.tick)
    assert first.gate.reached.wait(STUCK_SECONDS)
    removing = start(lambda: media.taps.remove(first))
    assert not removing.join(SETTLE_SECONDS) and removing.is_alive()
    first.gate.released.set()
    finish(ticking), finish(removing)
    assert second.frames == 1
    media.tick()
    assert second.frames == 2 and first.frames == 1


def test_a_tap_removed_from_the_clock_thread_itself_does_not_wait_for_its_own_tick():
    media = call_media()

    class OneShot(CountingTap):
        def write(self, frame):
            super().write(frame)
            media.taps.remove(self)

    tap = OneShot()
    media.taps.append(tap)
    finish(start(media.tick))
    finish(start(media.tick))
    assert tap.frames == 1 and len(media.taps) == 0


def test_taps_changed_while_a_clock_ticks_flat_out_never_fail_the_leg(tmp_path, caplog):
    """Many voicemail messages started and finished against a clock with no pause between ticks."""
    clock, media = MediaClock(), call_media()
    clock.attach(media)
    stop = threading.Event()
    ticker = start(lambda: [(clock.tick(), time.sleep(0)) for _ in iter(stop.is_set, True)])  # sleep(0): yield
    try:
        with caplog.at_level(logging.ERROR, logger="appliance.media"):
            for n in range(100):
                message = Recorder(str(tmp_path / f"m{n}.wav"))
                media.taps.append(message)
                media.taps.remove(message)
                message.finish()
    finally:
        stop.set()
        finish(ticker)
    assert not caplog.records and clock.stats()["legs"] == 1 and not media.failed


def test_removing_a_tap_that_is_not_there_is_refused_like_a_list():
    media = call_media()
    try:
        media.taps.remove(CountingTap())
    except ValueError:
        return
    raise AssertionError("no ValueError")
