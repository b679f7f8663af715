"""Every IVR node type end to end on the virtual network, with notifications to real peers.

One box: a language choice, a menu, digit collection, information by SMS (Cyrillic,
in several parts), forwarding, voicemail (e-mailed with the message attached and posted
to a signed webhook), a queue, a blacklist, a campaign that closes one line, and an
operator who pauses and resumes by SMS from their own phone.
"""
import email
import os
import threading

import pytest

from appliance.config import demo_config
from appliance.control import ControlClient
from appliance.notify import verify_signature

from .conftest import Box, wait_for
from .test_notify import Receiver, serve_smtp, stop_smtp

SECRET = "a long webhook secret"
OPERATOR = "+359700000301"
FORWARD_TO = "+359700000310"
INFO_SMS = ("Прием 2026: документи от 1 до 20 юли, изпити на 25 юли, резултати на 5 август. "
            "Адрес: бул. Цар Освободител 15, София.")


def ivr_config(smtp_port, webhook_url):
    config = demo_config()
    config["settings"].update(recording="mono", recording_format="wav", missed_sms="We will call you back.")
    config["lines"] = [
        {"id": line, "driver": "sim7600", "port": f"dev/{line}-at", "audio_port": f"dev/{line}-audio",
         "flow": "ivr", "outbound": False} for line in ("in1", "in2")
    ] + [{"id": line, "driver": "sim7600", "port": f"dev/{line}-at", "audio_port": f"dev/{line}-audio",
          "inbound": False} for line in ("out1", "out2")] + [
        {"id": "hw1", "driver": "e1550", "port": "dev/hw1-at", "audio_port": "dev/hw1-audio", "flow": "ivr",
         "outbound": False}]
    config["operators"] = [{"id": "op1", "name": "Operator One", "number": OPERATOR, "groups": ["sales"]}]
    config["queues"] = [{"id": "sales", "groups": ["sales"], "ring_timeout": 10, "max_wait": 60}]
    config["flows"] = [
        {"id": "ivr", "start": "lang", "nodes": {
            "lang": {"type": "language", "prompt": "choose_language", "options": {"1": "en", "2": "bg"},
                     "timeout": 3, "next": "menu"},
            "menu": {"type": "menu", "prompt": "menu_main", "timeout": 4, "retries": 1, "default": "bye",
                     "options": {"1": "appno", "2": "info", "3": "fwd", "4": "vm", "5": "sales"}},
            "appno": {"type": "collect", "field": "application", "min": 6, "max": 8, "terminator": "#",
                      "timeout": 5, "next": "bye"},
            "info": {"type": "sms", "text": INFO_SMS, "prompt": "sms_sent", "next": "bye"},
            "fwd": {"type": "forward", "number": FORWARD_TO, "timeout": 15, "next": "bye"},
            "vm": {"type": "voicemail", "max_seconds": 10, "next": "bye"},
            "sales": {"type": "queue", "queue": "sales"},
            "bye": {"type": "hangup", "prompt": "goodbye"},
        }},
        {"id": "season_over", "start": "closed", "nodes": {
            "closed": {"type": "callback", "prompt": "closed", "next": "bye"},
            "bye": {"type": "hangup", "prompt": "goodbye"},
        }},
    ]
    config["campaigns"] = [{"id": "closing", "start": "2000-01-01", "end": "2999-12-31", "lines": ["in2"],
                            "flow": "season_over"}]
    config["blacklist"] = [{"number": "+359666*", "note": "prank calls"}]
    config["notifications"] = {
        "email": {"host": "127.0.0.1", "port": smtp_port, "from": "box@hotline.test"},
        "email_to": ["head@uni.test"], "webhooks": [webhook_url], "webhook_secret": SECRET,
        "events": ["call.missed", "voicemail", "callback.done"],
    }
    config["virtual"] = {
        "modems": [{"line": line, "model": "sim7600", "number": f"+35970000040{n}"}
                   for n, line in enumerate(("in1", "in2", "out1", "out2"), start=1)]
        + [{"line": "hw1", "model": "e1550", "number": "+359700000409"}],
        "phones": [{"number": OPERATOR, "answer_after": 1.0, "accept_after": 0.5},
                   {"number": FORWARD_TO, "answer_after": 1.0, "accept_key": ""}],
    }
    return config


