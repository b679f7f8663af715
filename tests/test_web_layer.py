"""The web layer's plumbing: the engine-down handler, the engine client, the list-section views, form helpers."""
import os

import pytest
from werkzeug.datastructures import MultiDict

from appliance.control import ControlClient
from web_ui import forms
from web_ui.configedit import EngineDown
from web_ui.listsection import describe_field

from .conftest import ADMIN

# The configuration pages that need the engine (each once had its own "engine needed" decorator).
ENGINE_PAGES = [
    ("GET", "/hours/", None), ("POST", "/hours/office/closed", {"closed": "1"}),
    ("GET", "/hours/new", None), ("POST", "/hours/new", {"name": "x"}),
    ("GET", "/hours/office/edit", None), ("POST", "/hours/office/edit", {"name": "x"}),
    ("POST", "/hours/office/delete", None),
    ("GET", "/hours/campaigns/new", None), ("POST", "/hours/campaigns/new", {"name": "x"}),
    ("GET", "/hours/campaigns/summer/edit", None), ("POST", "/hours/campaigns/summer/edit", {"name": "x"}),
    ("POST", "/hours/campaigns/summer/delete", None),
    ("GET", "/operators/", None), ("POST", "/operators/op1/state", {"state": "paused"}),
    ("GET", "/operators/new", None), ("POST", "/operators/new", {"name": "x"}),
    ("GET", "/operators/op1/edit", None), ("POST", "/operators/op1/edit", {"name": "x"}),
    ("POST", "/operators/op1/delete", None),
    ("GET", "/queues/", None), ("GET", "/queues/new", None), ("POST", "/queues/new", {"name": "x"}),
    ("GET", "/queues/q1/edit", None), ("POST", "/queues/q1/edit", {"name": "x"}), ("POST", "/queues/q1/delete", None),
    ("GET", "/settings/", None), ("POST", "/settings/box", {"box_name": "x"}),
    ("POST", "/settings/notifications", {}), ("POST", "/settings/blacklist", {"number": "+359888000111"}),
    ("POST", "/settings/blacklist/delete", {"number": "+359888000111"}), ("POST", "/settings/panel", {}),
]


@pytest.mark.parametrize("method, path, data", ENGINE_PAGES)
def test_every_configuration_page_says_the_engine_is_down_with_503(admin_client, method, path, data):
    response = admin_client.open(path, method=method, data=data)
    assert response.status_code == 503
    assert 'id="engine-down"' in response.get_data(as_text=True)


def test_an_engine_down_under_the_api_paths_is_json(app):
    def engine_down():
        raise EngineDown("The engine does not answer: test")
    app.add_url_rule("/api/engine-down-probe", "engine_down_probe", engine_down)
    client = app.test_client()
    username, password = ADMIN
    client.post("/setup", data={"username": username, "password": password, "confirm": password})
    response = client.get("/api/engine-down-probe")
    assert response.status_code == 503
    assert response.get_json() == {"error": "The engine does not answer: test"}


def test_the_engine_client_lives_in_the_app_and_keeps_its_short_timeout(app):
    from web_ui.db import get_engine

    engine = app.extensions["hotline_engine"]
    assert isinstance(engine, ControlClient)
    assert engine.path == os.path.join(app.config["DATA_DIR"], "engine.sock")
    with app.app_context():
        assert get_engine() is engine
        patient = get_engine(timeout=60)
    assert (patient.path, patient.timeout) == (engine.path, 60)


def test_the_list_views_keep_their_endpoints_and_rules(app):
    rules = {rule.endpoint: (rule.rule, rule.methods - {"HEAD", "OPTIONS"}) for rule in app.url_map.iter_rules()}
    assert rules["operators.new"] == ("/operators/new", {"GET", "POST"})
    assert rules["operators.edit"] == ("/operators/<operator_id>/edit", {"GET", "POST"})
    assert rules["queues.delete"] == ("/queues/<queue_id>/delete", {"POST"})
    assert rules["hours.edit_condition"] == ("/hours/<condition_id>/edit", {"GET", "POST"})
    assert rules["hours.delete_campaign"] == ("/hours/campaigns/<campaign_id>/delete", {"POST"})
    assert rules["hours.new_campaign"] == ("/hours/campaigns/new", {"GET", "POST"})


def test_the_list_views_need_an_admin(app):
    client = app.test_client()
    username, password = ADMIN
    client.post("/setup", data={"username": username, "password": password, "confirm": password})
    with app.app_context():
        from appliance import accounts
        from web_ui.db import get_db

        accounts.create_user(get_db(), "sup", "correct horse staple", "supervisor")
    client.post("/logout")
    client.post("/login", data={"username": "sup", "password": "correct horse staple"})
    assert client.get("/queues/new").status_code == 403
    assert client.post("/hours/office/delete").status_code == 403


# --- form helpers ------------------------------------------------------------------------------


def test_a_refused_field_goes_to_its_input_or_to_the_form(app):
    fields = forms.FieldMap("queues[2]", simple=("name",))
    fields.add("groups[0]", "groups", "sales")
    with app.test_request_context():
        assert fields.errors({"field": "queues[2].name", "message": "too long"}) == {"name": "too long"}
        assert fields.errors({"field": "queues[2].groups[0]", "message": "unknown"}) == {"groups": "sales: unknown"}
        assert list(fields.errors({"field": "lines[0].flow", "message": "unknown"})) == ["form"]


def test_new_ids_are_made_from_the_name_and_never_taken():
    assert forms.new_id("Night Shift", set(), "operator") == "night-shift"
    assert forms.new_id("Night Shift", {"night-shift"}, "operator") == "night-shift-2"
    assert forms.new_id("", set(), "queue") == "queue"
    assert forms.new_id("24/7", set(), "hours") == "hours-24-7"


def test_typed_values_become_section_values():
    assert (forms.whole(" 12 "), forms.whole(""), forms.whole("x")) == (12, None, "x")
    item = {"moh": "old"}
    forms.put(item, "moh", "")
    forms.put(item, "name", "Sales")
    assert item == {"name": "Sales"}
    assert forms.split_items("a, b;c\n\n d") == ["a", "b", "c", "d"]
    assert forms.find_index([{"id": "a"}, {"id": "b"}], "b") == 1


def test_weekly_hours_round_trip_through_the_form():
    week = {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "sat": [["10:00", "14:00"]]}
    form = MultiDict(forms.weekly_form("weekly", week))
    fields = forms.FieldMap("time_conditions[0]")
    value = forms.weekly_value(form, "weekly", "weekly", fields)
    assert value == {day: week.get(day, []) for day in value}
    assert fields.paths["weekly.mon[1][0]"] == ("weekly-mon-1-from", None)


def test_a_refused_field_is_named_by_its_item():
    config = {"queues": [{"id": "q1", "name": "Bachelor"}]}
    assert describe_field("queues[0].groups[0]", config) == "queues “Bachelor”, groups[0]"
    assert describe_field("queues[0]", config) == "queues “Bachelor”"
    assert describe_field("queues[5].groups", config) == "queues[5].groups"
