"""Virtual people on the network: a caller who rings the box, an operator's phone."""
import array
import math
import threading

from .network import SILENCE, NetworkError, Party

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160


def tone_frames(frequency, amplitude=8000):
    """An endless generator of 20 ms frames of a sine tone (a phone's test signal)."""
    step = 2 * math.pi * frequency / SAMPLE_RATE
    n = 0
    while True:
        samples = array.array("h", (int(amplitude * math.sin(step * (n + i))) for i in range(FRAME_SAMPLES)))
        n += FRAME_SAMPLES
        yield samples.tobytes()


def frame_level(frame):
    """Peak absolute sample of a 16-bit little-endian frame."""
    samples = array.array("h", frame)
    return max(map(abs, samples), default=0)


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
    """Someone who dials a number, waits, presses digits, listens and hangs up."""

    def __init__(self, network, number, send_tone=None):
        super().__init__(send_tone)
        self.network = network
        self.number = number
        self.call = None

    def dial(self, callee):
        """Ring ``callee``; raise NetworkError if it does not exist or is busy."""
        self.call = self.network.dial(self.number, callee, self)
        return self.call

    def press(self, digits, gap=0.3):
        """Press DTMF keys with ``gap`` seconds between them."""
        for digit in digits:
            self.call.dtmf("a", digit)
            threading.Event().wait(gap)

    def hang_up(self):
        """Put the phone down."""
        if self.call is not None:
            self.call.hangup("a")


class VirtualPhone:
    """An operator's phone at a number: rings, answers after a delay, sends a tone."""

    def __init__(self, network, number, *, answer_after=1.0, tone=440):
        self.network = network
        self.number = number
        self.answer_after = answer_after
        self.tone = tone
        self.calls = []
        network.attach(number, self)

    def incoming(self, call):
        """Ring; pick up after ``answer_after`` seconds unless the caller gave up."""
        if any(party.ended.is_set() is False for _, party in self.calls):
            return False
        party = Listener(send_tone=self.tone)
        call.attach(party)
        self.calls.append((call, party))
        timer = threading.Timer(self.answer_after, call.answer)
        timer.daemon = True
        timer.start()
        return True

    def close(self):
        """Hang up any call and leave the network."""
        for call, _ in self.calls:
            call.hangup("b")
        self.network.detach(self.number)


__all__ = ["VirtualCaller", "VirtualPhone", "Listener", "NetworkError", "tone_frames", "frame_level"]
