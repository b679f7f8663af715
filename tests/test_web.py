"""The web pages through Flask's test client: first run, login everywhere, roles, playback."""
import os
import re

import pytest

from appliance import accounts
from appliance.journal import Journal, connect
from web_ui import create_app

from .conftest import ADMIN

PROTECTED = ["/", "/api/status", "/journal/", "/journal/1", "/journal/1/recording"]


def test_first_visit_goes_to_setup_and_there_is_no_default_login(client):
    assert client.get("/").headers["Location"] == "/setup"
    assert client.get("/login").headers["Location"] == "/setup"
    assert client.post("/login", data={"username": "admin", "password": "admin"}).headers["Location"] == "/setup"
    assert "no default password" in client.get("/setup").get_data(as_text=True)


@pytest.mark.parametrize("form, field", [
    ({"username": "admin", "password": "short", "confirm": "short"}, "password"),
    ({"username": "admin", "password": "long enough 1", "confirm": "different 12"}, "confirm"),
    ({"username": " ", "password": "long enough 1", "confirm": "long enough 1"}, "username"),
])
def test_setup_refuses_a_bad_account_with_the_field_named(client, app, form, field):
    response = client.post("/setup", data=form)
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    with app.app_context():
        from web_ui.db import get_db
        assert accounts.count_users(get_db()) == 0


def test_setup_creates_the_admin_logs_in_and_closes(admin_client):
    assert admin_client.get("/").status_code == 200
    assert admin_client.get("/setup").headers["Location"] == "/login"
    second = admin_client.post("/setup", data={"username": "evil", "password": "0123456789", "confirm": "0123456789"})
    assert second.headers["Location"] == "/login"