@pytest.fixture(scope="module")
def peers():
    """A local SMTP server and a webhook receiver, as the box's notifications see them."""
    smtp = serve_smtp(password="")
    hook = Receiver()
    yield smtp, hook
    hook.close()
    stop_smtp(smtp)


@pytest.fixture(scope="module")
def ivr_box(tmp_path_factory, peers):
    smtp, hook = peers
    box = Box(tmp_path_factory.mktemp("ivr"))
    box.configure(ivr_config(smtp.server_address[1], hook.url))
    box.start("twin", "engine")
    yield box
    box.stop()


def call(box, line, caller, digits="", hold=6.0, tone=None, inband=False):
    twin = ControlClient(os.path.join(box.data_dir, "twin.sock"), timeout=hold + 60)
    return twin.request("call", line=line, digits=digits, hold=hold, tone=tone, inband=inband, **{"from": caller})


def last_call_from(box, number):
    """The newest finished call from ``number``, with its events."""
    finished = wait_for(lambda: [c for c in box.engine.request("calls", last=200)
                                 if c["caller"] == number and c["role"] == "caller" and c["ended_at"]], timeout=20)
    return box.engine.request("call", id=finished[0]["id"])


def kinds(call_record, kind):
    return [event for event in call_record["events"] if event["kind"] == kind]


def twin_sms(box, to):
    return ControlClient(os.path.join(box.data_dir, "twin.sock")).request("sms_log", to=to)


def test_digits_are_collected_into_the_call_record(ivr_box):
    call(ivr_box, "in1", "+359888100001", digits="111234567#", hold=7)
    record = last_call_from(ivr_box, "+359888100001")
    assert record["collected"] == '{"application": "1234567"}'
    assert [e["node"] for e in kinds(record, "ivr")] == ["lang", "menu", "appno", "bye"]
    assert record["language"] == "en" and record["outcome"] == "ivr" and record["flow"] == "ivr"


def test_keys_as_tones_reach_the_menu_through_the_inband_detector(ivr_box):
    """A Huawei dongle without ^DDTMF: the keys are only in the caller's audio."""
    status = {line["id"]: line for line in ivr_box.status()["lines"]}
    assert status["hw1"]["inband_dtmf"] is True
    call(ivr_box, "hw1", "+359888100007", digits="11765432#", hold=10, inband=True)
    record = last_call_from(ivr_box, "+359888100007")
    assert record["collected"] == '{"application": "765432"}'
    assert record["digits"] == "11765432#"


def test_a_bulgarian_caller_gets_the_dates_by_sms_in_several_parts(ivr_box):
    call(ivr_box, "in1", "+359888100002", digits="22", hold=8)
    record = last_call_from(ivr_box, "+359888100002")
    assert record["language"] == "bg"
    chosen = next(i for i, e in enumerate(record["events"]) if e["kind"] == "language")
    assert {e["language"] for e in record["events"][chosen:] if e["kind"] == "prompt"} == {"bg"}
    sms = wait_for(lambda: twin_sms(ivr_box, "+359888100002"), timeout=20)
    assert sms[0]["text"] == INFO_SMS  # three UCS2 parts, joined again by the phone


def test_a_caller_is_forwarded_and_bridged_through_the_box(ivr_box):
    call(ivr_box, "in1", "+359888100003", digits="13", hold=9, tone=1000)
    record = last_call_from(ivr_box, "+359888100003")
    assert record["outcome"] == "forwarded" and kinds(record, "bridged")
    legs = wait_for(lambda: [c for c in ivr_box.engine.request("calls", last=50)
                             if c["parent_id"] == record["id"] and c["ended_at"]], timeout=20)
    assert [(leg["role"], leg["callee"], leg["outcome"]) for leg in legs] == [("forward", FORWARD_TO, "answered")]
    # The caller hung up: the box ended the leg and wrote its end first, so that the
    # caller's durable final record carries both to disk with one fsync.
    assert legs[0]["ended_by"] == "box" and legs[0]["ended_at"] <= record["ended_at"]


