"""The live pages on a running demo box: event stream, dashboard commands, wallboard, /me, test calls."""
import json
import os
import queue
import re
import threading
import time

import pytest

from appliance import accounts
from appliance.control import ControlClient
from appliance.journal import JOURNAL_FILE, connect
from web_ui import create_app

from .conftest import ADMIN, wait_for

PASSWORD = "operator password 1"
LIVE_CONFIG = {"TESTING": True, "WTF_CSRF_ENABLED": False, "EVENTS_KEEPALIVE_SECONDS": 0.2,
               "EVENTS_BACKOFF_SECONDS": (0.2,)}
JSON = {"Accept": "application/json"}
OPERATOR_NUMBER = "+359700000100"  # op1's virtual mobile in the demo configuration


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_app(box):
    """The web app on the running demo box's data directory."""
    return create_app({"DATA_DIR": box.data_dir, **LIVE_CONFIG})


def _journal(box):
    return connect(os.path.join(box.data_dir, JOURNAL_FILE))


def _log_in(app, username, password):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture(scope="module")
def clients(live_app, box):
    """A logged-in client per role; the operator is linked to op1, and one more operator to nobody."""
    app = live_app
    admin = app.test_client()
    username, password = ADMIN
    setup = admin.post("/setup", data={"username": username, "password": password, "confirm": password})
    assert setup.status_code == 302
    conn = _journal(box)
    try:
        accounts.create_user(conn, "super", PASSWORD, "supervisor")
        user_id = accounts.create_user(conn, "olga", PASSWORD, "operator")
        conn.execute("UPDATE users SET operator_id = 'op1' WHERE id = ?", (user_id,))
        accounts.create_user(conn, "loose", PASSWORD, "operator")
    finally:
        conn.close()
    return {"admin": admin, "supervisor": _log_in(app, "super", PASSWORD), "operator": _log_in(app, "olga", PASSWORD),
            "unlinked": _log_in(app, "loose", PASSWORD), "visitor": app.test_client()}


def engine(box):
    """A control client for the box's engine."""
    return ControlClient(os.path.join(box.data_dir, "engine.sock"))


def operator_state(box, operator_id="op1"):
    """The operator's state as the engine has it."""
    return next(op["state"] for op in engine(box).request("status")["operators"] if op["id"] == operator_id)


def place_call(box, number, line="gsm1", digits="", hold=3.0):
    """A virtual caller rings ``line`` on a thread; returns (thread, result dict filled when it hangs up)."""
    result = {}
    twin = ControlClient(os.path.join(box.data_dir, "twin.sock"), timeout=hold + 60)

    def run():
        result.update(twin.request("call", line=line, digits=digits, hold=hold, **{"from": number}))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def wait_until_quiet(box):
    """No call in progress, nobody queued, op1 ready again (after its wrap-up)."""
    wait_for(lambda: (lambda s: s and not s["calls"] and not s["queue"])(box.status()), timeout=40)
    engine(box).request("operator", operator="op1", state="ready")
    wait_for(lambda: operator_state(box) == "ready", timeout=15)


def live_call(box, predicate, timeout=20):
    """The first call in progress that satisfies ``predicate``."""
    return wait_for(lambda: next((c for c in engine(box).request("status")["calls"] if predicate(c)), None),
                    timeout=timeout)


