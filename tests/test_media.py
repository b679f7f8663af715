"""Media: frames, mixing, players, recorders and an audio port that never blocks."""
import logging
import os
import wave

import numpy as np
import pytest

from appliance.media import FRAME_BYTES, FRAME_SECONDS, MediaClock, Player, Recorder, mix
from firmware.audio import SerialAudioPort
from hardware.virtual.pty import PtyPort

from .conftest import wait_for


def frame_of(value):
    return np.full(160, value, dtype="<i2").tobytes()


def test_mix_adds_and_saturates():
    assert np.frombuffer(mix(frame_of(1000), frame_of(-300)), dtype="<i2")[0] == 700
    assert np.frombuffer(mix(frame_of(30000), frame_of(30000)), dtype="<i2")[0] == 32767
    assert np.frombuffer(mix(frame_of(-30000), frame_of(-30000)), dtype="<i2")[0] == -32768


def test_recorder_writes_a_part_file_then_renames(tmp_path):
    path = str(tmp_path / "rec" / "call-1.wav")
    recorder = Recorder(path)
    for value in (1, 2, 3):
        recorder.write(frame_of(value))
    assert os.path.exists(path + ".part") and not os.path.exists(path)
    assert recorder.finish() == path and recorder.finish() == path
    with wave.open(path) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (8000, 1, 480)


def test_player_pads_the_last_frame_and_ends(tmp_path):
    path = str(tmp_path / "p.wav")
    with wave.open(path, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(8000)
        wav.writeframes(frame_of(5) + frame_of(6)[:100])
    player = Player(path)
    assert player.read() == frame_of(5)
    last = player.read()
    assert len(last) == FRAME_BYTES and last.endswith(bytes(FRAME_BYTES - 100))
    assert player.read() is None


def test_player_refuses_a_wav_in_another_format(tmp_path):
    path = str(tmp_path / "cd.wav")
    with wave.open(path, "wb") as wav:
        wav.setnchannels(2), wav.setsampwidth(2), wav.setframerate(44100)
        wav.writeframes(bytes(400))
    with pytest.raises(ValueError, match="8 kHz mono"):
        Player(path)


def test_a_modem_that_stops_reading_audio_never_blocks_the_writer():
    pty = PtyPort()
    port = SerialAudioPort(pty.path)
    try:
        for _ in range(2000):  # 40 s of audio into a port nobody drains
            port.write_frame(frame_of(7))
        wait_for(lambda: port.dropped_writes > 1000)
    finally:
        port.close()
        pty.close()


def test_ringback_tone_has_its_cadence_and_frequency():
    from appliance.media import RINGBACK, Tone

    tone = Tone(**RINGBACK)
    frames = [np.frombuffer(tone.read(), dtype="<i2") for _ in range(250)]  # 5 s: one cadence period
    loud = [int(np.abs(frame).max() > 1000) for frame in frames]
    assert loud[:50] == [1] * 50 and loud[50:] == [0] * 200  # 1 s on, 4 s off
    burst = np.concatenate(frames[:50]).astype(float)
    assert abs(np.argmax(np.abs(np.fft.rfft(burst))) * 8000 / len(burst) - 425) < 2
    assert np.abs(np.frombuffer(tone.read(), dtype="<i2")).max() > 1000  # and again


def test_stereo_recorder_keeps_the_sides_apart_and_mono_mixes_them(tmp_path):
    stereo = Recorder(str(tmp_path / "s.wav"), stereo=True)
    mono = Recorder(str(tmp_path / "m.wav"))
    for recorder in (stereo, mono):
        recorder.write(frame_of(100), frame_of(-40))
        recorder.finish()
    with wave.open(str(tmp_path / "s.wav")) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert wav.getnchannels() == 2 and (samples[:, 0] == 100).all() and (samples[:, 1] == -40).all()
    with wave.open(str(tmp_path / "m.wav")) as wav:
        assert (np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2") == 60).all()


class MemoryPort:
    """An audio port in memory: hands out the frames given, keeps what is written."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.written = []

    def read_frame(self):
        return self.frames.pop(0) if self.frames else None

    def write_frame(self, frame):
        self.written.append(frame)


def test_bridged_legs_hear_each_other_and_the_recording_takes_both(tmp_path):
    from appliance.media import CallMedia, bridge

    caller_port, operator_port = MemoryPort([frame_of(7)] * 5), MemoryPort([frame_of(-3)] * 5)
    recorder = Recorder(str(tmp_path / "r.wav"), stereo=True)
    caller = CallMedia(caller_port, recorder, lambda p: None, lambda e: None)
    operator = CallMedia(operator_port, None, lambda p: None, lambda e: None)
    bridge(caller, operator)
    for _ in range(5):
        caller.tick()
        operator.tick()
    recorder.finish()
    assert operator_port.written[0] == frame_of(7)  # the same tick
    assert caller_port.written[1:] == [frame_of(-3)] * 4  # one frame later
    with wave.open(str(tmp_path / "r.wav")) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert (samples[:, 0] == 7).all() and (samples[160:, 1] == -3).all()  # the first frame: silence


def test_a_late_frame_does_not_split_a_held_key(tmp_path):
    """The in-band detector hears only frames that came: a port running late is not silence."""
    from appliance.dtmf import DtmfDetector
    from appliance.media import CallMedia
    from hardware.virtual.phones import dtmf_frames

    key = dtmf_frames("5", tone_frames=10, pause_frames=0)
    frames = key[:4] + [None, None, None] + key[4:]  # three ticks with nothing from the port mid-key
    port = MemoryPort([])
    port.read_frame = lambda: frames.pop(0) if frames else None
    digits = []
    media = CallMedia(port, None, lambda p: None, lambda e: None, dtmf_detector=DtmfDetector(),
                      on_dtmf=digits.append)
    for _ in range(20):
        media.tick()
    assert digits == ["5"]


def test_a_late_tick_is_logged_with_its_lateness_at_most_every_ten_seconds(caplog):
    clock = MediaClock()
    with caplog.at_level(logging.WARNING, logger="appliance.media"):
        clock._count(0.001)  # on time
        clock._count(FRAME_SECONDS + 0.043)
        clock._count(FRAME_SECONDS + 0.1)  # within ten seconds of the last warning: counted, not logged
    assert clock.stats()["late_ticks"] == 2
    assert [record.getMessage() for record in caplog.records] == [
        "media clock: a tick started 63 ms late (1 late of 2 so far)"]
