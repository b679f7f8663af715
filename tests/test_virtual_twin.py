"""The virtual twin itself: operators' phones, call waiting on every emulated family
(read raw off the pty, as a driver would see it) and callers who speak a WAV file."""
import math
import threading
import time
import wave

import pytest
import serial

from appliance.dtmf import DtmfDetector
from hardware.virtual.families import EMULATORS
from hardware.virtual.network import NumberBusy
from hardware.virtual.phones import VirtualCaller, VirtualPhone, frame_level, tone_frames, wav_frames
from hardware.virtual.world import TwinError, VirtualWorld

from .conftest import MODEM_NUMBER, PHONE_NUMBER, wait_for

FIRST, SECOND = "+359888000001", "+359888000002"


# --- operators' phones ----------------------------------------------------------------

def ring_phone(network, **options):
    """A phone with ``options`` and a caller (the box's side) who rang it."""
    phone = VirtualPhone(network, PHONE_NUMBER, **options)
    box = VirtualCaller(network, MODEM_NUMBER, send_tone=1000)
    box.dial(PHONE_NUMBER)
    return phone, box


def talk(call, seconds):
    """Move audio both ways for ``seconds`` as a modem's clock would (the box is side a)."""
    frames = tone_frames(1000)
    for _ in range(int(seconds / 0.02)):
        call.exchange("a", next(frames))


def test_an_operator_answers_presses_the_accept_key_and_stays(network):
    phone, box = ring_phone(network, answer_after=0.1, accept_after=0.2, accept_key="1")
    assert box.answered.wait(2)
    wait_for(lambda: box.dtmf_heard == ["1"], timeout=2)
    talk(box.call, 0.5)
    assert phone.heard_seconds() == pytest.approx(0.5, abs=0.05)
    assert not box.ended.wait(0.5)  # stays until the box hangs up
    box.hang_up()
    assert (phone.answered_calls, phone.keys_pressed, phone.hung_up_calls) == (1, ["1"], 0)
    phone.close()


def test_an_operator_with_no_accept_key_just_listens(network):
    phone, box = ring_phone(network, answer_after=0.1, accept_after=0.1, accept_key="")
    assert box.answered.wait(2)
    assert not box.ended.wait(0.5)
    assert box.dtmf_heard == [] and phone.keys_pressed == []
    phone.close()


def test_voicemail_picks_up_sends_a_tone_never_presses_and_hangs_up(network):
    phone, box = ring_phone(network, behaviour="voicemail", answer_after=0.1, accept_after=0.1,
                            voicemail_seconds=0.6)
    assert box.answered.wait(2)
    assert frame_level(box.call.exchange("a", bytes(320))) > 7000  # the voicemail greeting's tone
    assert box.ended.wait(2) and box.ended_by == "b"
    assert box.dtmf_heard == [] and phone.keys_pressed == []
    assert (phone.answered_calls, phone.hung_up_calls) == (1, 1)
    phone.close()


def test_voicemail_waits_thirty_seconds_by_default(network):
    phone = VirtualPhone(network, PHONE_NUMBER, behaviour="voicemail")
    assert phone.voicemail_seconds == 30.0
    phone.close()


def test_an_operator_who_refuses_hangs_up_without_a_key(network):
    phone, box = ring_phone(network, behaviour="refuse", answer_after=0.1, accept_after=0.3)
    assert box.answered.wait(2)
    assert box.ended.wait(2) and box.ended_by == "b" and box.call.end_cause == "remote"
    assert box.dtmf_heard == [] and (phone.answered_calls, phone.hung_up_calls) == (1, 1)
    phone.close()


@pytest.mark.parametrize("behaviour, cause", [("reject", "busy"), ("no answer", "no answer")])
def test_a_phone_that_does_not_pick_up(network, behaviour, cause):
    phone, box = ring_phone(network, behaviour=behaviour, answer_after=0.1, ring_timeout=0.2)
    assert box.ended.wait(2) and box.call.end_cause == cause
    assert not box.answered.is_set() and phone.answered_calls == 0
    assert phone.hung_up_calls == (1 if behaviour == "reject" else 0)  # "no answer": the network gave up
    phone.close()


