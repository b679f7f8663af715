"""Real modems as they misbehave (../shared/MODEMS.md), each quirk on an emulator at the wire."""
import glob
import os
import queue
import threading
import time

import pytest

from appliance.lines import LineRunner
from firmware import pdu
from firmware.at import ATChannel
from firmware.detect import FAMILIES, probe
from firmware.errors import ATCommandError, LineStateError
from hardware.virtual.families import EMULATORS, Ec25Emulator, HuaweiEmulator, Sim800Emulator, Sim7600Emulator
from hardware.virtual.phones import VirtualCaller, frame_level

from .conftest import MODEM_NUMBER, wait_for
from .test_gsm_families import Events

CALLER = "+359888123456"
# gammu's test dump tests/at-ussd/Uissue358-Quectel_M35.dump (gammu issue 358): UCS2 hex, DCS 15.
M35_USSD = ('+CUSD: 2,"00480061007600690020006B0065007200650074003A0020003000460074002E0020004600650'
            '06C007400F6006C007400F60074007400200065006700790065006E006C00650067003A0020003700370037'
            '003700460074002C002800650062006200F6006C0020007600E0007300E00072006C00E0007300720061002'
            '00069007300200066006F0072006400EC007400680061007400F2003A00200037003700370037004600740029'
            '002E0020004400EC006A00630073006F006D00610067003A002000420065006E0063007300F200200041002E'
            '00200055006A002000540065006C0065006B006F006D002000F6006E006B00690073007A006F006C006700E0'
            '006C00F2003A0020002A0031003100310023",15')
M35_TEXT = ("Havi keret: 0Ft. Feltöltött egyenleg: 7777Ft,(ebböl vàsàrlàsra is fordìthatò: 7777Ft). "
            "Dìjcsomag: Bencsò A. Uj Telekom önkiszolgàlò: *111#")
FAMILY_IDS = sorted(EMULATORS)


def _hears_tone(line):
    """Whether the caller's tone has reached the box through the line's audio port."""
    frame = line.audio.read_frame()
    return frame is not None and frame_level(frame) > 300


def _open(modem, events=None):
    return FAMILIES[modem.family](modem.at.path, events or Events(), audio_port=modem.audio.path, name="q1")


@pytest.fixture
def opened():
    """Open emulators and drivers, closed after the test in reverse order."""
    things = []
    yield things
    for thing in reversed(things):
        thing.close()


# --- USSD whose DCS lies -------------------------------------------------------------------


def test_ucs2_ussd_under_dcs_15_is_decoded_by_its_content():
    payload = M35_USSD.split('"')[1]
    assert pdu.decode_ussd(payload, 15) == M35_TEXT
    assert pdu.decode_ussd(payload, 15, packed=True) == M35_TEXT  # a Huawei in UCS2 mode does it too
    packed = pdu.pack_septets(pdu.gsm7_encode("Balance: 12.50 BGN")).hex().upper()
    assert pdu.decode_ussd(packed, 15, packed=True) == "Balance: 12.50 BGN"
    assert pdu.decode_ussd("Your balance is 5 EUR", 15) == "Your balance is 5 EUR"
    assert pdu.decode_ussd(pdu.ucs2_hex_encode("Баланс: 5 лв"), 15) == "Баланс: 5 лв"


@pytest.mark.parametrize("family", ["ec25", "e1550"])
def test_the_m35_reply_reaches_the_user_as_text(network, opened, family):
    modem = EMULATORS[family](network, MODEM_NUMBER)
    opened.append(modem)
    modem.ussd_reply_line = lambda text: M35_USSD  # the network answers as gammu's M35 dump
    line = _open(modem)
    opened.append(line)
    assert line.ussd("*100#") == M35_TEXT


# --- framing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["crcrlf", "bare"])
@pytest.mark.parametrize("family", FAMILY_IDS)
def test_lines_framed_crcrlf_or_without_leading_crlf(network, opened, family, framing):
    modem = EMULATORS[family](network, MODEM_NUMBER)
    modem.framing = framing
    opened.append(modem)
    events = Events()
    line = _open(modem, events)
    opened.append(line)
    info = line.info()
    assert info["imei"] == modem.imei and info["operator"] == "VIRTUAL GSM" and info["registration"] == "home"
    VirtualCaller(network, CALLER).dial(MODEM_NUMBER)
    assert events.next("incoming").data["number"] == CALLER


def test_a_result_glued_to_the_next_line_is_two_lines(network, opened):
    modem = HuaweiEmulator(network, MODEM_NUMBER)
    modem.framing = "bare"
    opened.append(modem)
    urcs = queue.Queue()
    channel = ATChannel(modem.at.path, urcs.put, name="glued")
    opened.append(channel)
    channel.command("ATE0")
    modem.glue_next_error = True
    # The ERROR has no line end: only the next line (a URC here) completes it, as
    # chan_dongle's at_read.c sees "ERROR+CNUM:" on these dongles.
    threading.Timer(0.3, modem._urc, args=("+CREG: 1,4CA,81DE445",)).start()
    with pytest.raises(ATCommandError):
        channel.command("AT+BOGUS", timeout=3)
    assert urcs.get(timeout=2) == "+CREG: 1,4CA,81DE445"