def test_voicemail_is_journaled_emailed_with_the_message_and_posted_signed(ivr_box, peers):
    smtp, hook = peers
    call(ivr_box, "in1", "+359888100004", digits="14", hold=12, tone=800)
    record = last_call_from(ivr_box, "+359888100004")
    assert record["outcome"] == "voicemail" and kinds(record, "voicemail")
    message = wait_for(lambda: [m for m in smtp.messages if b"voicemail" in m[2].lower()], timeout=30)[0]
    parsed = email.message_from_bytes(message[2])
    attachments = [part for part in parsed.walk() if part.get_content_disposition() == "attachment"]
    assert attachments and attachments[0].get_content_type() == "audio/wav"
    assert len(attachments[0].get_payload(decode=True)) > 8000  # seconds of the caller's tone
    posted = wait_for(lambda: [r for r in hook.requests if r["headers"]["X-Hotline-Event"] == "voicemail"],
                      timeout=30)[0]
    assert verify_signature(SECRET, posted["body"], posted["headers"]["X-Hotline-Signature"])


def test_a_blacklisted_caller_is_refused_without_an_answer(ivr_box):
    result = call(ivr_box, "in1", "+359666000111", hold=3)
    assert not result["answered"]
    record = last_call_from(ivr_box, "+359666000111")
    assert record["outcome"] == "blocked" and record["answered_at"] is None


def test_a_campaign_switches_the_line_to_its_own_flow(ivr_box, peers):
    _, hook = peers
    call(ivr_box, "in2", "+359888100005", hold=10)
    record = last_call_from(ivr_box, "+359888100005")
    assert (record["flow"], record["campaign"], record["outcome"]) == ("season_over", "closing", "call-back")
    tasks = ivr_box.engine.request("callbacks")
    assert [t["reason"] for t in tasks if t["number"] == "+359888100005"] == ["requested"]
    assert wait_for(lambda: twin_sms(ivr_box, "+359888100005"), timeout=20)[0]["text"] == "We will call you back."
    wait_for(lambda: [r for r in hook.requests if r["headers"]["X-Hotline-Event"] == "call.missed"], timeout=30)


def test_an_operator_pauses_and_resumes_by_sms_from_their_own_phone_only(ivr_box):
    twin = ControlClient(os.path.join(ivr_box.data_dir, "twin.sock"))

    def state():
        return {op["id"]: op["state"] for op in ivr_box.status()["operators"]}["op1"]

    twin.request("sms", line="in1", text="PAUSE", **{"from": "+359888999999"})  # not their phone
    twin.request("sms", line="in1", text="pause", **{"from": OPERATOR})
    wait_for(lambda: state() == "paused")
    reply = wait_for(lambda: twin_sms(ivr_box, OPERATOR), timeout=20)
    assert "paused" in reply[0]["text"]
    twin.request("sms", line="in1", text="READY", **{"from": OPERATOR})
    wait_for(lambda: state() == "ready")


def test_a_queued_caller_reaches_the_operator(ivr_box):
    call(ivr_box, "in1", "+359888100006", digits="15", hold=10, tone=1000)
    record = last_call_from(ivr_box, "+359888100006")
    assert record["outcome"] == "answered" and record["operator"] == "op1" and record["queue"] == "sales"


def test_a_second_caller_on_a_busy_line_is_journaled_as_missed_with_a_call_back(ivr_box):
    first = threading.Thread(target=call, args=(ivr_box, "in1", "+359888100008"), kwargs={"digits": "15", "hold": 12})
    first.start()
    wait_for(lambda: [c for c in ivr_box.status()["calls"] if c["caller"] == "+359888100008" and c["talk_seconds"]])
    call(ivr_box, "in1", "+359888100009", hold=2)  # rings as call waiting, or once the line is free
    first.join()
    rows = wait_for(lambda: [c for c in ivr_box.engine.request("calls", last=100)
                             if c["caller"] == "+359888100009" and c["outcome"] == "missed"])
    events = [e["kind"] for e in ivr_box.engine.request("call", id=rows[0]["id"])["events"]]
    assert events[:4] == ["ring", "call_waiting", "ended", "callback_task"]  # then the call-back may start
    tasks = [t for t in ivr_box.engine.request("callbacks") if t["number"] == "+359888100009"]
    assert [t["reason"] for t in tasks] == ["all lines busy"]
