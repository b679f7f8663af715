"""SIP lines in the whole box: sipp calls in through the IVR and the queue to an operator on
baresip, GSM callers reach the SIP operator, SIP callers reach a mobile operator, and a
provider's refusals show on the line and in the journal.

Real peers on loopback only: sipp (sip-tester) as caller, provider and registrar,
baresip as the operator's softphone, the emulated SIM7600s of the virtual twin.
"""
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from appliance.config import demo_config
from appliance.control import ControlClient

from .conftest import Box, wait_for
from .sip_peers import (EVENT_NAMES, SIPP_PCAPS, Baresip, Sipp, _dtmf_event, free_udp_port, g711_encode,
                        heard_tone, rtp_packet, sine, tone_blocks, write_pcap)

pytest.importorskip("pjsua2", reason="pjsua2 is not installed: the box runs with SIP lines disabled")

CALLER_TONE = 1000  # what every caller says
OPERATOR_TONE = 440  # what the operator's softphone says
SIP_OPERATOR = "op_sip"


def sip_box_config(sip_port, baresip_uri, refusing_uri):
    """The demo box plus a SIP line and three kinds of operator: a softphone, a mobile, a refusing peer."""
    config = demo_config()
    config["settings"].update(recording="stereo", recording_format="wav", callback_hours="never")
    config["time_conditions"].append({"id": "never", "closed": True})  # no call-backs while the test runs
    for line in config["lines"]:
        if line["id"] == "gsm1":
            line["flow"] = "gsm_to_sip"
        if line["id"] == "sip1":
            line.update(sip_port=sip_port, flow="sip", channels=3)
    config["operators"] = [
        {"id": SIP_OPERATOR, "name": "Softphone", "number": baresip_uri, "groups": ["sip"]},
        {"id": "op_mobile", "name": "Mobile", "number": "+359700000100", "groups": ["mobile", "admissions"]},
        {"id": "op_refusing", "name": "Refusing", "number": refusing_uri, "groups": ["refusing"]},
    ]
    queue = {"strategy": "ring_all", "ring_timeout": 15, "max_wait": 40, "announce_every": 60, "retry_pause": 30}
    config["queues"] += [dict(queue, id=q, groups=[q]) for q in ("sip", "mobile", "refusing")]
    config["prompts"] += [
        {"id": "sip_menu", "language": "en", "text": "For the office, press 1. For information, press 2. "
                                                     "For a mobile, press 3."},
        {"id": "info", "language": "en", "text": "We are open every day."},
    ]
    config["flows"] += [
        {"id": "sip", "name": "SIP callers", "start": "menu", "nodes": {
            "menu": {"type": "menu", "prompt": "sip_menu", "timeout": 8, "retries": 1, "default": "bye",
                     "options": {"1": "office", "2": "info", "3": "mobile", "4": "refusing"}},
            "office": {"type": "queue", "queue": "sip", "overflow": "bye"},
            "mobile": {"type": "queue", "queue": "mobile", "overflow": "bye"},
            "refusing": {"type": "queue", "queue": "refusing", "overflow": "bye"},
            "info": {"type": "play", "prompt": "info", "next": "bye"},
            "bye": {"type": "hangup"}}},
        {"id": "gsm_to_sip", "name": "GSM callers to the office", "start": "office", "nodes": {
            "office": {"type": "queue", "queue": "sip", "overflow": "bye"}, "bye": {"type": "hangup"}}},
    ]
    return config


@pytest.fixture(scope="module")
def peers():
    """The operator's softphone (baresip, auto-answer, 440 Hz) and a peer that answers 503."""
    phone = Baresip(tone=OPERATOR_TONE).start()
    refusing = Sipp.uas("uas_503.xml", calls=20, timeout=600).start()
    yield phone, refusing
    phone.cleanup()
    refusing.cleanup()


@pytest.fixture(scope="module")
def sip_box(tmp_path_factory, peers):
    """The box with its SIP line on a known port, twin and engine as processes."""
    phone, refusing = peers
    port = free_udp_port()
    box = Box(tmp_path_factory.mktemp("sipbox"))
    box.configure(sip_box_config(port, phone.uri, refusing.uri()))
    box.start("twin", "engine")
    box.sip_port = port
    yield box
    box.stop()