def test_a_busy_phone_refuses_the_call(network):
    phone = VirtualPhone(network, PHONE_NUMBER, behaviour="busy")
    with pytest.raises(NumberBusy):
        VirtualCaller(network, MODEM_NUMBER).dial(PHONE_NUMBER)
    assert phone.calls == []
    phone.close()


def test_close_cancels_what_the_phone_was_about_to_do(network):
    phone, box = ring_phone(network, answer_after=0.3)
    phone.close()
    phone.close()  # safe twice
    assert box.ended.wait(1)
    time.sleep(0.5)
    assert not box.answered.is_set() and phone.answered_calls == 0
    assert phone._timers == []
    with pytest.raises(Exception, match="does not exist"):
        VirtualCaller(network, "+359888000009").dial(PHONE_NUMBER)


def test_the_world_builds_phones_as_the_config_says(tmp_path):
    config = {"modems": [], "phones": [
        {"number": "+359700000100", "behaviour": "answer", "answer_after": 0.5, "accept_key": "#", "accept_after": 2.0},
        {"number": "+359700000101", "behaviour": "voicemail", "answer_after": 3.0, "accept_key": "1",
         "accept_after": 1.0},
    ]}
    world = VirtualWorld(config, str(tmp_path))
    try:
        first, second = world.phones
        assert (first.behaviour, first.answer_after, first.accept_key, first.accept_after) == ("answer", 0.5, "#", 2.0)
        assert (second.behaviour, second.answer_after) == ("voicemail", 3.0)
        assert world.describe()["phones"][0] == {"number": "+359700000100", "behaviour": "answer", "calls": 0,
                                                 "answered": 0, "keys": "", "hung_up": 0, "heard_seconds": 0}
    finally:
        world.close()
        world.close()


# --- call waiting, read raw off the AT port ------------------------------------------

# What each family prints for a waiting call from SECOND (sources in families.py).
CCWA = {"sim800": f'+CCWA: "{SECOND}",145,1', "sim7600": f'+CCWA: "{SECOND}",145,1',
        "e1550": f'+CCWA: "{SECOND}",145,1', "ec25": f'+CCWA: "{SECOND}",145,1,,0'}
# How each family announces an incoming call (the first line of it).
RINGS = {"sim800": "RING", "sim7600": "RING", "e1550": "+CRING: VOICE", "ec25": "RING"}


class Port:
    """The modem's AT port opened with pyserial, read as raw text."""

    def __init__(self, path):
        self.serial = serial.Serial(path, 115200, timeout=0.05)
        self.seen = ""

    def command(self, text, timeout=3):
        """Send ``text`` and return everything up to its final result."""
        self.seen = ""
        self.serial.write(text.encode() + b"\r")
        return self.until(_has_final_result, timeout)

    def until(self, done, timeout=3):
        """Read until ``done(text so far)``; fail on timeout."""
        deadline = time.monotonic() + timeout
        while not done(self.seen):
            if time.monotonic() > deadline:
                pytest.fail(f"not seen in {timeout} s; got {self.seen!r}")
            self.seen += self.serial.read(4096).decode("latin-1")
        return self.seen

    def expect(self, text, timeout=3):
        """Read until ``text`` has arrived (since the last command or clear)."""
        return self.until(lambda seen: text in seen, timeout)

    def clear(self):
        """Forget what was read so far."""
        self.seen = ""

    def drain(self, seconds):
        """Everything that arrives in the next ``seconds``."""
        self.seen = ""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.seen += self.serial.read(4096).decode("latin-1")
        return self.seen

    def close(self):
        """Close the port."""
        self.serial.close()


def _has_final_result(text):
    lines = text.split("\r\n")[:-1]  # complete lines only
    return any(line in ("OK", "ERROR", "NO CARRIER") or line.startswith("+CME ERROR:") for line in lines)


@pytest.fixture(params=sorted(EMULATORS))
def family(request):
    return request.param


@pytest.fixture
def modem(family, network):
    emulator = EMULATORS[family](network, MODEM_NUMBER)
    emulator.ring_interval = 0.4  # RING and +CCWA repeat this often (3 s on the real thing)
    yield emulator
    emulator.close()


@pytest.fixture
def port(modem):
    opened = Port(modem.at.path)
    opened.command("ATE0")
    yield opened
    opened.close()


