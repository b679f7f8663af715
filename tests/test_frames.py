"""Frames: the constants every layer shares, and the bounded FrameBuffer each audio port keeps."""
import threading

import pytest

from firmware import frames
from firmware.errors import PortClosed
from firmware.frames import FRAME_BYTES, MAX_BUFFERED_FRAMES, FrameBuffer

from .conftest import wait_for


def numbered(n):
    """A frame that says which it is, so order and loss can be checked."""
    return n.to_bytes(4, "little") + bytes(FRAME_BYTES - 4)


def number_of(frame):
    return int.from_bytes(frame[:4], "little")


def test_a_frame_is_20_ms_of_8_khz_16_bit_mono():
    assert (frames.SAMPLE_RATE, frames.FRAME_SAMPLES, frames.FRAME_BYTES) == (8000, 160, 320)
    assert frames.FRAME_SECONDS == 0.02 and frames.SILENCE == bytes(320)


def test_every_layer_takes_the_constants_from_the_one_module():
    from appliance import dtmf, media
    from firmware import audio, sip, voicemodem
    from hardware.virtual import modems, network, phones
    from hardware.virtual import voicemodem as virtual_voicemodem

    assert media.FRAME_BYTES is network.FRAME_BYTES is audio.FRAME_BYTES is frames.FRAME_BYTES
    assert media.SILENCE is sip.SILENCE is modems.SILENCE is phones.SILENCE is frames.SILENCE
    assert dtmf.SAMPLE_RATE is voicemodem.SAMPLE_RATE is phones.SAMPLE_RATE is frames.SAMPLE_RATE
    assert media.FRAME_SECONDS is virtual_voicemodem.FRAME_SECONDS is frames.FRAME_SECONDS


def test_frames_come_out_oldest_first_and_none_when_empty():
    buffer = FrameBuffer()
    assert buffer.get() is None
    for n in range(3):
        buffer.put(numbered(n))
    assert [number_of(buffer.get()) for _ in range(3)] == [0, 1, 2]
    assert buffer.get() is None and len(buffer) == 0


def test_a_full_buffer_drops_the_oldest_and_counts_it():
    buffer = FrameBuffer()
    for n in range(MAX_BUFFERED_FRAMES + 5):
        buffer.put(numbered(n))
    assert len(buffer) == MAX_BUFFERED_FRAMES and buffer.dropped == 5
    assert [number_of(buffer.get()) for _ in range(MAX_BUFFERED_FRAMES)] == list(range(5, 15))


def test_clear_forgets_what_is_held_but_not_what_was_dropped():
    buffer = FrameBuffer(maxlen=2)
    for n in range(3):
        buffer.put(numbered(n))
    buffer.clear()
    assert buffer.get() is None and buffer.dropped == 1


def test_take_waits_for_a_frame_from_another_thread():
    buffer = FrameBuffer()
    writer = threading.Thread(target=lambda: (wait_for(lambda: buffer._sleepers), buffer.put(numbered(7))))
    writer.start()
    assert number_of(buffer.take(timeout=10)) == 7
    writer.join()


def test_close_wakes_a_waiting_take_and_leaves_what_is_held_readable():
    buffer = FrameBuffer()
    taken = []
    taker = threading.Thread(target=lambda: taken.append(buffer.take(timeout=60)))
    taker.start()
    wait_for(lambda: buffer._sleepers == 1)
    buffer.close()
    taker.join(timeout=10)
    assert not taker.is_alive() and taken == [None]
    buffer.put(numbered(1))
    assert number_of(buffer.take(timeout=60)) == 1 and buffer.take(timeout=60) is None


def test_writers_on_many_threads_lose_nothing_uncounted():
    """Each writer's frames stay in its order, and kept + dropped is exactly what was put."""
    buffer, writers, each = FrameBuffer(), 8, 2000
    start = threading.Barrier(writers)

    def write(first):
        start.wait()
        for n in range(first, first + each):
            buffer.put(numbered(n))

    threads = [threading.Thread(target=write, args=(w * each,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = [number_of(buffer.get()) for _ in range(len(buffer))]
    assert len(kept) == MAX_BUFFERED_FRAMES and buffer.dropped == writers * each - MAX_BUFFERED_FRAMES
    for w in range(writers):
        mine = [n for n in kept if n // each == w]
        assert mine == sorted(mine)


def test_a_reader_and_writers_at_once_account_for_every_frame():
    buffer, writers, each = FrameBuffer(), 4, 2000
    start, done = threading.Barrier(writers + 1), threading.Event()
    read = []

    def write(first):
        start.wait()
        for n in range(first, first + each):
            buffer.put(numbered(n))

    def reader():
        start.wait()
        while not done.is_set() or len(buffer):
            frame = buffer.get()
            if frame is not None:
                read.append(number_of(frame))

    threads = [threading.Thread(target=write, args=(w * each,)) for w in range(writers)]
    consumer = threading.Thread(target=reader)
    for thread in threads + [consumer]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    consumer.join()
    assert len(read) + buffer.dropped == writers * each and len(set(read)) == len(read)


# --- the ports keep their own semantics on top of it ---------------------------------------

def test_sip_audio_drops_the_oldest_frame_to_the_far_end_and_counts_it():
    from firmware.sip import SipAudio

    audio = SipAudio("test")
    for n in range(MAX_BUFFERED_FRAMES + 2):
        audio.write_frame(numbered(n))
    assert audio.dropped_writes == 2 and number_of(audio._outgoing.get()) == 2
    with pytest.raises(ValueError, match="320 bytes"):
        audio.write_frame(b"short")
    audio.close()
    audio.write_frame(numbered(99))  # a call that ended takes frames silently
    assert audio._outgoing.get() is None


def test_voice_audio_queues_for_the_pump_and_refuses_frames_once_closed():
    from firmware.voicemodem import VoiceAudio

    audio = VoiceAudio("test")
    for n in range(MAX_BUFFERED_FRAMES + 3):
        audio.write_frame(numbered(n))
    assert audio.dropped_writes == 3 and number_of(audio.take_outgoing(1)) == 3
    audio.flush()
    audio.close()
    assert audio.take_outgoing(60) is None
    with pytest.raises(PortClosed):
        audio.write_frame(numbered(0))


# --- pacing a loop at one frame per 20 ms --------------------------------------------------

class FakeTime:
    """A monotonic clock that moves only when waited on or told to: no test waits for real time."""

    def __init__(self):
        self.now = 100.0
        self.stops_after = None  # set the stop Event on this many waits

    def monotonic(self):
        return self.now

    def is_set(self):
        return self.stops_after == 0

    def wait(self, seconds):
        self.now += seconds
        if self.stops_after is not None:
            self.stops_after -= 1


def test_frame_deadlines_come_every_20_ms_and_stop_with_the_event(monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(frames.time, "monotonic", clock.monotonic)
    clock.stops_after = 4
    deadlines = list(frames.frame_deadlines(clock))
    assert deadlines == pytest.approx([100.02, 100.04, 100.06])
    assert clock.now == pytest.approx(100.08)  # it waited for the fourth, then saw the stop


def test_frame_deadlines_resume_from_now_after_a_stall_instead_of_bursting(monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(frames.time, "monotonic", clock.monotonic)
    paced = frames.frame_deadlines(clock, resync_after=0.2)
    assert next(paced) == pytest.approx(100.02)
    clock.now += 0.1  # a slow frame: still within reach, the next deadline is already past
    assert next(paced) == pytest.approx(100.04)
    clock.now += 1.0  # a stall of a second
    assert next(paced) == pytest.approx(101.14)  # one frame after the stall ended, not 100.06
