"""The guided setup after the first admin: each step through the web app against a running box,
the templates as valid configuration, the modems no line uses yet, and the whole guide in Chromium
from a fresh data directory to a test call that the twin's operator phone answers."""
import json
import os
import re

import pytest

from appliance import accounts, config, discovery, templates
from appliance.errors import ConfigError
from web_ui import create_app
from web_ui.db import get_db
from web_ui.onboarding import keys_to_queue

from .conftest import ADMIN, PHONE_NUMBER, Box, app_with_first_admin, restore_sections

SUPERVISOR = ("sofia", "supervisor password")
SECTIONS = ("lines", "settings", "notifications", "flows", "queues", "operators", "time_conditions", "prompts")


# --- the templates are ordinary, valid configuration ------------------------------------------


@pytest.mark.parametrize("name", sorted(templates.TEMPLATES))
def test_a_template_is_valid_configuration_step_by_step(name):
    """Each section the page sends is accepted on its own, in order, and the end is a valid hot-line."""
    document = config.validate(config.demo_config())
    sent = templates.sections(document, name)
    assert [section for section, _value in sent] == [s for s in templates.ORDER if s in dict(sent)]
    for section, value in sent:
        document = config.validate(dict(document, **{section: value}))
    flow_id = templates.TEMPLATES[name]["flow"]
    assert all(line["flow"] == flow_id for line in document["lines"])
    assert config.warnings(document) == []
    assert document == config.validate(templates.apply(config.validate(config.demo_config()), name))


def test_the_admissions_template_has_three_queues_with_a_call_back_key():
    document = templates.apply(config.validate(config.demo_config()), "admissions")
    queues = {q["id"]: q for q in document["queues"] if q["groups"] == ["admissions"]}
    assert {"bachelor", "master", "dormitories"} <= set(queues)
    assert {q["callback_key"] for q in queues.values()} == {"5"}
    flow = next(f for f in document["flows"] if f["id"] == "admissions")
    assert keys_to_queue(flow) == "1"
    # Every prompt is text spoken by espeak-ng, in the four languages of the box.
    spoken = [p for p in document["prompts"] if p["id"].startswith("adm_")]
    assert {p["language"] for p in spoken} == set(config.LANGUAGES) and all(p["text"] for p in spoken)


def test_the_business_template_rings_whoever_is_on_duty_and_texts_missed_calls():
    document = templates.apply(config.validate(config.demo_config()), "business")
    duty = next(q for q in document["queues"] if q["id"] == "duty")
    assert duty["strategy"] == "ring_all"
    assert all("duty" in operator["groups"] for operator in document["operators"])
    assert document["notifications"]["sms_to"] == [PHONE_NUMBER]
    assert "call.missed" in document["notifications"]["events"]
    assert document["settings"]["missed_sms"]
    assert keys_to_queue(next(f for f in document["flows"] if f["id"] == "business")) == ""


def test_a_template_on_a_box_without_operators_needs_the_first_one():
    document = config.validate(dict(config.demo_config(), operators=[], queues=[], flows=[],
                                    lines=[], virtual={}))
    with pytest.raises(templates.TemplateError):
        templates.sections(document, "business")
    applied = templates.apply(document, "business", {"name": "Ana", "number": "+359888123456"})
    assert config.validate(applied)["operators"][0]["groups"] == ["duty"]
    with pytest.raises(ConfigError):  # a bad number is the engine's to refuse, named at its field
        config.validate(templates.apply(document, "business", {"name": "Ana", "number": "12"}))


def test_the_gateway_is_offered_as_not_available_yet():
    assert "gateway" in templates.UNAVAILABLE and "gateway" not in templates.TEMPLATES


# --- modems that are not lines yet ------------------------------------------------------------