class EventReader:
    """Reads a streamed /events response on its own thread, so that no test can hang on it."""

    def __init__(self, response):
        self.response = response
        self.lines = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for chunk in self.response.response:
                for line in chunk.decode("utf-8").splitlines():
                    self.lines.put(line)
                if self.stop.is_set():
                    break
        finally:
            self.response.close()  # on this thread: the generator is not running now

    def next_line(self, timeout):
        """The next line of the stream, or None after ``timeout`` seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def events_until(self, predicate, timeout=20.0):
        """Every event up to and including the first that satisfies ``predicate``; fail on timeout."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            line = self.next_line(0.2)
            if line and line.startswith("data: "):
                seen.append(json.loads(line[len("data: "):]))
                if predicate(seen[-1]):
                    return seen
        pytest.fail(f"no such event within {timeout} s; saw {[e.get('type') for e in seen]}")

    def close(self):
        """Stop reading and close the response (the server side ends its engine subscription)."""
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def open_stream(client):
    response = client.get("/events", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    return EventReader(response)


def audit_actions(box):
    conn = _journal(box)
    try:
        return [(row["username"], row["action"], json.loads(row["detail"]))
                for row in conn.execute("SELECT * FROM audit ORDER BY id")]
    finally:
        conn.close()


# --- the dashboard and its state ----------------------------------------------------------------


def test_api_status_gives_lines_calls_queue_and_operators(clients):
    status = clients["operator"].get("/api/status").get_json()
    assert {line["id"] for line in status["lines"]} == {"gsm1", "gsm2", "sip1"}
    gsm = [line for line in status["lines"] if line["id"] != "sip1"]
    assert all(line["model"] == "SIMCOM_SIM7600E-H" and line["signal_bars"] is not None for line in gsm)
    assert status["calls"] == [] and status["queue"] == []
    assert [(op["id"], op["number"]) for op in status["operators"]] == [("op1", OPERATOR_NUMBER)]


def test_the_dashboard_renders_every_panel_with_its_buttons(clients):
    page = clients["supervisor"].get("/").get_data(as_text=True)
    for table in ("lines", "calls", "queue", "operators"):
        assert f'<table id="{table}">' in page
    assert '<meta name="csrf-token"' in page and "data-strings='" in page
    assert 'action="/dashboard/operators/op1/state"' in page
    # An operator linked to op1 gets op1's buttons but no hang-up; one linked to nobody gets none.
    assert 'action="/dashboard/operators/op1/state"' in clients["operator"].get("/").get_data(as_text=True)
    assert "/dashboard/operators/" not in clients["unlinked"].get("/").get_data(as_text=True)


def test_the_event_stream_relays_a_call_as_it_happens(clients, box):
    stream = open_stream(clients["operator"])
    try:
        assert stream.next_line(5) == "retry: 3000"
        stream.events_until(lambda e: e["type"] == "subscribed", timeout=5)
        thread, result = place_call(box, "+359888100001", hold=3)
        events = stream.events_until(lambda e: e["type"] == "call.ended" and e["call"]["caller"] == "+359888100001")
        kinds = [e["type"] for e in events if e["type"].startswith("call.")]
        assert kinds[0] == "call.started" and "call.answered" in kinds and "call.step" in kinds
        assert any(e["type"] == "line.state" and e["line"]["activity"] == "in call" for e in events)
        thread.join(30)
        assert result["answered"]
    finally:
        stream.close()
    wait_until_quiet(box)


def test_the_stream_sends_keepalive_comments_while_nothing_happens(clients):
    stream = open_stream(clients["admin"])
    try:
        lines = [stream.next_line(2) for _ in range(6)]
        assert ": keepalive" in lines
    finally:
        stream.close()


def test_open_streams_are_capped_and_a_closed_one_frees_its_place(clients, box):
    app = create_app({"DATA_DIR": box.data_dir, **LIVE_CONFIG, "EVENTS_MAX_STREAMS": 1})
    client = app.test_client()
    username, password = ADMIN
    client.post("/login", data={"username": username, "password": password})
    first = open_stream(client)
    try:
        refused = client.get("/events", buffered=False)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
        refused.close()
    finally:
        first.close()
    open_stream(client).close()  # the first stream's place was given back


def test_a_stream_without_an_engine_says_so_and_keeps_trying(admin_client):
    response = admin_client.get("/events", buffered=False)
    chunks = iter(response.response)
    try:
        assert next(chunks) == b"retry: 3000\n\n"
        event = json.loads(next(chunks).decode()[len("data: "):])
        assert event["type"] == "engine.down" and "engine.sock" in event["error"] and event["retry_seconds"] == 1.0
    finally:
        response.close()


def test_pause_and_ready_from_the_dashboard_reach_the_engine(clients, box):
    admin = clients["admin"]
    try:
        reply = admin.post("/dashboard/operators/op1/state", data={"state": "paused"}, headers=JSON)
        assert reply.status_code == 200 and reply.get_json()["operator"]["state"] == "paused"
        assert operator_state(box) == "paused"
        reply = clients["operator"].post("/dashboard/operators/op1/state", data={"state": "ready"})
        assert reply.status_code == 302  # a plain form goes back to the dashboard
        assert operator_state(box) == "ready"
    finally:
        engine(box).request("operator", operator="op1", state="ready")
    assert ("admin", "operator.state", {"operator": "op1", "state": "paused"}) in audit_actions(box)
    assert ("olga", "operator.state", {"operator": "op1", "state": "ready"}) in audit_actions(box)


@pytest.mark.parametrize("who, operator_id, form, status", [
    ("unlinked", "op1", {"state": "paused"}, 403),   # an operator only for themselves
    ("operator", "op2", {"state": "paused"}, 403),
    ("admin", "op1", {"state": "asleep"}, 400),
    ("admin", "op9", {"state": "paused"}, 404),
])
def test_pause_is_refused_when_it_must_be(clients, box, who, operator_id, form, status):
    assert clients[who].post(f"/dashboard/operators/{operator_id}/state", data=form, headers=JSON).status_code == status
    assert operator_state(box) == "ready"


def test_hang_up_from_the_dashboard_ends_the_call(clients, box):
    thread, result = place_call(box, "+359888100002", hold=30)
    call = live_call(box, lambda c: c["caller"] == "+359888100002" and c["talk_seconds"] is not None)
    reply = clients["supervisor"].post(f"/dashboard/calls/{call['id']}/hangup", headers=JSON)
    assert reply.status_code == 200 and reply.get_json()["ok"]
    thread.join(20)
    assert result["ended_by"] == "box"
    record = wait_for(lambda: (lambda c: c if c["ended_at"] else None)(engine(box).request("call", id=call["id"])))
    assert record["ended_by"] == "box" and "hangup" in [event["kind"] for event in record["events"]]
    assert ("super", "call.hangup", {"call": call["id"]}) in audit_actions(box)
    again = clients["supervisor"].post(f"/dashboard/calls/{call['id']}/hangup", headers=JSON)
    assert again.status_code == 409 and "not in progress" in again.get_json()["message"]
    wait_until_quiet(box)


def test_due_reminders_show_on_the_dashboard(clients, box):
    contacts = pytest.importorskip("appliance.contacts")
    conn = _journal(box)
    try:
        contacts.add_reminder(conn, "+359888100009", "2020-01-01T09:00:00+00:00", "Send the dormitory form", "admin")
    finally:
        conn.close()
    reminders = clients["operator"].get("/api/status").get_json()["reminders"]
    assert [(r["number"], r["text"]) for r in reminders] == [("+359888100009", "Send the dormitory form")]
    page = clients["operator"].get("/").get_data(as_text=True)
    assert 'href="/contacts/%2B359888100009"' in page and "Send the dormitory form" in page


def test_the_wallboard_counts_todays_callers(clients, box):
    board = clients["supervisor"].get("/api/wallboard").get_json()
    assert board["error"] is None and board["waiting"] == 0 and board["longest_wait_seconds"] == 0
    assert board["offered_today"] >= 2 and board["operators_ready"] == 1 and board["operators_on_call"] == 0
    page = clients["supervisor"].get("/wallboard").get_data(as_text=True)
    assert 'data-figure="answered_today"' in page and "wallboard.css" in page and "dashboard.js" in page


# --- the test-call panel ----------------------------------------------------------------------


def test_the_panel_offers_the_twins_lines_and_phones(clients):
    page = clients["admin"].get("/testcall").get_data(as_text=True)
    assert '<option value="gsm1"' in page and '<option value="gsm2"' in page
    assert f'<option value="{OPERATOR_NUMBER}">' in page  # the virtual mobile, to dial out to


def test_a_virtual_test_call_is_followed_into_the_journal(clients, box):
    reply = clients["supervisor"].post("/testcall/ring", headers=JSON,
                                       data={"line": "gsm2", "from": "+359888100003", "digits": "", "hold": "3"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    call_id = reply.get_json()["call"]
    assert reply.get_json()["url"] == f"/testcall/calls/{call_id}"
    conn = _journal(box)
    try:
        row = conn.execute("SELECT line_id, caller, role FROM calls WHERE id = ?", (call_id,)).fetchone()
        assert tuple(row) == ("gsm2", "+359888100003", "caller")
        wait_for(lambda: conn.execute("SELECT ended_at FROM calls WHERE id = ?", (call_id,)).fetchone()[0], timeout=30)
    finally:
        conn.close()
    fragment = clients["supervisor"].get(f"/testcall/calls/{call_id}").get_data(as_text=True)
    assert 'data-ended="1"' in fragment and 'id="watch-outcome"' in fragment
    assert f'href="/journal/{call_id}"' in fragment and "menu step" in fragment  # the IVR's nodes are listed
    assert ("super", "testcall.ring") in [entry[:2] for entry in audit_actions(box)]
    wait_until_quiet(box)


def test_a_plain_form_lands_on_the_panel_watching_the_call(clients, box):
    reply = clients["admin"].post("/testcall/ring", data={"line": "gsm1", "from": "+359888100004", "digits": "",
                                                          "hold": "2"})
    assert reply.status_code == 302 and re.search(r"/testcall\?call=\d+$", reply.headers["Location"])
    page = clients["admin"].get(reply.headers["Location"]).get_data(as_text=True)
    assert 'id="watch" data-call="' in page
    wait_until_quiet(box)


def test_an_outbound_test_call_rings_the_number(clients, box):
    reply = clients["admin"].post("/testcall/originate", headers=JSON,
                                  data={"line": "gsm1", "to": OPERATOR_NUMBER, "hold": "2"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    call_id = reply.get_json()["call"]
    record = wait_for(lambda: (lambda c: c if c["ended_at"] else None)(engine(box).request("call", id=call_id)),
                      timeout=30)
    assert (record["direction"], record["callee"], record["role"]) == ("out", OPERATOR_NUMBER, "test")
    assert record["outcome"] == "answered"
    wait_until_quiet(box)


@pytest.mark.parametrize("path, form, field", [
    ("/testcall/ring", {"line": "gsm1", "from": "call me", "digits": "1", "hold": "3"}, "from"),
    ("/testcall/ring", {"line": "gsm1", "from": "+359888100005", "digits": "1a", "hold": "3"}, "digits"),
    ("/testcall/ring", {"line": "gsm1", "from": "+359888100005", "digits": "1", "hold": "0"}, "hold"),
    ("/testcall/ring", {"line": "gsm9", "from": "+359888100005", "digits": "1", "hold": "3"}, "ring"),
    ("/testcall/originate", {"line": "gsm1", "to": "x", "hold": "3"}, "to"),
    ("/testcall/originate", {"line": "gsm9", "to": "+359888100005", "hold": "3"}, "originate"),
])
def test_the_panel_names_what_is_wrong(clients, path, form, field):
    reply = clients["admin"].post(path, data=form, headers=JSON)
    assert reply.status_code in (400, 409, 502) and field in reply.get_json()["errors"]


# --- the operator's page ---------------------------------------------------------------------


def test_my_page_shows_my_state_and_big_buttons(clients):
    page = clients["operator"].get("/me").get_data(as_text=True)
    assert "Demo operator" in page and 'id="my-state" data-state="ready"' in page
    assert 'data-state="ready" disabled>' in page and 'data-state="paused" >' in page


def test_ready_and_pause_from_my_page(clients, box):
    operator = clients["operator"]
    try:
        assert operator.post("/me/state", data={"state": "paused"}).headers["Location"] == "/me"
        assert operator_state(box) == "paused"
        reply = operator.post("/me/state", data={"state": "ready"}, headers=JSON)
        assert reply.get_json()["ok"] and operator_state(box) == "ready"
    finally:
        engine(box).request("operator", operator="op1", state="ready")


def test_my_page_shows_the_caller_i_talk_to_and_takes_my_note(clients, box):
    caller = "+359888100006"
    operator = clients["operator"]
    thread, _ = place_call(box, caller, digits="1", hold=3)  # an earlier call from the same number
    thread.join(30)
    wait_until_quiet(box)
    thread, _ = place_call(box, caller, digits="1", hold=25)
    live_call(box, lambda c: c["role"] == "operator" and c["step"] == "talking", timeout=40)
    page = operator.get("/me").get_data(as_text=True)
    assert 'id="current-call"' in page and "On a call" in page
    assert f'href="/contacts/{caller.replace("+", "%2B")}"' in page
    assert '<dd id="earlier-calls">1</dd>' in page
    panel = operator.get("/me/panel").get_data(as_text=True)
    assert 'id="current-call"' in panel and "<html" not in panel
    conn = _journal(box)
    try:
        call_id = conn.execute("SELECT id FROM calls WHERE caller = ? AND operator = 'op1' ORDER BY id DESC",
                               (caller,)).fetchone()[0]
        engine(box).request("hangup", call=call_id)
        thread.join(30)
        wait_until_quiet(box)
        assert f'name="call" value="{call_id}"' in operator.get("/me/note-form").get_data(as_text=True)
        reply = operator.post("/me/note", data={"call": call_id, "category": "dormitories",
                                                "note": "Asked about rooms; will call again."})
        assert reply.status_code == 302
        assert conn.execute("SELECT category FROM calls WHERE id = ?", (call_id,)).fetchone()[0] == "dormitories"
        notes = conn.execute("SELECT author, text FROM call_notes WHERE call_id = ?", (call_id,)).fetchall()
        assert [tuple(note) for note in notes] == [("olga", "Asked about rooms; will call again.")]
    finally:
        conn.close()
    page = operator.get("/me").get_data(as_text=True)
    assert "Asked about rooms; will call again." in page and 'value="dormitories"' in page
    assert ("olga", "call.note") in [entry[:2] for entry in audit_actions(box)]


def test_a_note_that_is_too_long_is_refused_with_the_field_named(clients, box):
    conn = _journal(box)
    try:
        call_id = conn.execute("SELECT id FROM calls WHERE operator = 'op1' AND role = 'caller'").fetchone()[0]
    finally:
        conn.close()
    reply = clients["operator"].post("/me/note", data={"call": call_id, "category": "x" * 61, "note": "kept"})
    page = reply.get_data(as_text=True)
    assert reply.status_code == 400 and 'id="category-error"' in page and ">kept</textarea>" in page


def test_a_note_only_on_a_call_i_answered(clients, box):
    conn = _journal(box)
    try:
        other = conn.execute("SELECT id FROM calls WHERE operator IS NULL AND role = 'caller' LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    assert clients["operator"].post("/me/note", data={"call": other, "note": "x"}).status_code == 403
    assert clients["operator"].post("/me/note", data={"call": 999999, "note": "x"}).status_code == 404


def test_an_operator_account_without_an_operator(clients):
    assert "not linked to an operator" in clients["unlinked"].get("/me").get_data(as_text=True)
    assert clients["unlinked"].post("/me/state", data={"state": "paused"}).status_code == 403


def test_an_admin_looks_at_an_operators_page(clients):
    assert 'href="/me?operator=op1"' in clients["admin"].get("/me").get_data(as_text=True)
    page = clients["admin"].get("/me?operator=op1").get_data(as_text=True)
    assert "Demo operator" in page and '<input type="hidden" name="operator" value="op1">' in page


# --- who may do what --------------------------------------------------------------------------

ROUTES = [  # (method, path, roles allowed)
    ("GET", "/", {"admin", "supervisor", "operator"}),
    ("GET", "/api/status", {"admin", "supervisor", "operator"}),
    ("GET", "/events", {"admin", "supervisor", "operator"}),
    ("GET", "/wallboard", {"admin", "supervisor"}),
    ("GET", "/api/wallboard", {"admin", "supervisor"}),
    ("POST", "/dashboard/operators/op1/state", {"admin", "supervisor", "operator"}),
    ("POST", "/dashboard/calls/1/hangup", {"admin", "supervisor"}),
    ("GET", "/me", {"operator", "admin"}),
    ("GET", "/me/panel", {"operator", "admin"}),
    ("GET", "/me/note-form", {"operator", "admin"}),
    ("POST", "/me/state", {"operator", "admin"}),
    ("POST", "/me/note", {"operator", "admin"}),
    ("GET", "/testcall", {"admin", "supervisor"}),
    ("POST", "/testcall/ring", {"admin", "supervisor"}),
    ("POST", "/testcall/originate", {"admin", "supervisor"}),
    ("GET", "/testcall/calls/1", {"admin", "supervisor"}),
]


@pytest.mark.parametrize("method, path, role", [(method, path, role) for method, path, allowed in ROUTES
                                                for role in ("admin", "supervisor", "operator") if role not in allowed])
def test_the_wrong_role_is_refused(clients, method, path, role):
    assert clients[role].open(path, method=method, data={"state": "paused"}).status_code == 403


@pytest.mark.parametrize("method, path", [(method, path) for method, path, _ in ROUTES])
def test_visitors_are_sent_to_log_in(clients, method, path):
    response = clients["visitor"].open(path, method=method)
    if path.startswith("/api/"):
        assert response.status_code == 401
    else:
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_script_posts_with_the_token_from_the_page(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "TESTING": True})  # CSRF on, as in the box
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/setup").get_data(as_text=True)).group(1)
    username, password = ADMIN
    client.post("/setup", data={"username": username, "password": password, "confirm": password, "csrf_token": token})
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/dashboard/calls/1/hangup", headers=JSON).status_code == 400  # no token
    reply = client.post("/dashboard/calls/1/hangup", headers={**JSON, "X-CSRFToken": token})
    assert reply.status_code == 503 and "engine does not answer" in reply.get_json()["message"]


# --- the pages' scripts in Chromium -------------------------------------------------------------


def test_the_live_pages_in_a_browser(clients, box):
    """The panel follows a test call that an operator takes on their phone; both pages update themselves."""
    from playwright.sync_api import expect

    from .browser import chromium

    url = box.start_web()
    with chromium() as browser:
        admin = browser.new_page()
        operator = browser.new_context_page(viewport={"width": 390, "height": 800})
        for page, (username, password) in ((admin, ADMIN), (operator, ("olga", PASSWORD))):
            page.goto(url + "/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
        admin.goto(url + "/")
        expect(admin.locator("#live-state")).to_have_text("live", timeout=10_000)
        row = admin.locator('#operators tr[data-operator="op1"]')
        row.locator('button[data-state="paused"]').click()
        expect(row).to_contain_text("paused")
        row.locator('button[data-state="ready"]').click()
        expect(row).to_contain_text("ready")

        operator.goto(url + "/me")
        admin.goto(url + "/testcall")
        admin.fill("#ring-form input[name=from]", "+359888100010")
        admin.fill("#ring-form input[name=digits]", "1")
        admin.fill("#ring-form input[name=hold]", "14")
        admin.click("#ring-form button[type=submit]")
        expect(admin.locator("#watch-timeline")).to_contain_text("joined the queue", timeout=20_000)
        expect(operator.locator("#current-call")).to_contain_text("On a call", timeout=20_000)
        expect(operator.locator("#current-call")).to_contain_text("+359888100010")
        expect(admin.locator("#watch-outcome")).to_contain_text("answered", timeout=30_000)
        expect(admin.locator("#journal-link")).to_have_attribute("href", re.compile(r"^/journal/\d+$"))
        expect(operator.locator("#me-note h2")).to_have_text("My last call", timeout=10_000)

        admin.goto(url + "/wallboard")
        expect(admin.locator("#live-state")).to_have_text("live", timeout=10_000)
        assert int(admin.locator('[data-figure="answered_today"]').inner_text()) >= 1
    wait_until_quiet(box)
