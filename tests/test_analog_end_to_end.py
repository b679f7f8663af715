"""The admissions hot-line on an analog line: an emulated V.253 voice modem under the real engine.

The demo flow (greeting, menu, queues) answers a landline exactly as it answers a SIM:
a caller's key reaches the menu as a <DLE> digit, the operator is dialled over a GSM line
(or over a second analog line), accepts and is bridged, and the call is recorded. A
caller who hangs up is detected by the busy tone the exchange plays, journaled as
abandoned (or as ivr before choosing) and the modem goes back on hook.
"""
import os
import wave

import numpy as np
import pytest

from appliance.config import demo_config
from appliance.control import ControlClient

from .conftest import Box, wait_for

ANALOG = "+359700000060"
ANALOG_OUT = "+359700000061"
GSM = "+359700000062"
OPERATOR = "+359700000100"
SLOW_OPERATOR = "+359700000101"
CALLER_TONE = 1000


def analog_config(operator_line):
    """The demo box on a landline; operators reached over ``operator_line`` ("gsm" or "analog")."""
    config = demo_config()
    config["settings"].update(recording="stereo", recording_format="wav", modem_poll_seconds=60)
    config["lines"] = [{"id": "analog", "name": "Landline", "driver": "voicemodem", "port": "dev/analog-at",
                        "flow": "main", "outbound": False, "rings": 2, "power": {"kind": "virtual"}}]
    if operator_line == "gsm":
        config["lines"].append({"id": "gsm1", "driver": "sim7600", "port": "dev/gsm1-at",
                                "audio_port": "dev/gsm1-audio", "inbound": False})
        modems = [("gsm1", "sim7600", GSM)]
    else:
        config["lines"].append({"id": "analog2", "driver": "voicemodem", "port": "dev/analog2-at", "inbound": False})
        modems = [("analog2", "voicemodem", ANALOG_OUT)]
    # Master's programmes go to an operator whose mobile takes long to answer, so its callers wait.
    config["operators"].append({"id": "op2", "name": "Slow operator", "number": SLOW_OPERATOR, "groups": ["slow"]})
    next(q for q in config["queues"] if q["id"] == "master")["groups"] = ["slow"]
    config["virtual"] = {
        "modems": [{"line": "analog", "model": "voicemodem", "number": ANALOG}]
        + [{"line": line, "model": model, "number": number} for line, model, number in modems],
        "phones": [{"number": OPERATOR, "answer_after": 1.0, "accept_after": 1.0},
                   {"number": SLOW_OPERATOR, "answer_after": 60.0}],
    }
    return config


def start_box(tmp_path_factory, operator_line):
    box = Box(tmp_path_factory.mktemp(f"analog-{operator_line}"))
    box.configure(analog_config(operator_line))
    box.start("twin", "engine")
    return box


@pytest.fixture(scope="module")
def analog_box(tmp_path_factory):
    box = start_box(tmp_path_factory, "gsm")
    yield box
    box.stop()


def twin(box, timeout=90):
    return ControlClient(os.path.join(box.data_dir, "twin.sock"), timeout=timeout)


def call(box, number, digits, hold):
    """A caller on the landline: presses ``digits`` (network DTMF the modem hears), stays ``hold`` s."""
    return twin(box, hold + 60).request("call", line="analog", digits=digits, hold=hold, tone=CALLER_TONE,
                                        **{"from": number})


def modem_off_hook(box, line="analog"):
    return next(m for m in twin(box).request("status")["modems"] if m["line"] == line)["off_hook"]


def caller_row(box, call_id):
    return box.engine.request("call", id=call_id)


def journal_row(box, number):
    calls = [c for c in box.engine.request("calls", last=50) if c["caller"] == number and c["role"] == "caller"]
    return calls[0] if calls else None