def test_discovery_lists_a_free_modem_and_leaves_out_what_a_line_has(sim7600, tmp_path):
    document = config.validate(dict(config.demo_config(), lines=[], virtual={},
                                    settings=dict(config.demo_config()["settings"],
                                                  modem_ports=[sim7600.at.path, sim7600.audio.path])))
    found = discovery.unbound_modems(document, str(tmp_path))
    assert [modem["imei"] for modem in found] == [sim7600.imei]  # the audio port speaks no AT: skipped
    assert found[0]["model"] and found[0]["iccid"] == sim7600.iccid and found[0]["signal_dbm"] is not None
    assert discovery.unbound_modems(document, str(tmp_path), known_imeis=[sim7600.imei]) == []
    owned = dict(document, lines=[{"id": "gsm1", "driver": "sim7600", "port": sim7600.at.path,
                                   "audio_port": sim7600.audio.path}])
    assert discovery.unbound_modems(owned, str(tmp_path)) == []


def test_discovery_as_the_engine_answers_it_finds_the_modem_no_line_has(sim7600, tmp_path):
    """The control request the engine is to route to ``discovery.handle``: a real engine and twin,
    one more modem on a port of settings.modem_ports; the lines' own modems are not listed."""
    import threading

    from appliance.config import ConfigStore
    from appliance.engine import Engine
    from hardware.virtual.world import VirtualWorld

    from .conftest import greeting_config, wait_for

    document = greeting_config()
    document["lines"] = [line for line in document["lines"] if line["driver"] != "sip"]
    document["settings"]["modem_ports"] = ["dev/*-at", sim7600.at.path]
    ConfigStore(str(tmp_path)).save(document)
    world = VirtualWorld(document["virtual"], str(tmp_path))
    engine = Engine(str(tmp_path))
    engine.start()
    loop = threading.Thread(target=engine.run, name="engine-loop")
    loop.start()
    try:
        wait_for(lambda: all(line["state"] == "up" for line in engine.in_loop(engine.status)["lines"]), timeout=30)
        answer = discovery.handle(engine, {"cmd": "modems"})
        assert [(m["port"], m["imei"]) for m in answer["modems"]] == [(sim7600.at.path, sim7600.imei)]
    finally:
        engine.stop()
        loop.join(timeout=10)
        world.close()


# --- each step through the web app, against the running demo box ---------------------------------


@pytest.fixture(scope="module")
def box_app(box):
    """The web app on the running box's data directory, its admin made through the first-run page."""
    app, response = app_with_first_admin(box.data_dir)
    assert response.status_code == 302 and response.headers["Location"] == "/onboarding/"
    with app.app_context():
        accounts.create_user(get_db(), *SUPERVISOR, "supervisor")
    return app


@pytest.fixture(scope="module")
def original(box):
    """The configuration the box started with; every test below leaves it so."""
    return box.engine.request("config")["config"]


@pytest.fixture
def web(box_app, box, original):
    """The admin's client; the configuration is put back after each test."""
    client = box_app.test_client()
    assert client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 302
    yield client
    restore_sections(box.engine, original, SECTIONS)


def in_force(box, section):
    """A section of the configuration the box runs now."""
    return box.engine.request("config")["config"][section]


def error_at(page, field):
    """The message shown at input ``field``, or None."""
    match = re.search(rf'id="{re.escape(field)}-error"[^>]*>([^<]*)<', page)
    return match.group(1) if match else None


def test_the_guide_is_for_admins_only(box_app):
    client = box_app.test_client()
    assert client.post("/login", data={"username": SUPERVISOR[0], "password": SUPERVISOR[1]}).status_code == 302
    for path in ("/onboarding/", "/onboarding/basics", "/onboarding/lines", "/onboarding/template",
                 "/onboarding/people", "/onboarding/test"):
        assert client.get(path).status_code == 403, path
    for path in ("/onboarding/basics", "/onboarding/lines/bind", "/onboarding/template", "/onboarding/people",
                 "/onboarding/dismiss", "/onboarding/finish"):
        assert client.post(path, data={}).status_code == 403, path


def test_every_form_needs_a_csrf_token(box, tmp_path):
    app = create_app({"DATA_DIR": box.data_dir, "TESTING": True})
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
    page = client.get("/onboarding/").get_data(as_text=True)
    assert page.count('name="csrf_token"') >= 2  # the guide's dismiss form and the logout form
    for path in ("/onboarding/basics", "/onboarding/lines/bind", "/onboarding/template", "/onboarding/people",
                 "/onboarding/dismiss", "/onboarding/finish"):
        assert client.post(path, data={"imei": "861234567890123"}).status_code == 400, path
    assert not os.path.exists(os.path.join(box.data_dir, "onboarding.json"))


