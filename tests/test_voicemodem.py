"""The V.253 voice-modem line: its real driver against the emulated modem, through real ptys."""
import array
import json
import queue
import subprocess
import sys
import time
import warnings

import pytest

from firmware.detect import FAMILIES, open_line, probe
from firmware.errors import LineStateError
from firmware.voicemodem import (ALAW_DECODE, ULAW_DECODE, DleStream, VoiceModemLine, caller_id, choose_format,
                                 decode, encode, parse_formats)
from hardware.virtual.network import FRAME_BYTES, SILENCE
from hardware.virtual.phones import VirtualCaller, VirtualPhone, tone_frames
from hardware.virtual.voicemodem import EmulatedVoiceModem

from .conftest import wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

LINE_NUMBER = "+359700000050"
CALLER = "+359888123456"
OPERATOR = "+359700000100"
CONEXANT_LIST = ['0,"SIGNED PCM",8,0,8000,0,0', '1,"UNSIGNED PCM",8,0,8000,0,0', '129,"IMA ADPCM",4,0,8000,0,0',
                 '130,"UNSIGNED PCM",8,0,8000,0,0', '131,"Mu-Law",8,0,8000,0,0', '132,"A-Law",8,0,8000,0,0',
                 '133,"14 bit PCM",14,0,8000,0,0']
USR_LIST = ['1,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)', '128,"8-BIT LINEAR",8,0,(7200,8000),(0),(0)',
            '129,"ADPCM",4,0,(7200,8000),(0),(0)', '130,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)',
            '131,"ULAW",8,0,(7200,8000),(0),(0)', '132,"ALAW",8,0,(7200,8000),(0),(0)',
            '133,"LINEAR",16,0,(7200,8000),(0),(0)']


class Events:
    """Collects a line's events so a test can wait for the next one of a kind."""

    def __init__(self):
        self.queue = queue.Queue()
        self.seen = []

    def __call__(self, event):
        self.seen.append(event)
        self.queue.put(event)

    def next(self, kind, timeout=10):
        """The next event of ``kind``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.kind == kind:
                return event

    def kinds(self):
        return [event.kind for event in self.seen]


@pytest.fixture
def events():
    return Events()


def make_modem(network, **options):
    options.setdefault("ring_interval", 0.6)  # 5 s on a real line
    options.setdefault("cid_delay", 0.2)
    return EmulatedVoiceModem(network, LINE_NUMBER, **options)


@pytest.fixture
def modem(network, request):
    emulator = make_modem(network, **getattr(request, "param", {}))
    yield emulator
    emulator.close()


@pytest.fixture
def line(modem, events):
    driver = VoiceModemLine(modem.at.path, events, name="analog", rings=2)
    yield driver
    driver.close()


def ring_and_answer(line, events, network, number=CALLER, tone=1000):
    """A caller rings; the line reports it after its ring count; answer like the engine does."""
    caller = VirtualCaller(network, number, send_tone=tone)
    caller.dial(LINE_NUMBER)
    incoming = events.next("incoming")
    line.answer()
    events.next("connected")
    assert caller.answered.wait(2)
    return caller, incoming


def pump(line, frames, seconds):
    """Play ``frames`` to the line at the engine's pace; return the frames received meanwhile."""
    received = []
    for _ in range(int(seconds / 0.02)):
        line.audio.write_frame(next(frames) if not isinstance(frames, bytes) else frames)
        frame = line.audio.read_frame()
        if frame:
            received.append(frame)
        time.sleep(0.02)
    return received


# --- formats and conversions -------------------------------------------------------------------

def test_the_format_lists_of_real_modems_are_read_and_the_best_is_chosen():
    conexant = parse_formats(CONEXANT_LIST)
    assert [f.code for f in conexant] == [0, 1, 129, 130, 131, 132, 133]
    assert choose_format(conexant).code == 131  # no 16-bit on the CX93001: mu-law
    assert choose_format(parse_formats(USR_LIST)).code == 133  # 16-bit linear where the modem has it
    assert choose_format(parse_formats(['+VSM: 132,"G.711A",8,0,(8000),(0),(0)'])).kind == "alaw"
    assert choose_format(parse_formats(['128,"8-BIT LINEAR",8,0,(7200-11025),(0),(0)'])).kind == "unsigned8"
    assert choose_format(parse_formats(['0,"SIGNED PCM",8,0,8000,0,0'])).kind == "signed8"
    assert choose_format(parse_formats(['131,"ULAW",8,0,(7200,11025),(0),(0)'])) is None  # no 8 kHz
    assert parse_formats(["1;CELP;1;0;(9600)"]) == []  # a ZyXEL list: nothing usable