def test_the_landline_is_up_as_a_voice_modem(analog_box):
    lines = {line["id"]: line for line in analog_box.hotline_json("status")["lines"]}
    assert lines["analog"]["family"] == "voicemodem"
    assert lines["analog"]["format"] == "131 Mu-Law (8-bit)" and lines["analog"]["inband_dtmf"] is False


def test_a_caller_on_the_landline_reaches_the_operator_through_the_menu(analog_box):
    result = call(analog_box, "+359888100001", "1", hold=22)
    assert result["answered"] and result["heard_seconds"] > 3  # the greeting and the operator reached them
    row = wait_for(lambda: (r := journal_row(analog_box, "+359888100001")) and r["ended_at"] and r, timeout=30)
    assert row["line_id"] == "analog" and row["digits"] == "1" and row["queue"] == "bachelor"
    assert row["outcome"] == "answered" and row["operator"] == "op1" and row["talk_seconds"] > 10
    events = [e["kind"] for e in caller_row(analog_box, row["id"])["events"]]
    assert events.index("queue_join") < events.index("operator_answered") < events.index("bridged")
    with wave.open(os.path.join(analog_box.data_dir, row["recording"])) as wav:
        assert wav.getnchannels() == 2
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    tail = samples[-8000 * 3:-800].astype(float)  # the end of the call: caller and operator talking
    for channel, tone in ((0, CALLER_TONE), (1, 440)):
        spectrum = np.abs(np.fft.rfft(tail[:, channel]))
        assert abs(np.argmax(spectrum) * 8000 / len(tail) - tone) < 10
    wait_for(lambda: not modem_off_hook(analog_box), timeout=10)


def test_a_caller_who_hangs_up_in_the_queue_is_detected_by_busy_tone_and_abandoned(analog_box):
    result = call(analog_box, "+359888100002", "2", hold=10)  # master's: the operator is slow
    assert result["answered"] and result["ended_by"] == "caller"
    row = wait_for(lambda: (r := journal_row(analog_box, "+359888100002")) and r["ended_at"] and r, timeout=30)
    assert row["outcome"] == "abandoned" and row["queue"] == "master" and row["ended_by"] == "caller"
    wait_for(lambda: not modem_off_hook(analog_box), timeout=10)
    with open(os.path.join(analog_box.data_dir, "engine.log"), encoding="utf-8", errors="replace") as log:
        assert "the far end is gone (busy tone)" in log.read()
    tasks = [task["number"] for task in analog_box.engine.request("callbacks")]
    assert "+359888100002" in tasks  # nobody is lost: a call-back


def test_a_caller_who_hangs_up_during_the_greeting_is_journaled_as_ivr(analog_box):
    result = call(analog_box, "+359888100003", "", hold=2)
    assert result["answered"]
    row = wait_for(lambda: (r := journal_row(analog_box, "+359888100003")) and r["ended_at"] and r, timeout=30)
    assert row["outcome"] == "ivr" and row["ended_by"] == "caller"
    wait_for(lambda: not modem_off_hook(analog_box), timeout=10)


def test_the_operator_is_dialled_over_a_second_analog_line_and_bridged(tmp_path_factory):
    box = start_box(tmp_path_factory, "analog")
    try:
        result = call(box, "+359888100004", "1", hold=25)
        assert result["answered"]
        row = wait_for(lambda: (r := journal_row(box, "+359888100004")) and r["ended_at"] and r, timeout=30)
        assert row["outcome"] == "answered" and row["operator"] == "op1"
        legs = [c for c in box.engine.request("calls", last=50) if c["role"] == "operator"]
        assert legs and legs[0]["line_id"] == "analog2" and legs[0]["outcome"] == "answered"
        assert legs[0]["callee"] == OPERATOR
        events = [e["kind"] for e in caller_row(box, row["id"])["events"]]
        assert "bridged" in events
        wait_for(lambda: not modem_off_hook(box) and not modem_off_hook(box, "analog2"), timeout=10)
    finally:
        box.stop()