# --- unprompted network reports --------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_network_urcs_any_moment_even_inside_answers(network, opened, family):
    modem = EMULATORS[family](network, MODEM_NUMBER)
    modem.noise, modem.noise_interval = True, 0.05
    opened.append(modem)
    events = Events()
    line = _open(modem, events)
    opened.append(line)
    for _ in range(3):
        info = line.info()
        assert info["model"] == modem.model and info["imei"] == modem.imei
        assert info["registration"] == "home" and info["signal_dbm"] == -113 + 2 * modem.rssi
    caller = VirtualCaller(network, CALLER)
    caller.dial(MODEM_NUMBER)
    assert events.next("incoming").data["number"] == CALLER
    line.answer()
    events.next("connected")
    caller.hang_up()
    events.next("ended")
    assert line.send_sms("+359888000111", "noise") and modem.sent_sms == [("+359888000111", "noise")]
    assert line.ussd("*100#") == modem.balance


def test_sim800_time_reports_are_among_its_urcs(network, opened):
    modem = Sim800Emulator(network, MODEM_NUMBER)
    assert any(urc.startswith("*PSUTTZ:") for urc in modem.noise_urcs())
    assert any(urc.startswith("+CTZV:") for urc in modem.noise_urcs())
    modem.close()


# --- SIM800: AT+CSCS="HEX" ------------------------------------------------------------------------


def test_sim800_left_in_hex_charset_answers_ussd_empty_and_the_driver_sets_gsm(network, opened):
    modem = Sim800Emulator(network, MODEM_NUMBER, charset="HEX")
    opened.append(modem)
    urcs = queue.Queue()
    channel = ATChannel(modem.at.path, urcs.put, name="hex")
    channel.command('AT+CUSD=1,"*100#",15')
    assert urcs.get(timeout=3) == '+CUSD: 0,"",15'  # TinyGSM #192
    channel.close()
    line = _open(modem)
    opened.append(line)
    assert line.ussd("*100#") == modem.balance
    assert 'AT+CSCS="GSM"' in modem.commands_seen


# --- SIM7600: the PCM port that dies after a call --------------------------------------------------


