"""In-band DTMF detection for modems that cannot report keys (most Huawei dongles).

The receiver is held to ITU-T Q.24 with the limits most administrations give there (and
Bellcore's): each tone within ±1.5 % of nominal is accepted and one ±3.5 % off rejected;
the column tone may be up to 4 dB above the row tone (reverse twist) or 8 dB below it
(normal twist); a tone of 40 ms is accepted and one of 23 ms or less rejected; a pause
of 40 ms separates two presses, while a break of 10 ms or less within a tone does not.

It works in two stages, so that the cheap one runs on every frame and the careful one only
when something already looks like a key:

- Every 16 samples (2 ms) a 106-sample window (13 ms) is measured with a DFT at the eight
  frequencies (what a bank of Goertzel filters computes), all windows of a frame in one
  numpy product. 106 samples put the neighbouring frequencies of a group in the nulls of
  each other's filter. A window holds a key when the strongest tone of each group is over
  the level floor, 8 dB over the other tones of its group (once what the two tones leak
  into those bins is taken out), within a loose twist range, and the two carry at least
  60 % of the window's energy.
- A key is pressed when 13 windows in a row hold it: a 40 ms tone always gives that, a
  25 ms one never can (a window must be more than 60 % inside the tone to hold it). Then
  the run is checked as a whole: each tone's frequency, from how its phase turns over the
  run, within ±2 % (a 13 ms window alone cannot tell 1.5 % from 3.5 %: a tone 3.5 % off
  loses only 1.5 dB in it); the twist, corrected for the filters' loss off-frequency,
  within +5 / -9 dB (halfway to Q.24's reject limits); the two tones at least 80 % of the
  energy; and no other line in 300-3400 Hz within 18 dB of them, which is what stops a
  vowel whose two harmonics happen to sit on a key's frequencies.
- The key is reported once, however long it is held, and again only after 16 windows
  (32 ms) without it.

Measured (bench/bench_dtmf.py on the development machine; tests/test_dtmf_detector.py
proves each limit): about 30 µs of CPU per 20 ms frame of silence or speech (0.15 % of
real time), about 50 µs while a key is held. Of 400 random presses at each limit (random key,
phase and start within the frame), 100 % are detected at ±1.5 % on both tones, 40 ms,
twist +4 and -8 dB, -34 dBFS per tone, in white noise at 10-15 dB SNR, and twice across
a 40 ms pause; 100 % are rejected at 3.5-6 % off, 23 and 25 ms, twist +6 and -10 dB,
-45 dBFS. Between the limits it accepts 96 % at ±2 % and 40 % of 30 ms tones. Talk-off:
no false digit in 93 minutes of espeak-ng speech (en, bg, ru, uk; 24 voices) nor in 20
minutes of synthesised chords, melodies and sweeps, so under 1.9 per hour of such speech
at 95 % confidence. The detector this one replaced made 39 false digits in the test
suite's 17 minutes of speech and music, accepted a row tone 3.5 % off, and a third to
two thirds of 20-25 ms bursts.
"""
import math

import numpy as np

from firmware.frames import SAMPLE_RATE
WINDOW = 106
HOP = 16
ROWS = (697, 770, 852, 941)
COLUMNS = (1209, 1336, 1477, 1633)
FREQUENCIES = np.array(ROWS + COLUMNS, dtype=float)
KEYS = ("123A", "456B", "789C", "*0#D")

MIN_LEVEL_DBFS = -38.0  # per tone; -34 dBFS is detected even 1.5 % off, where the filter loses 1.5 dB
RELATIVE_PEAK = 10 ** (8 / 10)  # over the other tones of the same group
MIN_TONE_SHARE = 0.6  # of a window's energy in the two tones, as the filters see them
WINDOW_TWIST_DB = (-12.0, 7.0)  # loose, per window: the exact check comes with the press
WINDOWS_TO_PRESS = 13  # 24 ms of window starts: a 40 ms tone holds at least 13 whole windows
WINDOWS_TO_RELEASE = 16  # a 10 ms break spoils at most 12 windows, a 40 ms pause at least 20
PHASE_LAG = 3  # windows (48 samples) between the phases compared: unambiguous up to ±83 Hz off
FREQUENCY_TOLERANCE = 0.02  # 1.5 % plus the estimate's error (under 0.2 %), well short of 3.5 %
TWIST_DB = (-9.0, 5.0)  # column over row; Q.24: accept -8..+4, reject beyond -10 / +6
RUN_TONE_SHARE = 0.8  # of the energy in the two tones, at their full power, over the run
GUARD_SPAN = 256  # samples before the press, all inside the tone when the run is complete
GUARD_CLEARANCE_HZ = 80  # around each tone: the tapered tone's main lobe, 62.5 Hz, and some
MAX_OTHER_PEAK_DB = -18.0  # any other line in 300-3400 Hz, under the two tones together

