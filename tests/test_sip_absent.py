"""A box without pjsua2: its SIP lines are disabled and say why; nothing else changes, no traceback.

The engine and the web UI run as their own processes with an import path on which
``import pjsua2`` fails, as on a Raspberry Pi where systemd/build-pjsua2.sh was not run.
"""
import os

import pytest

from web_ui import create_app

from .conftest import ADMIN, Box, wait_for

HIDE_PJSUA2 = "raise ImportError('No module named pjsua2 (hidden by the test)')\n"


@pytest.fixture(scope="module")
def box_without_pjsua2(tmp_path_factory):
    """The demo box (gsm1, gsm2, sip1) started where pjsua2 cannot be imported."""
    shadow = tmp_path_factory.mktemp("no-pjsua2")
    (shadow / "pjsua2").mkdir()
    (shadow / "pjsua2" / "__init__.py").write_text(HIDE_PJSUA2)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shadow), old]))
    box = Box(tmp_path_factory.mktemp("box"))
    try:
        box.start("twin", "engine")
        yield box
    finally:
        box.stop()
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old


def test_status_says_sip_is_disabled_and_why(box_without_pjsua2):
    status = box_without_pjsua2.status()
    lines = {line["id"]: line for line in status["lines"]}
    assert lines["gsm1"]["state"] == lines["gsm2"]["state"] == "up"
    assert lines["sip1"]["state"] == "disabled"
    assert lines["sip1"]["error"].startswith("SIP disabled: pjsua2 is not installed")
    assert status["sip"] == {"available": False, "reason": status["sip"]["reason"]}
    assert "build-pjsua2.sh" in status["sip"]["reason"]


def test_the_hotline_status_command_shows_it(box_without_pjsua2):
    status = box_without_pjsua2.hotline_json("status")
    assert next(line for line in status["lines"] if line["id"] == "sip1")["state"] == "disabled"


def test_the_gsm_lines_still_take_calls(box_without_pjsua2):
    result = box_without_pjsua2.hotline_json("call", "--line", "gsm1", "--from", "+359888000111", "--hold", "2",
                                             "--json")
    assert result["answered"]


def test_no_traceback_in_the_engine_log(box_without_pjsua2):
    wait_for(lambda: box_without_pjsua2.status()["calls"] == [], timeout=15)
    with open(os.path.join(box_without_pjsua2.data_dir, "engine.log"), errors="replace") as log:
        text = log.read()
    assert "Traceback" not in text
    assert "SIP disabled" not in text or "pjsua2 is not installed" in text


def test_the_dashboard_and_the_health_problems_say_so(box_without_pjsua2):
    app = create_app({"DATA_DIR": box_without_pjsua2.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    username, password = ADMIN
    client.post("/setup", data={"username": username, "password": password, "confirm": password})
    page = client.get("/").get_data(as_text=True)
    assert 'data-line="sip1"' in page and "SIP disabled: pjsua2 is not installed" in page
    problems = wait_for(lambda: box_without_pjsua2.status()["health"]["problems"], timeout=15)
    assert any("SIP disabled" in item["message"] for item in problems)