class Runner:
    """A LineRunner on an emulated modem, with its states and events collected."""

    def __init__(self, config, tmp_path):
        self.events, self.states = queue.Queue(), []
        self.runner = LineRunner(config, str(tmp_path), lambda line_id, event: self.events.put(event),
                                 lambda line_id, state: self.states.append(dict(state)), poll_seconds=3600,
                                 port_patterns=config.get("patterns", ()))
        self.runner._boot_seconds = 0.2
        self.runner.start()

    def next(self, kind, timeout=10):
        """The next event of ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.kind == kind:
                return event

    def up(self):
        """Wait until the line is up; return its driver."""
        wait_for(lambda: self.runner.driver is not None and self.states and self.states[-1]["state"] == "up")
        return self.runner.driver

    def close(self):
        """Stop the runner."""
        self.runner.stop()


def _call_in(runner, network, pcm_check=0.5):
    driver = runner.up()
    driver.pcm_check_seconds = pcm_check
    caller = VirtualCaller(network, CALLER, send_tone=800)
    caller.dial(MODEM_NUMBER)
    runner.next("incoming")
    runner.runner.submit("answer", lambda line: line.answer())
    runner.next("connected")
    return caller


def test_sim7600_dead_pcm_is_found_and_cured_by_a_reset_and_other_lines_go_on(network, opened, tmp_path):
    modem = Sim7600Emulator(network, MODEM_NUMBER, pcm_fault=True)
    other = Ec25Emulator(network, "+359700000002")
    opened += [modem, other]
    runner = Runner({"id": "gsm1", "driver": "sim7600", "port": modem.at.path, "audio_port": modem.audio.path},
                    tmp_path)
    neighbour = Runner({"id": "gsm2", "driver": "ec25", "port": other.at.path, "audio_port": other.audio.path},
                       tmp_path)
    opened += [runner, neighbour]
    neighbour.up()
    first = _call_in(runner, network)
    frames = runner.runner.driver.audio
    wait_for(lambda: frames.frames_received > 50)  # frames flow (past the check): no reset
    first.hang_up()
    runner.next("ended")
    assert modem.resets == 0
    second = _call_in(runner, network)  # the port has half-died: CPCMREG=1 says OK, no frames
    assert runner.next("audio_dead").data["reason"].startswith("no audio frames")
    assert runner.next("ended").data["cause"] == "modem reset"
    runner.next("power_cycled")
    assert second.ended.wait(5)
    wait_for(lambda: modem.resets == 1)
    assert any(state.get("error", "") and "modem reset" in state["error"] for state in runner.states)
    third = _call_in(runner, network)
    wait_for(lambda: runner.runner.driver.audio.frames_received > 25)
    third.hang_up()
    assert [state["state"] for state in neighbour.states] == ["up"]


# --- Huawei with voice locked ---------------------------------------------------------------------


@pytest.mark.parametrize("voice", ["locked", "error"])
def test_huawei_with_voice_locked_says_so_instead_of_failing_a_call(network, opened, voice):
    modem = HuaweiEmulator(network, MODEM_NUMBER, voice=voice)
    opened.append(modem)
    assert probe(modem.at.path)["voice"] == "locked by firmware"
    line = _open(modem)
    opened.append(line)
    assert line.info()["voice"] == "locked by firmware"
    with pytest.raises(LineStateError, match="voice locked by firmware"):
        line.dial("+359888000111")
    assert line.ussd("*100#") == modem.balance  # the line still does what it can


def test_huawei_with_voice_reports_it_ok(network, opened):
    modem = HuaweiEmulator(network, MODEM_NUMBER)
    opened.append(modem)
    assert probe(modem.at.path)["voice"] == "ok"


# --- Quectel EC25 -----------------------------------------------------------------------------------


def test_ec25_reporting_calls_as_dsci(network, opened):
    modem = Ec25Emulator(network, MODEM_NUMBER, dsci=True)
    opened.append(modem)
    events = Events()
    line = _open(modem, events)
    opened.append(line)
    caller = VirtualCaller(network, CALLER, send_tone=800)
    caller.dial(MODEM_NUMBER)
    assert events.next("incoming").data["number"] == CALLER
    line.answer()
    events.next("connected")
    wait_for(lambda: _hears_tone(line))
    caller.hang_up()
    assert events.next("ended").data["cause"] == "remote"
    assert any(c == "AT^DSCI=1" for c in modem.commands_seen)


def test_ec25_cms_350_is_sent_again(network, opened, monkeypatch):
    from firmware import gsm

    monkeypatch.setattr(gsm, "SMS_RETRY_SECONDS", 0.05)
    modem = Ec25Emulator(network, MODEM_NUMBER, sms_failures=1)
    opened.append(modem)
    line = _open(modem)
    opened.append(line)
    assert len(line.send_sms("+359888000111", "after a 350")) == 1
    assert modem.sent_sms == [("+359888000111", "after a 350")]
    modem.sms_failures = 5
    with pytest.raises(ATCommandError, match="350"):
        line.send_sms("+359888000111", "never")


def test_ec25_gps_sentences_on_the_at_port(network, opened):
    modem = Ec25Emulator(network, MODEM_NUMBER, nmea=True)
    modem.noise_interval = 0.05
    opened.append(modem)
    urcs = queue.Queue()
    channel = ATChannel(modem.at.path, urcs.put, name="nmea")
    # The clash as a plain client sees it: sentences among the answer's lines are skipped.
    assert channel.command("AT+CGMM") == ["EC25"]
    channel.close()
    line = _open(modem)
    opened.append(line)
    assert line.info()["model"] == "EC25" and not modem.nmea  # the driver turned GPS output off


def test_ec25_left_in_usb_audio_class_mode_still_carries_calls_on_serial(network, opened):
    modem = Ec25Emulator(network, MODEM_NUMBER, pcm_mode=2)
    opened.append(modem)
    events = Events()
    line = _open(modem, events)
    opened.append(line)
    assert line.pcm_mode == 2
    caller = VirtualCaller(network, CALLER, send_tone=800)
    caller.dial(MODEM_NUMBER)
    events.next("incoming")
    line.answer()  # AT+QPCMV=0;+QPCMV=1,0;A puts voice back on the serial port
    events.next("connected")
    wait_for(lambda: _hears_tone(line))
    assert modem.pcm_mode == 0
    caller.hang_up()


# --- re-enumeration ----------------------------------------------------------------------------------


def test_a_modem_back_under_another_tty_name_is_found_by_its_imei(network, opened, tmp_path):
    modem = Sim7600Emulator(network, MODEM_NUMBER, imei="861234567890999")
    opened.append(modem)
    dev = tmp_path / "dev"
    dev.mkdir()
    os.symlink(modem.at.path, dev / "ttyUSB2")
    runner = Runner({"id": "gsm1", "driver": "auto", "imei": modem.imei, "audio_port": str(dev / "audio"),
                     "patterns": [str(dev / "ttyUSB*")]}, tmp_path)
    opened.append(runner)
    os.symlink(modem.audio.path, dev / "audio")
    runner.up()
    assert runner.states[-1]["imei"] == modem.imei
    # udev follows the kernel: the old names vanish, the device comes back as ttyUSB7.
    for name in glob.glob(str(dev / "*")):
        os.unlink(name)
    new_at = modem.reenumerate()
    os.symlink(new_at, dev / "ttyUSB7")
    os.symlink(modem.audio.path, dev / "audio")
    runner.next("down")
    wait_for(lambda: runner.states[-1]["state"] == "up" and runner.runner.driver is not None, timeout=30)
    assert runner.runner.driver.channel.name == "gsm1"
    assert runner.runner.driver.info()["imei"] == modem.imei
