"""The SIP line driver (firmware/sip.py) against real peers: sipp scenarios and baresip.

Every call goes over UDP on loopback to a real SIP stack; audio is checked by its
frequency at the other end, keys by the events they make.
"""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

pytest.importorskip("pjsua2", reason="pjsua2 is not installed (pip install pjsua2-python)")

from firmware import sip  # noqa: E402
from firmware.errors import FirmwareError, LineStateError  # noqa: E402

from .sip_peers import (Baresip, RtpListener, Sipp, dominant_frequency, rms, sine,  # noqa: E402
                        tone_level, tone_pcap, wait_until)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Events:
    """A line's event callback that keeps every event and lets a test wait for one."""

    def __init__(self):
        self.items = []
        self.threads = set()
        self._changed = threading.Condition()

    def __call__(self, event):
        with self._changed:
            self.items.append(event)
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def of(self, kind):
        """The events of one kind so far."""
        return [e for e in self.items if e.kind == kind]

    def wait(self, kind, timeout=5.0, count=1):
        """The ``count``-th event of ``kind``, waiting for it; fails the test on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.of(kind)) >= count, timeout):
                pytest.fail(f"no {kind!r} event within {timeout} s; got {self.items}")
            return self.of(kind)[count - 1]


@pytest.fixture
def open_line():
    """Open SIP lines on loopback (any free port, calls from 127.0.0.1); closed after the test."""
    lines = []

    def opener(name="sip1", **config):
        events = Events()
        config = {"bind": "127.0.0.1", "sip_port": 0, "rtp_port": 0, "peers": ["127.0.0.1"], **config}
        line = sip.SipLine(config, events, name=name)
        lines.append(line)
        return line, events

    yield opener
    for line in lines:
        line.close()


def talk(leg, seconds, frequency=None, stop=None):
    """Be the engine's 20 ms media clock: write a tone to the leg, return the audio read from it."""
    tone = sine(frequency, seconds + 1) if frequency else b""
    received, start = [], time.monotonic()
    for tick in range(int(seconds / 0.02)):
        if stop is not None and stop():
            break
        frame = leg.audio.read_frame()
        if frame is not None:
            received.append(frame)
        leg.audio.write_frame(tone[tick * 320:(tick + 1) * 320] or bytes(320))
        time.sleep(max(0.0, start + (tick + 1) * 0.02 - time.monotonic()))
    return b"".join(received)


def uri_of(line):
    """Where sipp sends its INVITE to reach the line."""
    return f"127.0.0.1:{line.port}"


# --- the frame path ------------------------------------------------------------------

def test_frames_cross_the_swig_boundary_intact_by_the_fast_path():
    import pjsua2 as pj
    assert sip.read_frame_bytes is sip._fast_read, "the ctypes fast path was refused on this build"
    data = bytes(range(256)) + bytes(range(64))
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(data)
    assert sip.read_frame_bytes(frame.buf) == data == sip._slow_read(frame.buf)
    out = pj.MediaFrame()
    sip.write_frame_bytes(out, data[::-1])
    assert bytes(out.buf) == data[::-1] and out.size == 320


def test_a_frame_port_carries_frames_both_ways_and_silence_when_detached():
    """The Python side of one 20 ms frame in and one out, as pjmedia's clock thread runs it
    (bench/bench_sip.py measures what it costs)."""
    import pjsua2 as pj
    audio = sip.SipAudio("test")
    port = sip._FramePort()
    port.attach(audio)
    incoming = pj.MediaFrame()
    incoming.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    incoming.buf = pj.ByteVector(sine(440, 0.02))
    outgoing = pj.MediaFrame()
    frame = sine(1000, 0.02)
    port.onFrameReceived(incoming)
    assert audio.read_frame() == sine(440, 0.02)
    audio.write_frame(frame)
    port.onFrameRequested(outgoing)
    assert read_back(outgoing) == frame
    port.attach(None)  # the call ended: the port waits in the pool for the next one
    port.onFrameReceived(incoming)
    port.onFrameRequested(outgoing)
    assert audio.read_frame() is None and read_back(outgoing) == sip.SILENCE


def read_back(frame):
    return sip.read_frame_bytes(frame.buf)


# --- calls in ------------------------------------------------------------------------