def in_a_call(port, modem, network, ccwa="AT+CCWA=1"):
    """Switch call waiting on with ``ccwa`` and answer a call from FIRST; return its caller."""
    if ccwa:
        assert "OK" in port.command(ccwa)
    first = VirtualCaller(network, FIRST, send_tone=600)
    first.dial(MODEM_NUMBER)
    port.expect(FIRST)
    assert "OK" in port.command("ATA")
    assert first.answered.wait(2)
    return first


def test_without_call_waiting_a_second_caller_hears_busy(port, modem, network):
    in_a_call(port, modem, network, ccwa=None)
    with pytest.raises(NumberBusy):
        VirtualCaller(network, SECOND).dial(MODEM_NUMBER)
    assert "+CCWA" not in port.seen


@pytest.mark.parametrize("command", ["AT+CCWA=1", "AT+CCWA=1,1", "AT+CCWA=1,1,1"])
def test_a_waiting_caller_is_announced_with_ccwa_again_and_again(port, modem, network, family, command):
    first = in_a_call(port, modem, network, ccwa=command)
    second = VirtualCaller(network, SECOND)
    second.dial(MODEM_NUMBER)
    port.clear()
    port.until(lambda seen: seen.count(CCWA[family] + "\r\n") >= 3, timeout=3)  # repeated like RING
    assert RINGS[family] + "\r\n" not in port.seen and "+CLIP" not in port.seen
    assert modem.waiting_call is second.call and second.call.state == "ringing"
    assert not second.answered.is_set() and second.heard_seconds() == 0  # it rings: silence
    assert first.call.state == "active" and not first.ended.is_set()


@pytest.mark.parametrize("family", ["sim800", "sim7600", "ec25"])
def test_a_waiting_call_is_also_pushed_as_state_5_where_asked(port, modem, network, family):
    """With AT+CLCC=1 (SIMCom) or "ccinfo" (Quectel) the waiting call is also reported as state 5."""
    port.command({"sim800": "AT+CLCC=1", "sim7600": "AT+CLCC=1", "ec25": 'AT+QINDCFG="ccinfo",1,0'}[family])
    in_a_call(port, modem, network)
    port.clear()
    VirtualCaller(network, SECOND).dial(MODEM_NUMBER)
    state = (f'+QIND: "ccinfo",2,1,5,0,0,"{SECOND}",145' if family == "ec25"
             else f'+CLCC: 2,1,5,0,0,"{SECOND}",145')
    text = port.expect(CCWA[family])
    assert text.index(state) < text.index(CCWA[family])


def test_clcc_lists_the_active_and_the_waiting_call(port, modem, network):
    in_a_call(port, modem, network)
    VirtualCaller(network, SECOND).dial(MODEM_NUMBER)
    listing = port.command("AT+CLCC")
    assert f'+CLCC: 1,1,0,0,0,"{FIRST}",145' in listing
    assert f'+CLCC: 2,1,5,0,0,"{SECOND}",145' in listing


def test_a_third_caller_hears_busy(port, modem, network):
    in_a_call(port, modem, network)
    VirtualCaller(network, SECOND).dial(MODEM_NUMBER)
    with pytest.raises(NumberBusy):
        VirtualCaller(network, "+359888000003").dial(MODEM_NUMBER)


def test_when_the_first_call_ends_the_waiting_one_rings(port, modem, network, family):
    first = in_a_call(port, modem, network)
    second = VirtualCaller(network, SECOND)
    second.dial(MODEM_NUMBER)
    port.expect(CCWA[family])
    port.clear()
    first.hang_up()
    text = port.expect(f'+CLIP: "{SECOND}"')
    assert text.index(RINGS[family]) < text.index("+CLIP")
    end = "^CEND:1" if family == "e1550" else "NO CARRIER"
    assert text.index(end) < text.index(RINGS[family])  # the first call's end, then the ring
    port.clear()
    port.until(lambda seen: seen.count(f'+CLIP: "{SECOND}"') >= 2)  # it rings on, as any call
    assert "+CCWA" not in port.seen
    assert "OK" in port.command("ATA")
    assert second.answered.wait(2)


def test_when_the_box_hangs_up_the_waiting_call_rings_after_the_ok(port, modem, network, family):
    in_a_call(port, modem, network)
    second = VirtualCaller(network, SECOND)
    second.dial(MODEM_NUMBER)
    port.expect(CCWA[family])
    text = port.command("ATH")
    assert "OK" in text
    port.expect(f'+CLIP: "{SECOND}"')
    assert port.seen.index("OK") < port.seen.index(RINGS[family])


