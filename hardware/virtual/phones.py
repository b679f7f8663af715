"""Virtual people on the network: a caller who rings the box, an operator's phone."""
import array
import collections
import math
import threading
import wave

from firmware.frames import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, SILENCE

from .network import NetworkError, Party


def tone_frames(frequency, amplitude=8000):
    """An endless generator of 20 ms frames of a sine tone (a phone's test signal)."""
    step = 2 * math.pi * frequency / SAMPLE_RATE
    n = 0
    while True:
        samples = array.array("h", (int(amplitude * math.sin(step * (n + i))) for i in range(FRAME_SAMPLES)))
        n += FRAME_SAMPLES
        yield samples.tobytes()


DTMF_FREQUENCIES = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


def dtmf_frames(digit, tone_frames=5, pause_frames=5, amplitude=6000):
    """A key press as it sounds on a phone line (ITU-T Q.23): 100 ms of two tones, then a pause."""
    low, high = DTMF_FREQUENCIES[digit]
    frames = []
    for n in range(tone_frames):
        start = n * FRAME_SAMPLES
        samples = array.array("h", (int(amplitude * (math.sin(2 * math.pi * low * (start + i) / SAMPLE_RATE)
                                                    + math.sin(2 * math.pi * high * (start + i) / SAMPLE_RATE)))
                                    for i in range(FRAME_SAMPLES)))
        frames.append(samples.tobytes())
    return frames + [SILENCE] * pause_frames


def frame_level(frame):
    """Peak absolute sample of a 16-bit little-endian frame."""
    samples = array.array("h", frame)
    return max(map(abs, samples), default=0)