def digits_then_tone_pcap(path, digits, frequency, seconds):
    """RTP of a caller who presses ``digits`` (RFC 2833) and then keeps talking (a tone)."""
    ssrc, sequence, timestamp, when, packets = 0x5151, 100, 0, 0.3, []
    for digit in digits:
        events, sequence = _dtmf_event(EVENT_NAMES.index(digit), sequence, timestamp, ssrc, 101)
        packets += [(when + delay, rtp) for delay, rtp in events]
        when, timestamp = when + 0.5, timestamp + 4000
    encoded = g711_encode(sine(frequency, seconds), "PCMA")
    for offset in range(0, len(encoded) - 159, 160):
        packets.append((when, rtp_packet(8, sequence, timestamp, ssrc, encoded[offset:offset + 160])))
        sequence, timestamp, when = sequence + 1, timestamp + 160, when + 0.02
    write_pcap(path, packets)
    return path


def sip_caller(box, digits, *, talk_seconds=14.0, end="bye"):
    """sipp calling the SIP line: presses ``digits``, says the caller's tone, hangs up after it
    (or, with ``end="wait"``, waits for the box to hang up)."""
    caller = Sipp.uac(f"127.0.0.1:{box.sip_port}", timeout=60, end=end)
    pcap = digits_then_tone_pcap(os.path.join(caller.directory, "caller.pcap"), digits, CALLER_TONE, talk_seconds)
    caller.values.update({"PLAY": _play(pcap), "PLAY_MS": int(talk_seconds * 1000) + 800})
    return caller


def call_through(box, digits, talk_seconds):
    """One sipp caller pressing ``digits``; once the box is idle again, (caller's row, operator's leg)."""
    caller = sip_caller(box, digits, talk_seconds=talk_seconds)
    with caller:
        caller.wait()
    wait_for(lambda: not box.status()["calls"], timeout=20)
    calls = journal(box)
    row = next(c for c in calls if c["line_id"] == "sip1" and c["role"] == "caller")
    return row, next(c for c in calls if c["role"] == "operator" and c["parent_id"] == row["id"])


def journal(box, last=50):
    """The newest calls, newest first."""
    return box.engine.request("calls", last=last)


def channel_tail(path, channel, seconds=4.0):
    """The last ``seconds`` (but the very end) of a stereo recording's channel, as 16-bit PCM."""
    with wave.open(path) as wav:
        assert wav.getnchannels() == 2
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    return samples[-int(8000 * seconds):-800, channel].astype("<i2").tobytes()


def assert_heard(pcm, frequency):
    """``frequency`` is what is heard most of the time; the per-block levels show when not."""
    assert heard_tone(pcm, frequency) > 0.5, tone_blocks(pcm, frequency)


def events(box, call_id):
    return box.engine.request("call", id=call_id)["events"]


# --- sipp through the IVR and the queue to baresip --------------------------------------------------


@pytest.fixture(scope="module")
def sip_to_softphone(sip_box, peers):
    """One sipp caller who presses 1 and talks to the operator on baresip; what everyone heard."""
    phone, _ = peers
    caller = sip_caller(sip_box, "1")
    with caller.listener() as heard_by_caller, caller:  # sipp starts as the block is entered
        code = caller.wait()
        caller_heard = heard_by_caller.pcm()
        assert code == 0, caller.errors()
    wait_for(lambda: not sip_box.status()["calls"], timeout=20)
    calls = journal(sip_box)
    row = next(c for c in calls if c["line_id"] == "sip1" and c["role"] == "caller")
    leg = next(c for c in calls if c["role"] == "operator" and c["parent_id"] == row["id"])
    return {"code": code, "errors": caller.errors(), "caller_heard": caller_heard,
            "operator_heard": phone.received_pcm(), "row": row, "leg": leg}


