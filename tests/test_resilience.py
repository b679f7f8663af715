"""The box keeps going when a modem vanishes or the engine is killed in the middle of a call."""
import json
import os
import signal
import subprocess
import sys

import pytest

from appliance.control import ControlClient

from .conftest import Box, greeting_config, wait_for


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
    caller = subprocess.Popen([sys.executable, "-m", "appliance.cli", "call", "--line", "gsm1", "--from",
                               "+359888000444", "--hold", "20", "--data", fresh_box.data_dir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    in_call = wait_for(lambda: [c for c in (fresh_box.status() or {"calls": []})["calls"] if c["talk_seconds"]])
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