def test_step_one_saves_language_and_time_zone_and_refuses_at_the_field(web, box):
    page = web.get("/onboarding/basics").get_data(as_text=True)
    assert 'value="Hot-line demo"' in page and "<option selected>Europe/Sofia</option>" in page
    refused = web.post("/onboarding/basics", data={"box_name": "", "language": "xx", "timezone": "Mars/Base"})
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert error_at(page, "box_name") and error_at(page, "language") and error_at(page, "timezone")
    assert in_force(box, "settings")["timezone"] == "Europe/Sofia"
    saved = web.post("/onboarding/basics", data={"box_name": "Приемна комисия", "language": "bg",
                                                 "timezone": "Europe/Kyiv"})
    assert saved.status_code == 302 and saved.headers["Location"] == "/onboarding/lines"
    settings = in_force(box, "settings")
    assert (settings["box_name"], settings["language"], settings["timezone"]) == ("Приемна комисия", "bg",
                                                                                   "Europe/Kyiv")
    assert settings["greeting"] == "greeting"  # what the step does not show is kept


def test_skipping_a_step_changes_nothing(web, box, original):
    page = web.get("/onboarding/basics").get_data(as_text=True)
    assert 'href="/onboarding/lines" class="skip"' in page
    for path in ("/onboarding/lines", "/onboarding/template", "/onboarding/people", "/onboarding/test"):
        assert web.get(path).status_code == 200, path
    now = box.engine.request("config")["config"]
    assert {s: now[s] for s in SECTIONS} == {s: original[s] for s in SECTIONS}


def test_step_two_shows_the_lines_and_binds_one_by_imei(web, box):
    page = web.get("/onboarding/lines").get_data(as_text=True)
    status = {line["id"]: line for line in box.engine.request("status")["lines"]}
    assert 'data-line="gsm1"' in page and status["gsm1"]["imei"] in page and status["gsm1"]["model"] in page
    # Until the engine lists free modems, the page says so; once it does, every demo modem is a line already.
    assert 'id="discovery-note"' in page or 'id="no-modems"' in page
    refused = web.post("/onboarding/lines/bind", data={"imei": "12ab", "line": "gsm1"})
    assert refused.status_code == 400 and error_at(refused.get_data(as_text=True), "imei")
    imei = status["gsm1"]["imei"]
    response = web.post("/onboarding/lines/bind", data={"imei": imei, "line": "gsm1"})
    assert response.status_code == 302
    line = next(line for line in in_force(box, "lines") if line["id"] == "gsm1")
    assert line["imei"] == imei and "port" not in line and "audio_port" not in line
    assert ">bound by IMEI<" in web.get("/onboarding/lines").get_data(as_text=True)


def test_step_two_makes_a_found_modem_a_line_bound_by_its_imei(web, box, sim7600):
    """One more emulated modem on a port the engine scans: the guide lists it and makes it a line."""
    settings = dict(in_force(box, "settings"), modem_ports=["dev/*-at", sim7600.at.path])
    assert box.engine.request("config_put", section="settings", value=settings)["saved"]
    page = web.get("/onboarding/lines").get_data(as_text=True)
    row = re.search(rf'<tr data-imei="{sim7600.imei}">.*?</tr>', page, re.S).group(0)
    for text in ("SIMCOM_SIM7600E-H", sim7600.iccid, "VIRTUAL GSM", " dBm", "Make it a line"):
        assert text in row
    assert web.post("/onboarding/lines/bind", data={"imei": sim7600.imei}).status_code == 302
    line = in_force(box, "lines")[-1]
    assert line["imei"] == sim7600.imei and line["driver"] == "auto" and line["flow"] == "main"
    assert line["id"] not in {"gsm1", "gsm2", "sip1"} and "port" not in line
    assert ">bound by IMEI<" in web.get("/onboarding/lines").get_data(as_text=True)


