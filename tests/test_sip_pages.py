"""The web pages for SIP: the SIP fieldset of the line form, a SIP line's live state, SIP operators.

Forms are read from the rendered page and posted back as a browser would post them, to a
running demo box whose engine validates and applies them. pjsua2 may or may not be
installed here: the lines the tests add are not enabled (nothing registers anywhere), and
a disabled SIP line's reason is shown from an engine state set up explicitly.
"""
import json
import os
import re

import pytest

from appliance import accounts
from appliance.config import SIP_CODECS, SIP_KEYS, demo_config, validate
from web_ui import create_app

from .conftest import ADMIN, in_force, restore_sections
from .test_flow_editor import changed, form_fields

DEMO = validate(demo_config())
PASSWORD = "a long enough password"
SIP_SECRET = "Tr0mb0ne-secret"
MODEM_KEYS = ("port", "audio_port", "pin", "imei", "iccid", "microphone_gain", "speaker_gain", "balance_ussd",
              "balance_check_hours", "low_balance", "sms_mode", "volte", "rings", "power")
DISABLED_REASON = "SIP disabled: pjsua2 is not installed (pip install pjsua2)"


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def box_app(box):
    """The web app on the running demo box, with an admin and an operator account."""
    application = create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    with application.app_context():
        from web_ui.db import get_db

        accounts.create_user(get_db(), *ADMIN, "admin")
        accounts.create_user(get_db(), "olga", PASSWORD, "operator")
    return application


@pytest.fixture(scope="module")
def web(box_app):
    """A browser logged in as the admin."""
    client = box_app.test_client()
    assert client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 302
    return client




@pytest.fixture(autouse=True)
def demo_again(engine):
    """Every test leaves the demo's lines and operators."""
    yield
    restore_sections(engine, DEMO, ("lines", "operators"))


def error_text(page, field):
    match = re.search(rf'id="{re.escape(field)}-error"[^>]*>([^<]*)<', page)
    return match and match.group(1)


def line(engine, line_id):
    return next((item for item in in_force(engine, "lines") if item["id"] == line_id), None)


def new_line_form(web, **values):
    """The new-line form as the page gives it, with ``values`` typed in."""
    return changed(form_fields(web.get("/lines/new").get_data(as_text=True), "line-form"), **values)


SIP_TRUNK = {"id": "sip2", "name": "Office trunk", "driver": "sip", "bind": "0.0.0.0", "sip_port": "5070",
             "rtp_port": "4100", "registrar": "sip:sip.provider.example", "username": "35921234567",
             "password": SIP_SECRET, "auth_realm": "", "reregister_seconds": "600", "keepalive_seconds": "20",
             "peers": "192.168.1.0/24\n10.0.0.5, 10.0.0.6", "channels": "2", "dtmf": "info",
             "enabled": None}  # not enabled: it would register to a provider that does not exist


def sip_trunk_form(web, codecs=("PCMA", "opus")):
    fields = new_line_form(web, codecs=None, **SIP_TRUNK)
    for codec in codecs:
        fields.add("codecs", codec)
    return fields


def audit_values(app, action):
    with app.app_context():
        from web_ui.db import get_db

        rows = get_db().execute("SELECT detail FROM audit WHERE action = ? ORDER BY id", (action,)).fetchall()
    return [json.loads(row["detail"])["value"] for row in rows]


# --- the line form ---------------------------------------------------------------------------------


def test_the_new_line_form_offers_the_sip_settings_with_the_engines_defaults(web):
    page = web.get("/lines/new").get_data(as_text=True)
    fields = form_fields(page, "line-form")
    assert 'id="sip-settings"' in page and 'data-for="sip"' in page and 'data-for="modem"' in page
    assert (fields["bind"], fields["sip_port"], fields["rtp_port"], fields["channels"], fields["dtmf"]) == \
        ("0.0.0.0", "5060", "4000", "4", "rfc2833")
    assert fields.getlist("codecs") == list(SIP_CODECS)
    assert '<option value="sip"' in page and "lines.js" in page
    assert 'type="password" name="password"' in page