def test_a_waiting_caller_who_gives_up_just_stops(port, modem, network, family):
    """SIM800 says nothing; the SIM7600 pushes +CLCC stat 6 (after AT+CLCC=1), the Quectel
    its "ccinfo" -1, the Huawei ^CEND for call 2 (chan_dongle's at_response_cend)."""
    setup = {"sim7600": "AT+CLCC=1", "ec25": 'AT+QINDCFG="ccinfo",1,0'}.get(family)
    if setup:
        port.command(setup)
    first = in_a_call(port, modem, network)
    second = VirtualCaller(network, SECOND)
    second.dial(MODEM_NUMBER)
    port.expect(CCWA[family])
    second.hang_up()
    said = port.drain(0.3)
    expected = {"sim800": None, "sim7600": f'+CLCC: 2,1,6,0,0,"{SECOND}",145',
                "e1550": "^CEND:2,0,104,16", "ec25": f'+QIND: "ccinfo",2,1,-1,0,0,"{SECOND}",145'}[family]
    assert expected is None or expected in said
    assert "NO CARRIER" not in said and "VOICE CALL: END" not in said and "+CCWA" not in said
    assert "+CCWA" not in port.drain(1.0)  # two ring intervals, and no more +CCWA
    assert modem.waiting_call is None and first.call.state == "active"
    port.clear()
    first.hang_up()
    port.expect("^CEND:1" if family == "e1550" else "NO CARRIER")
    time.sleep(0.6)
    assert RINGS[family] not in port.seen  # nothing left to ring


def test_chld_0_turns_the_waiting_caller_away_and_chld_1_takes_it(port, modem, network, family):
    first = in_a_call(port, modem, network)
    second = VirtualCaller(network, SECOND)
    second.dial(MODEM_NUMBER)
    port.expect(CCWA[family])
    assert "OK" in port.command("AT+CHLD=0")
    assert second.ended.wait(2) and second.call.end_cause == "busy"
    assert first.call.state == "active"
    third = VirtualCaller(network, "+359888000003")
    third.dial(MODEM_NUMBER)
    port.expect('"+359888000003"')
    assert "OK" in port.command("AT+CHLD=1")
    assert first.ended.wait(2) and third.answered.wait(2)
    assert "+CME ERROR: 3" in port.command("AT+CHLD=0")  # nobody waits now


def test_the_ccwa_setting_can_be_read_and_the_service_switched_off(port, modem, network):
    assert "+CCWA: 0" in port.command("AT+CCWA?")
    port.command("AT+CCWA=1")
    assert "+CCWA: 1\r\n" in port.command("AT+CCWA?")
    assert "+CCWA: 1,1" in port.command("AT+CCWA=1,2")
    assert "+CCWA: (0,1)" in port.command("AT+CCWA=?")
    port.command("AT+CCWA=1,0")  # the network's service off: a second caller hears busy
    assert "+CCWA: 0,1" in port.command("AT+CCWA=1,2")
    in_a_call(port, modem, network, ccwa=None)
    with pytest.raises(NumberBusy):
        VirtualCaller(network, SECOND).dial(MODEM_NUMBER)


def test_a_power_cycle_forgets_call_waiting(port, modem, network, family):
    in_a_call(port, modem, network)
    second = VirtualCaller(network, SECOND)
    second.dial(MODEM_NUMBER)
    port.expect(CCWA[family])
    modem.power_cycle()
    assert second.ended.wait(2)  # the waiting caller is cut off with the modem
    port.command("ATE0")
    assert "+CCWA: 0" in port.command("AT+CCWA?")
    in_a_call(port, modem, network, ccwa=None)
    with pytest.raises(NumberBusy):
        VirtualCaller(network, SECOND).dial(MODEM_NUMBER)


def test_a_withheld_waiting_caller_on_the_quectel(network):
    modem = EMULATORS["ec25"](network, MODEM_NUMBER)
    port = Port(modem.at.path)
    try:
        port.command("ATE0")
        in_a_call(port, modem, network)
        VirtualCaller(network, "").dial(MODEM_NUMBER)
        port.expect('+CCWA: "",128,1,,1')  # CLI validity 1: withheld by the caller
    finally:
        port.close()
        modem.close()


