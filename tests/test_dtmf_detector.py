"""In-band DTMF detection on 20 ms frames."""
import subprocess
import shutil
import wave

import numpy as np
import pytest

from appliance.dtmf import DtmfDetector, dtmf_tone

KEYS = "0123456789*#ABCD"


def frames(pcm, size=320):
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def detect(pcm, size=320):
    detector = DtmfDetector()
    return [digit for frame in frames(pcm, size) for digit in detector.feed(frame)]


def silence(seconds):
    return bytes(int(8000 * seconds) * 2)


@pytest.mark.parametrize("key", KEYS)
def test_every_key_once(key):
    assert detect(silence(0.05) + dtmf_tone(key, 0.08) + silence(0.1)) == [key]


def test_a_key_held_one_second_is_one_press():
    assert detect(dtmf_tone("5", 1.0)) == ["5"]


def test_the_same_key_twice_with_a_short_pause():
    assert detect(dtmf_tone("7", 0.06) + silence(0.05) + dtmf_tone("7", 0.06)) == ["7", "7"]


@pytest.mark.parametrize("size", [2, 158, 322, 1000])
def test_frames_of_any_size(size):
    pcm = silence(0.013) + dtmf_tone("1", 0.06) + silence(0.06) + dtmf_tone("9", 0.06) + silence(0.05)
    assert detect(pcm, size) == ["1", "9"]


def test_too_short_a_tone_is_not_a_press():
    assert detect(silence(0.05) + dtmf_tone("3", 0.02) + silence(0.05)) == []


@pytest.mark.parametrize("level", [-30, -20, -10, -4])
def test_levels(level):
    assert detect(dtmf_tone("8", 0.08, level_dbfs=level) + silence(0.05)) == ["8"]


def test_noise_at_20_db_snr():
    tone = np.frombuffer(dtmf_tone("4", 0.1, level_dbfs=-16), dtype="<i2").astype(float)
    noise = np.random.default_rng(1).normal(0, np.sqrt(np.mean(tone ** 2)) / 10, len(tone))
    assert detect((tone + noise).astype("<i2").tobytes() + silence(0.05)) == ["4"]


def test_no_digits_from_silence_a_single_tone_or_a_chord():
    t = np.arange(8000) / 8000
    single = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    chord = sum(3000 * np.sin(2 * np.pi * f * t) for f in (440, 554, 659, 880)).astype("<i2").tobytes()
    assert detect(silence(1)) == [] and detect(single) == [] and detect(chord) == []


def test_twist_beyond_the_limit_is_rejected():
    t = np.arange(800) / 8000
    weak_column = 10000 * np.sin(2 * np.pi * 697 * t) + 10000 * 10 ** (-12 / 20) * np.sin(2 * np.pi * 1209 * t)
    assert detect(weak_column.astype("<i2").tobytes()) == []


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_no_digits_from_speech(tmp_path):
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav),
                    "one two three, this is a test of talk-off, nine eight seven, hello operator"], check=True)
    with wave.open(str(wav)) as source:
        samples = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        rate = source.getframerate()
    resampled = np.interp(np.arange(0, len(samples), rate / 8000), np.arange(len(samples)), samples)
    assert detect(resampled.astype("<i2").tobytes()) == []