def test_a_sip_line_is_created_with_lists_numbers_and_codecs_in_order(web, engine, box_app):
    response = web.post("/lines/", data=sip_trunk_form(web, codecs=("opus", "PCMA")))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert line(engine, "sip2") == {
        "id": "sip2", "name": "Office trunk", "driver": "sip", "bind": "0.0.0.0", "sip_port": 5070,
        "rtp_port": 4100, "registrar": "sip:sip.provider.example", "username": "35921234567",
        "password": SIP_SECRET, "auth_realm": "*", "reregister_seconds": 600, "keepalive_seconds": 20,
        "peers": ["192.168.1.0/24", "10.0.0.5", "10.0.0.6"], "channels": 2, "codecs": ["opus", "PCMA"],
        "dtmf": "info", "inbound": True, "outbound": True, "enabled": False}
    # The audit log says a password is set, never which.
    saved = audit_values(box_app, "lines.create")[-1]
    assert next(item for item in saved if item["id"] == "sip2")["password"] == "(set)"
    assert SIP_SECRET not in json.dumps(audit_values(box_app, "lines.create"))

    page = web.get("/lines/").get_data(as_text=True)
    row = page[page.index('data-line="sip2"'):]
    row = row[:row.index("</tr>")]
    assert "SIP 0.0.0.0:5070 via sip:sip.provider.example, peers 192.168.1.0/24, 10.0.0.5, 10.0.0.6" in row


