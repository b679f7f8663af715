"""The admissions scenario of the brief, end to end on the virtual network.

Twenty callers ring twenty emulated SIM7600 lines at once; a three-option menu sends
them to three queues; five operators on mobiles in two groups are dialled over five
more emulated modems. One operator's mobile goes to voicemail, one operator refuses;
some callers give up at chosen moments, one asks for a call-back. Every caller's journal
row is checked, and so is every operator leg.
"""
import os
import threading
import time
import wave

import numpy as np
import pytest

from appliance.config import demo_config
from appliance.control import ControlClient

from .conftest import Box, wait_for

CALLERS = 20
OPERATOR_LINES = 5
OPERATORS = {  # id: (number, groups, behaviour of their mobile)
    "a1": ("+359700000201", ["bachelor"], "answer"),
    "a2": ("+359700000202", ["bachelor"], "answer"),
    "a3": ("+359700000203", ["bachelor"], "voicemail"),
    "m1": ("+359700000204", ["master"], "answer"),
    "m2": ("+359700000205", ["master"], "refuse"),
}
GOOD_OPERATORS = {"a1", "a2", "m1"}
CALLBACK_PHONE = "+359888000020"  # the caller who asks for a call-back can be rung back here
CALLER_TONE = 1000  # what every caller "says"; operators' mobiles send 440 Hz


def caller_number(i):
    return f"+3598880000{i:02d}"


def scenario():
    """(caller index, digits, seconds on the line, start delay): what each caller does."""
    plan = [(i, "1", 40, 0.0) for i in range(1, 9)]          # bachelor programmes
    plan += [(i, "2", 40, 0.0) for i in range(9, 14)]        # master's programmes
    plan += [(i, "3", 40, 0.0) for i in range(14, 17)]       # dormitories: both groups, ring all
    plan += [(17, "", 3, 0.0)]                               # hangs up during the greeting
    plan += [(18, "1", 10, 2.0), (19, "2", 12, 2.0)]         # give up while queued, far back
    plan += [(20, "35", 8, 1.0)]                             # dormitories, then 5: call me back
    return plan


def admissions_config():
    config = demo_config()
    # Call-backs of missed callers wait for the next morning (a closed call-back window), so
    # the journal holds still once the callers are done; a caller who pressed the call-back
    # key keeps their turn in the queue and is called back at once.
    config["settings"].update(recording="stereo", recording_format="wav", modem_poll_seconds=60,
                              missed_sms="We will call you back.", callback_hours="tomorrow")
    config["time_conditions"].append({"id": "tomorrow", "closed": True})
    inbound = [f"in{i:02d}" for i in range(1, CALLERS + 1)]
    outbound = [f"out{i}" for i in range(1, OPERATOR_LINES + 1)]
    config["lines"] = (
        [{"id": line, "driver": "sim7600", "port": f"dev/{line}-at", "audio_port": f"dev/{line}-audio",
          "flow": "main", "outbound": False} for line in inbound]
        + [{"id": line, "driver": "sim7600", "port": f"dev/{line}-at", "audio_port": f"dev/{line}-audio",
            "inbound": False} for line in outbound])
    config["operators"] = [{"id": op_id, "name": op_id.upper(), "number": number, "groups": groups}
                           for op_id, (number, groups, _) in OPERATORS.items()]
    config["queues"] = [
        {"id": "bachelor", "groups": ["bachelor"], "strategy": "round_robin", "ring_timeout": 8,
         "max_wait": 25, "announce_every": 10, "callback_key": "5", "retry_pause": 1},
        {"id": "master", "groups": ["master"], "strategy": "fixed_order", "ring_timeout": 8,
         "max_wait": 25, "announce_every": 10, "callback_key": "5", "retry_pause": 1},
        {"id": "dormitories", "groups": ["bachelor", "master"], "strategy": "ring_all", "ring_timeout": 8,
         "max_wait": 25, "announce_every": 10, "callback_key": "5", "retry_pause": 1},
    ]
    config["virtual"] = {
        "modems": [{"line": line, "model": "sim7600", "number": f"+3597000{n:05d}"}
                   for n, line in enumerate(inbound + outbound, start=1)],
        "phones": [{"number": number, "behaviour": behaviour, "answer_after": 1.0, "accept_after": 1.0}
                   for number, _, behaviour in OPERATORS.values()]
        + [{"number": CALLBACK_PHONE, "behaviour": "answer", "answer_after": 1.0, "accept_key": ""}],
    }
    return config


@pytest.fixture(scope="module")
def admissions(tmp_path_factory):
    """The box with the admissions configuration, after every caller of the scenario is done."""
    box = Box(tmp_path_factory.mktemp("admissions"))
    box.configure(admissions_config())
    try:
        results = _run_scenario(box)
        yield box, results
    finally:
        box.stop()