def test_incoming_call_audio_both_ways_digits_and_remote_bye(open_line):
    line, events = open_line()
    info = line.info()
    assert info["family"] == "sip" and info["transport"] == "udp" and info["address"] == "127.0.0.1"
    assert info["port"] > 0 and info["model"].startswith("pjsua2 2.")
    assert info["registration"].startswith("no registrar")
    assert info["codecs"][:2] == ["PCMA/8000", "PCMU/8000"] and "opus" in info["codecs_unavailable"]
    caller = Sipp.uac(uri_of(line), tone=440, tone_seconds=1.0, digits="159#", dtmf="sipp", hold_ms=200)
    with caller, caller.listener() as far_end:
        incoming = events.wait("incoming")
        assert incoming.data["number"] == "+359888123456" and incoming.data["name"] == "Test Caller"
        assert incoming.data["channel"] == "in-1" and incoming.data["uri"].startswith("sip:+359888123456@")
        leg = line.leg("in-1")
        assert leg.audio is not None and line.info()["channels_in_use"] == 1
        leg.answer()
        assert events.wait("connected").data == {"channel": "in-1"}
        heard = talk(leg, 4.0, frequency=1000, stop=lambda: events.of("ended"))
        ended = events.wait("ended", timeout=5)
        assert caller.wait() == 0, caller.errors()
        box_sent = far_end.pcm()
    assert ended.data["cause"] == "remote" and ended.data["channel"] == "in-1" and ended.data["code"] == 200
    assert [e.data["digit"] for e in events.of("dtmf")] == list("159#")
    assert all(e.data["method"] == "rfc2833" and e.data["channel"] == "in-1" for e in events.of("dtmf"))
    assert tone_level(heard[:16000], 440) > 0.5, dominant_frequency(heard[:16000])  # the first second
    assert abs(dominant_frequency(box_sent) - 1000) < 10 and tone_level(box_sent, 1000) > 0.5
    assert len(box_sent) > 2 * 16000  # the whole call, not the first few packets
    assert events.threads == {"sip-stack"}
    assert line.info()["channels_in_use"] == 0


def test_repeated_digits_in_one_rtp_stream_and_sip_info(open_line):
    line, events = open_line()
    with Sipp.uac(uri_of(line), digits="1155", hold_ms=100) as caller:
        events.wait("incoming")
        line.leg("in-1").answer()
        events.wait("ended", timeout=8)
        assert caller.wait() == 0, caller.errors()
    with Sipp.uac(uri_of(line), digits="7*7", dtmf="info", hold_ms=100) as caller:
        events.wait("incoming", count=2)
        line.leg("in-2").answer()
        events.wait("ended", timeout=8, count=2)
        assert caller.wait() == 0, caller.errors()
    digits = [(e.data["digit"], e.data["method"], e.data["channel"]) for e in events.of("dtmf")]
    assert digits == [("1", "rfc2833", "in-1"), ("1", "rfc2833", "in-1"), ("5", "rfc2833", "in-1"),
                      ("5", "rfc2833", "in-1"), ("7", "info", "in-2"), ("*", "info", "in-2"),
                      ("7", "info", "in-2")]


def test_call_from_a_host_that_is_not_a_peer_gets_403(open_line):
    line, events = open_line(peers=["192.0.2.10", "198.51.100.0/24"])
    with Sipp.uac(uri_of(line), expect=403) as caller:
        assert caller.wait() == 0, caller.errors()
    assert "SIP/2.0 403" in caller.messages()
    assert events.items == []


def test_more_calls_than_channels_get_486_and_a_waiting_event(open_line):
    line, events = open_line(channels=1)
    with Sipp.uac(uri_of(line), hold_ms=300) as first:
        events.wait("incoming")
        line.leg("in-1").answer()
        events.wait("connected")
        with Sipp.uac(uri_of(line), expect=486, caller="+359777000111") as second:
            assert second.wait() == 0, second.errors()
        waiting = events.wait("waiting").data
        assert waiting["number"] == "+359777000111" and waiting["uri"].startswith("sip:+359777000111@")
        assert first.wait() == 0, first.errors()
    assert len(events.of("incoming")) == 1


def test_the_librarys_own_call_limit_also_answers_486_with_a_waiting_event(open_line):
    line, events = open_line(channels=64)
    limit = line.info()["stack_max_calls"]  # PJSUA_MAX_CALLS of the build: 4 in the x86_64 wheel
    assert limit is not None and limit >= 1
    at_once = ["-l", str(limit + 1), "-r", "100"]  # all the calls together
    with Sipp.uac(uri_of(line), hold_ms=800, calls=limit + 1, extra=at_once) as callers:
        wait_until(lambda: len(events.of("incoming")) + len(events.of("waiting")) == limit + 1, 5)
        for incoming in events.of("incoming"):
            line.leg(incoming.data["channel"]).answer()
        callers.wait()
        failed = callers.stats().get("FailedCall(C)")
    assert len(events.of("incoming")) == limit and len(events.of("waiting")) == 1
    assert failed == "1"


