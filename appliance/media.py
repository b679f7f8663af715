"""Media: 20 ms frames of 8 kHz 16-bit mono, players, recorders and the media clock.

One clock thread moves a frame each way for every call every 20 ms. The work per frame
is a dict lookup, two port operations and a numpy mix; the clock counts ticks that
start later than a frame period so the box can say honestly whether it keeps up.

The engine changes what the clock iterates (its legs, a leg's taps) by publishing a new
tuple, never by changing one the clock holds; ``MediaClock.detach`` and ``Taps.remove``
then wait for a tick in flight, so what they return may be closed at once (a recorder
finished while the clock still wrote to it used to fail the leg: the caller heard silence).
"""
import logging
import os
import struct
import threading
import time
import wave

import numpy as np

from firmware.errors import FirmwareError
from firmware.frames import FRAME_BYTES, FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE, SILENCE, frame_deadlines

from .priority import claim_real_time

log = logging.getLogger(__name__)

LATE_LOG_SECONDS = 10.0  # at most one "tick late" warning this often
STUCK_TICK_SECONDS = 2.0  # a tick this long is a bug elsewhere: the engine stops waiting for it


def wait_for_tick(ticking, what):
    """Wait until no tick holds ``ticking`` (an RLock, so the ticking thread passes at once)."""
    if ticking.acquire(timeout=STUCK_TICK_SECONDS):
        ticking.release()
    else:
        log.warning("media: a tick did not end in %g s; %s without waiting for it", STUCK_TICK_SECONDS, what)


def mix(a, b):
    """Sum two frames with saturation (what a conference bridge does)."""
    total = np.frombuffer(a, dtype="<i2").astype(np.int32) + np.frombuffer(b, dtype="<i2")
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


class Player:
    """Plays a WAV prompt frame by frame; ``read()`` returns None when it is over."""

    def __init__(self, path):
        self.path = path
        with wave.open(path, "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                raise ValueError(f"{path} is not 8 kHz mono 16-bit")
            self._pcm = wav.readframes(wav.getnframes())
        self._offset = 0

    @property
    def seconds(self):
        """Length of the prompt."""
        return len(self._pcm) / 2 / SAMPLE_RATE

    def read(self):
        """The next frame (the last one padded with silence), or None at the end."""
        if self._offset >= len(self._pcm):
            return None
        frame = self._pcm[self._offset:self._offset + FRAME_BYTES]
        self._offset += FRAME_BYTES
        return frame.ljust(FRAME_BYTES, b"\0")


class LoopPlayer(Player):
    """Plays a WAV over and over (music on hold) until replaced."""

    def read(self):
        """The next frame, starting again at the end."""
        if self._offset >= len(self._pcm):
            self._offset = 0
        return super().read() or SILENCE


class Tone:
    """A tone made on the fly, as a hold source: ``frequencies`` summed, ``cadence`` (on, off) ms.

    Ringback in most of Europe is 425 Hz, 1 s on and 4 s off (ITU-T E.180); a beep is one
    burst with no repeat.
    """

    def __init__(self, frequencies=(425,), cadence=(1000, 4000), level=6000, repeat=True):
        self._frequencies = frequencies
        self._on = int(cadence[0] / 1000 * SAMPLE_RATE)
        self._period = self._on + int(cadence[1] / 1000 * SAMPLE_RATE)
        self._level = level / len(frequencies)
        self._repeat = repeat
        self._n = 0

    def read(self):
        """The next 20 ms of the tone (silence in its pauses)."""
        if not self._repeat and self._n >= self._period:
            return SILENCE
        n = self._n + np.arange(FRAME_SAMPLES)
        self._n += FRAME_SAMPLES
        t = n / SAMPLE_RATE
        wave_ = sum(np.sin(2 * np.pi * f * t) for f in self._frequencies) * self._level
        wave_[(n % self._period) >= self._on] = 0
        return wave_.astype("<i2").tobytes()


RINGBACK = {"frequencies": (425,), "cadence": (1000, 4000)}


WAV_HEADER_BYTES = 44


def wav_header(channels, data_bytes):
    """The WAV_HEADER_BYTES header of a 16-bit PCM WAV at SAMPLE_RATE holding ``data_bytes`` of audio."""
    block = 2 * channels
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels,
                       SAMPLE_RATE, SAMPLE_RATE * block, block, 16, b"data", data_bytes)


