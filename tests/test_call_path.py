"""End to end: a call on a virtual GSM line through the real processes, ptys and pages."""
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from appliance.control import ControlClient
from web_ui import create_app

from .conftest import ADMIN, wait_for

CALLER = "+359888123456"


@pytest.fixture(scope="module")
def box(greeting_box):
    """The walking skeleton's path: a line that answers, greets and records."""
    return greeting_box


def pcm(path):
    with wave.open(path) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return wav.readframes(wav.getnframes())


@pytest.fixture(scope="module")
def first_call(box):
    """The call the issue's done-criterion describes, placed with `hotline call`."""
    return box.hotline_json("call", "--line", "gsm1", "--from", CALLER, "--digits", "12", "--hold", "4", "--json")


def test_status_shows_the_demo_lines_up(box):
    status = box.hotline_json("status")
    assert [(line["id"], line["state"], line["activity"]) for line in status["lines"]] == [
        ("gsm1", "up", "idle"), ("gsm2", "up", "idle"), ("sip1", "up", "idle")]
    sip1 = status["lines"][2]
    assert sip1["family"] == "sip" and sip1["address"] == "127.0.0.1" and sip1["port"] > 0  # 0 asked: any port
    assert status["lines"][0]["model"] == "SIMCOM_SIM7600E-H"


def test_the_call_is_answered_greeted_and_ended_by_the_caller(first_call):
    assert first_call["answered"] is True
    assert first_call["outcome"] == "answered" and first_call["ended_by"] == "caller"
    assert first_call["digits"] == "12"
    assert first_call["heard_seconds"] > 1.5  # the caller heard the greeting over the PCM port


def test_the_journal_has_the_call_with_its_timeline(box, first_call):
    last = box.hotline_json("calls", "--last", "1", "--json")[0]
    assert last["id"] == first_call["call_id"]
    assert (last["line_id"], last["caller"], last["digits"], last["outcome"]) == ("gsm1", CALLER, "12", "answered")
    call = ControlClient(os.path.join(box.data_dir, "engine.sock")).request("call", id=last["id"])
    kinds = [event["kind"] for event in call["events"]]
    assert kinds[:3] == ["ring", "answered", "prompt"]
    assert kinds.count("dtmf") == 2 and "prompt_end" in kinds
    assert kinds[-2:] == ["recording", "ended"]


def test_the_recording_holds_the_whole_greeting(box, first_call):
    recording = pcm(os.path.join(box.data_dir, first_call["recording"]))
    greeting = pcm(os.path.join(box.data_dir, "prompts", "en", "greeting.wav"))
    start = recording.find(greeting[:1600])
    assert start >= 0, "the greeting's first 100 ms are not in the recording"
    assert recording[start:start + len(greeting)] == greeting
    assert 3.5 < len(recording) / 16000 < 5.0


def test_the_callers_voice_is_recorded_too(box):
    twin = ControlClient(os.path.join(box.data_dir, "twin.sock"), timeout=30)
    result = twin.request("call", line="gsm2", hold=4, tone=1000, **{"from": "+359888000222"})
    assert result["answered"]
    last = box.hotline_json("calls", "--last", "1", "--json")[0]
    assert last["line_id"] == "gsm2"
    samples = np.frombuffer(pcm(os.path.join(box.data_dir, last["recording"])), dtype="<i2")
    tail = samples[-8000:-800].astype(float)  # after the greeting: the caller's tone alone
    spectrum = np.abs(np.fft.rfft(tail))
    peak_hz = np.argmax(spectrum) * 8000 / len(tail)
    assert abs(peak_hz - 1000) < 10


def test_the_box_hangs_up_on_request(box):
    caller = subprocess.Popen([sys.executable, "-m", "appliance.cli", "call", "--line", "gsm1", "--from",
                               "+359888000333", "--hold", "30", "--json", "--data", box.data_dir],
                              stdout=subprocess.PIPE, text=True)
    engine = ControlClient(os.path.join(box.data_dir, "engine.sock"))
    calls = wait_for(lambda: [c for c in engine.request("status")["calls"] if c["talk_seconds"] is not None])
    engine.request("hangup", call=calls[0]["id"])
    out, _ = caller.communicate(timeout=20)
    assert caller.returncode == 0
    assert '"ended_by": "box"' in out
    assert engine.request("call", id=calls[0]["id"])["events"][-3]["kind"] == "hangup"


def test_a_line_without_a_twin_cannot_be_called(box):
    done = box.hotline("call", "--line", "gsm9", "--from", CALLER, "--hold", "1")
    assert done.returncode == 1
    assert "no virtual modem for line 'gsm9'" in done.stderr


@pytest.fixture(scope="module")
def web(box):
    app = create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    username, password = ADMIN
    client.post("/setup", data={"username": username, "password": password, "confirm": password})
    return client


def test_the_dashboard_shows_the_lines(web):
    page = web.get("/").get_data(as_text=True)
    assert 'data-line="gsm1"' in page and 'data-line="gsm2"' in page and "VIRTUAL GSM" in page
    status = web.get("/api/status").get_json()
    assert {line["id"] for line in status["lines"]} == {"gsm1", "gsm2", "sip1"}


def test_the_journal_page_plays_the_recording(web, box, first_call):
    call_id = first_call["call_id"]
    assert f'href="/journal/{call_id}"' in web.get("/journal/").get_data(as_text=True)
    page = web.get(f"/journal/{call_id}").get_data(as_text=True)
    assert f'<audio id="recording" controls preload="metadata" src="/journal/{call_id}/recording">' in page
    audio = web.get(f"/journal/{call_id}/recording")
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    with open(os.path.join(box.data_dir, first_call["recording"]), "rb") as handle:
        assert audio.data == handle.read()


def test_the_line_page_shows_the_modem_and_checks_the_balance(web, box):
    page = web.get("/lines/gsm1").get_data(as_text=True)
    assert "SIMCOM_SIM7600E-H" in page and "861234567890002" in page
    response = web.post("/lines/gsm1/balance", follow_redirects=True)
    assert "Balance: 12.50 BGN" in response.get_data(as_text=True)
    assert web.get("/lines/gsm9").status_code == 404


def test_a_test_sms_in_cyrillic_from_the_line_page(web):
    text = "Тест от кутията: здравейте!"
    response = web.post("/lines/gsm2/sms", data={"to": "+359888123456", "text": text}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "SMS sent to +359888123456 in 1 part(s)." in page
    assert text in page  # listed among the line's SMS


@pytest.mark.parametrize("form, field", [({"to": "call me", "text": "hi"}, "to"), ({"to": "+359888123456", "text": " "}, "text")])
def test_the_sms_form_names_the_bad_field(web, form, field):
    response = web.post("/lines/gsm2/sms", data=form)
    assert response.status_code == 400 and f'id="{field}-error"' in response.get_data(as_text=True)