def test_the_sipp_caller_went_through_the_menu_and_the_queue_to_the_softphone(sip_to_softphone, sip_box):
    row, leg = sip_to_softphone["row"], sip_to_softphone["leg"]
    assert sip_to_softphone["code"] == 0, sip_to_softphone["errors"]
    assert row["caller"] == "+359888123456" and row["digits"].startswith("1")
    assert (row["outcome"], row["queue"], row["operator"]) == ("answered", "sip", SIP_OPERATOR)
    assert (leg["line_id"], leg["outcome"], leg["callee"]) == ("sip1", "answered", sip_box_operator_uri(sip_box))
    kinds = [event["kind"] for event in events(sip_box, row["id"])]
    assert kinds.index("prompt") < kinds.index("dtmf") < kinds.index("operator_answered") < kinds.index("bridged")


def sip_box_operator_uri(box):
    return next(o["number"] for o in box.engine.request("config")["config"]["operators"] if o["id"] == SIP_OPERATOR)


def test_the_operator_heard_the_caller_and_the_caller_heard_the_operator(sip_to_softphone):
    operator_heard, caller_heard = sip_to_softphone["operator_heard"], sip_to_softphone["caller_heard"]
    assert len(operator_heard) > 8000 * 2 * 3 and len(caller_heard) > 8000 * 2 * 3
    assert_heard(operator_heard[-8000 * 2 * 4:], CALLER_TONE)
    assert_heard(caller_heard[-8000 * 2 * 4:], OPERATOR_TONE)


def test_both_sides_of_the_sip_bridge_are_in_the_recording(sip_to_softphone, sip_box):
    path = os.path.join(sip_box.data_dir, sip_to_softphone["row"]["recording"])
    assert_heard(channel_tail(path, 0), CALLER_TONE)  # left: the caller
    assert_heard(channel_tail(path, 1), OPERATOR_TONE)  # right: the operator


def test_sipps_own_audio_and_rfc2833_pcaps_take_the_caller_down_another_branch(sip_box):
    """sipp plays the speech of its g711a.pcap, then its dtmf_2833_2.pcap: the menu's branch 2."""
    caller = Sipp.uac(f"127.0.0.1:{sip_box.sip_port}", timeout=60, end="wait")  # the box hangs up after it
    speech, key = os.path.join(SIPP_PCAPS, "g711a.pcap"), os.path.join(SIPP_PCAPS, "dtmf_2833_2.pcap")
    caller.values.update({"PLAY": f'{_play(speech)}<pause milliseconds="1500"/>{_play(key)}', "PLAY_MS": 100})
    with caller:
        assert caller.wait() == 0, caller.errors()
    wait_for(lambda: not sip_box.status()["calls"], timeout=20)
    row = journal(sip_box, 1)[0]
    prompts = [e.get("prompt") for e in events(sip_box, row["id"]) if e["kind"] == "prompt"]
    assert (row["line_id"], row["digits"], row["queue"]) == ("sip1", "2", None) and "info" in prompts


def _play(pcap):
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'


# --- GSM and SIP bridged both ways -----------------------------------------------------------------------


def test_a_gsm_caller_reaches_the_sip_operator_both_ways_and_recorded(sip_box, peers):
    phone, _ = peers
    twin = ControlClient(os.path.join(sip_box.data_dir, "twin.sock"), timeout=90)
    result = twin.request("call", line="gsm1", hold=14, tone=CALLER_TONE, **{"from": "+359888000777"})
    assert result["answered"]
    wait_for(lambda: not sip_box.status()["calls"], timeout=20)
    row = next(c for c in journal(sip_box) if c["line_id"] == "gsm1" and c["role"] == "caller")
    assert (row["outcome"], row["operator"]) == ("answered", SIP_OPERATOR)
    assert_heard(phone.received_pcm()[-8000 * 2 * 4:], CALLER_TONE)  # the GSM caller's tone
    path = os.path.join(sip_box.data_dir, row["recording"])
    assert_heard(channel_tail(path, 0), CALLER_TONE)
    assert_heard(channel_tail(path, 1), OPERATOR_TONE)