def test_local_hangup_of_a_ringing_call_declines_it(open_line):
    line, events = open_line()
    with Sipp.uac(uri_of(line), expect=603) as caller:
        events.wait("incoming")
        line.leg("in-1").hangup()
        ended = events.wait("ended")
        assert caller.wait() == 0, caller.errors()
    assert ended.data["cause"] == "local" and ended.data["code"] == 603
    with pytest.raises(LineStateError):
        line.leg("in-1").answer()


# --- calls out ----------------------------------------------------------------------------

def test_outgoing_call_answered_with_audio_both_ways(open_line):
    line, events = open_line()
    with Sipp.uas(tone=600, tone_seconds=2.0, ring_ms=300) as operator, operator.listener() as far_end:
        leg = line.leg("out-17")
        assert leg.audio is not None
        leg.dial(operator.uri())
        assert events.wait("alerting").data == {"channel": "out-17"}
        assert events.wait("connected").data == {"channel": "out-17"}
        heard = talk(leg, 1.5, frequency=1000)
        leg.hangup()
        ended = events.wait("ended")
        assert operator.wait() == 0, operator.errors()
        box_sent = far_end.pcm()
    offer = operator.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[1]
    assert "m=audio" in offer and "RTP/AVP 8 0 9 " in offer and "speex" not in offer  # the codecs asked, in order
    assert ended.data["cause"] == "local" and ended.data["channel"] == "out-17"
    assert abs(dominant_frequency(heard) - 600) < 10
    assert abs(dominant_frequency(box_sent) - 1000) < 10 and len(box_sent) > 16000
    with pytest.raises(LineStateError):
        leg.dial(operator.uri())  # a leg is one call


def test_operator_presses_1_then_hangs_up(open_line):
    line, events = open_line()
    with Sipp.uas(silence=0.3, digits="1", end="bye", hold_ms=300) as operator:
        leg = line.leg("out-2")
        leg.dial(operator.uri())
        events.wait("connected")
        assert events.wait("dtmf").data == {"digit": "1", "channel": "out-2", "method": "rfc2833"}
        ended = events.wait("ended", timeout=5)
        assert operator.wait() == 0, operator.errors()
    assert ended.data["cause"] == "remote" and ended.data["channel"] == "out-2" and ended.data["seconds"] > 0.5


@pytest.mark.parametrize("scenario, cause, code, reason", [
    ("uas_busy.xml", "busy", 486, "Busy Here"),
    ("uas_503.xml", "failed", 503, "Service Unavailable"),
])
def test_outgoing_call_refused(open_line, scenario, cause, code, reason):
    line, events = open_line()
    with Sipp.uas(scenario) as operator:
        line.leg("out-1").dial(operator.uri())
        ended = events.wait("ended")
        assert operator.wait() == 0, operator.errors()
    assert ended.data == {"cause": cause, "channel": "out-1", "code": code, "reason": reason, "seconds": 0.0}
    assert line.info()["channels_in_use"] == 0


def test_numbers_go_to_the_registrar_or_the_first_peer(open_line):
    line, _ = open_line(peers=["10.0.0.0/8", "192.0.2.7"])
    assert line.target_uri("+359888123456") == "sip:+359888123456@192.0.2.7"
    assert line.target_uri("sip:alice@192.168.1.20:5062") == "sip:alice@192.168.1.20:5062"
    lonely, _ = open_line(name="sip2", peers=["10.0.0.0/8"])
    with pytest.raises(LineStateError):
        lonely.leg("out-1").dial("+359888123456")
    with pytest.raises(LineStateError):
        line.leg("out-2").send_dtmf("12")  # not in a call
    for refused in (lambda: line.send_sms("+359888123456", "hi"), lambda: line.ussd("*100#"),
                    lambda: line.set_gain(50, 50)):
        with pytest.raises(LineStateError):
            refused()


# --- registration -------------------------------------------------------------------------

