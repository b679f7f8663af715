"""The SIM7600 line driver through real ptys, with virtual callers and phones."""
import queue
import time

import pytest

from firmware.audio import FRAME_BYTES
from firmware.errors import LineStateError
from firmware.gsm import Sim7600Line
from hardware.virtual.phones import VirtualCaller, VirtualPhone, frame_level, tone_frames

from .conftest import MODEM_NUMBER, PHONE_NUMBER, wait_for


class Events:
    """Collects a line's events so a test can wait for the next one."""

    def __init__(self):
        self.queue = queue.Queue()

    def __call__(self, event):
        self.queue.put(event)

    def next(self, kind, timeout=5):
        while True:
            event = self.queue.get(timeout=timeout)
            if event.kind == kind:
                return event


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def line(sim7600, events):
    driver = Sim7600Line(sim7600.at.path, sim7600.pcm.path, events, name="gsm1")
    yield driver
    driver.close()


def test_init_sequence_and_info(line, sim7600):
    assert sim7600.commands_seen[:3] == ["AT", "ATE0", "AT+CMEE=1"]
    assert "AT+CLIP=1" in sim7600.commands_seen
    info = line.info()
    assert info["model"] == "SIMCOM_SIM7600E-H"
    assert info["registration"] == "home"
    assert info["signal_dbm"] == -73 and info["signal_bars"] == 3


def test_incoming_call_audio_both_ways_dtmf_and_remote_hangup(line, network, events):
    caller = VirtualCaller(network, "+359888123456", send_tone=1000)
    caller.dial(MODEM_NUMBER)
    assert events.next("incoming").data == {"number": "+359888123456"}
    line.answer()
    events.next("connected")
    assert line.state == "active"

    tone = tone_frames(440)
    for _ in range(40):  # paced like the engine's media clock
        line.audio.write_frame(next(tone))
        time.sleep(0.02)
    wait_for(lambda: caller.heard_seconds() > 0.3)
    heard_by_engine = wait_for(line.audio.read_frame)
    assert len(heard_by_engine) == FRAME_BYTES and frame_level(heard_by_engine) > 7000

    caller.press("42", gap=0.05)
    assert events.next("dtmf").data == {"digit": "4"}
    assert events.next("dtmf").data == {"digit": "2"}

    caller.hang_up()
    ended = events.next("ended")
    assert ended.data["cause"] == "remote"
    assert line.state == "idle"


def test_withheld_caller_id(line, network, events, sim7600):
    caller = VirtualCaller(network, "")
    caller.dial(MODEM_NUMBER)
    assert events.next("incoming").data == {"number": ""}


def test_caller_who_gives_up_is_a_missed_call(line, network, events):
    caller = VirtualCaller(network, "+359888000111")
    caller.dial(MODEM_NUMBER)
    events.next("incoming")
    caller.hang_up()
    events.next("missed")
    assert line.state == "idle"
    with pytest.raises(LineStateError):
        line.answer()


def test_dial_out_reaches_a_virtual_phone_and_local_hangup(line, network, events):
    phone = VirtualPhone(network, PHONE_NUMBER, answer_after=0.2, tone=600)
    line.dial(PHONE_NUMBER)
    events.next("connected")
    wait_for(lambda: any(frame_level(frame) > 7000 for frame in iter(line.audio.read_frame, None)))
    line.send_dtmf("1")
    wait_for(lambda: phone.calls[0][1].dtmf_heard == ["1"])
    line.hangup()
    assert events.next("ended").data["cause"] == "local"
    assert phone.calls[0][1].ended.is_set()


def test_dialling_a_number_that_does_not_exist(line, events):
    line.dial("+359999999999")
    assert events.next("ended").data["cause"] == "remote"
    assert line.state == "idle"