def test_step_three_applies_a_template_through_the_engine(web, box):
    page = web.get("/onboarding/template").get_data(as_text=True)
    assert re.search(r'value="gateway" disabled', page) and "not available yet" in page
    refused = web.post("/onboarding/template", data={"template": "gateway"})
    assert refused.status_code == 400 and error_at(refused.get_data(as_text=True), "template")
    response = web.post("/onboarding/template", data={"template": "business"})
    assert response.status_code == 302 and response.headers["Location"] == "/onboarding/people"
    lines = in_force(box, "lines")
    assert {line["flow"] for line in lines} == {"business"}
    assert in_force(box, "notifications")["sms_to"] == [PHONE_NUMBER]
    audit = [row["action"] for row in box_audit(box)]
    assert "onboarding.template.flows" in audit


def box_audit(box):
    """The audit log's entries, oldest first."""
    from appliance import journal
    conn = journal.connect(os.path.join(box.data_dir, journal.JOURNAL_FILE))
    try:
        return [dict(row) for row in conn.execute("SELECT action FROM audit ORDER BY id")]
    finally:
        conn.close()


def test_step_four_adds_operators_sets_hours_and_refuses_at_the_row(web, box):
    web.post("/onboarding/template", data={"template": "admissions"})
    page = web.get("/onboarding/people").get_data(as_text=True)
    assert 'value="Demo operator"' in page and 'name="op-3-name"' in page
    refused = web.post("/onboarding/people", data={"op-1-name": "Ivan", "op-1-number": "12"})
    assert refused.status_code == 400
    assert "phone number" in error_at(refused.get_data(as_text=True), "op-1-number")
    assert [o["name"] for o in in_force(box, "operators")] == ["Demo operator"]
    bad_hours = web.post("/onboarding/people", data={"from": "9", "to": "17:00"})
    assert bad_hours.status_code == 400 and error_at(bad_hours.get_data(as_text=True), "hours")
    response = web.post("/onboarding/people", data={"op-1-name": "Maria", "op-1-number": "+359888123456",
                                                     "from": "09:00", "to": "17:30"})
    assert response.status_code == 302 and response.headers["Location"] == "/onboarding/test"
    maria = in_force(box, "operators")[1]
    assert maria["name"] == "Maria" and maria["number"] == "+359888123456"
    assert "admissions" in maria["groups"]  # a queue of the template rings her
    hours = next(c for c in in_force(box, "time_conditions") if c["id"] == "admissions_hours")["weekly"]
    assert hours["fri"] == [["09:00", "17:30"]] and hours["sat"] == [] and hours["sun"] == []


def test_step_five_rings_the_new_flow_on_a_virtual_line(web, box):
    web.post("/onboarding/template", data={"template": "admissions"})
    page = web.get("/onboarding/test").get_data(as_text=True)
    assert 'action="/testcall/ring"' in page and 'name="digits" value="1"' in page
    assert re.search(r'name="line" value="gsm[12]"', page)


def test_dismissing_or_finishing_closes_the_guide(web, box):
    path = os.path.join(box.data_dir, "onboarding.json")
    assert web.get("/onboarding/").status_code == 200
    link = 'id="guide-link"><a href="/onboarding/">Continue the guided setup</a>'
    assert link in web.get("/").get_data(as_text=True)  # the dashboard leads back into an open guide
    response = web.post("/onboarding/dismiss")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    with open(path) as handle:
        assert json.load(handle)["state"] == "dismissed"
    assert 'id="guide-state"' in web.get("/onboarding/").get_data(as_text=True)  # still reachable by its address
    assert 'id="guide-link"' not in web.get("/").get_data(as_text=True)
    web.post("/onboarding/finish")
    with open(path) as handle:
        state = json.load(handle)
    assert state["state"] == "done" and state["by"] == ADMIN[0]
    os.remove(path)


# --- the whole guide in Chromium, from a fresh data directory ------------------------------------


