"""Each GSM family carries whole calls through the real engine: in with greeting and
keys, out with every call-progress outcome, journaled."""
import pytest

from appliance.config import ConfigStore, demo_config

from web_ui import create_app

from .conftest import ADMIN, Box, wait_for

FAMILIES = ("sim800", "sim7600", "e1550", "ec25")
PHONES = {"answer": "+359700000100", "busy": "+359700000101", "no answer": "+359700000102",
          "reject": "+359700000103"}
EXPECTED = {"answer": "answered", "busy": "busy", "no answer": "no answer", "reject": "busy"}


@pytest.fixture(scope="module")
def family_box(tmp_path_factory):
    data = tmp_path_factory.mktemp("families")
    config = demo_config()
    config["lines"] = [{"id": family, "name": family, "driver": "auto", "port": f"dev/{family}-at",
                        "audio_port": f"dev/{family}-audio", "power": {"kind": "virtual"}} for family in FAMILIES]
    config["virtual"] = {
        "modems": [{"line": family, "model": family, "number": f"+35970000001{i}"} for i, family in enumerate(FAMILIES)],
        "phones": [{"number": number, "behaviour": behaviour, "answer_after": 0.5} for behaviour, number in PHONES.items()],
    }
    config["lines"][1]["low_balance"] = 20  # the emulated SIM has 12.50
    ConfigStore(data).save(config)
    box = Box(data)
    box.start("twin", "engine")
    yield box
    box.stop()


@pytest.mark.parametrize("family", FAMILIES)
def test_an_incoming_call_is_answered_greeted_and_its_keys_journaled(family_box, family):
    status = {line["id"]: line for line in family_box.hotline_json("status")["lines"]}
    assert status[family]["family"] == family  # found by `driver: auto`
    result = family_box.hotline_json("call", "--line", family, "--from", "+359888123456", "--digits", "12",
                                     "--hold", "4", "--json")
    assert result["outcome"] == "answered" and result["ended_by"] == "caller"
    assert result["heard_seconds"] > 1.5  # the greeting reached the caller over the family's audio path
    call = family_box.engine.request("call", id=result["call_id"])
    assert call["digits"] == "12"  # reported by the modem, or heard in-band on the Huawei


@pytest.mark.parametrize("family", FAMILIES)
def test_the_balance_by_ussd_and_a_low_balance_alert(family_box, family):
    state = family_box.engine.request("balance", line=family)
    assert state["balance"] == 12.5 and "12.50" in state["balance_text"]
    kinds = lambda: [e["kind"] for e in family_box.engine.request("line", line=family)["events"]]  # noqa: E731
    if family == "sim7600":
        wait_for(lambda: "low_balance" in kinds())
    else:
        assert "low_balance" not in kinds()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("behaviour", list(PHONES))
def test_an_outgoing_call_has_each_progress_outcome(family_box, family, behaviour):
    result = family_box.hotline_json("originate", "--line", family, "--to", PHONES[behaviour], "--hold", "1", "--json")
    assert result["outcome"] == EXPECTED[behaviour]
    call = family_box.engine.request("call", id=result["call_id"])
    assert call["direction"] == "out" and call["callee"] == PHONES[behaviour]
    if behaviour == "answer":
        assert call["recording"] and "alerting" in [event["kind"] for event in call["events"]]


def test_lines_bound_by_imei_find_their_modems_whatever_the_port_names(tmp_path):
    """The twin links the modems under each other's names; the lines find theirs by IMEI."""
    config = demo_config()
    imeis = {"gsm1": "867000000000011", "gsm2": "867000000000029"}
    config["lines"] = [{"id": line, "driver": "auto", "imei": imei, "power": {"kind": "virtual"}}
                       for line, imei in imeis.items()]
    config["virtual"]["modems"] = [
        {"line": "gsm2", "model": "ec25", "number": "+359700000001", "imei": imeis["gsm1"]},
        {"line": "gsm1", "model": "e1550", "number": "+359700000002", "imei": imeis["gsm2"]},
    ]
    ConfigStore(tmp_path).save(config)
    box = Box(tmp_path)
    box.start("twin", "engine")
    try:
        lines = {line["id"]: line for line in box.hotline_json("status")["lines"]}
        assert (lines["gsm1"]["imei"], lines["gsm1"]["family"]) == (imeis["gsm1"], "ec25")
        assert (lines["gsm2"]["imei"], lines["gsm2"]["family"]) == (imeis["gsm2"], "e1550")
        # The twin's "gsm2" modem is the one whose IMEI line gsm1 is bound to.
        result = box.hotline_json("call", "--line", "gsm2", "--from", "+359888123456", "--hold", "2", "--json")
        assert result["outcome"] == "answered"
        assert box.engine.request("call", id=result["call_id"])["line_id"] == "gsm1"
    finally:
        box.stop()


def test_a_huawei_with_voice_locked_is_named_on_its_pages_and_its_callers_are_journaled(tmp_path):
    """Firmware without voice (^CVOICE:1): the line is up for SMS and USSD, and says it takes no calls."""
    config = demo_config()
    config["virtual"]["modems"][1].update(model="e1550")
    config["virtual"]["modems"][1]["voice"] = "locked"
    config["lines"][1]["driver"] = "auto"
    ConfigStore(tmp_path).save(config)
    box = Box(tmp_path)
    box.start("twin", "engine")
    try:
        lines = {line["id"]: line for line in box.hotline_json("status")["lines"]}
        assert (lines["gsm2"]["state"], lines["gsm2"]["voice"]) == ("up", "locked by firmware")
        assert lines["gsm1"]["voice"] == "ok"
        web = create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
        username, password = ADMIN
        web.post("/setup", data={"username": username, "password": password, "confirm": password})
        page = web.get("/lines/gsm2").get_data(as_text=True)
        assert 'id="line-voice" class="state-down"' in page and "voice is locked by the modem" in page
        assert "voice is locked" not in web.get("/lines/gsm1").get_data(as_text=True)
        listing = web.get("/lines/").get_data(as_text=True)
        assert listing.count("voice-locked") == 1
        result = box.hotline_json("call", "--line", "gsm2", "--from", "+359888123456", "--hold", "2", "--json")
        assert not result["answered"]
        call = wait_for(lambda: [c for c in box.engine.request("calls", last=5) if c["caller"] == "+359888123456"
                                 and c["ended_at"]])[0]
        events = box.engine.request("call", id=call["id"])["events"]
        assert call["outcome"] == "failed" and not call["answered_at"]
        assert any("voice locked by firmware" in event.get("error", "") for event in events)
        assert box.engine.request("ussd", line="gsm2", code="*100#")["reply"] == "Balance: 12.50 BGN"
    finally:
        box.stop()
