"""Media: frames, mixing, players, recorders and an audio port that never blocks."""
import os
import wave

import numpy as np
import pytest

from appliance.media import FRAME_BYTES, Player, Recorder, mix
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
