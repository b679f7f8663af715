"""In-band DTMF detector figures against ITU-T Q.24's limits.

Prints the CPU cost per 20 ms frame; the detection rate at each limit and over a random
grid of keys, levels, twists, frequency offsets, durations and alignments inside the
limits (clean and in white noise); the rejection rate beyond each limit; and false digits
on speech spoken by espeak-ng (the test suite's paragraphs in more voices) and on
synthesised music, extrapolated to an hour. Runs in well under a minute.
"""
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance.dtmf import COLUMNS, KEYS, ROWS, DtmfDetector, dtmf_tone  # noqa: E402
from tests.test_dtmf_detector import false_digits, frames, music, speech_corpus  # noqa: E402

RATE = 8000
ALL_KEYS = "".join(KEYS)
TRIALS = 400  # per line of the tables
CPU_FRAMES = 5000
# espeak-ng variants, each at a low and a high pitch and its own speed.
VOICES = [(variant, 130 + 7 * i, pitch) for i, variant in enumerate(
    ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"]) for pitch in (30, 85)]


def detect(pcm):
    """Digits the detector reports for ``pcm`` fed in 20 ms frames."""
    detector = DtmfDetector()
    return [digit for frame in frames(pcm) for digit in detector.feed(frame)]


def trial(rng, key=None, seconds=None, level=None, twist=None, deviation=None, snr=None, pause=None):
    """Digits found in one random key press; unspecified parameters are drawn inside Q.24's limits."""
    key = key or ALL_KEYS[rng.integers(16)]
    seconds = rng.uniform(0.04, 0.1) if seconds is None else seconds
    twist = rng.uniform(-8, 4) if twist is None else twist
    # The louder tone between -26 and -7 dBFS, so the quieter one is never under -34.
    level = rng.uniform(-26, -7) - max(twist, 0) if level is None else level
    deviation = tuple(rng.uniform(-0.015, 0.015, 2)) if deviation is None else deviation

    def tone():
        return dtmf_tone(key, seconds, level, twist_db=twist, deviation=deviation,
                         phases=tuple(rng.uniform(0, 2 * math.pi, 2)))
    pcm = tone() if pause is None else tone() + bytes(2 * int(pause * RATE)) + tone()
    samples = np.concatenate((np.zeros(int(rng.integers(0, 160))), np.frombuffer(pcm, "<i2"), np.zeros(480)))
    if snr is not None:
        power = np.mean(np.frombuffer(pcm, "<i2").astype(float) ** 2)
        samples = samples + rng.normal(0, math.sqrt(power / 10 ** (snr / 10)), len(samples))
    return key, detect(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes())


def rate(rng, expect, **fixed):
    """Share of TRIALS random presses, with ``fixed`` parameters, whose digits are ``expect(key)``."""
    hits = 0
    for _ in range(TRIALS):
        params = {name: value(rng) if callable(value) else value for name, value in fixed.items()}
        key, found = trial(rng, **params)
        hits += found == expect(key)
    return hits / TRIALS


def once(key):
    return [key]


def never(key):
    return []


def signed(rng, low, high):
    """A value of random sign with its size between ``low`` and ``high``."""
    return rng.choice((-1, 1)) * rng.uniform(low, high)


def off_key_deviation(rng, low, high):
    """Row or column (the other on nominal) off by ``low``-``high``, yet more than 3.5 % from every other key."""
    while True:
        offset, which = signed(rng, low, high), rng.integers(2)
        group = (ROWS, COLUMNS)[which]
        if all(abs(f * (1 + offset) / g - 1) > 0.035 for f in group for g in group if g != f):
            return (offset, 0.0) if which == 0 else (0.0, offset)


def limits_table(rng):
    """One line per limit: detection at it, rejection beyond it."""
    lines = [
        ("frequency +-1.5 % on both tones", rate(rng, once, deviation=lambda r: tuple(r.choice((-1, 1), 2) * 0.015))),
        ("frequency +-3.5 % on one tone", rate(rng, never, deviation=lambda r: off_key_deviation(r, 0.035, 0.035))),
        ("frequency 3.5-6 % off, one tone", rate(rng, never, deviation=lambda r: off_key_deviation(r, 0.035, 0.06))),
        ("duration 40 ms", rate(rng, once, seconds=0.04)),
        ("duration 25 ms", rate(rng, never, seconds=0.025)),
        ("duration 23 ms", rate(rng, never, seconds=0.023)),
        ("duration 10-23 ms", rate(rng, never, seconds=lambda r: r.uniform(0.01, 0.023))),
        ("twist +4 dB (reverse)", rate(rng, once, twist=4.0, deviation=(0, 0))),
        ("twist -8 dB (normal)", rate(rng, once, twist=-8.0, deviation=(0, 0))),
        ("twist +6 dB", rate(rng, never, twist=6.0, deviation=(0, 0))),
        ("twist -10 dB", rate(rng, never, twist=-10.0, deviation=(0, 0))),
        ("level -30 dBFS per tone", rate(rng, once, level=-30.0, twist=0.0)),
        ("level -34 dBFS per tone", rate(rng, once, level=-34.0, twist=0.0)),
        ("level -45 dBFS per tone", rate(rng, never, level=-45.0, twist=0.0)),
        ("pause 40 ms between two 40 ms tones", rate(rng, lambda k: [k, k], seconds=0.04, pause=0.04)),
        ("break of 10 ms within a tone", rate(rng, once, seconds=0.05, pause=0.01)),
        ("white noise, SNR 15 dB", rate(rng, once, snr=15.0)),
        ("white noise, SNR 12 dB", rate(rng, once, snr=12.0)),
        ("white noise, SNR 10 dB", rate(rng, once, snr=10.0)),
    ]
    for name, value in lines:
        print(f"  {name:40s} {value * 100:6.1f} % as Q.24 wants")
    # Between accept and reject Q.24 leaves the choice to the receiver: where this one draws the line.
    both_2_percent = lambda r: tuple(r.choice((-1, 1), 2) * 0.02)  # noqa: E731
    between = [("frequency +-2 % on both tones", rate(rng, once, deviation=both_2_percent)),
               ("duration 30 ms", rate(rng, once, seconds=0.03)),
               ("twist +5 dB", rate(rng, once, twist=5.0, deviation=(0, 0))),
               ("twist -9 dB", rate(rng, once, twist=-9.0, deviation=(0, 0)))]
    print("  between accept and reject, where either answer is right:")
    for name, value in between:
        print(f"  {name:40s} {value * 100:6.1f} % detected")


def grid(rng):
    """Detection over random presses inside every limit at once, and rejection outside one of them."""
    inside = rate(rng, once)
    noisy = rate(rng, once, snr=15.0)
    print(f"  inside all limits (40-100 ms, +-1.5 %, twist -8..+4 dB, -34..-7 dBFS): "
          f"{inside * 100:.1f} % detected clean, {noisy * 100:.1f} % in white noise at 15 dB SNR")
    outside = [rate(rng, never, deviation=lambda r: off_key_deviation(r, 0.035, 0.06)),
               rate(rng, never, twist=lambda r: r.choice((r.uniform(6, 12), r.uniform(-16, -10)))),
               rate(rng, never, seconds=lambda r: r.uniform(0.01, 0.023)),
               rate(rng, never, level=lambda r: r.uniform(-60, -45), twist=0.0)]
    print("  one limit broken, the rest random inside: rejected "
          + ", ".join(f"{name} {value * 100:.1f} %" for name, value in
                      zip(("frequency 3.5-6 %", "twist beyond +6/-10 dB", "10-23 ms", "under -45 dBFS"), outside)))


def cpu(corpus):
    """Microseconds of CPU per 20 ms frame on silence, speech and a held key."""
    speech = [frame for _, pcm in corpus[:4] for frame in frames(pcm)][:CPU_FRAMES]
    held = frames(dtmf_tone("5", CPU_FRAMES * 0.02))
    for name, stream in (("silence", [bytes(320)] * CPU_FRAMES), ("speech", speech), ("a held key", held)):
        detector = DtmfDetector()
        started = time.process_time()
        for frame in stream:
            detector.feed(frame)
        per_frame = (time.process_time() - started) / len(stream) * 1e6
        print(f"  {name:12s} {per_frame:6.1f} us per 20 ms frame ({per_frame / 200:.2f} % of real time)")


def talk_off(corpus):
    """False digits on the speech corpus and on music, with the rate per hour they make."""
    music_corpus = [(f"music {seed}", music(120, seed)) for seed in range(10)]
    for name, part in (("speech", corpus), ("music", music_corpus)):
        minutes = sum(len(pcm) for _, pcm in part) / (2 * RATE * 60)
        found = false_digits(part)
        print(f"  {name}: {len(found)} false digits in {minutes:.0f} minutes, "
              f"extrapolated {len(found) / minutes * 60:.1f} per hour (95 % upper bound {poisson_upper(len(found)) / minutes * 60:.1f} per hour)"
              + (f": {found[:5]}" if found else ""))


def poisson_upper(count, confidence=0.95):
    """The mean above which seeing ``count`` or fewer events has under 1 - ``confidence`` chance (3.0 for none)."""
    low, high = 0.0, count + 10 * math.sqrt(count + 1) + 10
    for _ in range(60):
        mean = (low + high) / 2
        at_most = sum(math.exp(-mean) * mean ** k / math.factorial(k) for k in range(count + 1))
        low, high = (mean, high) if at_most > 1 - confidence else (low, mean)
    return high


def main():
    started = time.time()
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as directory:
        corpus = speech_corpus(directory, VOICES)
    print("DTMF detector, CPU:")
    cpu(corpus)
    print(f"DTMF detector at Q.24's limits ({TRIALS} random presses a line: key, phase, start in the frame; "
          "level, twist and offsets random inside the limits unless fixed):")
    limits_table(rng)
    print(f"DTMF detector over random grids ({TRIALS} presses each):")
    grid(rng)
    print("DTMF talk-off (espeak-ng in en, bg, ru, uk, 12 voice variants at two pitches; synthesised music):")
    talk_off(corpus)
    print(f"  ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