@pytest.mark.parametrize("scenario, code, state, text", [
    ("uas_register.xml", 200, "registered", "registered"),
    ("uas_register.xml", 403, "refused", "refused: 403 Forbidden"),
    ("uas_register_401.xml", None, "refused", "refused: 401 Unauthorized"),
])
def test_registration(open_line, scenario, code, state, text):
    with Sipp.uas(scenario, code=code) as registrar:
        line, events = open_line(registrar=f"sip:127.0.0.1:{registrar.port}", username="hotline",
                                 password="secret", reregister_seconds=300)
        event = events.wait("registration")
        assert registrar.wait() == 0, registrar.errors()
    assert event.data["state"] == state and event.data["code"] == (code or 401)
    assert line.info()["registration"] == text
    assert line.target_uri("0888123456") == f"sip:0888123456@127.0.0.1:{registrar.port}"


# --- baresip, a real softphone ------------------------------------------------------------

def test_baresip_answers_and_audio_and_keys_go_both_ways(open_line):
    line, events = open_line()
    with Baresip(tone=700) as phone:
        leg = line.leg("out-1")
        leg.dial(phone.uri)
        events.wait("connected")
        heard = talk(leg, 1.5, frequency=1200)
        leg.send_dtmf("42#")
        phone.send_dtmf("9*", gap=0.2)
        events.wait("dtmf", count=2)
        assert wait_until(lambda: len(phone.events("CALL_DTMF_START")) >= 3, 3), phone.events()
        leg.hangup()
        events.wait("ended")
        assert phone.wait_event("CALL_CLOSED"), phone.log()
        phone_heard = phone.received_pcm()
    assert abs(dominant_frequency(heard) - 700) < 10 and tone_level(heard, 700) > 0.8
    assert abs(dominant_frequency(phone_heard) - 1200) < 10 and rms(phone_heard) > 3000
    assert [e["param"] for e in phone.events("CALL_DTMF_START")] == ["4", "2", "#"]
    assert [e.data["digit"] for e in events.of("dtmf")] == ["9", "*"]


def test_baresip_dials_in(open_line):
    line, events = open_line()
    with Baresip(tone=500) as phone:
        phone.dial(f"sip:hotline@127.0.0.1:{line.port}")
        incoming = events.wait("incoming")
        assert incoming.data["number"] == "operator"
        line.leg(incoming.data["channel"]).answer()
        heard = talk(line.leg(incoming.data["channel"]), 1.0)
        phone.hangup()
        assert events.wait("ended").data["cause"] == "remote"
    assert abs(dominant_frequency(heard) - 500) < 10


# --- the stack's life ---------------------------------------------------------------------

def test_two_lines_close_mid_call_close_twice_and_a_new_stack():
    first_events, second_events = Events(), Events()
    config = {"bind": "127.0.0.1", "sip_port": 0, "rtp_port": 0, "peers": ["127.0.0.1"]}
    first = sip.SipLine(config, first_events, name="first")
    second = sip.SipLine(config, second_events, name="second")
    try:
        assert first.port != second.port and sip._stack.users == 2
        with Sipp.uac(uri_of(second), end="wait") as caller:  # to the second line's port
            second_events.wait("incoming")
            second.leg("in-1").answer()
            second_events.wait("connected")
            second.close()  # in the middle of the call: BYE, and the line is gone
            second.close()
            assert second_events.wait("ended").data["cause"] == "local"
            assert caller.wait() == 0, caller.errors()
        assert first_events.items == []
        with Sipp.uac(uri_of(first), hold_ms=100) as caller:
            first_events.wait("incoming")
            first.leg("in-1").answer()
            assert caller.wait() == 0, caller.errors()
    finally:
        second.close()
        first.close()
        first.close()
    assert sip._stack is None and not [t for t in threading.enumerate() if t.name == "sip-stack"]
    again = sip.SipLine(config, Events(), name="again")  # a new Endpoint in the same process
    try:
        assert again.info()["port"] > 0
    finally:
        again.close()


def test_close_from_inside_an_event_handler():
    events = Events()
    lines = []

    def handler(event):
        events(event)
        if event.kind == "incoming":
            lines[0].leg(event.data["channel"]).answer()  # runs at once: we are on the sip-stack thread
        if event.kind == "connected":
            lines[0].close()

    lines.append(sip.SipLine({"bind": "127.0.0.1", "sip_port": 0, "rtp_port": 0, "peers": ["127.0.0.1"]},
                             handler, name="self-closing"))
    with Sipp.uac(uri_of(lines[0]), end="wait") as caller:
        assert events.wait("ended").data["cause"] == "local"
        assert caller.wait() == 0, caller.errors()
    assert wait_until(lambda: sip._stack is None and not any(t.name == "sip-stack" for t in threading.enumerate()))
    lines[0].close()