def test_the_g711_tables_agree_with_an_independent_codec():
    every_byte = bytes(range(256))
    assert ULAW_DECODE.tobytes() == audioop.ulaw2lin(every_byte, 2)
    assert ALAW_DECODE.tobytes() == audioop.alaw2lin(every_byte, 2)
    every_sample = array.array("h", range(-32768, 32768)).tobytes()
    assert encode("ulaw", every_sample) == audioop.lin2ulaw(every_sample, 2)
    assert encode("alaw", every_sample) == audioop.lin2alaw(every_sample, 2)
    assert decode("unsigned8", encode("unsigned8", every_sample)) == \
        audioop.lin2lin(audioop.bias(audioop.bias(audioop.lin2lin(every_sample, 2, 1), 1, 128), 1, -128), 1, 2)
    assert decode("signed8", b"\x7f\x80") == array.array("h", [0x7F00, -0x8000]).tobytes()


def test_caller_id_forms():
    assert caller_id({"NMBR": "0888 123 456", "NAME": "IVAN"}) == ("0888123456", "IVAN", "")
    assert caller_id({"NMBR": "P", "NAME": "P"}) == ("", "", "private")
    assert caller_id({"NMBR": "O"}) == ("", "", "unavailable")
    assert caller_id({}) == ("", "", "not sent")


# --- the DLE stream, byte by byte ------------------------------------------------------------------

WIRE = (b"\r\nCONNECT\r\n" + b"\x01\x10\x10\x02" + b"\x10/\x105\x10~" + b"\x03\x10\x1a\x04" + b"\x10b"
        + b"\x10Z" + b"\x05\x10\x03" + b"\r\nOK\r\n")


@pytest.mark.parametrize("cut", range(len(WIRE) + 1))
def test_the_stream_parser_gives_the_same_at_every_split(cut):
    """Audio with shielded DLEs, a bracketed key, busy tone, a malformed code, the end: however the reads fall."""
    events, audio = [], bytearray()
    stream = DleStream(events.append, audio.extend)
    stream.arm()
    text = stream.feed(WIRE[:cut])
    text += stream.feed(WIRE[cut:])
    assert text.replace(b"\r", b"").replace(b"\n", b"") == b"CONNECTOK"
    assert bytes(audio) == b"\x01\x10\x02\x03\x10\x10\x04\x05"
    assert [(e.name, e.code) for e in events] == [("dtmf", "5"), ("busy", "b"), ("end", "\x03")]
    assert stream.malformed == 1 and stream.mode == stream.COMMAND


def test_events_in_command_state_are_taken_out_of_the_text():
    events = []
    stream = DleStream(events.append, lambda data: None)
    text = stream.feed(b"\r\nRING\r\n\x10d\r\nNMBR = 5551234\r\n\x10X0102\x10.")
    assert text == b"\r\nRING\r\n\r\nNMBR = 5551234\r\n"
    assert [(e.name, e.text) for e in events] == [("dialtone", ""), ("report", "0102")]


# --- answering --------------------------------------------------------------------------------------

@pytest.mark.parametrize("modem", [{"profile": "cx93010"}, {"profile": "usr5637"}], indirect=True,
                         ids=["cx93010", "usr5637"])
@pytest.mark.parametrize("rings", [1, 2, 3])
def test_an_incoming_call_with_caller_id_is_answered_after_the_ring_count(modem, network, events, rings):
    modem.names[CALLER] = "IVAN PETROV"
    line = VoiceModemLine(modem.at.path, events, name="analog", rings=rings)
    try:
        assert modem.vcid == 1 and modem.fclass == "8"  # set again after ATZ, which forgets them
        caller, incoming = ring_and_answer(line, events, network)
        assert incoming.data == {"number": CALLER}
        cid = next(e for e in events.seen if e.kind == "caller_id").data
        assert (cid["number"], cid["name"], cid["reason"]) == (CALLER, "IVAN PETROV", "")
        assert len(cid["date"]) == 4 and len(cid["time"]) == 4
        assert modem.answered_after_rings == max(rings, 1)  # with one ring it waits for caller ID only
        assert modem.stream == "duplex" and line.duplex
        expected = {"cx93010": "ulaw", "usr5637": "linear16"}[modem.profile_name]
        assert line.format.kind == expected and line.format.byte_rate == (16000 if expected == "linear16" else 8000)
        assert events.kinds().index("caller_id") < events.kinds().index("incoming")
    finally:
        line.close()


