"""The configuration pages (operators, queues, hours, settings) against a running box.

Every change goes through the page to the real engine, which validates and applies it;
the tests read the engine's configuration and live status back to see what happened.
"""
import datetime as dt
import html
import json
import re
import zoneinfo
from html.parser import HTMLParser

import pytest

from appliance import accounts, schedule
from web_ui.db import get_db

from .conftest import ADMIN, app_with_first_admin

OPERATOR_USER = ("olga", "operator password")
SUPERVISOR_USER = ("sofia", "supervisor password")


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def same_config_afterwards(box):
    """Whatever the tests change, the box ends the module with the configuration it started with."""
    original = box.engine.request("config")["config"]
    yield
    answer = box.engine.request("config_put", document=original, timeout=60)
    assert answer["saved"], answer


@pytest.fixture(scope="module")
def box_app(box):
    """The web app on the running box's data directory, with its admin, a supervisor and an operator."""
    app, response = app_with_first_admin(box.data_dir)
    assert response.status_code == 302
    with app.app_context():
        accounts.create_user(get_db(), *OPERATOR_USER, "operator")
        accounts.create_user(get_db(), *SUPERVISOR_USER, "supervisor")
    return app


def logged_in(app, username, password):
    """A test client logged in as ``username``."""
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": password}).status_code == 302
    return client


@pytest.fixture(scope="module")
def web(box_app):
    """A client logged in as the admin."""
    return logged_in(box_app, *ADMIN)


@pytest.fixture(scope="module")
def supervisor(box_app):
    return logged_in(box_app, *SUPERVISOR_USER)


@pytest.fixture(scope="module")
def operator_user(box_app):
    return logged_in(box_app, *OPERATOR_USER)


def config(box):
    """The configuration in force in the engine."""
    return box.engine.request("config")["config"]


def live_operator(box, operator_id):
    """The operator as the engine's status shows them, or None."""
    return next((op for op in box.engine.request("status")["operators"] if op["id"] == operator_id), None)


def item(items, item_id):
    return next((entry for entry in items if entry["id"] == item_id), None)


def error_text(page, key):
    """The text of the element with id ``key``-error, or None."""
    match = re.search(rf'id="{re.escape(key)}-error"[^>]*>([^<]*)<', page)
    return html.unescape(match.group(1)) if match else None


def audit_rows(app, action):
    """Audit entries with ``action``, oldest first."""
    with app.app_context():
        rows = get_db().execute("SELECT username, action, detail FROM audit WHERE action = ? ORDER BY id", (action,))
        return [dict(row, detail=json.loads(row["detail"])) for row in rows]