def test_a_sip_caller_reaches_a_mobile_operator_over_a_gsm_line(sip_box):
    row, leg = call_through(sip_box, "3", talk_seconds=12.0)
    assert (row["outcome"], row["operator"]) == ("answered", "op_mobile")
    assert leg["line_id"] in ("gsm1", "gsm2") and leg["callee"] == "+359700000100"
    path = os.path.join(sip_box.data_dir, row["recording"])
    assert_heard(channel_tail(path, 0, seconds=3.0), CALLER_TONE)  # the virtual mobile says 440 Hz back
    assert_heard(channel_tail(path, 1, seconds=3.0), 440)


# --- refusals ---------------------------------------------------------------------------------------------


def test_a_peer_answering_503_is_on_the_line_and_in_the_journal(sip_box):
    _, leg = call_through(sip_box, "4", talk_seconds=4.0)
    assert leg["outcome"] == "failed" and leg["operator"] == "op_refusing"
    status = next(e for e in events(sip_box, leg["id"]) if e["kind"] == "sip_status")
    assert (status["code"], status["reason"]) == (503, "Service Unavailable")
    line = sip_box.engine.request("line", line="sip1")
    assert line["line"]["last_refusal"] == "503 Service Unavailable"
    assert any(e["kind"] == "call_refused" and e["detail"]["code"] == 503 for e in line["events"])


def test_more_callers_than_channels_are_refused_busy_and_journaled_missed(sip_box):
    """Three channels: the fourth caller at once hears 486 and is a missed call with a call-back task."""
    callers = [sip_caller(sip_box, "", talk_seconds=6.0) for _ in range(3)]
    extra = Sipp.uac(f"127.0.0.1:{sip_box.sip_port}", expect=486, caller="+359888000999", timeout=30)
    try:
        for caller in callers:
            caller.start()
        wait_for(lambda: len(sip_box.status()["calls"]) >= 3, timeout=15)
        extra.start()
        assert extra.wait() == 0, extra.errors()
    finally:
        for caller in callers:
            caller.cleanup()
        extra.cleanup()
    wait_for(lambda: not sip_box.status()["calls"], timeout=30)
    missed = next(c for c in journal(sip_box) if c["caller"] == "+359888000999")
    assert missed["outcome"] == "missed" and missed["line_id"] == "sip1"
    assert any(t["number"] == "+359888000999" for t in sip_box.engine.request("callbacks"))


@pytest.fixture
def refused_trunk(tmp_path):
    """A box whose only line registers to a sipp registrar that answers 403."""
    registrar = Sipp.uas("uas_register.xml", code=403, calls=5, timeout=60).start()
    config = demo_config()
    config["lines"] = [{"id": "trunk", "driver": "sip", "bind": "127.0.0.1", "sip_port": 0, "rtp_port": 0,
                        "registrar": f"sip:127.0.0.1:{registrar.port}", "username": "3592000",
                        "password": "not-the-password", "flow": "main"}]
    config["virtual"] = {"modems": [], "phones": []}
    (tmp_path / "box").mkdir()
    box = Box(tmp_path / "box")
    box.configure(config)
    log = open(os.path.join(box.data_dir, "engine.log"), "ab")
    box.processes["engine"] = subprocess.Popen([sys.executable, "-m", "appliance.cli", "engine", "--data",
                                                box.data_dir], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    yield box
    box.stop()
    registrar.cleanup()


def test_a_refused_registration_shows_on_the_line_and_in_the_journal(refused_trunk):
    # A first start speaks the demo's prompts (espeak-ng, a cold cache) before it opens the line.
    line = wait_for(lambda: _refused(refused_trunk), timeout=90)
    assert line["state"] == "down" and "403 Forbidden" in line["error"]
    details = refused_trunk.engine.request("line", line="trunk")
    assert any(e["kind"] == "registration_refused" and e["detail"]["code"] == 403 for e in details["events"])


def _refused(box):
    status = box.status()
    line = status and status["lines"][0]
    return line if line and line["state"] == "down" and "registration" in (line.get("error") or "") else None