@pytest.mark.parametrize("path", PROTECTED)
def test_login_is_required_everywhere(admin_client, path):
    admin_client.post("/logout")
    response = admin_client.get(path)
    if path.startswith("/api/"):
        assert response.status_code == 401
    else:
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_every_registered_route_is_guarded(admin_client, app):
    """A visitor without a session reaches no route but setup, login and static files."""
    admin_client.post("/logout")
    for rule in app.url_map.iter_rules():
        if rule.endpoint in {"auth.setup", "auth.login", "static", "api.openapi_json"}:  # the API description is public
            continue
        path = sample_path(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = admin_client.open(path, method=method)
            expected = (401,) if path.startswith("/api/") else (302,)
            assert response.status_code in expected, (method, path, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/login"), (method, path)


def sample_path(rule):
    """A concrete path for ``rule`` with harmless sample values in its placeholders."""
    samples = {"int": "1", "string": "x1", "path": "x1", "default": "x1"}
    path = rule.rule
    for argument in rule.arguments:
        converter = type(rule._converters[argument]).__name__.replace("Converter", "").lower()
        value = samples.get({"integer": "int", "unicode": "string"}.get(converter, converter), "x1")
        path = re.sub(rf"<(?:[^:<>]+:)?{argument}>", value, path)
    return path


def test_login_logout_and_safe_next(admin_client):
    admin_client.post("/logout")
    username, password = ADMIN
    response = admin_client.post("/login?next=//evil.example/", data={"username": username, "password": password})
    assert response.headers["Location"] == "/"
    response = admin_client.post("/logout")
    response = admin_client.post("/login?next=/journal/", data={"username": username, "password": password})
    assert response.headers["Location"] == "/journal/"


def test_wrong_passwords_are_refused_then_rate_limited(admin_client):
    admin_client.post("/logout")
    for _ in range(5):
        assert admin_client.post("/login", data={"username": "admin", "password": "wrong"}).status_code == 401
    username, password = ADMIN
    assert admin_client.post("/login", data={"username": username, "password": password}).status_code == 429


def test_session_cookie_flags(client):
    username, password = ADMIN
    response = client.post("/setup", data={"username": username, "password": password, "confirm": password})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_forms_need_a_csrf_token(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    client = app.test_client()
    assert client.post("/setup", data={"username": "a", "password": "0123456789", "confirm": "0123456789"}).status_code == 400
    page = client.get("/setup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/setup", data={"username": "a", "password": "0123456789", "confirm": "0123456789",
                                           "csrf_token": token})
    assert response.status_code == 302


def test_dashboard_says_when_the_engine_is_not_running(admin_client):
    page = admin_client.get("/").get_data(as_text=True)
    assert "The engine does not answer" in page
    assert "does not answer" in admin_client.get("/api/status").get_json()["error"]


@pytest.fixture
def recorded_call(app):
    data = app.config["DATA_DIR"]
    book = Journal(connect(os.path.join(data, "journal.sqlite3")))
    call_id = book.start_call("gsm1", "in", caller="+359888123456")
    book.answer_call(call_id)
    relative = os.path.join("recordings", "2026", "11", "24", f"call-{call_id}.wav")
    os.makedirs(os.path.dirname(os.path.join(data, relative)))
    with open(os.path.join(data, relative), "wb") as handle:
        handle.write(b"RIFF" + bytes(2000))
    book.end_call(call_id, "answered", "caller", talk_seconds=2.0, recording=relative)
    return book, call_id


def test_journal_lists_the_call_and_plays_it(admin_client, recorded_call):
    _, call_id = recorded_call
    assert "+359888123456" in admin_client.get("/journal/").get_data(as_text=True)
    page = admin_client.get(f"/journal/{call_id}").get_data(as_text=True)
    assert f'src="/journal/{call_id}/recording"' in page and "answered" in page
    audio = admin_client.get(f"/journal/{call_id}/recording")
    assert audio.status_code == 200 and audio.mimetype == "audio/wav" and audio.data.startswith(b"RIFF")
    part = admin_client.get(f"/journal/{call_id}/recording", headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.data == b"RIFF"


def test_unknown_call_is_404(admin_client):
    assert admin_client.get("/journal/999").status_code == 404
    assert admin_client.get("/journal/999/recording").status_code == 404


def test_a_recording_path_outside_the_recordings_folder_is_never_served(admin_client, app):
    book = Journal(connect(os.path.join(app.config["DATA_DIR"], "journal.sqlite3")))
    call_id = book.start_call("gsm1", "in", caller="+359888123456")
    book.end_call(call_id, "answered", "caller", recording="../../etc/passwd")
    book.end_call(call_id, "answered", "caller", recording="web-secret.key")
    assert admin_client.get(f"/journal/{call_id}/recording").status_code == 404


def test_operators_may_not_open_the_journal_or_recordings(admin_client, app, recorded_call):
    _, call_id = recorded_call
    with app.app_context():
        from web_ui.db import get_db
        accounts.create_user(get_db(), "olga", "operator password", "operator")
    admin_client.post("/logout")
    admin_client.post("/login", data={"username": "olga", "password": "operator password"})
    assert admin_client.get("/").status_code == 200
    for path in ("/journal/", f"/journal/{call_id}", f"/journal/{call_id}/recording"):
        assert admin_client.get(path).status_code == 403
    assert "Journal</a>" not in admin_client.get("/").get_data(as_text=True)


def test_lines_without_live_details_render(app):
    """A line that is starting or down has no signal yet: the pages still render (they used to fail)."""
    starting = {"lines": [{"id": "gsm1", "state": "starting", "activity": "starting"},
                          {"id": "gsm2", "state": "down", "error": "port closed", "activity": "down"}],
                "calls": [], "queue": [], "operators": [], "media": {"ticks": 0, "late_ticks": 0}}
    with app.test_request_context():
        from flask import render_template
        html = render_template("dashboard.html", status=starting)
        rows = [{"line": {"id": live["id"], "driver": "sim7600", "enabled": True}, "live": live, "binding": "port"}
                for live in starting["lines"]]
        lines_page = render_template("lines.html", rows=rows, engine_error=None)
    assert 'data-line="gsm1"' in html and "port closed" in html
    assert 'data-line="gsm2"' in lines_page and "port closed" in lines_page
