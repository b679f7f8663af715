"""Security sweeps over every route the web UI has: roles, CSRF, and paths from user input.

The sweeps read the application's URL map, so a page added later is covered without
anyone remembering to list it here; what an operator or a supervisor may open is the
short allow-list below, and everything else must refuse them.
"""
import re

import pytest

from appliance import accounts
from appliance.journal import connect
from web_ui import create_app

from .conftest import ADMIN
from .test_web import sample_path

# What an operator may reach: their own page, the dashboard, caller cards, their own calls
# (refused per call inside the view), their account, and the API (roles checked per call).
OPERATOR_ALLOWED = re.compile(r"^(dashboard\.|me\.|contacts\.|users\.account|auth\.|api\.|static$"
                              r"|journal\.(call|recording|add_note|notes|set_category|category|set_tags|tags)$)")
# What a supervisor may reach besides that: reports, the journal, operators' states, hours.
SUPERVISOR_ALLOWED = re.compile(r"^(journal\.|reports\.|testcall\.|operators\.(index|set_state|state)$"
                                r"|hours\.(index|closed|toggle_closed|set_closed)$|prompts\.(play|audio)$|lines\.(show|check_balance)$)")
PASSWORD = "long enough password"


@pytest.fixture
def people(app):
    """An admin (first run), a supervisor and an operator in the app's journal."""
    conn = connect(app.config["DATA_DIR"] + "/journal.sqlite3")
    accounts.create_first_admin(conn, *ADMIN)
    accounts.create_user(conn, "sue", PASSWORD, "supervisor")
    accounts.create_user(conn, "otto", PASSWORD, "operator")
    conn.close()


def logged_in(app, username, password=PASSWORD):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def routes(app, allowed):
    """(endpoint, method, path) of every route a role is NOT allowed on."""
    found = []
    for rule in app.url_map.iter_rules():
        if allowed.match(rule.endpoint):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, sample_path(rule)))
    return found


@pytest.mark.parametrize("role", ["operator", "supervisor"])
def test_every_route_beyond_a_role_refuses_it(app, people, role):
    username = {"operator": "otto", "supervisor": "sue"}[role]
    allowed = OPERATOR_ALLOWED if role == "operator" else re.compile(
        f"{OPERATOR_ALLOWED.pattern}|{SUPERVISOR_ALLOWED.pattern}")
    client = logged_in(app, username)
    refused = routes(app, allowed)
    assert len(refused) > 20
    for endpoint, method, path in refused:
        status = client.open(path, method=method).status_code
        assert status in (403, 404), (role, endpoint, method, path, status)


@pytest.fixture
def csrf_app(tmp_path):
    """The app with CSRF protection on, as it runs on the box."""
    return create_app({"DATA_DIR": str(tmp_path), "TESTING": True, "WTF_CSRF_ENABLED": True})


def test_every_state_changing_route_refuses_a_request_without_the_csrf_token(csrf_app):
    conn = connect(csrf_app.config["DATA_DIR"] + "/journal.sqlite3")
    accounts.create_first_admin(conn, *ADMIN)
    conn.close()
    client = csrf_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                       "csrf_token": token}).status_code == 302
    checked = 0
    for rule in csrf_app.url_map.iter_rules():
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            response = client.open(sample_path(rule), method=method)
            assert response.status_code == 400, (rule.endpoint, method, response.status_code)
            checked += 1
    assert checked > 20
    # The token of the logged-in session works: logging out with it is accepted.
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


@pytest.mark.parametrize("path", ["/journal/1/recording", "/prompts/en/..%2f..%2fweb-secret/audio",
                                  "/prompts/xx/greeting/audio", "/prompts/en/../../etc/passwd",
                                  "/static/../web-secret.key", "/static/..%2fweb-secret.key"])
def test_no_path_from_the_url_reaches_other_files(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code in (403, 404)
    assert b"root:" not in response.data and len(response.data) < 20_000
