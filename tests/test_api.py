"""The REST API against a running box: tokens and sessions, roles, CSRF, every endpoint, JSON errors."""
import os
import re
import wave

import pytest

from appliance import accounts, contacts
from appliance.control import ControlClient
from appliance.journal import Journal, connect
from web_ui import create_app

from .conftest import ADMIN, wait_for

API = "/api/v1"
SUPERVISOR = ("sup", "supervisor password")
OPERATOR = ("oper", "operator password")
OTHER_OPERATOR = ("oper2", "operator2 password")
CALLER = "+359888000321"
SMS_PEER = "+359888000777"
ALL = ("admin", "supervisor", "operator")
STAFF = ("admin", "supervisor")


@pytest.fixture(scope="module")
def app(box):
    """The web app of the running box (CSRF off: tokens and the test client's sessions)."""
    return create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture(scope="module")
def conn(box):
    """A journal connection of the test's own (the engine writes the same database)."""
    connection = connect(os.path.join(box.data_dir, "journal.sqlite3"))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def tokens(app, conn):
    """One API token per role (the operator's linked to op1, another operator's to op2), made as the pages do."""
    username, password = ADMIN
    client = app.test_client()
    setup = client.post("/setup", data={"username": username, "password": password, "confirm": password})
    assert setup.status_code == 302
    accounts.create_user(conn, *SUPERVISOR, "supervisor")
    accounts.create_user(conn, *OPERATOR, "operator", operator_id="op1")
    accounts.create_user(conn, *OTHER_OPERATOR, "operator", operator_id="op2")
    return {
        "admin": accounts.create_token(conn, "crm", "admin", username),
        "supervisor": accounts.create_token(conn, "wallboard", "supervisor", SUPERVISOR[0]),
        "operator": accounts.create_token(conn, "op1 phone", "operator", OPERATOR[0]),
        "operator2": accounts.create_token(conn, "op2 phone", "operator", OTHER_OPERATOR[0]),
    }


