"""The box keeps going when a modem vanishes or the engine is killed in the middle of a call."""
import signal
import subprocess
import sys

import pytest

from .conftest import Box, wait_for


@pytest.fixture
def fresh_box(tmp_path):
    running = Box(tmp_path)
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