class FormReader(HTMLParser):
    """What a browser would submit from one form of a page, unchanged: [(name, value), ...]."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, []
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or "name" not in attrs and tag != "option":
            return
        if tag == "input":
            kind = attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.fields.append((attrs["name"], attrs.get("value", "on")))
            elif kind not in ("submit", "button"):
                self.fields.append((attrs["name"], attrs.get("value") or ""))
        elif tag == "select":
            self._select = [attrs["name"], None, None]  # name, first option, selected option
        elif tag == "option" and self._select:
            value = attrs.get("value", "")
            self._select[1] = value if self._select[1] is None else self._select[1]
            if "selected" in attrs:
                self._select[2] = value
        elif tag == "textarea":
            self._textarea = [attrs["name"], ""]

    def handle_data(self, data):
        if self._textarea:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            name, first, chosen = self._select
            self.fields.append((name, chosen if chosen is not None else first or ""))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append(tuple(self._textarea))
            self._textarea = None


def form_of(client, path, form_id):
    """The fields of form ``form_id`` on page ``path`` as a browser would send them."""
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    reader = FormReader(form_id)
    reader.feed(response.get_data(as_text=True))
    assert reader.fields, f"no form {form_id} on {path}"
    return reader.fields


def changed(fields, **changes):
    """``fields`` with the named single fields replaced (or added); dashes in names spelled as __."""
    changes = {name.replace("__", "-"): value for name, value in changes.items()}
    kept = [(name, value) for name, value in fields if name not in changes]
    return kept + [(name, value) for name, value in changes.items() if value is not None]


def post(client, path, fields):
    """POST ``fields`` (pairs or a dict) as a form."""
    pairs = fields.items() if isinstance(fields, dict) else fields
    data = {}
    for name, value in pairs:
        data.setdefault(name, []).append(value)
    return client.post(path, data=data)


NEW_OPERATOR = {"name": "Maria Petrova", "number": "+359888111222", "groups": "admissions", "new_groups": "dorms",
                "wrap_up_seconds": "10", "enabled": "on", "shift_mode": "weekly",
                "shift-mon-0-from": "09:00", "shift-mon-0-to": "13:00",
                "shift-mon-1-from": "14:00", "shift-mon-1-to": "18:00",
                "shift-fri-0-from": "09:00", "shift-fri-0-to": "12:00"}


# --- operators -------------------------------------------------------------------------


def test_operators_page_lists_the_demo_operator_with_live_state(web, box):
    page = web.get("/operators/").get_data(as_text=True)
    assert 'data-operator="op1"' in page and "+359700000100" in page
    state = live_operator(box, "op1")["state"]
    assert f"op-state-{state.replace(' ', '-')}" in page


def test_add_edit_and_delete_an_operator(web, box, box_app):
    response = post(web, "/operators/new", NEW_OPERATOR)
    assert response.status_code == 302, response.get_data(as_text=True)
    saved = item(config(box)["operators"], "maria-petrova")
    assert saved["groups"] == ["admissions", "dorms"] and saved["wrap_up_seconds"] == 10
    assert saved["shift"]["weekly"]["mon"] == [["09:00", "13:00"], ["14:00", "18:00"]]
    assert saved["shift"]["weekly"]["tue"] == []
    assert live_operator(box, "maria-petrova")["number"] == "+359888111222"
    assert "Maria Petrova" in web.get("/operators/").get_data(as_text=True)

    fields = form_of(web, "/operators/maria-petrova/edit", "operator-form")
    assert ("shift-mon-1-to", "18:00") in fields and ("groups", "dorms") in fields
    fields = changed(fields, number="+359888111333", shift_mode="always", wrap_up_seconds="0")
    fields = [pair for pair in fields if pair != ("groups", "dorms")]
    assert post(web, "/operators/maria-petrova/edit", fields).status_code == 302
    saved = item(config(box)["operators"], "maria-petrova")
    assert saved["groups"] == ["admissions"] and "shift" not in saved and saved["wrap_up_seconds"] == 0
    assert live_operator(box, "maria-petrova")["number"] == "+359888111333"

    assert web.post("/operators/maria-petrova/delete").status_code == 302
    assert live_operator(box, "maria-petrova") is None
    assert item(config(box)["operators"], "maria-petrova") is None
    actions = [row["detail"]["value"][-1]["id"] for row in audit_rows(box_app, "operators.add")]
    assert "maria-petrova" in actions
    assert audit_rows(box_app, "operators.edit")[-1]["username"] == ADMIN[0]
    assert audit_rows(box_app, "operators.delete")


def test_a_bad_number_is_shown_next_to_the_number_and_changes_nothing(web, box):
    before = config(box)["operators"]
    response = post(web, "/operators/new", dict(NEW_OPERATOR, number="0888-12ab"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "must be a phone number" in error_text(page, "number")
    assert 'value="0888-12ab"' in page and 'value="Maria Petrova"' in page  # what was typed stays
    assert config(box)["operators"] == before


def test_an_interval_ending_before_it_starts_is_shown_on_its_row(web, box):
    before = config(box)["operators"]
    response = post(web, "/operators/new", dict(NEW_OPERATOR, **{"shift-fri-0-from": "17:00",
                                                                   "shift-fri-0-to": "09:00"}))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "must end after it starts" in error_text(page, "shift-fri-0")
    assert config(box)["operators"] == before


def test_deleting_the_last_operator_of_a_queues_group_shows_the_engines_refusal(web, box):
    response = web.post("/operators/op1/delete")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    message = error_text(page, "form")
    assert "no operator is in group 'admissions'" in message and "“Bachelor programmes”" in message
    assert live_operator(box, "op1") is not None


def test_pause_and_ready_round_trip(web, supervisor, box, box_app):
    assert live_operator(box, "op1")["state"] == "ready"
    assert web.post("/operators/op1/state", data={"state": "paused"}).status_code == 302
    assert live_operator(box, "op1")["state"] == "paused"
    assert 'id="ready-op1"' in web.get("/operators/").get_data(as_text=True)
    assert supervisor.post("/operators/op1/state", data={"state": "ready"}).status_code == 302
    assert live_operator(box, "op1")["state"] == "ready"
    rows = audit_rows(box_app, "operator.state")[-2:]
    assert [(r["username"], r["detail"]["state"]) for r in rows] == [(ADMIN[0], "paused"),
                                                                     (SUPERVISOR_USER[0], "ready")]


def test_pausing_an_unknown_operator_says_so(web):
    response = web.post("/operators/nobody/state", data={"state": "paused"})
    assert response.status_code == 400 and "nobody" in error_text(response.get_data(as_text=True), "form")


# --- queues ----------------------------------------------------------------------------


def test_add_edit_and_delete_a_queue(web, box, box_app):
    fields = changed(form_of(web, "/queues/new", "queue-form"), name="Exams", groups="admissions",
                     strategy="fixed_order", callback_key="#")
    assert post(web, "/queues/new", fields).status_code == 302
    saved = item(config(box)["queues"], "exams")
    assert (saved["strategy"], saved["groups"], saved["callback_key"], saved["ring_timeout"]) == (
        "fixed_order", ["admissions"], "#", 20)
    fields = changed(form_of(web, "/queues/exams/edit", "queue-form"), ring_timeout="45", moh="greeting")
    assert post(web, "/queues/exams/edit", fields).status_code == 302
    saved = item(config(box)["queues"], "exams")
    assert (saved["ring_timeout"], saved["moh"], saved["strategy"]) == (45, "greeting", "fixed_order")
    assert web.post("/queues/exams/delete").status_code == 302
    assert item(config(box)["queues"], "exams") is None
    assert audit_rows(box_app, "queues.edit")[-1]["detail"]["section"] == "queues"


def test_a_ring_timeout_out_of_range_is_shown_next_to_it_and_changes_nothing(web, box):
    before = config(box)["queues"]
    fields = changed(form_of(web, "/queues/bachelor/edit", "queue-form"), ring_timeout="500")
    response = post(web, "/queues/bachelor/edit", fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_text(page, "ring_timeout") == "must be a whole number from 5 to 120"
    assert 'value="500"' in page
    assert config(box)["queues"] == before


def test_a_queue_a_menu_uses_cannot_be_deleted(web, box):
    response = web.post("/queues/bachelor/delete")
    assert response.status_code == 400
    message = error_text(response.get_data(as_text=True), "form")
    assert "flows “Admissions hot-line”" in message and "no queue 'bachelor'" in message
    assert item(config(box)["queues"], "bachelor") is not None


# --- hours -----------------------------------------------------------------------------


def test_hours_page_says_whether_each_condition_is_open(web):
    page = web.get("/hours/").get_data(as_text=True)
    assert 'data-condition="office"' in page and "badge-open" in page


def test_a_holiday_closes_the_condition_on_that_date(web, box, box_app):
    tz = config(box)["settings"]["timezone"]
    holiday = dt.date.today() + dt.timedelta(days=40)
    fields = changed(form_of(web, "/hours/office/edit", "condition-form"),
                     holiday__0__from=holiday.isoformat(), holiday__1__from="2030-12-24", holiday__1__to="2030-12-26")
    assert post(web, "/hours/office/edit", fields).status_code == 302
    office = item(config(box)["time_conditions"], "office")
    assert office["holidays"] == [holiday.isoformat(), {"from": "2030-12-24", "to": "2030-12-26"}]
    noon = dt.datetime.combine(holiday, dt.time(12), tzinfo=zoneinfo.ZoneInfo(tz))
    assert schedule.is_open(office, noon, tz) is False
    assert schedule.is_open(office, noon - dt.timedelta(days=1), tz) is True
    assert schedule.is_open(office, noon.replace(year=2030, month=12, day=25), tz) is False
    assert office["weekly"]["mon"] == [["00:00", "24:00"]]  # the rest of the form came back unchanged
    assert audit_rows(box_app, "hours.edit")


def test_special_day_hours_and_weekly_intervals_are_saved(web, box):
    tz = config(box)["settings"]["timezone"]
    fields = changed(form_of(web, "/hours/new", "condition-form"), name="Summer school",
                     weekly__sat__0__from="10:00", weekly__sat__0__to="12:00",
                     exception__0__date="2031-07-01", exception__0__hours__0__from="10:00",
                     exception__0__hours__0__to="11:30")
    assert post(web, "/hours/new", fields).status_code == 302
    summer = item(config(box)["time_conditions"], "summer-school")
    assert summer["weekly"]["mon"] == [["09:00", "17:00"]] and summer["weekly"]["sat"] == [["10:00", "12:00"]]
    assert summer["exceptions"] == [{"date": "2031-07-01", "hours": [["10:00", "11:30"]]}]
    at = dt.datetime(2031, 7, 1, 11, 45, tzinfo=zoneinfo.ZoneInfo(tz))
    assert schedule.is_open(summer, at, tz) is False
    assert schedule.is_open(summer, at - dt.timedelta(minutes=30), tz) is True
    assert "Summer school" in web.get("/hours/").get_data(as_text=True)
    assert web.post("/hours/summer-school/delete").status_code == 302
    assert item(config(box)["time_conditions"], "summer-school") is None


def test_an_interval_ending_before_it_starts_is_refused_on_the_hours_page(web, box):
    before = config(box)["time_conditions"]
    fields = changed(form_of(web, "/hours/office/edit", "condition-form"),
                     weekly__tue__0__from="17:00", weekly__tue__0__to="09:00")
    response = post(web, "/hours/office/edit", fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "must end after it starts" in error_text(page, "weekly-tue-0")
    assert 'value="17:00"' in page
    assert config(box)["time_conditions"] == before


def test_the_closed_switch_flips_for_admin_and_supervisor(web, supervisor, box, box_app):
    tz = config(box)["settings"]["timezone"]
    try:
        assert supervisor.post("/hours/office/closed", data={"closed": "1"}).status_code == 302
        office = item(config(box)["time_conditions"], "office")
        assert office["closed"] is True
        assert schedule.is_open(office, dt.datetime.now(dt.timezone.utc), tz) is False
        page = web.get("/hours/").get_data(as_text=True)
        assert "badge-closed" in page and 'aria-pressed="true"' in page
        assert audit_rows(box_app, "hours.closed")[-1]["username"] == SUPERVISOR_USER[0]
    finally:
        response = web.post("/hours/office/closed", data={"closed": "0"})
    assert response.status_code == 302
    assert item(config(box)["time_conditions"], "office")["closed"] is False


def test_a_condition_a_menu_uses_cannot_be_deleted(web, box):
    response = web.post("/hours/office/delete")
    assert response.status_code == 400
    assert "office" in error_text(response.get_data(as_text=True), "form")


def test_a_campaign_is_created_edited_and_deleted(web, box, box_app):
    fields = changed(form_of(web, "/hours/campaigns/new", "campaign-form"), name="Admissions 2026",
                     start="2026-07-01", end="2026-08-15", lines="gsm1", flow="main")
    assert post(web, "/hours/campaigns/new", fields).status_code == 302
    campaign = item(config(box)["campaigns"], "admissions-2026")
    assert campaign == {"id": "admissions-2026", "name": "Admissions 2026", "start": "2026-07-01",
                        "end": "2026-08-15", "lines": ["gsm1"], "flow": "main", "enabled": True}
    assert "Admissions 2026" in web.get("/hours/").get_data(as_text=True)
    fields = [pair for pair in form_of(web, "/hours/campaigns/admissions-2026/edit", "campaign-form")
              if pair[0] != "enabled"]
    assert post(web, "/hours/campaigns/admissions-2026/edit", fields).status_code == 302
    assert item(config(box)["campaigns"], "admissions-2026")["enabled"] is False
    assert web.post("/hours/campaigns/admissions-2026/delete").status_code == 302
    assert config(box)["campaigns"] == []
    assert audit_rows(box_app, "campaigns.add")


def test_a_campaign_ending_before_it_starts_is_refused_at_its_end_date(web, box):
    fields = changed(form_of(web, "/hours/campaigns/new", "campaign-form"), name="Backwards",
                     start="2026-08-01", end="2026-07-01")
    response = post(web, "/hours/campaigns/new", fields)
    assert response.status_code == 400
    assert "must not be before start" in error_text(response.get_data(as_text=True), "end")
    assert config(box)["campaigns"] == []


# --- settings --------------------------------------------------------------------------


def test_settings_are_saved_and_a_bad_value_is_shown_next_to_its_field(web, box):
    fields = changed(form_of(web, "/settings/", "settings-form"), box_name="Admissions hot-line",
                     recording="mono", retention_days="90", callback_hours="office", callback_retries="4")
    assert post(web, "/settings/box", fields).status_code == 302
    settings = config(box)["settings"]
    assert (settings["box_name"], settings["retention_days"], settings["callback_hours"]) == (
        "Admissions hot-line", 90, "office")
    assert settings["greeting"] == "greeting"  # not on the form, kept
    response = post(web, "/settings/box", changed(fields, callback_retries="99"))
    assert response.status_code == 400
    assert error_text(response.get_data(as_text=True), "callback_retries") == "must be a whole number from 0 to 20"
    assert config(box)["settings"]["callback_retries"] == 4


def test_notification_settings_are_saved_without_echoing_secrets(web, box, box_app):
    password, secret = "smtp-pass-Q7x9", "hook-secret-Z3k1"
    fields = changed(form_of(web, "/settings/", "notifications-form"), sms_to="+359888000111\n+359888000222",
                     email_to="head@example.org", smtp_host="smtp.example.org", smtp_port="587",
                     smtp_starttls="on", smtp_username="hotline", smtp_password=password,
                     smtp_from="hotline@example.org", webhooks="https://crm.example.org/hook",
                     webhook_secret=secret)
    assert post(web, "/settings/notifications", fields).status_code == 302
    saved = config(box)["notifications"]
    assert saved["sms_to"] == ["+359888000111", "+359888000222"]
    assert saved["email"] == {"host": "smtp.example.org", "port": 587, "username": "hotline", "password": password,
                              "from": "hotline@example.org", "starttls": True}
    assert saved["webhook_secret"] == secret and saved["webhooks"] == ["https://crm.example.org/hook"]
    page = web.get("/settings/").get_data(as_text=True)
    assert password not in page and secret not in page
    assert 'id="smtp_password-state">set<' in page and 'id="webhook_secret-state">set<' in page
    assert password not in json.dumps(audit_rows(box_app, "settings.notifications"))
    assert secret not in json.dumps(audit_rows(box_app, "settings.notifications"))

    # Saved again as shown (secret inputs empty): the secrets stay.
    fields = changed(form_of(web, "/settings/", "notifications-form"), events="call.missed")
    assert post(web, "/settings/notifications", fields).status_code == 302
    saved = config(box)["notifications"]
    assert saved["email"]["password"] == password and saved["webhook_secret"] == secret
    assert saved["events"] == ["call.missed"]

    # A bad address is shown at the addresses, with what was typed, and the secret is still not echoed.
    response = post(web, "/settings/notifications", changed(fields, email_to="head-at-example", webhook_secret="new"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_text(page, "email_to") == "head-at-example: must be an e-mail address"
    assert "head-at-example" in page and secret not in page
    assert config(box)["notifications"] == saved

    fields = changed(fields, webhooks="", smtp_host="", webhook_secret_clear="on")
    assert post(web, "/settings/notifications", fields).status_code == 302
    saved = config(box)["notifications"]
    assert "email" not in saved and "webhook_secret" not in saved


def test_blacklist_add_and_remove(web, box, box_app):
    response = web.post("/settings/blacklist", data={"number": "+7900*", "note": "robocalls"})
    assert response.status_code == 302
    assert config(box)["blacklist"] == [{"number": "+7900*", "note": "robocalls"}]
    assert 'data-number="+7900*"' in web.get("/settings/").get_data(as_text=True)
    again = web.post("/settings/blacklist", data={"number": "+7900*"})
    assert again.status_code == 400 and "already" in error_text(again.get_data(as_text=True), "blacklist-number")
    bad = web.post("/settings/blacklist", data={"number": "call me", "note": "x"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "prefix ending in *" in error_text(page, "blacklist-number")
    assert 'value="call me"' in page
    assert web.post("/settings/blacklist/delete", data={"number": "+7900*"}).status_code == 302
    assert config(box)["blacklist"] == []
    assert [row["action"] for row in audit_rows(box_app, "blacklist.add")] == ["blacklist.add"]
    assert audit_rows(box_app, "blacklist.remove")


# --- who may do what -------------------------------------------------------------------

ROUTES = [
    ("GET", "/operators/"), ("POST", "/operators/op1/state"), ("GET", "/operators/new"), ("POST", "/operators/new"),
    ("GET", "/operators/op1/edit"), ("POST", "/operators/op1/edit"), ("POST", "/operators/op1/delete"),
    ("GET", "/queues/"), ("GET", "/queues/new"), ("POST", "/queues/new"), ("GET", "/queues/bachelor/edit"),
    ("POST", "/queues/bachelor/edit"), ("POST", "/queues/bachelor/delete"),
    ("GET", "/hours/"), ("POST", "/hours/office/closed"), ("GET", "/hours/new"), ("POST", "/hours/new"),
    ("GET", "/hours/office/edit"), ("POST", "/hours/office/edit"), ("POST", "/hours/office/delete"),
    ("GET", "/hours/campaigns/new"), ("POST", "/hours/campaigns/new"), ("GET", "/hours/campaigns/x/edit"),
    ("POST", "/hours/campaigns/x/edit"), ("POST", "/hours/campaigns/x/delete"),
    ("GET", "/settings/"), ("POST", "/settings/box"), ("POST", "/settings/notifications"),
    ("POST", "/settings/blacklist"), ("POST", "/settings/blacklist/delete"), ("POST", "/settings/panel"),
]
SUPERVISOR_ROUTES = {("GET", "/operators/"), ("POST", "/operators/op1/state"), ("GET", "/hours/"),
                     ("POST", "/hours/office/closed")}


def test_the_route_list_covers_every_route_of_these_pages(box_app):
    mine = {(method, rule.rule) for rule in box_app.url_map.iter_rules()
            if rule.endpoint.split(".")[0] in ("operators", "queues", "hours", "settings")
            for method in rule.methods - {"HEAD", "OPTIONS"}}
    listed = {(method, re.sub(r"/(op1|bachelor|office|x)/", "/<id>/", path)) for method, path in ROUTES}
    assert {(m, re.sub(r"<[a-z_]+>", "<id>", rule)) for m, rule in mine} == listed


@pytest.mark.parametrize("method, path", ROUTES)
def test_an_operator_account_gets_403(operator_user, box, method, path):
    assert operator_user.open(path, method=method, data={"state": "paused", "closed": "1"}).status_code == 403


@pytest.mark.parametrize("method, path", ROUTES)
def test_a_visitor_is_sent_to_login(box_app, method, path):
    response = box_app.test_client().open(path, method=method)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("method, path", sorted(set(ROUTES) - SUPERVISOR_ROUTES))
def test_a_supervisor_may_only_watch_pause_and_close(supervisor, box, method, path):
    assert supervisor.open(path, method=method).status_code == 403


def test_the_supervisor_sees_the_pages_made_for_them(supervisor):
    page = supervisor.get("/operators/").get_data(as_text=True)
    assert 'id="pause-op1"' in page and "/operators/op1/edit" not in page
    hours = supervisor.get("/hours/").get_data(as_text=True)
    assert "/hours/office/closed" in hours and "/hours/office/edit" not in hours


# --- without the engine ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/operators/", "/queues/", "/hours/", "/settings/", "/operators/new"])
def test_pages_say_clearly_when_the_engine_is_not_running(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 503
    assert 'id="engine-down"' in response.get_data(as_text=True)