class Recorder:
    """Writes what a caller says (left) and hears (right) to ``path.part``; renamed when finished.

    ``stereo`` keeps the two sides apart (caller left, box or operator right), which is
    what a supervisor needs to judge a conversation; mono mixes them into one channel.
    Frames are kept in memory and written BATCH_FRAMES at a time, interleaved or mixed by
    one numpy operation: per frame a tick only appends two references (the per-frame
    numpy work was most of a recorded call's media cost). The file is unbuffered, so a
    killed engine loses at most the batch in memory; salvage repairs the rest.
    """

    BATCH_FRAMES = 25  # half a second: what a killed engine may lose of a recording

    def __init__(self, path, stereo=False):
        self.path = path
        self.stereo = stereo
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._channels = 2 if stereo else 1
        self._file = open(path + ".part", "wb", buffering=0)
        self._file.write(wav_header(self._channels, 0))  # sizes 0 until finished (salvage reads the length)
        self._heard = []
        self._said = []
        self.frames = 0

    def write(self, heard, said=SILENCE):
        """Append one frame: ``heard`` from the caller, ``said`` to the caller."""
        self._heard.append(heard)
        self._said.append(said)
        self.frames += 1
        if len(self._heard) >= self.BATCH_FRAMES:
            self.flush()

    def flush(self):
        """Hand the frames held in memory to the operating system (a batch is full, or finishing)."""
        if not self._heard:
            return
        heard = b"".join(self._heard)
        if self.stereo:
            both = np.empty(len(heard), dtype="<i2")  # two channels of 2-byte samples
            both[0::2] = np.frombuffer(heard, dtype="<i2")
            both[1::2] = np.frombuffer(b"".join(self._said), dtype="<i2")
            heard = both.tobytes()
        else:
            heard = mix(heard, b"".join(self._said))  # silence said adds nothing
        self._heard, self._said = [], []
        self._file.write(heard)

    @property
    def seconds(self):
        """Length recorded so far."""
        return self.frames * FRAME_SECONDS

    def finish(self):
        """Close the file, make it durable and give it its final name; return the path."""
        if self._file is None:
            return self.path
        self.flush()
        data_bytes = self._file.tell() - WAV_HEADER_BYTES  # what was written, not what was meant to be
        self._file.seek(0)
        self._file.write(wav_header(self._channels, data_bytes))
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self.path + ".part", self.path)
        return self.path


def gain_factor(percent):
    """A level setting of 0-100 % as a linear factor: 50 % is unchanged, the ends are ±12 dB."""
    return 10 ** ((percent - 50) / 50 * 12 / 20)


def apply_gain(frame, factor):
    """Scale a frame by ``factor`` with saturation."""
    scaled = np.frombuffer(frame, dtype="<i2").astype(np.float32) * factor
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


class Taps:
    """The recorders tapping one leg (a voicemail message): the engine changes them, the clock writes.

    The clock iterates an immutable tuple; ``append`` and ``remove`` publish a new one, and
    ``remove`` returns only once no tick of the leg is in flight, so the recorder may be
    finished at once: the clock never writes to it again.
    """

    def __init__(self, ticking):
        self.current = ()  # what the clock writes to: replaced, never changed in place
        self._ticking = ticking  # the leg's tick lock
        self._changing = threading.Lock()  # two changes at once must not lose one

    def __iter__(self):
        return iter(self.current)

    def __len__(self):
        return len(self.current)

    def __contains__(self, recorder):
        return recorder in self.current

    def append(self, recorder):
        """Write what the far end says to ``recorder`` from the next tick on."""
        with self._changing:
            self.current += (recorder,)

    def remove(self, recorder):
        """Stop writing to ``recorder``; when this returns no tick writes to it (ValueError if absent)."""
        with self._changing:
            if recorder not in self.current:
                raise ValueError(f"{recorder!r} is not a tap of this leg")
            self.current = tuple(item for item in self.current if item is not recorder)
        wait_for_tick(self._ticking, "a tap removed")