@pytest.mark.parametrize("number,reason", [("", "private"), ("+359888000999", "unavailable")])
def test_withheld_and_unavailable_numbers(modem, line, network, events, number, reason):
    if number:
        modem.unavailable.add(number)
    ring_and_answer(line, events, network, number=number)
    cid = next(e for e in events.seen if e.kind == "caller_id").data
    assert (cid["number"], cid["reason"]) == ("", reason)
    assert next(e for e in events.seen if e.kind == "incoming").data == {"number": ""}


def test_a_caller_who_gives_up_before_the_ring_count_is_still_reported(modem, network, events):
    line = VoiceModemLine(modem.at.path, events, name="analog", rings=4, ring_gap_seconds=1.5)
    try:
        caller = VirtualCaller(network, CALLER)
        caller.dial(LINE_NUMBER)
        wait_for(lambda: modem.rings_sent >= 2)
        caller.hang_up()
        assert events.next("incoming").data == {"number": CALLER}  # nobody is lost: a call-back can follow
        assert events.next("missed").data["cause"] == "remote"
        assert not modem.off_hook and line.state == "idle"
    finally:
        line.close()


# --- keys and audio -----------------------------------------------------------------------------------

@pytest.mark.parametrize("modem", [{}, {"dtmf_shielding": True}], indirect=True, ids=["plain", "bracketed"])
def test_keys_arrive_as_dle_events_once_each(modem, line, network, events):
    caller, _ = ring_and_answer(line, events, network)
    caller.press("1#9", gap=0.1)
    assert [events.next("dtmf").data["digit"] for _ in range(3)] == ["1", "#", "9"]
    if modem.dtmf_shielding:
        assert modem.events_sent[:3] == ["/", "1", "~"]


def dle_frames():
    """Frames whose samples are, or encode to, the DLE byte: 0x1010, 0x0010 and -15996 (mu-law 0x10)."""
    samples = array.array("h", [0x1010, 0x0010, 0x1000, -15996, 15996, 1234, -2000, 0] * 20)
    first = samples.tobytes()
    second = array.array("h", reversed(samples)).tobytes()
    assert b"\x10" in audioop.lin2ulaw(first, 2)
    return [first, second] * 5


def find(stream, pattern):
    return bytes(stream).find(b"".join(pattern))


@pytest.mark.parametrize("modem", [{"profile": "usr5637"}, {"profile": "cx93010"}], indirect=True,
                         ids=["16-bit", "mu-law"])
def test_audio_both_ways_byte_exact_through_dle_shielding(modem, line, network, events):
    caller, _ = ring_and_answer(line, events, network, tone=None)
    pattern = dle_frames()
    wire = line.format.kind
    expected = [decode(wire, encode(wire, frame)) for frame in pattern]  # exact for 16-bit linear
    caller.say([SILENCE] * 5 + pattern)
    sent = iter([SILENCE] * 5 + pattern + [SILENCE] * 200)
    received = pump(line, sent, 1.5)
    assert find(b"".join(received), expected) >= 0, "the caller's samples reached the box unchanged"
    heard = caller.heard_audio()
    assert find(heard, expected) >= 0, "the box's samples reached the caller unchanged"
    assert line.parser.malformed == 0 and line.state == "active"


# --- hang-up on a line with no clean hang-up signal -------------------------------------------------

@pytest.mark.parametrize("modem,reason", [({"hangup_signal": "busy"}, "busy tone"),
                                          ({"hangup_signal": "reorder"}, "reorder tone"),
                                          ({"hangup_signal": "loop"}, "loop current lost"),
                                          ({"hangup_signal": "dialtone"}, "dial tone")],
                         indirect=["modem"], ids=["busy", "reorder", "loop", "dialtone"])
def test_the_far_end_hanging_up_is_detected_and_the_line_goes_on_hook(modem, line, network, events, reason):
    caller, _ = ring_and_answer(line, events, network)
    caller.hang_up()
    assert events.next("hangup_detected").data == {"reason": reason}
    assert events.next("ended").data["cause"] == "remote"
    wait_for(lambda: not modem.off_hook, timeout=5)
    assert modem.hook_history[-1][0] == "on" and modem.stream is None
    assert "AT+VLS=0" in modem.commands_seen and line.state == "idle"