def wav_frames(path):
    """A WAV file as 20 ms telephony frames (8 kHz mono 16-bit), converted with pydub if needed."""
    try:
        with wave.open(path, "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2):
                pcm = wav.readframes(wav.getnframes())
            else:
                pcm = None
    except (wave.Error, EOFError):
        pcm = None  # not a plain PCM WAV (float, a-law, extensible): ffmpeg reads it
    if pcm is None:
        pcm = _converted_pcm(path)
    pcm += bytes(-len(pcm) % FRAME_BYTES)  # the last frame padded with silence
    return [pcm[i:i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def _converted_pcm(path):
    from pydub import AudioSegment  # imported late: only unusual files need ffmpeg

    sound = AudioSegment.from_file(path).set_frame_rate(SAMPLE_RATE).set_channels(1).set_sample_width(2)
    return sound.raw_data


class Listener(Party):
    """A party that records what it hears and sends silence or a tone."""

    def __init__(self, send_tone=None):
        self.heard = []
        self.answered = threading.Event()
        self.ended = threading.Event()
        self.ended_by = None
        self.dtmf_heard = []
        self._source = tone_frames(send_tone) if send_tone else None
        self._lock = threading.Lock()

    def on_answered(self, call):
        self.answered.set()

    def on_ended(self, call, by):
        self.ended_by = by
        self.ended.set()

    def on_dtmf(self, call, digit):
        self.dtmf_heard.append(digit)

    def next_frame(self):
        return next(self._source) if self._source else SILENCE

    def hear(self, frame):
        with self._lock:
            self.heard.append(frame)

    def heard_audio(self):
        """All audio heard so far, as bytes."""
        with self._lock:
            return b"".join(self.heard)

    def heard_seconds(self, threshold=300):
        """Seconds of heard audio louder than ``threshold`` (so: not silence)."""
        with self._lock:
            return sum(1 for frame in self.heard if frame_level(frame) > threshold) * FRAME_SAMPLES / SAMPLE_RATE


class VirtualCaller(Listener):
    """Someone who dials a number, waits, speaks, presses digits, listens and hangs up.

    What the caller says is queued frames (a WAV file, key tones); once the queue is empty
    the caller sends its tone, or silence. Keys pressed in-band go before any speech, as
    a phone's keypad takes over its microphone while a key is held.
    """

    def __init__(self, network, number, send_tone=None):
        super().__init__(send_tone)
        self.network = network
        self.number = number
        self.call = None
        self._speech = collections.deque()
        self._keys = collections.deque()

    def dial(self, callee):
        """Ring ``callee``; raise NetworkError if it does not exist or is busy."""
        self.call = self.network.dial(self.number, callee, self)
        return self.call

    def say(self, frames):
        """Queue ``frames`` of audio to send once the call carries audio."""
        with self._lock:
            self._speech.extend(frames)

    def press(self, digits, gap=0.3, inband=False):
        """Press DTMF keys with ``gap`` seconds between them: signalled, or as tones in the audio."""
        for digit in digits:
            if inband:
                with self._lock:
                    self._keys.extend(dtmf_frames(digit))
            else:
                self.call.dtmf("a", digit)
            if self.ended.wait(gap):
                return

    def next_frame(self):
        """Key tones first, then what the caller says, then its tone or silence."""
        with self._lock:
            if self._keys:
                return self._keys.popleft()
            if self._speech:
                return self._speech.popleft()
        return super().next_frame()

    def hang_up(self):
        """Put the phone down."""
        if self.call is not None:
            self.call.hangup("a")


class VirtualPhone:
    """An operator's mobile at a number: how it treats a call is its ``behaviour``.

    "answer": picks up after ``answer_after`` s, presses ``accept_key`` ``accept_after`` s
    later (the box asks "press 1 to accept"), then stays and sends its tone until the box
    hangs up. "voicemail": a voicemail system picks up, plays its tone, never presses a
    key and hangs up after ``voicemail_seconds``. "refuse": the operator picks up, hears
    the offer and hangs up ``accept_after`` s later without a key. "busy": in another call.
    "no answer": rings until the network gives up. "reject": the user presses red.
    """

    def __init__(self, network, number, *, answer_after=1.0, tone=440, behaviour="answer", ring_timeout=3.0,
                 accept_key="1", accept_after=1.0, voicemail_seconds=30.0):
        self.network = network
        self.number = number
        self.answer_after = answer_after
        self.tone = tone
        self.behaviour = behaviour
        self.ring_timeout = ring_timeout
        self.accept_key = accept_key
        self.accept_after = accept_after
        self.voicemail_seconds = voicemail_seconds
        self.calls = []  # (call, Listener) for every call that rang this phone
        self.answered_calls = 0
        self.keys_pressed = []
        self.hung_up_calls = 0  # calls its user ended: refused, voicemail over, rejected
        self._timers = []
        self._lock = threading.Lock()
        self._closed = False
        network.attach(number, self)

    def incoming(self, call):
        """Ring, then do what ``behaviour`` says; False when busy."""
        busy = any(not party.ended.is_set() for _, party in self.calls)
        if busy or self.behaviour == "busy" or self._closed:
            return False
        party = Listener(send_tone=self.tone)
        call.attach(party)
        self.calls.append((call, party))
        if self.behaviour == "no answer":
            self._later(self.ring_timeout, self._hang_up, call, "no answer")
        elif self.behaviour == "reject":
            self._later(self.answer_after, self._hang_up, call, "busy")
        else:
            self._later(self.answer_after, self._pick_up, call)
        return True

    def heard_seconds(self):
        """Seconds of sound (not silence) this phone heard over all its calls."""
        return sum(party.heard_seconds() for _, party in self.calls)

    def describe(self):
        """What happened to this phone so far, for the twin's status."""
        return {"number": self.number, "behaviour": self.behaviour, "calls": len(self.calls),
                "answered": self.answered_calls, "keys": "".join(self.keys_pressed),
                "hung_up": self.hung_up_calls, "heard_seconds": self.heard_seconds()}

    def close(self):
        """Cancel what is pending, hang up any call and leave the network; safe twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        for call, _ in self.calls:
            call.hangup("b")
        self.network.detach(self.number)

    # --- what the phone's user does -------------------------------------------------

    def _pick_up(self, call):
        if not call.answer():
            return  # the caller gave up while it rang
        with self._lock:
            self.answered_calls += 1
        if self.behaviour == "answer" and self.accept_key:
            self._later(self.accept_after, self._accept, call)
        elif self.behaviour == "refuse":
            self._later(self.accept_after, self._hang_up, call, "remote")
        elif self.behaviour == "voicemail":
            self._later(self.voicemail_seconds, self._hang_up, call, "remote")

    def _accept(self, call):
        if call.state != "active":
            return
        with self._lock:
            self.keys_pressed.append(self.accept_key)
        call.dtmf("b", self.accept_key)

    def _hang_up(self, call, cause):
        if call.state == "ended":
            return
        if cause != "no answer":  # that one is the network giving up, not the phone's user
            with self._lock:
                self.hung_up_calls += 1
        call.hangup("b", cause=cause)

    def _later(self, delay, action, *args):
        """Run ``action`` after ``delay`` s on a timer that close() cancels."""
        with self._lock:
            if self._closed:
                return
            self._timers = [timer for timer in self._timers if timer.is_alive()]
            timer = threading.Timer(delay, action, args=args)
            timer.daemon = True
            self._timers.append(timer)
        timer.start()


__all__ = ["VirtualCaller", "VirtualPhone", "Listener", "NetworkError", "tone_frames", "frame_level", "dtmf_frames",
           "wav_frames"]