def test_a_sip_line_keeps_its_password_unless_removed_and_never_shows_it(web, engine):
    assert web.post("/lines/", data=sip_trunk_form(web)).status_code == 302
    page = web.get("/lines/sip2/edit").get_data(as_text=True)
    assert SIP_SECRET not in page and "Office trunk" in page and 'name="password_remove"' in page
    fields = form_fields(page, "line-form")
    assert fields["password"] == "" and fields.getlist("codecs")[:2] == ["PCMA", "opus"]

    # Saved as it is: nothing changes, the password stays.
    before = line(engine, "sip2")
    assert web.post("/lines/sip2/edit", data=fields).status_code == 302
    assert line(engine, "sip2") == before

    assert web.post("/lines/sip2/edit", data=changed(fields, name="Office trunk 2")).status_code == 302
    assert line(engine, "sip2")["password"] == SIP_SECRET and line(engine, "sip2")["name"] == "Office trunk 2"

    assert web.post("/lines/sip2/edit", data=changed(fields, password="new-secret")).status_code == 302
    assert line(engine, "sip2")["password"] == "new-secret"

    # A registrar needs a password: removing it alone is refused at the password field.
    response = web.post("/lines/sip2/edit", data=changed(fields, password_remove="on"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and error_text(page, "password") == "required"
    assert "new-secret" not in page and line(engine, "sip2")["password"] == "new-secret"

    # Without registrar and user name the line takes calls from its peers only.
    fields = changed(fields, password_remove="on", registrar="", username="")
    assert web.post("/lines/sip2/edit", data=fields).status_code == 302
    saved = line(engine, "sip2")
    assert not {"password", "username", "registrar", "auth_realm"} & set(saved)
    assert saved["peers"] == ["192.168.1.0/24", "10.0.0.5", "10.0.0.6"]


def test_a_sip_line_gets_no_modem_settings(web, engine):
    fields = sip_trunk_form(web)
    fields = changed(fields, port="/dev/ttyUSB2", audio_port="/dev/ttyUSB4", pin="1234", binding="imei",
                     imei="861234567890123", microphone_gain="60", balance_ussd="*100#", volte="on", rings="3")
    assert web.post("/lines/", data=fields).status_code == 302
    assert not set(MODEM_KEYS) & set(line(engine, "sip2"))


def test_a_modem_line_gets_no_sip_settings(web, engine):
    fields = new_line_form(web, id="gsm3", name="SIM 3", driver="sim800", binding="imei", imei="861234567890123",
                           registrar="sip:sip.provider.example", username="me", password="pw", peers="10.0.0.1",
                           enabled=None)
    response = web.post("/lines/", data=fields)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    saved = line(engine, "gsm3")
    assert saved["imei"] == "861234567890123" and not set(SIP_KEYS) & set(saved)

    # A line changed from a modem to SIP loses its modem settings, and back.
    fields = changed(form_fields(web.get("/lines/gsm3/edit").get_data(as_text=True), "line-form"),
                     driver="sip", registrar="", username="", password="")
    assert web.post("/lines/gsm3/edit", data=fields).status_code == 302
    saved = line(engine, "gsm3")
    assert saved["driver"] == "sip" and not set(MODEM_KEYS) & set(saved)
    fields = changed(fields, driver="sim800", binding="imei", imei="861234567890123")
    assert web.post("/lines/gsm3/edit", data=fields).status_code == 302
    saved = line(engine, "gsm3")
    assert saved["driver"] == "sim800" and not set(SIP_KEYS) & set(saved)


@pytest.mark.parametrize("line_id", ["gsm1", "sip1"])
def test_a_demo_line_saved_unchanged_stays_as_it_was(web, engine, line_id):
    page = web.get(f"/lines/{line_id}/edit").get_data(as_text=True)
    assert web.post(f"/lines/{line_id}/edit", data=form_fields(page, "line-form")).status_code == 302
    assert in_force(engine, "lines") == DEMO["lines"]


@pytest.mark.parametrize("values, field, message", [
    ({"sip_port": "70000"}, "sip_port", "must be a whole number from 0 to 65535"),
    ({"registrar": "nonsense"}, "registrar", "must be a SIP URI such as sip:sip.provider.example (UDP: no sips:)"),
    ({"channels": "0"}, "channels", "must be a whole number from 1 to 64"),
    ({"peers": "192.168.1.0/24, not a host!"}, "peers", "must be a list of hosts or networks such as 192.168.1.10 "
                                                         "or 192.168.1.0/24"),
    ({"bind": "every where"}, "bind", "must be an IP address such as 0.0.0.0 or 127.0.0.1"),
    ({"registrar": "", "username": ""}, "password", "needs a registrar to register to"),
])
def test_a_sip_setting_the_engine_refuses_is_shown_at_its_field(web, engine, values, field, message):
    response = web.post("/lines/", data=changed(sip_trunk_form(web), **values))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and error_text(page, field) == message
    assert SIP_SECRET not in page  # not even to the one who typed it
    assert 'value="Office trunk"' in page  # what was typed stays
    assert in_force(engine, "lines") == DEMO["lines"]


def test_no_codec_at_all_is_refused_at_the_codecs(web, engine):
    response = web.post("/lines/", data=sip_trunk_form(web, codecs=()))
    assert response.status_code == 400
    assert error_text(response.get_data(as_text=True), "codecs").startswith("must be a list of PCMA")
    assert in_force(engine, "lines") == DEMO["lines"]


# --- a SIP line's live state -------------------------------------------------------------------------


def test_the_demo_sip_line_shows_its_state_on_every_page(web, engine):
    """Up with pjsua2 (its real port shows), disabled without it (its reason shows)."""
    live = next(item for item in engine.request("status")["lines"] if item["id"] == "sip1")
    dashboard = web.get("/").get_data(as_text=True)
    lines_page = web.get("/lines/").get_data(as_text=True)
    line_page = web.get("/lines/sip1").get_data(as_text=True)
    assert "SIP 127.0.0.1:any port, peers 127.0.0.1" in lines_page
    if live["state"] == "disabled":
        for page in (dashboard, lines_page, line_page):
            assert live["error"].startswith("SIP disabled:") and live["error"] in page
    else:
        assert live["state"] == "up" and live["port"]
        address = f"{live['address']}:{live['port']}"
        assert f'<span class="sip-address">{address}</span>' in dashboard
        assert f"listening on {address}" in lines_page
        assert f'<dd id="sip-address">{address}</dd>' in line_page
    assert "Check balance by USSD" not in line_page and "Send a test SMS" not in line_page
    assert "Check balance by USSD" in web.get("/lines/gsm1").get_data(as_text=True)


class FakeEngine:
    """An engine that reports a disabled SIP line and a busy one (as the real one would)."""

    config = DEMO
    lines = {
        "sip1": {"id": "sip1", "state": "disabled", "error": DISABLED_REASON, "activity": "disabled", "calls": []},
        "sip2": {"id": "sip2", "state": "up", "error": None, "activity": "2 calls", "address": "0.0.0.0",
                 "port": 5062, "registration": "registered", "codecs": ["PCMA", "opus"], "channels": 4,
                 "channels_in_use": 2, "last_refusal": "503 Service Unavailable", "calls": [7, 8]},
    }

    def __init__(self, *args, **kwargs):
        pass

    def request(self, cmd, **kwargs):
        configured = [dict(item, enabled=True) for item in self.config["lines"] if item["driver"] != "sip"]
        configured += [{"id": "sip1", "name": "Demo SIP line", "driver": "sip", "bind": "127.0.0.1", "sip_port": 0,
                        "peers": ["127.0.0.1"], "enabled": True},
                       {"id": "sip2", "name": "Trunk", "driver": "sip", "bind": "0.0.0.0", "sip_port": 5062,
                        "registrar": "sip:sip.provider.example", "enabled": True}]
        if cmd == "config":
            return {"config": dict(self.config, lines=configured), "warnings": [], "problem": None}
        if cmd == "status":
            return {"box": "Test box", "calls": [], "queue": [], "operators": [],
                    "lines": [dict(self.lines.get(item["id"], {"id": item["id"], "state": "up"}),
                                   name=item["name"], driver=item["driver"]) for item in configured]}
        if cmd == "line":
            return {"line": dict(self.lines[kwargs["line"]]), "events": [], "sms": []}
        raise AssertionError(cmd)


@pytest.fixture
def fake_engine(monkeypatch):
    from web_ui import configedit, dashboard, lines

    for module in (configedit, dashboard, lines):
        monkeypatch.setattr(module, "get_engine", lambda timeout=2.0: FakeEngine())


def test_a_disabled_sip_line_says_why_on_the_dashboard_and_the_line_pages(admin_client, fake_engine):
    dashboard = admin_client.get("/").get_data(as_text=True)
    row = dashboard[dashboard.index('data-line="sip1"'):]
    assert DISABLED_REASON in row[:row.index("</tr>")]
    assert DISABLED_REASON in admin_client.get("/api/status").get_data(as_text=True)
    lines_page = admin_client.get("/lines/").get_data(as_text=True)
    row = lines_page[lines_page.index('data-line="sip1"'):]
    assert "disabled" in row and DISABLED_REASON in row[:row.index("</tr>")]
    line_page = admin_client.get("/lines/sip1").get_data(as_text=True)
    assert DISABLED_REASON in line_page[line_page.index('id="line-state"'):]


def test_a_busy_sip_line_shows_its_port_channels_registration_and_last_refusal(admin_client, fake_engine):
    dashboard = admin_client.get("/").get_data(as_text=True)
    row = dashboard[dashboard.index('data-line="sip2"'):]
    row = row[:row.index("</tr>")]
    assert '<span class="sip-address">0.0.0.0:5062</span>' in row and ">2/4<" in row and "registered" in row
    lines_page = admin_client.get("/lines/").get_data(as_text=True)
    row = lines_page[lines_page.index('data-line="sip2"'):]
    row = row[:row.index("</tr>")]
    for text in ("SIP 0.0.0.0:5062 via sip:sip.provider.example", "listening on 0.0.0.0:5062",
                 "registration: registered", "2 of 4 channels in use", "last refused: 503 Service Unavailable"):
        assert text in row, text
    line_page = admin_client.get("/lines/sip2").get_data(as_text=True)
    for text in ('<dd id="sip-address">0.0.0.0:5062</dd>', '<dd id="sip-registration">registered</dd>',
                 '<dd id="sip-channels">2 of 4 channels in use</dd>',
                 '<dd id="sip-last-refusal">503 Service Unavailable</dd>'):
        assert text in line_page, text


def test_the_dashboard_script_renders_a_sip_lines_port_and_channels():
    """The live refresh draws the lines itself: it must show the same as the page."""
    script = open(os.path.join(os.path.dirname(__file__), "..", "web_ui", "static", "dashboard.js")).read()
    assert 'line.driver !== "sip"' in script and "line.port" in script and "line.channels_in_use" in script
    assert "line.error" in script


# --- operators at a SIP address ----------------------------------------------------------------------


def operator(engine, operator_id):
    return next((item for item in in_force(engine, "operators") if item["id"] == operator_id), None)


def test_an_operator_at_a_sip_address_needs_no_press_1_when_unticked(web, engine):
    page = web.get("/operators/new").get_data(as_text=True)
    assert "SIP address" in page and "its voicemail would take the call" in page
    fields = form_fields(page, "operator-form")
    assert "confirm" in fields  # a new operator must press 1 unless the box is cleared
    fields = changed(fields, name="Alice Desk", number="sip:alice@192.168.1.20:5062", confirm=None)
    response = web.post("/operators/new", data=fields)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    saved = operator(engine, "alice-desk")
    assert saved["number"] == "sip:alice@192.168.1.20:5062" and saved["confirm"] is False

    listing = web.get("/operators/").get_data(as_text=True)
    row = listing[listing.index('data-operator="alice-desk"'):]
    assert "sip:alice@192.168.1.20:5062" in row[:row.index("</tr>")]

    fields = form_fields(web.get("/operators/alice-desk/edit").get_data(as_text=True), "operator-form")
    assert "confirm" not in fields and fields["number"] == "sip:alice@192.168.1.20:5062"
    assert web.post("/operators/alice-desk/edit", data=changed(fields, confirm="on")).status_code == 302
    assert operator(engine, "alice-desk")["confirm"] is True


def test_a_mobile_operator_keeps_press_1_as_the_form_offers_it(web, engine):
    fields = changed(form_fields(web.get("/operators/new").get_data(as_text=True), "operator-form"),
                     name="Bob Mobile", number="+359888123456")
    assert web.post("/operators/new", data=fields).status_code == 302
    assert operator(engine, "bob-mobile")["confirm"] is True


def test_a_bad_sip_address_is_refused_at_the_number(web, engine):
    fields = changed(form_fields(web.get("/operators/new").get_data(as_text=True), "operator-form"),
                     name="Carol", number="sip:carol@@nowhere")
    response = web.post("/operators/new", data=fields)
    assert response.status_code == 400
    assert "or a SIP URI" in error_text(response.get_data(as_text=True), "number")
    assert in_force(engine, "operators") == DEMO["operators"]


# --- in a browser: the form's fieldsets follow the driver, the dashboard's refresh shows the port ----------


@pytest.fixture(scope="module")
def browser_page(box, box_app):
    from .browser import chromium

    url = box.start_web()
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url + "/login")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        yield page, url


def test_in_a_browser_the_line_form_shows_the_fieldsets_of_the_chosen_driver(browser_page):
    from playwright.sync_api import expect

    page, url = browser_page
    page.goto(url + "/lines/new")
    sip, modem = page.locator("#sip-settings"), page.locator('#line-form fieldset[data-for="modem"]')
    expect(sip).to_be_hidden()
    expect(modem.first).to_be_visible()
    page.select_option("#driver", "sip")
    expect(sip).to_be_visible()
    expect(modem.first).to_be_hidden()
    page.select_option("#driver", "sim7600")
    expect(sip).to_be_hidden()


def test_in_a_browser_the_dashboards_refresh_shows_the_sip_line(browser_page, engine):
    from playwright.sync_api import expect

    page, url = browser_page
    live = next(item for item in engine.request("status")["lines"] if item["id"] == "sip1")
    shown = live["error"] if live["state"] == "disabled" else f"{live['address']}:{live['port']}"
    page.goto(url + "/")
    row = page.locator('#lines tr[data-line="sip1"]')
    expect(row).to_contain_text(shown)
    # Empty the row the server drew; a command makes the page fetch the state and draw the lines itself.
    page.evaluate("""document.querySelector('#lines tr[data-line="sip1"]').replaceChildren()""")
    expect(row).not_to_contain_text(shown)
    page.click('#operators tr[data-operator="op1"] button[data-state="paused"]')
    expect(row).to_contain_text(shown, timeout=10_000)
    page.click('#operators tr[data-operator="op1"] button[data-state="ready"]')
    expect(page.locator('#operators tr[data-operator="op1"] button[data-state="ready"]')).to_be_disabled()