_n = np.arange(WINDOW)
_omega = 2 * math.pi * FREQUENCIES / SAMPLE_RATE
# Real and imaginary parts of the DFT at the eight frequencies as one real matrix.
_BASIS = np.hstack((np.cos(np.outer(_n, _omega)), -np.sin(np.outer(_n, _omega))))
# What each bin picks up of a tone at another bin's frequency, relative to that bin's own
# response (a row tone leaks about -21 dB into the nearest column bin, a column tone -16 dB
# into its neighbour): taken out before the other tones of a group are compared.
_LEAK = np.exp(1j * np.subtract.outer(_omega, _omega)[:, :, None] * _n).sum(axis=2) / WINDOW
# DFT power of a full-window tone at the floor: |A N / 2|^2.
MIN_POWER = (32767 * 10 ** (MIN_LEVEL_DBFS / 20) * WINDOW / 2) ** 2
_WINDOW_TWIST = [10 ** (limit / 10) for limit in WINDOW_TWIST_DB]
_GUARD_TAPER = np.hanning(GUARD_SPAN)
_GUARD_HZ = np.fft.rfftfreq(GUARD_SPAN, 1 / SAMPLE_RATE)
_GUARD_BAND = (_GUARD_HZ >= 300) & (_GUARD_HZ <= 3400)
_KEY_OF = [KEYS[row][column] for row in range(4) for column in range(4)]


def window_spectra(samples):
    """The DFT at the eight DTMF frequencies of each window of ``samples``, and each window's energy."""
    windows = np.lib.stride_tricks.sliding_window_view(samples, WINDOW)[::HOP]
    product = windows @ _BASIS
    spectra = product[:, :8] + 1j * product[:, 8:]
    return spectra, np.einsum("ij,ij->i", windows, windows)


def window_keys(spectra, energy):
    """For each window, the index (row * 4 + column) of the key it holds, or -1."""
    power = spectra.real ** 2 + spectra.imag ** 2
    row, column = power[:, :4].argmax(axis=1), power[:, 4:].argmax(axis=1) + 4
    windows = np.arange(len(spectra))
    row_power, column_power = power[windows, row], power[windows, column]
    holds = ((row_power >= MIN_POWER) & (column_power >= MIN_POWER)
             & (column_power >= _WINDOW_TWIST[0] * row_power) & (column_power <= _WINDOW_TWIST[1] * row_power)
             # A full-window tone's DFT power is its energy times WINDOW / 2.
             & (row_power + column_power >= MIN_TONE_SHARE * energy * (WINDOW / 2)))
    if holds.any():  # the costlier check only where the cheap ones passed
        candidates = windows[holds]
        others = residual_power(spectra[candidates], row[candidates], column[candidates])
        holds[candidates] = ((row_power[candidates] >= RELATIVE_PEAK * others[:, :4].max(axis=1))
                             & (column_power[candidates] >= RELATIVE_PEAK * others[:, 4:].max(axis=1)))
    return np.where(holds, row * 4 + column - 4, -1)


def residual_power(spectra, row, column):
    """Power at each bin once the leakage of the row and column tones is taken out (0 at those two)."""
    windows = np.arange(len(spectra))
    residual = (spectra - spectra[windows, row, None] * _LEAK[row]
                - spectra[windows, column, None] * _LEAK[column])
    residual[windows, row] = residual[windows, column] = 0
    return residual.real ** 2 + residual.imag ** 2


def tone_spectra(spectra, bins):
    """The two tones' DFT values per window, each freed of what the other leaks into its bin."""
    row, column = bins
    mixing = np.array([[1, _LEAK[column, row]], [_LEAK[row, column], 1]])
    return spectra[:, bins] @ np.linalg.inv(mixing).T


def frequency_offsets(tones, nominal):
    """Estimated offset in Hz from ``nominal`` of steady tones, from their phase turn over a run of windows."""
    turns = (tones[PHASE_LAG:] * tones[:-PHASE_LAG].conj()).sum(axis=0)
    nominal_turn = np.exp(-2j * math.pi * nominal * HOP * PHASE_LAG / SAMPLE_RATE)
    return np.angle(turns * nominal_turn) * SAMPLE_RATE / (2 * math.pi * HOP * PHASE_LAG)


def filter_loss(offset_hz):
    """Power a window's DFT keeps of a tone ``offset_hz`` off its frequency (1 on it)."""
    return np.sinc(offset_hz * WINDOW / SAMPLE_RATE) ** 2


def other_peak_db(samples, tones_hz):
    """The strongest spectral line of ``samples`` in 300-3400 Hz away from ``tones_hz``, over the tones, in dB."""
    power = np.abs(np.fft.rfft(samples * _GUARD_TAPER)) ** 2
    near = np.abs(_GUARD_HZ[:, None] - tones_hz).argmin(axis=0)
    tone_power = power[np.clip(near[:, None] + [-1, 0, 1], 0, len(power) - 1)].max(axis=1)
    away = (np.abs(_GUARD_HZ[:, None] - tones_hz).min(axis=1) > GUARD_CLEARANCE_HZ) & _GUARD_BAND
    return 10 * math.log10(max(power[away].max(), 1e-30) / max(tone_power.sum(), 1e-30))