@pytest.mark.parametrize("modem", [{"hangup_signal": "silence"}, {"hangup_signal": "silence", "profile": "usr5637"}],
                         indirect=True, ids=["cx93010", "usr5637"])
def test_a_stretch_of_silence_reported_by_the_modem_ends_the_call(modem, network, events):
    line = VoiceModemLine(modem.at.path, events, name="analog", silence_seconds=1.0)
    try:
        assert "AT+VSD=128,10" in modem.commands_seen  # the modem's own detector, in tenths (V.253 10.2.7)
        caller, _ = ring_and_answer(line, events, network, tone=None)
        assert events.next("hangup_detected").data["reason"].startswith("silence")
        assert events.next("ended").data["cause"] == "remote"
        wait_for(lambda: not modem.off_hook, timeout=5)
        assert caller.ended.wait(2)  # going on hook ended the virtual call
    finally:
        line.close()


def test_silence_longer_than_the_modem_can_time_is_measured_by_the_line(modem, network, events):
    line = VoiceModemLine(modem.at.path, events, name="analog", silence_seconds=1.0)
    try:
        line._modem_silence = False
        modem.vsd = (128, 0)  # as if the modem had no silence detector
        ring_and_answer(line, events, network, tone=None)
        assert events.next("hangup_detected").data["reason"].startswith("silence for 1")
        wait_for(lambda: not modem.off_hook, timeout=5)
    finally:
        line.close()


def test_a_caller_who_talks_is_not_cut_off_and_a_maximum_length_ends_the_call(modem, network, events):
    line = VoiceModemLine(modem.at.path, events, name="analog", silence_seconds=0.5, max_call_seconds=2.0)
    try:
        caller, _ = ring_and_answer(line, events, network, tone=700)  # never silent
        assert events.next("hangup_detected", timeout=10).data == {"reason": "maximum call length"}
        ended = events.next("ended")
        assert ended.data["cause"] == "local" and ended.data["seconds"] >= 2.0
        wait_for(lambda: not modem.off_hook, timeout=5)
    finally:
        line.close()


@pytest.mark.parametrize("code,reason", [("c", "a fax machine is calling"), ("e", "a data modem is calling")])
def test_a_fax_or_data_calling_tone_ends_the_call(modem, line, network, events, code, reason):
    ring_and_answer(line, events, network)
    modem.line_signal(code)
    assert events.next("hangup_detected").data == {"reason": reason}
    assert events.next("ended").data["cause"] == "local"
    wait_for(lambda: not modem.off_hook, timeout=5)


@pytest.mark.parametrize("modem", [{"stubborn_abort": True}], indirect=True)
def test_a_modem_that_ignores_the_first_end_of_stream_still_goes_on_hook(modem, line, network, events):
    caller, _ = ring_and_answer(line, events, network)
    line.hangup()
    assert events.next("ended").data["cause"] == "local"
    assert not modem.off_hook and modem.stream is None
    assert caller.ended.wait(2)


def test_a_malformed_dle_sequence_is_skipped_without_losing_the_call(modem, line, network, events):
    caller, _ = ring_and_answer(line, events, network)
    pump(line, iter(tone_frames(440)), 0.2)
    modem.inject(b"\x10Z\x10\x7f")  # codes no modem defines
    received = pump(line, iter(tone_frames(440)), 0.6)
    caller.press("7")
    assert events.next("dtmf").data["digit"] == "7"
    assert line.parser.malformed == 2
    assert len(received) >= 20 and line.state == "active" and not caller.ended.is_set()


# --- half duplex: receive, transmit and back ----------------------------------------------------------

@pytest.mark.parametrize("modem", [{"duplex": False}], indirect=True)
def test_a_half_duplex_modem_switches_between_receive_and_transmit_without_dropping_the_call(modem, line, network,
                                                                                             events):
    caller, _ = ring_and_answer(line, events, network, tone=1000)
    assert line.duplex is False and modem.stream == "receive"  # +VTR refused: receive first
    assert len(pump(line, SILENCE, 0.5)) > 10  # the caller is heard while the box is quiet
    pump(line, iter(tone_frames(440)), 1.0)  # a prompt
    assert modem.stream == "transmit" and caller.heard_seconds() > 0.5
    caller.press("3")
    assert events.next("dtmf").data["digit"] == "3"  # keys are reported while transmitting too
    pump(line, SILENCE, 1.2)  # the prompt is over
    wait_for(lambda: modem.stream == "receive")
    caller.press("4")
    assert events.next("dtmf").data["digit"] == "4"
    assert not caller.ended.is_set() and line.state == "active"
    for command in ("AT+VRX", "AT+VTX"):
        assert command in modem.commands_seen