def test_interpreter_exit_in_the_middle_of_a_call_is_clean():
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {ROOT!r})
        from firmware import sip
        from tests.sip_peers import Sipp
        events = []
        line = sip.SipLine({{"bind": "127.0.0.1", "sip_port": 0, "rtp_port": 0, "peers": ["127.0.0.1"]}},
                           events.append, name="exit")
        caller = Sipp.uac(f"127.0.0.1:{{line.port}}", end="wait").start()
        while not events:
            time.sleep(0.02)
        line.leg("in-1").answer()
        time.sleep(0.5)
        print("leaving with a call up", flush=True)
        caller.stop()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "leaving with a call up" in done.stdout
    assert "Assertion" not in done.stderr and "Segmentation" not in done.stderr


def test_without_pjsua2_the_line_says_why(monkeypatch):
    monkeypatch.setattr(sip, "AVAILABLE", False)
    monkeypatch.setattr(sip, "UNAVAILABLE_REASON", "pjsua2 is not installed")
    with pytest.raises(sip.SipUnavailable) as refused:
        sip.SipLine({}, lambda event: None, name="sip1")
    assert isinstance(refused.value, ImportError) and isinstance(refused.value, FirmwareError)
    assert issubclass(sip.SipTimeout, TimeoutError) and issubclass(sip.SipTimeout, FirmwareError)


def test_a_port_in_use_fails_the_open_cleanly(open_line):
    line, _ = open_line()
    with pytest.raises(FirmwareError):
        sip.SipLine({"bind": "127.0.0.1", "sip_port": line.port}, lambda event: None, name="clash")
    assert sip._stack.users == 1 and line.info()["port"] > 0


# --- small pieces -------------------------------------------------------------------------

@pytest.mark.parametrize("code, local, connected, direction, cause", [
    (200, False, True, "in", "remote"), (200, True, True, "out", "local"), (487, False, False, "in", "remote"),
    (486, False, False, "out", "busy"), (600, False, False, "out", "busy"), (603, False, False, "out", "rejected"),
    (408, False, False, "out", "no answer"), (480, False, False, "out", "no answer"),
    (487, False, False, "out", "no answer"), (503, False, False, "out", "failed"),
    (404, False, False, "out", "failed"),
])
def test_end_causes(code, local, connected, direction, cause):
    assert sip.end_cause(code, local=local, connected=connected, direction=direction) == cause


@pytest.mark.parametrize("uri, party", [
    ('"Ann Smith" <sip:+359888123456@10.0.0.1:5060>',
     ("+359888123456", "Ann Smith", "sip:+359888123456@10.0.0.1:5060")),
    ("<sip:0888123456@provider.example>", ("0888123456", "", "sip:0888123456@provider.example")),
    ('"Anonymous" <sip:anonymous@anonymous.invalid>', ("", "Anonymous", "sip:anonymous@anonymous.invalid")),
    ("sip:alice@192.168.1.20", ("alice", "", "sip:alice@192.168.1.20")),
])
def test_remote_party(uri, party):
    assert sip._remote_party(uri) == party


def test_request_uri_port():
    assert sip._request_uri_port("INVITE sip:service@127.0.0.1:5070 SIP/2.0\r\nVia: x\r\n") == 5070
    assert sip._request_uri_port("INVITE sip:+359888@10.0.0.1;user=phone SIP/2.0\r\n") == 5060
    assert sip._request_uri_port("garbage") is None


def test_tone_pcap_is_valid_rtp(tmp_path):
    path = tone_pcap(str(tmp_path / "tone.pcap"), 440, 0.2, payload="PCMU")
    assert os.path.getsize(path) == 24 + 10 * (16 + 14 + 20 + 8 + 12 + 160)
    with RtpListener() as listener:
        assert listener.port > 0


def test_a_job_that_overruns_raises_a_typed_timeout(open_line):
    line, _ = open_line()
    with pytest.raises(sip.SipTimeout) as late:
        line._stack.call(lambda: time.sleep(0.3), timeout=0.05)
    assert isinstance(late.value, TimeoutError) and isinstance(late.value, FirmwareError)
    assert line._stack.call(lambda: "still running") == "still running"