def run_accepted(spectra, energy, samples, key):
    """Whether a run of windows that hold ``key`` has its tones on frequency, within the twist, and alone."""
    bins = [key // 4, 4 + key % 4]
    tones = tone_spectra(spectra, bins)
    offsets = frequency_offsets(tones, FREQUENCIES[bins])
    if np.any(np.abs(offsets) > FREQUENCY_TOLERANCE * FREQUENCIES[bins]):
        return False
    # Each tone's full power, its loss in the filter off-frequency made good.
    power = (tones.real ** 2 + tones.imag ** 2) / filter_loss(offsets)
    twist_db = 10 * math.log10(power[:, 1].mean() / power[:, 0].mean())
    # The median window is a whole one even when the run's first windows were only partly in the tone.
    share = np.median(power.sum(axis=1) / (energy * (WINDOW / 2)))
    if not (TWIST_DB[0] <= twist_db <= TWIST_DB[1] and share >= RUN_TONE_SHARE):
        return False
    return other_peak_db(samples, FREQUENCIES[bins] + offsets) <= MAX_OTHER_PEAK_DB


class DtmfDetector:
    """Feeds on 20 ms frames and reports each key press once."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Forget everything heard so far."""
        # Samples from GUARD_SPAN before the next window on, for the purity check of a press.
        self._samples, self._next = np.zeros(GUARD_SPAN - WINDOW, dtype=np.float64), GUARD_SPAN - WINDOW
        # Spectra and energies of the last windows, for a press to look back over its run.
        self._recent, self._recent_energy = np.zeros((0, 8), dtype=complex), np.zeros(0)
        self._candidate, self._run = -1, 0
        self._held, self._quiet = -1, WINDOWS_TO_RELEASE

    def feed(self, frame):
        """Digits whose press completed in ``frame`` (16-bit little-endian PCM)."""
        samples = np.frombuffer(frame[:len(frame) - len(frame) % 2], dtype="<i2")
        self._samples = np.concatenate((self._samples, samples))
        if len(self._samples) < self._next + WINDOW:
            return []
        spectra, energy = window_spectra(self._samples[self._next:])
        keys = window_keys(spectra, energy)
        history = np.concatenate((self._recent, spectra))
        history_energy = np.concatenate((self._recent_energy, energy))
        digits = []
        for window, key in enumerate(keys.tolist()):
            if not self._step(key):
                continue
            index, end = len(self._recent) + window, self._next + window * HOP + WINDOW
            run = slice(index + 1 - WINDOWS_TO_PRESS, index + 1)
            if run_accepted(history[run], history_energy[run], self._samples[end - GUARD_SPAN:end], key):
                self._held = key
                digits.append(_KEY_OF[key])
        self._recent = history[1 - WINDOWS_TO_PRESS:]
        self._recent_energy = history_energy[1 - WINDOWS_TO_PRESS:]
        consumed = self._next + len(spectra) * HOP
        self._samples = self._samples[consumed - (GUARD_SPAN - WINDOW):]
        self._next = GUARD_SPAN - WINDOW
        return digits

    def _step(self, key):
        """Advance the run by one window; True when it is long enough to be checked as a new press."""
        if key == self._held:
            self._quiet = 0
        else:
            self._quiet += 1
            if self._quiet >= WINDOWS_TO_RELEASE:
                self._held = -1
        if key < 0:
            self._candidate, self._run = -1, 0
            return False
        self._run = self._run + 1 if key == self._candidate else 1
        self._candidate = key
        return self._run >= WINDOWS_TO_PRESS and key != self._held


def dtmf_tone(digit, seconds=0.1, level_dbfs=-10.0, *, twist_db=0.0, deviation=(0.0, 0.0), phases=(0.0, 0.0)):
    """A key's two tones as 16-bit little-endian PCM.

    The row tone is at ``level_dbfs``, the column tone ``twist_db`` above it; each tone is
    off nominal by its fraction in ``deviation`` (row, column) and starts at its phase.
    """
    row = next(i for i, keys in enumerate(KEYS) if digit in keys)
    column = KEYS[row].index(digit)
    t = np.arange(int(round(SAMPLE_RATE * seconds))) / SAMPLE_RATE
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    wave = amplitude * (np.sin(2 * math.pi * ROWS[row] * (1 + deviation[0]) * t + phases[0])
                        + 10 ** (twist_db / 20) * np.sin(2 * math.pi * COLUMNS[column] * (1 + deviation[1]) * t
                                                         + phases[1]))
    return np.clip(np.round(wave), -32768, 32767).astype("<i2").tobytes()