def test_keys_sent_to_the_far_end_pause_the_stream(modem, line, network, events):
    caller, _ = ring_and_answer(line, events, network)
    line.send_dtmf("12")
    wait_for(lambda: caller.dtmf_heard == ["1", "2"])
    assert modem.stream == "duplex" and line.state == "active"


# --- dialling out ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("modem", [{}, {"ringback": "event"}], indirect=True, ids=["RINGING", "DLE-r"])
def test_dialling_out_reports_ringing_the_answer_and_the_keys_pressed_meanwhile(modem, line, network, events):
    phone = VirtualPhone(network, OPERATOR, answer_after=0.5, accept_after=0.2)
    modem.vra = 5  # half a second after the ringback stops (5 s by default)
    try:
        line.dial(OPERATOR)
        events.next("alerting")
        events.next("connected")
        assert events.next("dtmf").data["digit"] == "1"  # pressed before VCON, held until the call was up
        assert any(command.startswith("ATDT") for command in modem.commands_seen)
        pump(line, iter(tone_frames(1000)), 0.8)
        assert phone.heard_seconds() > 0.4
        line.hangup()
        assert events.next("ended").data["cause"] == "local"
        assert not modem.off_hook
    finally:
        phone.close()


@pytest.mark.parametrize("behaviour,cause", [("busy", "busy"), ("no answer", "no answer"), ("reject", "busy")])
def test_dialling_out_ends_with_the_call_progress_outcome(modem, line, network, events, behaviour, cause):
    phone = VirtualPhone(network, OPERATOR, behaviour=behaviour, answer_after=0.3, ring_timeout=0.8)
    try:
        line.dial(OPERATOR)
        assert events.next("ended").data["cause"] == cause
        wait_for(lambda: not modem.off_hook)
    finally:
        phone.close()


@pytest.mark.parametrize("modem", [{"dial_tone": False}], indirect=True)
def test_a_line_with_no_dial_tone(modem, line, events):
    line.dial(OPERATOR)
    assert events.next("ended").data["cause"] == "no dial tone"
    assert not modem.off_hook and line.state == "idle"


def test_hanging_up_while_dialling_aborts_the_dial(modem, line, network, events):
    phone = VirtualPhone(network, OPERATOR, answer_after=30)
    try:
        line.dial(OPERATOR)
        events.next("alerting")
        line.hangup()
        assert events.next("ended").data["cause"] == "local"
        wait_for(lambda: not modem.off_hook)
        assert phone.calls[0][0].state == "ended"
        with pytest.raises(LineStateError):
            line.answer()
    finally:
        phone.close()


# --- identification and the command line ------------------------------------------------------------

def test_probe_and_auto_identify_a_voice_modem(modem, network, events):
    found = probe(modem.at.path)
    assert found["family"] == "voicemodem" and found["model"] == "CX93001-EIS_V0.2002-V92"
    assert found["classes"] == "0,1,1.0,8" and "131 Mu-Law (8-bit)" in found["voice_formats"]
    assert found["voice_format"] == "131 Mu-Law (8-bit)" and modem.fclass == "0"  # left in data mode
    line = open_line(modem.at.path, events, family="auto", name="analog", rings=3)
    try:
        assert isinstance(line, VoiceModemLine) and line.rings == 3 and FAMILIES["voicemodem"] is VoiceModemLine
        info = line.info()
        assert info["family"] == "voicemodem" and info["format"] == "131 Mu-Law (8-bit)" and info["sms"] is False
        with pytest.raises(LineStateError):
            line.send_sms(CALLER, "hello")
    finally:
        line.close()


def test_hotline_emulate_voicemodem_and_modem_probe(tmp_path):
    emulator = subprocess.Popen([sys.executable, "-m", "appliance.cli", "emulate", "voicemodem", "--json"],
                                stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        ports = json.loads(emulator.stdout.readline())
        assert ports["model"] == "voicemodem" and ports["audio_port"] is None
        done = subprocess.run([sys.executable, "-m", "appliance.cli", "modem", "probe", ports["at_port"], "--json"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert found["family"] == "voicemodem" and found["voice_format"] == "131 Mu-Law (8-bit)"
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def test_frames_are_whole_20_ms_frames(modem, line, network, events):
    ring_and_answer(line, events, network)
    received = pump(line, SILENCE, 0.5)
    assert received and all(len(frame) == FRAME_BYTES for frame in received)
