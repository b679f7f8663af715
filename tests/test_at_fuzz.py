"""Fuzzing the AT channel: garbage, split reads and URCs woven into answers, on a real pty."""
import queue
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.at import ATChannel
from hardware.virtual.pty import PtyPort

URCS = st.sampled_from(["RING", '+CLIP: "+359888123456",145,"",0,"",0', "+RXDTMF: 5", "^RSSI:15", "^RSSI: 20",
                        "+CMTI: \"SM\",3", "VOICE CALL: BEGIN", "+QIND: \"csq\",20,99", "MISSED_CALL: 08:48AM +1"])
GARBAGE = st.binary(min_size=1, max_size=12).map(lambda b: bytes(x % 32 for x in b if x % 32 not in (10, 13)) or b"\x01")
NOISE = st.lists(st.one_of(URCS.map(lambda u: ("urc", u)), GARBAGE.map(lambda g: ("garbage", g))), max_size=4)
ENDINGS = st.sampled_from([b"\r\n", b"\r\r\n", b"\n"])


class Modem:
    """The far side of the pty: answers AT+CSQ with noise woven in, cut into random chunks."""

    def __init__(self):
        self.pty = PtyPort()
        self.plan = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _run(self):
        buffer = b""
        while not self._stop.is_set():
            buffer += self.pty.read(0.05)
            if b"\r" in buffer:
                _, buffer = buffer.split(b"\r", 1)
                for chunk in self.plan.get(timeout=5):
                    self.pty.write_all(chunk)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.pty.close()


def render(before, after, rssi, ending, cuts):
    """The modem's bytes: noise, the answer line, noise, OK, cut at the given points."""
    def lines(noise):
        return b"".join((ending + text.encode() + ending) if kind == "urc" else (text + ending)
                        for kind, text in noise)
    wire = lines(before) + ending + f"+CSQ: {rssi},99".encode() + ending + lines(after) + ending + b"OK" + ending
    points = sorted({cut % len(wire) for cut in cuts} | {0, len(wire)})
    return [wire[a:b] for a, b in zip(points, points[1:]) if b > a]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=NOISE, after=NOISE, rssi=st.integers(0, 31), ending=ENDINGS,
       cuts=st.lists(st.integers(0, 400), max_size=6))
def test_the_answer_survives_any_weave_and_every_urc_arrives(before, after, rssi, ending, cuts):
    modem = Modem()
    urcs = queue.Queue()
    channel = ATChannel(modem.pty.path, urcs.put, name="fuzz")
    try:
        modem.plan.put(render(before, after, rssi, ending, cuts))
        assert channel.command("AT+CSQ", prefix="+CSQ:", timeout=5) == [f"+CSQ: {rssi},99"]
        expected = [text for kind, text in before + after if kind == "urc"]
        assert [urcs.get(timeout=2) for _ in expected] == expected
        modem.plan.put([b"\r\nOK\r\n"])
        assert channel.command("AT", timeout=5) == []  # and the channel is not one answer late
    finally:
        channel.close()
        modem.close()