# --- callers who speak a WAV file and press keys in-band ------------------------------

def write_wav(path, frequency, seconds, rate=8000, channels=1):
    """A sine tone as a 16-bit WAV file."""
    count = int(rate * seconds)
    samples = [int(8000 * math.sin(2 * math.pi * frequency * n / rate)) for n in range(count)]
    data = b"".join(value.to_bytes(2, "little", signed=True) * channels for value in samples)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)
    return str(path)


def test_wav_frames_of_a_telephony_file_are_its_samples(tmp_path):
    path = write_wav(tmp_path / "tone.wav", 500, 0.5)
    frames = wav_frames(path)
    assert len(frames) == 25 and all(len(frame) == 320 for frame in frames)
    with wave.open(path) as wav:
        assert b"".join(frames) == wav.readframes(wav.getnframes())


def test_wav_frames_converts_other_rates_and_channels(tmp_path):
    frames = wav_frames(write_wav(tmp_path / "stereo.wav", 500, 0.5, rate=44100, channels=2))
    assert 24 <= len(frames) <= 26 and all(len(frame) == 320 for frame in frames)
    assert max(frame_level(frame) for frame in frames) > 6000


@pytest.fixture
def world(tmp_path):
    config = {"modems": [{"line": "gsm1", "model": "sim7600", "number": MODEM_NUMBER}], "phones": []}
    built = VirtualWorld(config, str(tmp_path))
    yield built
    built.close()


def answer_on_the_wire(world):
    """Be the box on gsm1's ports: answer the next call and open PCM audio."""
    port = Port(world.modems["gsm1"].at.path)
    port.command("ATE0")
    port.expect("+CLIP:", timeout=5)
    port.command("ATA")
    port.command("AT+CPCMREG=1")
    return port


def read_audio(path, seconds):
    """Read the box's downlink off the audio port for ``seconds``, writing silence up."""
    audio = serial.Serial(path, timeout=0.02)
    received = b""
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            audio.write(bytes(320))
            received += audio.read(640)
    finally:
        audio.close()
    return received


def place_in_background(world, **options):
    """Place a call from FIRST on gsm1 in a thread; its result lands in the dict returned."""
    results = {}
    thread = threading.Thread(target=lambda: results.update(world.place_call("gsm1", FIRST, **options)))
    thread.start()
    return thread, results


def test_a_caller_speaks_a_wav_file_once_answered(world, tmp_path):
    path = write_wav(tmp_path / "voice.wav", 700, 1.0, rate=16000)
    thread, results = place_in_background(world, hold=2.5, audio=path)
    port = answer_on_the_wire(world)
    received = read_audio(world.modems["gsm1"].audio.path, 2.0)
    thread.join(10)
    port.close()
    frames = [received[i:i + 320] for i in range(0, len(received) - 319, 320)]
    loud = sum(1 for frame in frames if frame_level(frame) > 6000)
    assert 40 <= loud <= 52  # about one second of the file's tone, then silence
    assert frame_level(frames[-1]) < 100
    assert results["answered"] and results["audio_seconds"] == 1.0


def test_keys_in_band_arrive_as_tones_not_as_reports(world):
    thread, results = place_in_background(world, hold=2.5, digits="42", inband=True)
    port = answer_on_the_wire(world)
    received = read_audio(world.modems["gsm1"].audio.path, 2.0)
    thread.join(10)
    detector = DtmfDetector()
    heard = [digit for i in range(0, len(received) - 319, 320) for digit in detector.feed(received[i:i + 320])]
    assert heard == ["4", "2"]
    assert "+RXDTMF" not in port.seen and results["inband"] is True
    port.close()


def test_keys_out_of_band_arrive_as_reports(world):
    thread, results = place_in_background(world, hold=2.0, digits="42")
    port = answer_on_the_wire(world)
    port.expect("+RXDTMF: 2", timeout=5)
    assert "+RXDTMF: 4" in port.seen
    thread.join(10)
    port.close()


def test_the_audio_file_must_be_an_absolute_path_to_a_readable_file(world, tmp_path):
    with pytest.raises(TwinError, match="absolute path"):
        world.place_call("gsm1", FIRST, audio="voice.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(TwinError, match="cannot read the audio file"):
        world.place_call("gsm1", FIRST, audio=str(tmp_path / "junk.wav"))