@pytest.fixture
def fresh_box(tmp_path):
    """The demo box started on an empty data directory, with its web UI: nobody has set it up yet."""
    running = Box(tmp_path / "fresh")
    os.makedirs(running.data_dir)
    running.start("twin", "engine")
    try:
        yield running, running.start_web()
    finally:
        running.stop()


def test_a_newcomer_goes_from_a_fresh_box_to_a_test_call_the_operator_answers(fresh_box):
    from playwright.sync_api import expect

    from .browser import chromium

    box, url = fresh_box
    with chromium() as browser:
        page = browser.new_page()
        problems = browser.problems
        page.set_default_timeout(90_000)  # applying a template speaks its prompts with espeak-ng

        # The first visit makes the admin, then the guide opens.
        page.goto(url + "/")
        expect(page).to_have_url(url + "/setup")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.fill("input[name=confirm]", ADMIN[1])
        page.click("button[type=submit]")
        expect(page).to_have_url(url + "/onboarding/")
        page.click("#begin")

        # 1. Language and time zone.
        expect(page).to_have_url(url + "/onboarding/basics")
        page.fill("#box_name", "Admissions office")
        page.select_option("#timezone", "Europe/Kyiv")
        page.click("#basics-form button[type=submit]")
        expect(page).to_have_url(url + "/onboarding/lines")
        assert box.engine.request("config")["config"]["settings"]["timezone"] == "Europe/Kyiv"

        # 2. The lines found, with model and IMEI; gsm1 bound by IMEI with one click.
        row = page.locator('#lines-found tr[data-line="gsm1"]')
        imei = next(line for line in box.status()["lines"] if line["id"] == "gsm1")["imei"]
        expect(row).to_contain_text(imei)
        row.locator("button").click()
        expect(page.locator('#lines-found tr[data-line="gsm1"]')).to_contain_text("bound by IMEI")
        page.click("#next")

        # 3. The admissions template; the gateway is shown but cannot be chosen.
        expect(page).to_have_url(url + "/onboarding/template")
        expect(page.locator("input[value=gateway]")).to_be_disabled()
        page.check("input[value=admissions]")
        page.click("#template-form button[type=submit]")

        # 4. Operators: a bad mobile is refused at its row, then the demo operator renamed; hours left as they are.
        expect(page).to_have_url(url + "/onboarding/people")
        page.fill("#op-1-name", "Ivan")
        page.fill("#op-1-number", "12")
        problems.expect_error("/onboarding/people")  # the refusal comes back as 400 with the form
        page.click("#people-form button[type=submit]")
        expect(page.locator("#op-1-number-error")).to_contain_text("phone number")
        page.fill("#op-1-name", "")
        page.fill("#op-1-number", "")
        page.fill("#op-0-name", "Maria Petrova")
        page.click("#people-form button[type=submit]")
        expect(page).to_have_url(url + "/onboarding/test")
        operators = box.engine.request("config")["config"]["operators"]
        assert [(o["name"], o["number"]) for o in operators] == [("Maria Petrova", PHONE_NUMBER)]

        # 5. The test call walks the new flow: key 1, the bachelor queue, the operator's virtual phone answers.
        wait_for_lines_up(box)
        page.goto(url + "/onboarding/test")
        page.click("#test-call-form button[type=submit]")
        expect(page).to_have_url(re.compile(re.escape(url) + r"/testcall\?call=\d+"))
        timeline = page.locator("#watch-timeline")
        expect(timeline).to_contain_text("operator answered", timeout=60_000)
        expect(page.locator("#watch")).to_contain_text("bachelor")
        expect(page.locator("#watch-legs")).to_contain_text("Maria Petrova")  # the person, not the id op1

        page.goto(url + "/onboarding/test")
        page.click("#finish")
        expect(page).to_have_url(url + "/")
        with open(os.path.join(box.data_dir, "onboarding.json")) as handle:
            assert json.load(handle)["state"] == "done"
        page.close()


def wait_for_lines_up(box):
    """The line bound by IMEI restarts: wait until every line is up again before ringing it."""
    from .conftest import wait_for
    wait_for(box.lines_up, timeout=30)
