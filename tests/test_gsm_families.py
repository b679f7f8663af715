"""Every GSM family's real driver against its emulator, through real ptys."""
import datetime
import queue
import time

import pytest

from firmware.detect import FAMILIES, family_for_model, family_for_usb, probe
from firmware.errors import ATTimeout, LineStateError, SimError
from hardware.virtual.families import EMULATORS, HuaweiEmulator
from hardware.virtual.phones import VirtualCaller, VirtualPhone, frame_level, tone_frames

from .conftest import MODEM_NUMBER, PHONE_NUMBER, wait_for

CALLER = "+359888123456"
# (family, emulator options): the Huawei twice, with and without DTMF reports.
VARIANTS = [("sim800", {}), ("sim7600", {}), ("e1550", {"ddtmf": True}), ("e1550", {}), ("ec25", {})]
IDS = ["sim800", "sim7600", "e1550-ddtmf", "e1550-inband", "ec25"]


class Events:
    """Collects a line's events so a test can wait for the next one of a kind."""

    def __init__(self):
        self.queue = queue.Queue()

    def __call__(self, event):
        self.queue.put(event)

    def next(self, kind, timeout=5):
        """The next event of ``kind``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.kind == kind:
                return event


@pytest.fixture(params=VARIANTS, ids=IDS)
def modem(request, network):
    family, options = request.param
    emulator = EMULATORS[family](network, MODEM_NUMBER, **options)
    yield emulator
    emulator.close()


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def line(modem, events):
    driver = FAMILIES[modem.family](modem.at.path, events, audio_port=modem.audio.path, name="gsm1")
    yield driver
    driver.close()


def send_paced(line, frames, count):
    for _ in range(count):  # paced like the engine's media clock
        line.audio.write_frame(next(frames))
        time.sleep(0.02)


def test_detection_by_model_and_usb_id():
    assert family_for_model("SIMCOM_SIM800L").family == "sim800"
    assert family_for_model("Model: SIMCOM_SIM7600E-H").family == "sim7600"
    assert family_for_model("E173").family == "e1550"
    assert family_for_model("EC25").family == "ec25"
    assert family_for_model("Nokia 3310") is None
    assert family_for_usb(0x12D1, 0x1001).family == "e1550"
    assert family_for_usb(0x2C7C, 0x0125).family == "ec25"


def test_probe_identifies_the_model(modem):
    found = probe(modem.at.path)
    assert found["family"] == modem.family
    assert found["imei"] == modem.imei and found["sim"] == "READY"
    assert found["operator"] == "VIRTUAL GSM" and found["registration"] == "home"


def test_info(line, modem):
    info = line.info()
    assert (info["family"], info["model"], info["imei"]) == (modem.family, modem.model, modem.imei)
    assert info["iccid"] == modem.iccid
    assert info["signal_bars"] == 3 and info["operator"] == "VIRTUAL GSM"


def test_incoming_call_audio_dtmf_both_ways_and_remote_hangup(line, modem, network, events):
    caller = VirtualCaller(network, CALLER, send_tone=1000)
    caller.dial(MODEM_NUMBER)
    assert events.next("incoming").data == {"number": CALLER}
    line.answer()
    events.next("connected")
    send_paced(line, tone_frames(440), 30)
    wait_for(lambda: caller.heard_seconds() > 0.2)
    assert frame_level(wait_for(line.audio.read_frame)) > 7000

    caller.press("4", gap=0.05)
    if line.inband_dtmf:
        # No DTMF report from this firmware: the key arrives as a tone in the audio.
        from appliance.dtmf import DtmfDetector

        detector = DtmfDetector()
        heard = wait_for(lambda: [d for f in iter(line.audio.read_frame, None) for d in detector.feed(f)])
        assert heard == ["4"]
    else:
        assert events.next("dtmf").data == {"digit": "4"}
    line.send_dtmf("7")
    wait_for(lambda: caller.dtmf_heard == ["7"])

    caller.hang_up()
    assert events.next("ended").data["cause"] == "remote"
    assert line.state == "idle"


def test_withheld_caller_id(line, network, events):
    VirtualCaller(network, "").dial(MODEM_NUMBER)
    assert events.next("incoming").data == {"number": ""}


def test_caller_who_gives_up_is_a_missed_call(line, network, events):
    caller = VirtualCaller(network, CALLER)
    caller.dial(MODEM_NUMBER)
    events.next("incoming")
    caller.hang_up()
    events.next("missed")
    with pytest.raises(LineStateError):
        line.answer()


@pytest.mark.parametrize("behaviour, cause", [("busy", "busy"), ("reject", "busy"), ("no answer", "no answer")])
def test_outgoing_call_that_does_not_connect(line, network, events, behaviour, cause):
    VirtualPhone(network, PHONE_NUMBER, behaviour=behaviour, answer_after=0.2, ring_timeout=0.5)
    line.dial(PHONE_NUMBER)
    assert events.next("ended").data["cause"] == cause
    assert line.state == "idle"


def test_outgoing_call_to_a_number_that_does_not_exist(line, events):
    line.dial("+359999999999")
    assert events.next("ended").data["cause"] in ("remote", "unassigned number")


def test_outgoing_call_rings_connects_carries_audio_and_ends_locally(line, network, events):
    phone = VirtualPhone(network, PHONE_NUMBER, answer_after=0.3, tone=600)
    line.dial(PHONE_NUMBER)
    events.next("alerting")
    events.next("connected")
    wait_for(lambda: any(frame_level(frame) > 7000 for frame in iter(line.audio.read_frame, None)))
    line.hangup()
    assert events.next("ended").data["cause"] == "local"
    assert phone.calls[0][1].ended.is_set()


CYRILLIC = ("Здравейте! Вашето обаждане е записано в приемната комисия. Ще ви се обадим утре сутринта "
            "между девет и десет часа. Моля, пригответе номера на кандидатурата си и лична карта. Благодарим!")


def test_sms_in_three_parts_both_ways_in_cyrillic(line, modem, network, events):
    assert 134 < len(CYRILLIC) <= 201  # three UCS2 parts
    references = line.send_sms(CALLER, CYRILLIC)
    assert len(references) == 3
    assert network.sms_log[-1] == (MODEM_NUMBER, CALLER, CYRILLIC)
    network.send_sms(CALLER, MODEM_NUMBER, CYRILLIC)
    message = events.next("sms").data
    assert (message["sender"], message["text"]) == (CALLER, CYRILLIC)


def test_ussd_balance_in_ucs2(line, modem):
    modem.balance = "Баланс: 12.50 лв. до 31.12.2026"
    assert line.ussd("*100#") == "Баланс: 12.50 лв. до 31.12.2026"


def test_ussd_not_supported_is_an_error(line):
    with pytest.raises(Exception, match="not supported"):
        line.ussd("*555#")


def test_network_time(line):
    clock = line.network_time()
    assert clock.tzinfo is not None
    assert abs((clock - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 120


def test_gain(line, modem):
    if line.gain_commands is None:
        with pytest.raises(LineStateError):
            line.set_gain(50, 50)
        assert line.software_gain
    else:
        line.set_gain(100, 0)
        assert len(modem.settings) >= 2


def test_hung_modem_times_out_until_power_cycled(line, modem, events):
    modem.hang()
    with pytest.raises(ATTimeout):
        line.command("AT", timeout=0.3)
    modem.power_cycle()
    line.close()
    again = FAMILIES[modem.family](modem.at.path, events, audio_port=modem.audio.path, name="gsm1")
    assert again.info()["imei"] == modem.imei
    again.close()


def test_sim_pin(network, events):
    modem = HuaweiEmulator(network, MODEM_NUMBER, pin="4321")
    try:
        with pytest.raises(SimError, match="none is configured"):
            FAMILIES["e1550"](modem.at.path, events, audio_port=modem.audio.path)
        with pytest.raises(SimError, match="refused"):
            FAMILIES["e1550"](modem.at.path, events, audio_port=modem.audio.path, pin="1111")
        line = FAMILIES["e1550"](modem.at.path, events, audio_port=modem.audio.path, pin="4321")
        assert line.info()["registration"] == "home"
        line.close()
    finally:
        modem.close()


@pytest.mark.parametrize("family", ["sim800", "sim7600", "ec25"])
def test_sms_in_text_mode_with_ucs2(network, events, family):
    modem = EMULATORS[family](network, MODEM_NUMBER)
    line = FAMILIES[family](modem.at.path, events, audio_port=modem.audio.path, sms_mode="text")
    try:
        assert line.send_sms(CALLER, "Здравейте!") == [1]
        assert "AT+CMGF=1" in modem.commands_seen and network.sms_log[-1][2] == "Здравейте!"
        assert len(line.send_sms(CALLER, CYRILLIC)) == 3  # long: sent as joined PDUs after all
        assert network.sms_log[-1][2] == CYRILLIC
        network.send_sms(CALLER, MODEM_NUMBER, "Добър ден")
        assert events.next("sms").data["text"] == "Добър ден"
    finally:
        line.close()
        modem.close()


def test_huawei_keeps_sms_in_pdu_mode(network, events):
    modem = HuaweiEmulator(network, MODEM_NUMBER)
    line = FAMILIES["e1550"](modem.at.path, events, audio_port=modem.audio.path, sms_mode="text")
    try:
        line.send_sms(CALLER, "Здравейте!")
        assert "AT+CMGF=1" not in modem.commands_seen and network.sms_log[-1][2] == "Здравейте!"
    finally:
        line.close()
        modem.close()


def test_volte_is_switched_on_for_the_quectel(network, events):
    from hardware.virtual.families import Ec25Emulator

    modem = Ec25Emulator(network, MODEM_NUMBER)
    line = FAMILIES["ec25"](modem.at.path, events, audio_port=modem.audio.path)
    try:
        line.enable_volte()
        assert modem._ims and 'AT+QCFG="ims",1' in modem.commands_seen
    finally:
        line.close()
        modem.close()


def test_a_slow_modem_is_waited_for(network, events):
    from hardware.virtual.families import Sim7600Emulator

    modem = Sim7600Emulator(network, MODEM_NUMBER)
    modem.delay = 0.1  # each answer comes late, as on a busy module
    try:
        line = FAMILIES["sim7600"](modem.at.path, events, audio_port=modem.audio.path)
        assert line.info()["imei"] == modem.imei
        line.close()
    finally:
        modem.close()


def test_gpio_power_key_pulses_the_pin():
    from gpiozero.pins.mock import MockFactory

    from firmware.power import GpioPowerKey

    factory = MockFactory()
    key = GpioPowerKey(17, pulse_seconds=0.05, pin_factory=factory)
    pin = factory.pin(17)
    key.cycle()
    states = [state for _, state in pin.states]
    assert states[-2:] == [True, False]  # pressed, then released
    key.close()
    key.close()


def test_usb_ids_of_a_pty_are_unknown(modem):
    from firmware.detect import usb_ids

    assert usb_ids(modem.at.path) is None  # a pty has no USB device behind it


def test_usb_reset_of_a_missing_device_names_it(tmp_path):
    from firmware.power import PowerError, UsbReset

    with pytest.raises(PowerError, match="/dev/bus/usb/009/099"):
        UsbReset("/dev/bus/usb/009/099").cycle()
