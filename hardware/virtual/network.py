"""A virtual phone network: numbers, calls between them, audio and DTMF both ways.

Endpoints (emulated modems, virtual phones, a test caller) attach under a number. A
call has two sides, ``a`` (who dialled) and ``b`` (who was called); each side gives the
call a ``Party`` that receives its events and, once connected, audio. Audio is pulled:
the endpoint with a clock (a modem's PCM port) asks the call for the far side's next
frame and hands over its own, so the network needs no clock of its own.
"""
import itertools
import logging
import threading

from firmware.frames import FRAME_BYTES, SILENCE  # noqa: F401 (FRAME_BYTES: the endpoints and tests take it from here)

log = logging.getLogger(__name__)


class NetworkError(Exception):
    """A number does not exist or is taken."""


class NumberBusy(NetworkError):
    """The called number is in another call."""


class Party:
    """One side of a virtual call; endpoints override what they care about.

    A ``clocked`` party (a modem with its PCM clock) pushes its audio itself; the call
    pulls ``next_frame()`` from a party without a clock each time the far side sends.
    """

    clocked = False

    def on_answered(self, call):
        """The far side picked up."""

    def on_ended(self, call, by):
        """The call ended; ``by`` is the side that hung up."""

    def on_dtmf(self, call, digit):
        """The far side pressed a key."""

    def next_frame(self):
        """The next 20 ms of audio this side sends (silence unless overridden)."""
        return SILENCE

    def hear(self, frame):
        """20 ms of audio arriving from the far side."""


class VirtualCall:
    """A call between two parties on the virtual network."""

    _ids = itertools.count(1)

    def __init__(self, network, caller, callee, party_a):
        self.id = next(self._ids)
        self.network = network
        self.caller = caller
        self.callee = callee
        self.state = "ringing"
        self.end_cause = None
        self.parties = {"a": party_a, "b": None}
        self._lock = threading.Lock()

    def attach(self, party_b):
        """The called endpoint joins with its ``Party`` (before answering)."""
        self.parties["b"] = party_b

    def answer(self):
        """The called side picks up."""
        with self._lock:
            if self.state != "ringing":
                return False
            self.state = "active"
        self.parties["a"].on_answered(self)
        return True

    def hangup(self, side, cause="remote"):
        """``side`` hangs up (or gives up with ``cause``: busy, no answer); the other side hears it."""
        with self._lock:
            if self.state == "ended":
                return
            self.state = "ended"
            self.end_cause = cause
        for party in self.parties.values():
            if party is not None:
                party.on_ended(self, side)

    def dtmf(self, side, digit):
        """``side`` presses ``digit``; the other side is told."""
        other = self.parties[_other(side)]
        if self.state == "active" and other is not None:
            other.on_dtmf(self, digit)

    def exchange(self, side, frame):
        """``side`` sends ``frame``; return the far side's next frame, or None if it is clocked."""
        other = self.parties[_other(side)]
        if self.state != "active" or other is None:
            return SILENCE
        other.hear(frame)
        return None if other.clocked else other.next_frame()


class VirtualNetwork:
    """Connects numbers: a caller can ring a modem, a modem can dial a phone."""

    def __init__(self):
        self._endpoints = {}
        self._lock = threading.Lock()
        self.sms_log = []  # (sender, recipient, text) of every SMS carried

    def attach(self, number, endpoint):
        """Make ``endpoint`` reachable at ``number``; it must have ``incoming(call)``."""
        with self._lock:
            if number in self._endpoints:
                raise NetworkError(f"number {number} is already attached")
            self._endpoints[number] = endpoint

    def detach(self, number):
        """Take ``number`` off the network."""
        with self._lock:
            self._endpoints.pop(number, None)

    def send_sms(self, sender, recipient, text):
        """Carry an SMS; an endpoint that can receive one gets it, every one is logged."""
        self.sms_log.append((sender, recipient, text))
        with self._lock:
            endpoint = self._endpoints.get(recipient)
        if endpoint is not None and hasattr(endpoint, "receive_sms"):
            endpoint.receive_sms(sender, text)

    def numbers(self):
        """The numbers attached, sorted."""
        with self._lock:
            return sorted(self._endpoints)

    def dial(self, caller, callee, party):
        """Ring ``callee`` from ``caller``; return the call, or raise NetworkError."""
        with self._lock:
            endpoint = self._endpoints.get(callee)
        if endpoint is None:
            raise NetworkError(f"number {callee} does not exist")
        call = VirtualCall(self, caller, callee, party)
        if not endpoint.incoming(call):
            call.state = "ended"
            raise NumberBusy(f"number {callee} is busy")
        log.info("virtual call %d: %s -> %s", call.id, caller, callee)
        return call


def _other(side):
    return "b" if side == "a" else "a"