def _run_scenario(box):
    """Every caller of the scenario at once; returns what each caller's phone saw."""
    box.start("twin", "engine")
    results = {}

    def call(index, digits, hold, delay):
        time.sleep(delay)
        twin = ControlClient(os.path.join(box.data_dir, "twin.sock"), timeout=hold + 60)
        results[index] = twin.request("call", line=f"in{index:02d}", digits=digits, hold=hold, tone=CALLER_TONE,
                                      **{"from": caller_number(index)})

    threads = [threading.Thread(target=call, args=plan) for plan in scenario()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # The called-back caller and their operator would talk for ever: a supervisor hangs up.
    called_back = wait_for(lambda: [c for c in box.status()["calls"] if c["role"] == "callback"
                                    and c["talk_seconds"]], timeout=60)
    box.engine.request("hangup", call=called_back[0]["id"])
    wait_for(lambda: not box.status()["calls"], timeout=30)
    return results


def caller_rows(box):
    calls = box.engine.request("calls", last=500)
    return {call["caller"]: call for call in calls if call["role"] == "caller"}


def operator_legs(box):
    return [call for call in box.engine.request("calls", last=500) if call["role"] == "operator"]


def test_every_caller_was_answered_by_the_box_and_journaled_once(admissions):
    box, results = admissions
    assert sorted(results) == list(range(1, CALLERS + 1))
    assert all(result["answered"] for result in results.values())
    calls = [c for c in box.engine.request("calls", last=500) if c["role"] == "caller"]
    assert sorted(c["caller"] for c in calls) == sorted(caller_number(i) for i in range(1, CALLERS + 1))
    assert all(c["ended_at"] and c["outcome"] in ("answered", "abandoned", "voicemail", "call-back", "ivr")
               for c in calls)


def test_answered_callers_were_put_through_to_operators_who_accepted(admissions):
    box, _ = admissions
    answered = [c for c in caller_rows(box).values() if c["outcome"] == "answered"]
    assert len(answered) >= 3
    for call in answered:
        assert call["operator"] in GOOD_OPERATORS
        assert call["wait_seconds"] is not None and call["talk_seconds"] > 0
        events = [e["kind"] for e in box.engine.request("call", id=call["id"])["events"]]
        assert events.index("queue_join") < events.index("operator_answered") < events.index("bridged")
    groups = {call["queue"]: call["operator"] for call in answered}
    assert all(OPERATORS[op][1][0] == queue for queue, op in groups.items() if queue in ("bachelor", "master"))


def test_the_voicemail_mobile_and_the_refusing_operator_never_took_a_caller(admissions):
    box, _ = admissions
    legs = operator_legs(box)
    by_operator = {}
    for leg in legs:
        by_operator.setdefault(leg["operator"], []).append(leg)
    assert by_operator["a3"] and by_operator["m2"], "both were rung"
    assert {leg["outcome"] for leg in by_operator["a3"]} <= {"not accepted", "no answer", "failed", "cancelled"}
    assert "not accepted" in {leg["outcome"] for leg in by_operator["a3"]}
    assert {leg["outcome"] for leg in by_operator["m2"]} <= {"refused", "busy", "failed", "no answer", "cancelled"}
    answered_legs = [leg for leg in legs if leg["outcome"] == "answered"]
    assert {leg["operator"] for leg in answered_legs} <= GOOD_OPERATORS


def test_callers_who_gave_up_are_abandoned_with_one_call_back_each(admissions):
    box, _ = admissions
    rows = caller_rows(box)
    assert rows[caller_number(17)]["outcome"] == "ivr"  # hung up before choosing
    for index in (18, 19):
        assert rows[caller_number(index)]["outcome"] == "abandoned"
    unserved = [c for c in rows.values() if c["outcome"] in ("abandoned", "voicemail")]
    tasks = box.engine.request("callbacks")
    numbers = [task["number"] for task in tasks]
    assert len(numbers) == len(set(numbers)), "one call-back task per caller"
    for call in unserved:
        assert call["caller"] in numbers
    sms = {row["peer"] for row in _journal_sms(box)}
    assert {c["caller"] for c in unserved} <= sms  # "we will call you back"


def test_the_caller_who_pressed_the_call_back_key_is_called_back_operator_first(admissions):
    box, _ = admissions
    row = caller_rows(box)[caller_number(20)]
    assert row["outcome"] == "call-back"
    events = [e["kind"] for e in box.engine.request("call", id=row["id"])["events"]]
    assert "queue_leave" in events and "callback_task" not in events  # the task kept the turn
    done = wait_for(lambda: [c for c in box.engine.request("calls", last=500)
                             if c["role"] == "callback" and c["outcome"] == "answered"], timeout=60)
    assert done[0]["callee"] == caller_number(20)
    assert done[0]["operator"] in GOOD_OPERATORS
    assert caller_number(20) not in [task["number"] for task in box.engine.request("callbacks")]


def test_an_answered_call_is_recorded_in_stereo_caller_left_operator_right(admissions):
    box, _ = admissions
    call = next(c for c in caller_rows(box).values() if c["outcome"] == "answered" and c["talk_seconds"] > 15)
    with wave.open(os.path.join(box.data_dir, call["recording"])) as wav:
        assert wav.getnchannels() == 2
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    tail = samples[-8000 * 3:-800].astype(float)  # the last seconds: caller and operator talking
    for channel, tone in ((0, CALLER_TONE), (1, 440)):
        spectrum = np.abs(np.fft.rfft(tail[:, channel]))
        assert abs(np.argmax(spectrum) * 8000 / len(tail) - tone) < 10


def _journal_sms(box):
    import sqlite3

    conn = sqlite3.connect(os.path.join(box.data_dir, "journal.sqlite3"))
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM sms WHERE direction = 'out'")]
    finally:
        conn.close()
