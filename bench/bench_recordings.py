"""Recording compression: size ratio and encode CPU per minute of audio, for each format.

The audio is speech, not tones: espeak-ng sentences in English and Bulgarian, taking turns
on the two sides of a stereo call (caller left, operator right) with a faint line hiss, so
the figures resemble a real conversation. The CPU is ffmpeg's (this process's children).
"""
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance import recordings  # noqa: E402
from appliance.prompts import speak  # noqa: E402

MINUTES = 5
RATE = 8000
LINES = {
    "en": "Good morning, admissions office, how can I help you? The deadline for the master's"
          " programmes is the fifteenth of August, and the dormitory list comes out a week later.",
    "bg": "Добър ден, искам да попитам за общежитията и за сроковете за кандидатстване"
          " в магистърските програми, и дали документите може да се подадат по пощата.",
}


def speech(tmp):
    """Two speakers' turns as 16-bit sample arrays."""
    turns = {}
    for language, text in LINES.items():
        path = os.path.join(tmp, f"{language}.wav")
        speak(text, language, path)
        with wave.open(path, "rb") as wav:
            turns[language] = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return turns["bg"], turns["en"]


def conversation(caller, operator, seconds, stereo):
    """Alternating turns padded to ``seconds``, with -60 dBFS hiss; one array per channel."""
    left, right = [], []
    while sum(map(len, left)) < seconds * RATE:
        left += [caller, np.zeros(len(operator), "<i2")]
        right += [np.zeros(len(caller), "<i2"), operator]
    noise = np.random.default_rng(1).normal(0, 33, (2, seconds * RATE))
    sides = [np.concatenate(side)[:seconds * RATE] + hiss for side, hiss in zip((left, right), noise)]
    sides = [np.clip(side, -32768, 32767).astype("<i2") for side in sides]
    if not stereo:
        return [np.clip(sides[0].astype(int) + sides[1], -32768, 32767).astype("<i2")]
    return sides


def write_wav(path, channels):
    """Write the channels as an 8 kHz 16-bit WAV."""
    with wave.open(path, "wb") as wav:
        wav.setnchannels(len(channels))
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(np.column_stack(channels).ravel().tobytes())


def children_cpu():
    """CPU seconds used so far by finished child processes (ffmpeg)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(tmp, channels, fmt):
    """Compress a fresh copy; return (size ratio, CPU seconds per audio minute, wall seconds per minute)."""
    source = os.path.join(tmp, f"call-{fmt}.wav")
    write_wav(source, channels)
    wav_size = os.path.getsize(source)
    cpu, wall = children_cpu(), time.perf_counter()
    out = recordings.compress(source, fmt)
    cpu, wall = children_cpu() - cpu, time.perf_counter() - wall
    ratio = wav_size / os.path.getsize(out)
    os.remove(out)
    return ratio, cpu / MINUTES, wall / MINUTES


def main():
    """Print the ratio and encode cost of each format, mono and stereo."""
    tmp = tempfile.mkdtemp(prefix="bench-recordings-")
    try:
        caller, operator = speech(tmp)
        print(f"{MINUTES} min of 8 kHz speech per run; ratio = WAV size / compressed size")
        print(f"{'layout':7} {'format':6} {'ratio':>7} {'CPU s/min':>10} {'wall s/min':>11}")
        for stereo in (False, True):
            channels = conversation(caller, operator, MINUTES * 60, stereo)
            for fmt in ("flac", "ogg", "mp3"):
                ratio, cpu, wall = measure(tmp, channels, fmt)
                layout = "stereo" if stereo else "mono"
                print(f"{layout:7} {fmt:6} {ratio:7.1f} {cpu:10.3f} {wall:11.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (OSError, subprocess.SubprocessError) as err:
        print(f"bench_recordings skipped: {err}")
        sys.exit(1)