class CallMedia:
    """The media of one call leg: line audio in and out, a prompt player, a recorder.

    A leg plays its ``player`` (a prompt), else what its ``peer`` leg heard in the last
    tick (the two are bridged), else its ``hold`` player (music on hold), else silence.
    For a modem that cannot report DTMF or set its own levels, ``dtmf_detector`` listens
    to the caller and ``gains`` (incoming, outgoing factors) are applied here.
    """

    def __init__(self, port, recorder, on_prompt_done, on_failed, *, dtmf_detector=None, on_dtmf=None,
                 gains=(1.0, 1.0)):
        self.port = port
        self.recorder = recorder
        self.player = None
        self.hold = None
        self.peer = None
        # Held by the thread ticking the leg for the whole tick (re-entrant: a tick's own
        # callbacks may change the taps), so that a change can wait for a tick in flight.
        self._ticking = threading.RLock()
        self.taps = Taps(self._ticking)  # recorders of what the far end says alone (a voicemail message)
        self.last_in = SILENCE
        self._on_prompt_done = on_prompt_done
        self._on_failed = on_failed
        self._detector = dtmf_detector
        self._on_dtmf = on_dtmf
        self._gain_in, self._gain_out = gains
        self._conditioned = self._gain_in != 1.0 or dtmf_detector is not None
        self.failed = False

    def play(self, player):
        """Start playing ``player`` to the caller, replacing any prompt playing now."""
        self.player = player

    def stop_prompt(self):
        """Stop the prompt playing now without reporting it finished (the caller barged in)."""
        self.player = None

    def tick(self):
        """Move one frame each way; called by the media clock every 20 ms."""
        # The clock's hottest path (every leg, every 20 ms): attributes read once, and a
        # bridged leg's outgoing frame taken straight from its peer.
        with self._ticking:
            if self.failed:
                return
            port = self.port
            frame = port.read_frame()
            incoming = self._condition(frame) if self._conditioned else frame or SILENCE
            self.last_in = incoming
            peer = self.peer
            outgoing = peer.last_in if peer is not None and self.player is None else self._next_outgoing()
            if self._gain_out != 1.0 and outgoing is not SILENCE:
                outgoing = apply_gain(outgoing, self._gain_out)
            try:
                port.write_frame(outgoing)
            except FirmwareError as err:
                self.failed = True
                self._on_failed(str(err))
            recorder = self.recorder
            if recorder is not None:
                recorder.write(incoming, outgoing)
            for tap in self.taps.current:  # one read of an immutable tuple (see Taps)
                tap.write(incoming)

    def _condition(self, frame):
        """The incoming frame with the software gain applied and fed to the DTMF detector."""
        incoming = frame or SILENCE
        if self._gain_in != 1.0:
            incoming = apply_gain(incoming, self._gain_in)
        # A frame that has not arrived yet is not silence: fed to the detector, it would cut a
        # held key in two when the port runs late (a busy box), and one press would count twice.
        if self._detector is not None and frame is not None:
            for digit in self._detector.feed(incoming):
                self._on_dtmf(digit)
        return incoming

    def _next_outgoing(self):
        player = self.player
        if player is not None:
            frame = player.read()
            if frame is not None:
                return frame
            self.player = None
            self._on_prompt_done(player)
        if self.peer is not None:
            return self.peer.last_in
        if self.hold is not None:
            return self.hold.read()
        return SILENCE


def bridge(a, b):
    """Join two legs: each hears what the other said (one frame later at most)."""
    a.peer, b.peer = b, a
    a.hold = b.hold = None


def unbridge(leg):
    """Part a leg from its peer (the peer hears silence from then on)."""
    if leg.peer is not None:
        leg.peer.peer = None
        leg.peer = None


class MediaClock:
    """Ticks every attached leg once per 20 ms on one thread."""

    def __init__(self):
        self._legs = ()
        self._lock = threading.Lock()  # serialises changes to _legs
        # Held for each whole tick; re-entrant so a leg that fails mid-tick can be detached
        # by the clock thread itself without waiting for its own tick.
        self._ticking = threading.RLock()
        self._stop = threading.Event()
        self.ticks = 0
        self.late_ticks = 0
        self.max_late_ms = 0.0
        self.busy_seconds = 0.0
        self.scheduling = "not started"
        self._late_logged = float("-inf")
        self._thread = threading.Thread(target=self._run, name="media-clock", daemon=True)

    def start(self):
        """Start ticking."""
        self._thread.start()

    def attach(self, leg):
        """Tick ``leg`` from the next frame on."""
        with self._lock:
            self._legs = self._legs + (leg,)

    def detach(self, leg):
        """Stop ticking ``leg``; when this returns no tick of it is in flight, nor will be."""
        with self._lock:
            self._legs = tuple(item for item in self._legs if item is not leg)
        wait_for_tick(self._ticking, "a leg detached")  # a tick in flight may hold the old tuple

    def tick(self):
        """Tick every attached leg once: the clock thread's work per frame (tests call it directly)."""
        with self._ticking:
            for leg in self._legs:
                try:
                    leg.tick()
                except Exception:  # one broken leg must not silence the others
                    log.exception("media leg failed")
                    self.detach(leg)

    def stats(self):
        """Counts a reader can check: ticks, late ticks, worst lateness, work per tick."""
        return {
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "max_late_ms": round(self.max_late_ms, 2),
            "legs": len(self._legs),
            "mean_tick_us": round(1e6 * self.busy_seconds / self.ticks, 1) if self.ticks else 0.0,
            "scheduling": self.scheduling,
        }

    def stop(self):
        """Stop the thread and wait for it; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self):
        self.scheduling = claim_real_time()
        for deadline in frame_deadlines(self._stop):
            started = time.monotonic()
            self._count(started - deadline)
            self.tick()
            self.busy_seconds += time.monotonic() - started

    def _count(self, lateness):
        self.ticks += 1
        if lateness > FRAME_SECONDS:
            self.late_ticks += 1
            self._say_late(lateness)
        self.max_late_ms = max(self.max_late_ms, lateness * 1000)

    def _say_late(self, lateness):
        # Logged, at most once every LATE_LOG_SECONDS, so that a late tick can be matched
        # with what the box was doing then (the journal, a backup, a compression).
        now = time.monotonic()
        if now - self._late_logged >= LATE_LOG_SECONDS:
            self._late_logged = now
            log.warning("media clock: a tick started %.0f ms late (%d late of %d so far)",
                        lateness * 1000, self.late_ticks, self.ticks)
