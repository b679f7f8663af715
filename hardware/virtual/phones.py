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
    """An operator's phone at a number: answers after a delay and sends a tone.

    ``behaviour`` makes it misbehave for call-progress tests: "busy" (in another call),
    "no answer" (rings until the network gives up), "reject" (the user presses red).
    """

    def __init__(self, network, number, *, answer_after=1.0, tone=440, behaviour="answer", ring_timeout=3.0):
        self.network = network
        self.number = number
        self.answer_after = answer_after
        self.tone = tone
        self.behaviour = behaviour
        self.ring_timeout = ring_timeout
        self.calls = []
        network.attach(number, self)

    def incoming(self, call):
        """Ring, then do what ``behaviour`` says."""
        busy = any(not party.ended.is_set() for _, party in self.calls)
        if busy or self.behaviour == "busy":
            return False
        party = Listener(send_tone=self.tone)
        call.attach(party)
        self.calls.append((call, party))
        action, delay = {
            "answer": (call.answer, self.answer_after),
            "no answer": (lambda: call.hangup("b", cause="no answer"), self.ring_timeout),
            "reject": (lambda: call.hangup("b", cause="busy"), self.answer_after),
        }[self.behaviour]
        timer = threading.Timer(delay, action)
        timer.daemon = True
        timer.start()
        return True

    def close(self):
        """Hang up any call and leave the network."""
        for call, _ in self.calls:
            call.hangup("b")
        self.network.detach(self.number)


__all__ = ["VirtualCaller", "VirtualPhone", "Listener", "NetworkError", "tone_frames", "frame_level", "dtmf_frames"]