class Api:
    """Requests to /api/v1 with the bearer token of a role (or none)."""

    def __init__(self, client, tokens):
        self.client = client
        self.tokens = tokens

    def __call__(self, method, path, role="admin", **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if role:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return self.client.open(API + path, method=method, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def api(app, tokens):
    """The API client of the module."""
    return Api(app.test_client(), tokens)


@pytest.fixture(scope="module")
def calls(conn):
    """Journal rows for role checks: op1's answered call and a missed call nobody answered."""
    journal = Journal(conn)
    own = journal.start_call("gsm1", "in", CALLER)
    journal.set_call(own, operator="op1", queue="bachelor")
    journal.end_call(own, "answered", "caller", talk_seconds=12.0)
    other = journal.start_call("gsm2", "in", "+359888000322")
    journal.end_call(other, "missed", "box")
    return {"own": own, "other": other}


def error_of(response, status):
    """The JSON error of a response that must have ``status``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    return response.get_json()


def placed_call_id(api, placed, number):
    """The journal id a test call answered with, else (a box slowed by load) the newest call from ``number``."""
    if placed["call"] is not None:
        return placed["call"]
    return wait_for(lambda: [call["id"] for call in api("GET", f"/calls?number={number}").get_json()["calls"]],
                    timeout=30)[0]


def wait_ended(api, call_id, timeout=60):
    """The call as the API shows it once the journal has it ended."""
    return wait_for(lambda: (lambda call: call if call.get("ended_at") else None)(
        api("GET", f"/calls/{call_id}").get_json()), timeout=timeout)


# --- authentication ---------------------------------------------------------------------------


def test_a_token_says_who_is_asking(api):
    assert api("GET", "/me").get_json() == {"username": "token:crm", "role": "admin", "operator_id": None,
                                            "auth": "token"}
    assert api("GET", "/me", role="operator").get_json()["operator_id"] == "op1"  # from the user who made it


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "bearer"])
def test_a_bad_authorization_header_is_401(api, header):
    body = error_of(api("GET", "/me", role=None, headers={"Authorization": header}), 401)
    assert "token" in body["error"].lower()


def test_a_revoked_token_is_401(api, conn):
    token = accounts.create_token(conn, "old", "admin", ADMIN[0])
    assert api("GET", "/me", role=None, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    token_id = conn.execute("SELECT id FROM api_tokens WHERE name = 'old'").fetchone()[0]
    accounts.revoke_token(conn, token_id)
    error_of(api("GET", "/me", role=None, headers={"Authorization": f"Bearer {token}"}), 401)


def test_a_bad_token_is_not_rescued_by_a_session(app, tokens):
    client = app.test_client()
    username, password = ADMIN
    assert client.post("/login", data={"username": username, "password": password}).status_code == 302
    assert client.get(API + "/me").get_json()["auth"] == "session"
    error_of(client.get(API + "/me", headers={"Authorization": "Bearer wrong"}), 401)


def test_the_description_needs_no_authentication(app):
    document = app.test_client().get(API + "/openapi.json").get_json()
    assert document["openapi"].startswith("3.0") and "/calls/{call_id}" in document["paths"]


@pytest.fixture(scope="module")
def csrf_app(box, tokens):
    """The same box's web app with CSRF protection on, as in production."""
    return create_app({"DATA_DIR": box.data_dir, "TESTING": True})


def logged_in(app, conn, username):
    """A test client with the session of ``username`` (logged in without the form)."""
    client = app.test_client()
    user_id = conn.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()[0]
    with client.session_transaction() as session:
        session["user_id"] = user_id
        session["username"] = username  # the guard checks both (a restored journal may reuse ids)
    return client


def test_a_session_post_needs_the_csrf_token_a_bearer_token_does_not(csrf_app, conn, tokens, calls):
    client = logged_in(csrf_app, conn, ADMIN[0])
    path = f"{API}/calls/{calls['other']}/notes"
    assert client.get(f"{API}/calls/{calls['other']}").status_code == 200  # reading needs no CSRF token
    body = error_of(client.post(path, json={"text": "no token"}), 400)
    assert body["parameter"] == "X-CSRFToken"
    page = client.get("/").get_data(as_text=True)
    csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(path, json={"text": "with token"}, headers={"X-CSRFToken": csrf_token}).status_code == 201
    bearer = csrf_app.test_client().post(path, json={"text": "by token"},
                                         headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert bearer.status_code == 201 and bearer.get_json()["author"] == "token:crm"
    texts = [note["text"] for note in client.get(f"{API}/calls/{calls['other']}").get_json()["notes"]]
    assert "no token" not in texts and {"with token", "by token"} <= set(texts)


# --- roles, every endpoint ----------------------------------------------------------------------

# (method, path, body, roles that may): bodies are refused after the role check (400/404/409/422),
# so an allowed role proves it got through without changing anything.
ENDPOINTS = [
    ("GET", "/me", None, ALL),
    ("GET", "/status", None, ALL),
    ("GET", "/calls", None, ALL),
    ("GET", "/calls/{other}", None, STAFF),
    ("GET", "/calls/{other}/recording", None, STAFF),
    ("POST", "/calls/{other}/notes", {"text": "   "}, STAFF),
    ("PUT", "/calls/{other}/tags", {"tags": "not a list"}, STAFF),
    ("PUT", "/calls/{other}/category", {}, STAFF),
    ("POST", "/calls/{other}/hangup", None, STAFF),
    ("GET", "/contacts/+359888000322", None, ALL),
    ("PUT", "/contacts/+359888000322", {"name": 5}, ALL),
    ("GET", "/callbacks", None, STAFF),
    ("GET", "/operators", None, ALL),
    ("PUT", "/operators/op1/state", {"state": "asleep"}, ALL),
    ("GET", "/config/settings", None, ("admin",)),
    ("PUT", "/config/settings", {"no value": True}, ("admin",)),
    ("POST", "/test-calls", {"kind": "sideways", "line": "gsm1"}, STAFF),
    ("GET", "/lines/gsm1", None, STAFF),
    ("POST", "/lines/gsm1/sms", {"to": "nobody", "text": "x"}, ("admin",)),
    ("POST", "/lines/nosuchline/balance", None, STAFF),
    ("GET", "/reports/traffic", None, STAFF),
    ("GET", "/reports/heat-map", None, STAFF),
    ("GET", "/reports/staffing", None, STAFF),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _, _ in ENDPOINTS]


def request(api, endpoint, calls, role):
    """One ENDPOINTS entry as ``role``."""
    method, path, body, _ = endpoint
    return api(method, path.format(**calls), role=role, json=body)


@pytest.mark.parametrize("role", ALL)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_each_endpoint_lets_exactly_its_roles_through(api, calls, endpoint, role):
    response = request(api, endpoint, calls, role)
    assert response.is_json
    if role in endpoint[3]:
        assert response.status_code not in (401, 403, 500), response.get_data(as_text=True)
    else:
        assert "error" in error_of(response, 403)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
def test_each_endpoint_without_authentication_is_401(api, calls, endpoint):
    response = request(api, endpoint, calls, None)
    assert error_of(response, 401)["error"] and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_description_covers_every_route_of_the_api(app):
    document = app.test_client().get(API + "/openapi.json").get_json()
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routed = {(method, re.sub(r"<(?:int:)?(\w+)>", r"{\1}", rule.rule)[len(API):])
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert described == routed


# --- an operator's own calls and state -----------------------------------------------------------


def test_an_operator_sees_only_the_calls_they_answered(api, calls):
    listed = api("GET", "/calls?role=all&limit=500", role="operator").get_json()
    assert {call["operator"] for call in listed["calls"]} == {"op1"} and listed["total"] >= 1
    assert calls["own"] in {call["id"] for call in listed["calls"]}
    assert api("GET", f"/calls/{calls['own']}", role="operator").status_code == 200
    error_of(api("GET", f"/calls/{calls['own']}", role="operator2"), 403)
    error_of(api("GET", "/calls?operator=op2", role="operator"), 403)
    assert api("GET", "/calls", role="operator2").get_json()["total"] == 0  # op2 answered nothing


def test_an_operator_annotates_their_own_call(api, calls):
    call_id = calls["own"]
    note = api("POST", f"/calls/{call_id}/notes", role="operator", json={"text": "  asked about dorms  "})
    assert note.status_code == 201 and note.get_json()["text"] == "asked about dorms"
    assert api("PUT", f"/calls/{call_id}/tags", role="operator", json={"tags": ["Dorms", "dorms", "urgent"]}
               ).get_json() == {"call_id": call_id, "tags": ["dorms", "urgent"]}
    assert api("PUT", f"/calls/{call_id}/category", role="operator", json={"category": "  Dormitories "}
               ).get_json()["category"] == "Dormitories"
    call = api("GET", f"/calls/{call_id}").get_json()
    assert call["tags"] == ["dorms", "urgent"] and call["category"] == "Dormitories"
    assert call["notes"][-1]["author"] == "token:op1 phone"
    assert api("GET", "/calls?tag=urgent&category=Dormitories").get_json()["calls"][0]["id"] == call_id
    assert api("PUT", f"/calls/{call_id}/category", json={"category": None}).get_json()["category"] is None


@pytest.mark.parametrize("path, body, field", [
    ("notes", {"text": "x" * 2001}, "text"),
    ("tags", {"tags": ["x" * 33]}, "tags"),
    ("tags", {"tags": [str(i) for i in range(21)]}, "tags"),
    ("category", {"category": "x" * 61}, "category"),
])
def test_a_refused_annotation_is_422_with_its_field(api, calls, path, body, field):
    method = "POST" if path == "notes" else "PUT"
    assert error_of(api(method, f"/calls/{calls['own']}/{path}", json=body), 422)["field"] == field


def test_operators_state_from_the_api(api, box):
    assert [op["id"] for op in api("GET", "/operators").get_json()["operators"]] == ["op1"]
    assert api("GET", "/operators", role="operator2").get_json() == {"operators": []}
    paused = api("PUT", "/operators/op1/state", role="operator", json={"state": "paused"})
    assert paused.status_code == 200 and paused.get_json()["state"] == "paused"
    assert box.status()["operators"][0]["state"] == "paused"
    error_of(api("PUT", "/operators/op1/state", role="operator2", json={"state": "ready"}), 403)
    assert api("PUT", "/operators/op1/state", role="supervisor", json={"state": "ready"}).get_json()["state"] == "ready"
    error_of(api("PUT", "/operators/nobody/state", json={"state": "ready"}), 404)


# --- caller cards and call-backs --------------------------------------------------------------------


def test_a_caller_card_is_read_and_written(api, calls):
    empty = api("GET", "/contacts/+359888000999").get_json()
    assert (empty["name"], empty["calls"], empty["updated_at"]) == ("", [], None)
    saved = api("PUT", f"/contacts/{CALLER}", json={"name": "Иван Петров", "status": "vip", "tags": ["Parent"]})
    assert saved.status_code == 200
    card = saved.get_json()
    assert (card["name"], card["status"], card["tags"]) == ("Иван Петров", "vip", ["parent"])
    assert calls["own"] in [call["id"] for call in card["calls"]]
    kept = api("PUT", f"/contacts/{CALLER}", json={"notes": "calls every morning"}).get_json()
    assert (kept["name"], kept["notes"]) == ("Иван Петров", "calls every morning")  # left-out fields kept
    assert error_of(api("PUT", f"/contacts/{CALLER}", json={"name": "x" * 101}), 422)["field"] == "name"
    assert error_of(api("GET", "/contacts/not-a-number"), 400)["parameter"] == "number"


def test_callbacks_are_listed_by_status(api, conn):
    Journal(conn).open_callback("+359888000555", "closed", line_id="gsm1")
    open_tasks = api("GET", "/callbacks").get_json()
    assert "+359888000555" in [task["number"] for task in open_tasks["callbacks"]]
    assert api("GET", "/callbacks?status=done").get_json()["callbacks"] == []
    assert error_of(api("GET", "/callbacks?status=maybe"), 400)["parameter"] == "status"


# --- query validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("query, parameter", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset"),
    ("from=2026-02-30", "from"), ("to=yesterday", "to"), ("from=2026-07-02&to=2026-07-01", "to"),
    ("number=12", "number"), ("number=%2B35988%27--", "number"), ("outcome=great", "outcome"),
    ("line=GSM1", "line"), ("role=boss", "role"), ("tag=a,b", "tag"), ("number=359888000321%0A", "number"),
    ("to=9999-12-31", "to"), ("from=0001-01-01", "from"),  # the day after 9999-12-31 does not exist
])
def test_a_bad_call_filter_is_400_naming_it(api, query, parameter):
    assert error_of(api("GET", f"/calls?{query}"), 400)["parameter"] == parameter


def test_calls_filter_and_page(api, calls):
    answered = api("GET", "/calls?outcome=answered&line=gsm1&queue=bachelor&number=888000321").get_json()
    assert [call["id"] for call in answered["calls"]] == [calls["own"]]
    page = api("GET", "/calls?role=all&limit=1&offset=1").get_json()
    assert (page["limit"], page["offset"], len(page["calls"])) == (1, 1, 1) and page["total"] >= 2
    call = api("GET", f"/calls/{calls['own']}").get_json()
    assert "recording" not in call and call["recording_url"] is None and call["events"][0]["kind"] == "ring"


@pytest.mark.parametrize("query, parameter", [
    ("from=2026-07-10&to=2026-07-01", "to"), ("from=2020-01-01&to=2026-01-01", "from"),
    ("group_by=minute", "group_by"), ("from=07/01/2026", "from"), ("from=2026-07-01&to=9999-12-31", "to"),
    ("from=0001-01-01&to=2026-07-01", "from"),
])
def test_a_bad_report_range_is_400(api, query, parameter):
    assert error_of(api("GET", f"/reports/traffic?{query}"), 400)["parameter"] == parameter


def test_reports_from_the_journal(api, calls):
    traffic = api("GET", "/reports/traffic?group_by=operator").get_json()
    assert traffic["group_by"] == "operator" and traffic["total"]["answered"] >= 1
    assert "op1" in [row["key"] for row in traffic["rows"]]
    assert len(api("GET", "/reports/heat-map").get_json()["grid"]) == 7
    assert api("GET", "/reports/staffing?target_seconds=30&target_level=0.9").get_json()["target_level"] == 0.9
    weekly = api("GET", "/reports/traffic?group_by=weekday_hour").get_json()
    assert all(isinstance(row["key"], list) for row in weekly["rows"])


# --- errors are JSON ------------------------------------------------------------------------------


def test_errors_under_the_api_are_json_and_pages_keep_theirs(api, app, conn):
    assert error_of(api("GET", "/no/such/thing"), 404)["error"]
    error_of(api("GET", "/calls/999999999"), 404)
    error_of(api("GET", "/calls/99999999999999999999999"), 404)  # beyond SQLite's integers: still 404
    not_allowed = api("DELETE", "/calls")
    assert error_of(not_allowed, 405) and "GET" in not_allowed.headers["Allow"]
    assert error_of(api("POST", "/calls/1/notes", data="{not json", content_type="application/json"),
                    400)["parameter"] == "body"
    assert error_of(api("POST", "/calls/1/notes", json=["a list"]), 400)["parameter"] == "body"
    assert error_of(api("PUT", "/contacts/+359888000321", data="x" * (1024 * 1024 + 1),
                        content_type="application/json"), 413)
    assert error_of(app.test_client().get("/api/status"), 401)  # the pages' own JSON endpoints too
    error_of(api("GET", "/contacts/+359888000321%0A"), 400)  # "$" must not let a trailing newline through
    page = logged_in(app, conn, ADMIN[0]).get("/no-such-page")
    assert page.status_code == 404 and not page.is_json  # pages keep their own error pages


@pytest.mark.parametrize("method, path, raw", [
    ("PUT", "/contacts/+359888000321", '{"name": "\\ud800"}'), ("POST", "/calls/{own}/notes", '{"text": "a\\udfff"}'),
    ("PUT", "/config/settings", '{"value": {"\\ud800": 1}}'),
])
def test_a_lone_surrogate_is_400_not_a_crash(api, calls, method, path, raw):
    """Valid JSON, but no UTF-8 database (or engine socket) can take it."""
    response = api(method, path.format(**calls), data=raw, content_type="application/json")
    assert error_of(response, 400)["parameter"] == "body"


# --- recordings ----------------------------------------------------------------------------------------


def write_wav(path):
    """A tenth of a second of silence as the recorder writes it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 800)


def call_with_recording(conn, recording):
    """An ended call whose journal row names ``recording``."""
    journal = Journal(conn)
    call_id = journal.start_call("gsm1", "in", "+359888000400")
    journal.end_call(call_id, "answered", "caller", talk_seconds=1.0, recording=recording)
    return call_id


@pytest.mark.parametrize("stored", [
    "recordings/../web-secret.key", "../web-secret.key", "recordings/../../../etc/passwd", "/etc/passwd",
    "recordings/2026/07/01/../../../../journal.sqlite3", "recordings/link-out.wav", "recordings/\0.wav",
])
def test_a_recording_path_outside_recordings_is_never_served(api, box, conn, stored):
    link = os.path.join(box.data_dir, "recordings", "link-out.wav")
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.join(box.data_dir, "web-secret.key"), link)  # a symlink that leads out
    call_id = call_with_recording(conn, stored)
    response = api("GET", f"/calls/{call_id}/recording")
    assert error_of(response, 404)["error"]


@pytest.mark.parametrize("path", ["/calls/..%2F..%2Fweb-secret.key/recording", "/calls/1/recording/../../../x",
                                  "/calls/%2e%2e/recording"])
def test_the_url_cannot_name_a_recording_file(api, path):
    response = api("GET", path)
    assert response.status_code == 404 and response.is_json


def test_a_recording_is_served_to_whom_may_hear_it(api, box, conn):
    relative = "recordings/2026/07/01/call-api.wav"
    write_wav(os.path.join(box.data_dir, relative))
    call_id = call_with_recording(conn, relative)
    audio = api("GET", f"/calls/{call_id}/recording", role="supervisor")
    assert audio.status_code == 200 and audio.mimetype == "audio/wav" and audio.data[:4] == b"RIFF"
    assert api("GET", f"/calls/{call_id}/recording", role="operator").status_code == 403  # not their call
    ranged = api("GET", f"/calls/{call_id}/recording", headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.data == b"RIFF"  # seeking in the browser's player


# --- the engine: configuration, calls, lines -------------------------------------------------------


def test_a_refused_config_value_is_422_and_changes_nothing(api, box):
    before = box.engine.request("config")["config"]
    settings = api("GET", "/config/settings").get_json()
    assert settings["section"] == "settings" and settings["value"] == before["settings"]
    bad = dict(settings["value"], timezone="Mars/Olympus_Mons")
    body = error_of(api("PUT", "/config/settings", json={"value": bad}), 422)
    assert body["field"] == "settings.timezone" and "Mars" in body["message"]
    assert error_of(api("PUT", "/config/operators", json={"value": {"not": "a list"}}), 422)["field"] == "operators"
    assert box.engine.request("config")["config"] == before


def test_a_config_section_is_replaced_and_audited(api, box, conn):
    original = api("GET", "/config/settings").get_json()["value"]
    saved = api("PUT", "/config/settings", json={"value": dict(original, box_name="Admissions API")})
    assert saved.status_code == 200 and saved.get_json()["saved"] is True
    assert box.status()["box"] == "Admissions API"
    audit = conn.execute("SELECT username, action FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert tuple(audit) == ("token:crm", "config.settings")
    assert api("PUT", "/config/settings", json={"value": original}).status_code == 200


def test_secrets_read_as_set_and_a_round_trip_keeps_them(api, box):
    original = box.engine.request("config")["config"]["notifications"]
    secret = "a long random phrase for the CRM"
    with_hook = dict(original, webhooks=["http://127.0.0.1:9/hook"], webhook_secret=secret)
    assert api("PUT", "/config/notifications", json={"value": with_hook}).status_code == 200
    shown = api("GET", "/config/notifications").get_json()["value"]
    assert shown["webhook_secret"] == "(set)" and shown["webhooks"] == ["http://127.0.0.1:9/hook"]
    shown["events"] = ["call.missed"]
    assert api("PUT", "/config/notifications", json={"value": shown}).status_code == 200
    stored = box.engine.request("config")["config"]["notifications"]
    assert (stored["webhook_secret"], stored["events"]) == (secret, ["call.missed"])
    assert api("PUT", "/config/notifications", json={"value": original}).status_code == 200


def test_an_unexpected_failure_is_a_json_500(box, tokens, monkeypatch):
    production = create_app({"DATA_DIR": box.data_dir})  # not TESTING: an exception becomes a 500 answer

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(contacts, "search_calls", broken)
    response = production.test_client().get(API + "/calls", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert error_of(response, 500) == {"error": "internal error"}


@pytest.mark.parametrize("section", ["virtual", "nope", "Settings"])
def test_unknown_and_hidden_config_sections_are_404(api, section):
    error_of(api("GET", f"/config/{section}"), 404)
    error_of(api("PUT", f"/config/{section}", json={"value": {}}), 404)


def test_status_and_a_line(api):
    status = api("GET", "/status", role="operator").get_json()
    assert [line["id"] for line in status["lines"]] == ["gsm1", "gsm2", "sip1"]
    line = api("GET", "/lines/gsm1", role="supervisor").get_json()
    assert line["line"]["state"] == "up"
    error_of(api("GET", "/lines/gsm9"), 404)
    error_of(api("GET", "/lines/NOT-AN-ID"), 404)


def test_an_inbound_test_call_lands_in_the_journal_with_its_recording(api):
    placed = api("POST", "/test-calls", role="supervisor",
                 json={"kind": "inbound", "line": "gsm1", "from": CALLER, "hold": 4})
    assert placed.status_code == 202
    result = placed.get_json()
    assert (result["kind"], result["from"], result["line"]) == ("inbound", CALLER, "gsm1")
    call_id = placed_call_id(api, result, CALLER)  # normally in the answer: the engine saw the ring by then
    call = wait_ended(api, call_id)
    assert call["caller"] == CALLER and call["answered_at"] and call["ended_by"] == "caller"
    assert call["has_recording"] and call["recording_url"] == f"{API}/calls/{call_id}/recording"
    path = call["recording_url"][len(API):]  # the URL is absolute on the box
    audio = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(api("GET", path)), timeout=30)
    assert audio.mimetype.startswith("audio/") and len(audio.data) > 1000
    assert call_id in [c["id"] for c in api("GET", f"/contacts/{CALLER}").get_json()["calls"]]


def test_a_call_in_progress_is_hung_up_from_the_api(api, box):
    placed = api("POST", "/test-calls", json={"kind": "inbound", "line": "gsm1", "from": "+359888000654",
                                               "hold": 30}).get_json()
    call_id = placed_call_id(api, placed, "+359888000654")
    wait_for(lambda: any(call["id"] == call_id and call["talk_seconds"] for call in box.status()["calls"]),
             timeout=30)
    hung = api("POST", f"/calls/{call_id}/hangup", role="supervisor")
    assert hung.status_code == 202 and hung.get_json()["call"] == call_id
    call = wait_ended(api, call_id)
    assert call["ended_by"] == "box"
    assert "over" in error_of(api("POST", f"/calls/{call_id}/hangup"), 409)["error"]


def test_an_outbound_test_call(api):
    placed = api("POST", "/test-calls", json={"kind": "outbound", "line": "gsm2", "to": "+359700000100", "hold": 2})
    assert placed.status_code == 202
    call = wait_ended(api, placed.get_json()["call"], timeout=60)
    assert (call["direction"], call["role"], call["callee"]) == ("out", "test", "+359700000100")


@pytest.mark.parametrize("body, parameter", [
    ({"kind": "inbound"}, "line"), ({"kind": "outbound", "line": "gsm2"}, "to"),
    ({"kind": "inbound", "line": "gsm1", "digits": "12a"}, "digits"),
    ({"kind": "inbound", "line": "gsm1", "hold": 0}, "hold"),
    ({"kind": "inbound", "line": "gsm1", "hold": True}, "hold"),
    ({"kind": "inbound", "line": "gsm1", "from": "me"}, "from"),
    ({"kind": "outbound", "line": "gsm2", "to": "+359700000100", "hold": 10 ** 400}, "hold"),  # too big for a float
    ({"kind": "outbound", "line": "gsm2", "to": "+359700000100", "hold": "5"}, "hold"),
])
def test_a_bad_test_call_is_400_naming_the_field(api, body, parameter):
    assert error_of(api("POST", "/test-calls", json=body), 400)["parameter"] == parameter


def test_a_test_call_on_a_line_without_a_virtual_modem_is_404(api):
    assert "virtual" in error_of(api("POST", "/test-calls", json={"kind": "inbound", "line": "gsm7"}), 404)["error"]


def test_an_sms_goes_out_through_a_line(api, box):
    sent = api("POST", "/lines/gsm1/sms", json={"to": SMS_PEER, "text": "Тест от API"})
    assert sent.status_code == 201 and sent.get_json() == {"line": "gsm1", "to": SMS_PEER, "parts": 1}
    twin = ControlClient(os.path.join(box.data_dir, "twin.sock"))
    assert wait_for(lambda: twin.request("sms_log", to=SMS_PEER))[-1]["text"] == "Тест от API"
    assert error_of(api("POST", "/lines/gsm9/sms", json={"to": SMS_PEER, "text": "x"}), 404)
    too_long = api("POST", "/lines/gsm1/sms", json={"to": SMS_PEER, "text": "x" * 1001})
    assert error_of(too_long, 400)["parameter"] == "text"


def test_the_engine_down_is_503(box, tokens, tmp_path):
    lonely = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})
    conn = connect(os.path.join(str(tmp_path), "journal.sqlite3"))
    accounts.create_first_admin(conn, "admin", "correct horse battery")
    token = accounts.create_token(conn, "t", "admin", "admin")
    client = lonely.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in (("GET", "/status"), ("GET", "/operators"), ("GET", "/config/settings"),
                         ("POST", "/lines/gsm1/balance")):
        assert "engine" in error_of(client.open(API + path, method=method, headers=headers), 503)["error"]
    assert client.get(API + "/calls", headers=headers).get_json()["total"] == 0  # the journal needs no engine
