"""The box keeps going when a modem vanishes or the engine is killed in the middle of a call."""
import glob
import json
import os
import signal
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

from appliance.control import ControlClient
from appliance.journal import JOURNAL_FILE, Journal

from .conftest import Box, greeting_config, wait_for
from .test_salvage import ffprobe_seconds


@pytest.fixture
def fresh_box(tmp_path):
    running = Box(tmp_path)
    running.configure(greeting_config())
    running.start("twin", "engine")
    yield running
    running.stop()


def test_lines_go_down_when_the_modems_vanish_and_come_back_with_them(fresh_box):
    fresh_box.kill("twin")
    down = wait_for(lambda: [line for line in (fresh_box.status() or {"lines": []})["lines"]
                             if line["state"] == "down"] or None)
    assert "gsm1-at" in down[0]["error"] or "closed" in down[0]["error"]
    fresh_box.start("twin")  # waits until every line is up again
    result = fresh_box.hotline_json("call", "--line", "gsm1", "--from", "+359888123456", "--hold", "1", "--json")
    assert result["outcome"] == "answered"


def test_engine_killed_mid_call_keeps_the_journal_and_closes_the_call_on_restart(fresh_box):
    caller = _caller(fresh_box, "gsm1", "+359888000444")
    in_call = wait_for(lambda: _calls(fresh_box, lambda c: (c["talk_seconds"] or 0) >= 3), timeout=20)
    fresh_box.kill("engine", signal.SIGKILL)
    caller.kill()
    caller.wait()
    fresh_box.start("engine")
    call = fresh_box.engine.request("call", id=in_call[0]["id"])
    assert call["caller"] == "+359888000444" and call["answered_at"]
    assert call["outcome"] == "interrupted"
    assert [e["kind"] for e in call["events"]][:3] == ["ring", "answered", "prompt"]
    follow_up = fresh_box.hotline_json("call", "--line", "gsm1", "--from", "+359888000555", "--hold", "1", "--json")
    assert follow_up["outcome"] == "answered" and follow_up["call_id"] == call["id"] + 1


def test_a_recording_and_a_message_cut_by_a_crash_are_repaired_compressed_and_attached(tmp_path):
    box = Box(tmp_path)
    box.configure(_voicemail_config())
    box.start("twin", "engine")
    try:
        caller = _caller(box, "gsm1", "+359888000777", audio=_tone(tmp_path / "speech.wav"))
        in_call = wait_for(lambda: _calls(box, lambda c: c["step"] == "leaving a message"), timeout=20)
        time.sleep(3)  # three seconds of message on disk
        box.kill("engine", signal.SIGKILL)
        caller.kill()
        caller.wait()
        assert glob.glob(os.path.join(box.data_dir, "*", "**", "*.wav.part"), recursive=True)
        box.start("engine")
        call_id = in_call[0]["id"]
        call = wait_for(lambda: _salvaged(box, call_id, ".ogg"), timeout=30)
        message = wait_for(lambda: _voicemails(box), timeout=10)[0]
        assert (message["call_id"], message["number"]) == (call_id, "+359888000777")
        salvaged = [e for e in call["events"] if e["kind"] == "recording_salvaged"]
        assert sorted(e["what"] for e in salvaged) == ["recording", "voicemail"]
        assert all("cut by a restart" in e["reason"] for e in salvaged) and call["outcome"] == "interrupted"
        recording = os.path.join(box.data_dir, call["recording"])
        heard = ffprobe_seconds(recording)
        assert heard >= 3.0
        said = ffprobe_seconds(os.path.join(box.data_dir, message["recording"]))
        assert 2.0 <= said <= heard and message["seconds"] == pytest.approx(said, abs=0.05)
        assert _tone_level(os.path.join(box.data_dir, message["recording"])) > 1000  # the caller's voice
        assert not glob.glob(os.path.join(box.data_dir, "*", "**", "*.part"), recursive=True)
        follow_up = box.hotline_json("call", "--line", "gsm2", "--from", "+359888000778", "--hold", "1", "--json")
        assert follow_up["answered"]
    finally:
        box.stop()


def _voicemail_config():
    config = greeting_config()
    config["settings"].update(recording="stereo", recording_format="ogg")
    config["flows"] = [{"id": "messages", "name": "Leave a message", "start": "record", "nodes": {
        "record": {"type": "voicemail", "max_seconds": 120, "next": "bye"},
        "bye": {"type": "hangup"}}}]
    config["lines"][0]["flow"] = "messages"
    return config


def _caller(box, line, number, audio=None):
    command = [sys.executable, "-m", "appliance.cli", "call", "--line", line, "--from", number,
               "--hold", "60", "--data", box.data_dir] + (["--audio", audio] if audio else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _calls(box, predicate):
    return [call for call in (box.status() or {"calls": []})["calls"] if predicate(call)] or None


def _salvaged(box, call_id, suffix):
    call = box.engine.request("call", id=call_id)
    done = call["recording"] and call["recording"].endswith(suffix)
    return call if done and len([e for e in call["events"] if e["kind"] == "recording_salvaged"]) == 2 else None


def _voicemails(box):
    book = Journal.open(os.path.join(box.data_dir, JOURNAL_FILE))
    try:
        return book.voicemails()
    finally:
        book.close()


def _tone(path):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=1000:duration=60",
                    "-ar", "8000", "-ac", "1", "-sample_fmt", "s16", str(path)], check=True)
    return str(path)


def _tone_level(path):
    with wave.open(path, "rb") as message:
        samples = np.frombuffer(message.readframes(message.getnframes()), dtype="<i2").astype(float)
    return float(np.sqrt(np.mean(samples ** 2)))


@pytest.fixture
def quick_poll_box(tmp_path):
    """A box whose lines poll their modems every second, so a hang is found quickly."""
    from appliance.config import ConfigStore

    config = greeting_config()
    config["settings"]["modem_poll_seconds"] = 1
    ConfigStore(tmp_path).save(config)
    running = Box(tmp_path)
    running.start("twin", "engine")
    yield running
    running.stop()


def test_a_hung_modem_is_power_cycled_and_the_other_line_keeps_its_call(quick_poll_box):
    box = quick_poll_box
    twin = ControlClient(os.path.join(box.data_dir, "twin.sock"), timeout=60)
    on_gsm2 = subprocess.Popen([sys.executable, "-m", "appliance.cli", "call", "--line", "gsm2", "--from",
                                "+359888000666", "--hold", "12", "--json", "--data", box.data_dir],
                               stdout=subprocess.PIPE, text=True)
    wait_for(lambda: [c for c in (box.status() or {"calls": []})["calls"] if c["line"] == "gsm2" and c["talk_seconds"]])
    twin.request("hang", line="gsm1")
    wait_for(lambda: _line(box, "gsm1")["state"] == "down", timeout=30)
    wait_for(lambda: _line(box, "gsm1")["state"] == "up", timeout=60)  # reopened after a power cycle

    out, _ = on_gsm2.communicate(timeout=30)
    assert json.loads(out)["outcome"] == "answered" and json.loads(out)["ended_by"] == "caller"
    kinds = [event["kind"] for event in reversed(box.engine.request("line", line="gsm1")["events"])]
    assert kinds == ["down", "power_cycled", "up"]
    after = box.hotline_json("call", "--line", "gsm1", "--from", "+359888000777", "--hold", "1", "--json")
    assert after["outcome"] == "answered"


def _line(box, line_id):
    status = box.status() or {"lines": []}
    return next((line for line in status["lines"] if line["id"] == line_id), {"state": None})
