"""The journal pages: filters, paging, CSV export, notes, tags, category, pins, operators' access."""
import csv
import io
import json
import os
import re

import pytest

from appliance import accounts, contacts
from appliance.journal import Journal, connect

from .conftest import ADMIN


def _book(app):
    return Journal(connect(os.path.join(app.config["DATA_DIR"], "journal.sqlite3")))


def _call(book, caller, started_at, line="gsm1", queue=None, operator=None, outcome="answered", category=None,
          call_tags=(), role="caller", parent_id=None, recording=None, wait=None):
    """One finished call with the given attributes; return its id."""
    call_id = book.start_call(line, "in", caller=caller, callee="+359700000001", role=role, parent_id=parent_id)
    fields = {name: value for name, value in (("queue", queue), ("operator", operator), ("wait_seconds", wait))
              if value is not None}
    if fields:
        book.set_call(call_id, **fields)
    book.end_call(call_id, outcome, "caller", talk_seconds=12.5, recording=recording)
    book.conn.execute("UPDATE calls SET started_at = ? WHERE id = ?", (started_at, call_id))
    if category:
        contacts.set_category(book.conn, call_id, category)
    if call_tags:
        contacts.set_tags(book.conn, call_id, call_tags)
    return call_id


@pytest.fixture
def calls(app):
    """Three callers' calls on different days, lines, queues and operators, and one operator leg."""
    book = _book(app)
    ids = {
        "c1": _call(book, "+359888111111", "2026-07-01T08:00:00.000+00:00", queue="admissions", operator="op1",
                    category="bachelor", call_tags=["exam"], wait=14.0),
        "c2": _call(book, "+359888222222", "2026-07-02T09:00:00.000+00:00", line="gsm2", queue="dorms",
                    operator="op2", outcome="abandoned", category="dorm", call_tags=["urgent"]),
        "c3": _call(book, "+359888333333", "2026-07-03T23:59:00.000+00:00", queue="admissions", outcome="missed"),
    }
    ids["leg"] = _call(book, "+359700000001", "2026-07-01T08:00:05.000+00:00", role="operator", parent_id=ids["c1"],
                       operator="op1")
    book.conn.execute("UPDATE calls SET callee = '+359700000100' WHERE id = ?", (ids["leg"],))
    yield ids
    book.close()


def _listed(page):
    """Call ids in the journal table of a rendered page."""
    return {int(n) for n in re.findall(r'<td><a href="/journal/(\d+)">', page)}


def _login(client, app, username, role, operator_id=None):
    """Create a user with ``role`` (linked to ``operator_id``) and log the client in as them."""
    with app.app_context():
        from web_ui.db import get_db
        user_id = accounts.create_user(get_db(), username, "a long password", role)
        if operator_id:
            get_db().execute("UPDATE users SET operator_id = ? WHERE id = ?", (operator_id, user_id))
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": "a long password"})
    assert response.status_code == 302
    return client


def _audit(app, action):
    with app.app_context():
        from web_ui.db import get_db
        return [dict(row, detail=json.loads(row["detail"])) for row in
                get_db().execute("SELECT * FROM audit WHERE action = ? ORDER BY id", (action,))]


@pytest.mark.parametrize("query, expected", [
    ({}, {"c1", "c2", "c3"}),
    ({"date_from": "2026-07-02"}, {"c2", "c3"}),
    ({"date_to": "2026-07-01"}, {"c1"}),
    ({"date_from": "2026-07-02", "date_to": "2026-07-02"}, {"c2"}),
    ({"date_to": "2026-07-03"}, {"c1", "c2", "c3"}),  # the end day is inclusive, to 23:59
    ({"number": "222222"}, {"c2"}),
    ({"number": "+359 888 333 333"}, {"c3"}),
    ({"line": "gsm1"}, {"c1", "c3"}),
    ({"queue": "admissions"}, {"c1", "c3"}),
    ({"operator": "op2"}, {"c2"}),
    ({"outcome": "missed"}, {"c3"}),
    ({"category": "bachelor"}, {"c1"}),
    ({"tag": "exam"}, {"c1"}),
    ({"tag": "EXAM"}, {"c1"}),
    ({"line": "gsm1", "outcome": "answered"}, {"c1"}),
    ({"role": "operator"}, {"leg"}),
    ({"role": "all"}, {"c1", "c2", "c3", "leg"}),
    ({"operator": "op1", "role": "all"}, {"c1", "leg"}),
])
def test_each_filter_narrows_the_list(admin_client, calls, query, expected):
    response = admin_client.get("/journal/", query_string=query)
    assert response.status_code == 200
    assert _listed(response.get_data(as_text=True)) == {calls[name] for name in expected}


def test_the_filter_form_keeps_its_values_and_offers_seen_values(admin_client, calls):
    page = admin_client.get("/journal/", query_string={"queue": "dorms", "tag": "urgent"}).get_data(as_text=True)
    assert 'name="queue" list="queue-choices" value="dorms"' in page
    assert '<option value="admissions">' in page and '<option value="exam">' in page
    assert 'href="/journal/export.csv?' in page and "queue=dorms" in page


@pytest.mark.parametrize("query, field", [
    ({"date_from": "yesterday"}, "date_from"),
    ({"date_to": "2026-13-40"}, "date_to"),
    ({"date_from": "2026-07-03", "date_to": "2026-07-01"}, "date_to"),
    ({"role": "everyone"}, "role"),
    ({"tag": "x" * 40}, "tag"),
])
def test_a_bad_filter_is_named_next_to_its_field(admin_client, calls, query, field):
    response = admin_client.get("/journal/", query_string=query)
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)


@pytest.mark.parametrize("query", [
    {"number": "' OR 1=1 --"},
    {"number": "%"},
    {"number": "_"},
    {"line": "gsm1' OR '1'='1"},
    {"tag": "x' OR '1'='1"},
    {"category": "\") OR 1=1; DROP TABLE calls; --"},
    {"operator": "op1'--"},
    {"outcome": "answered' UNION SELECT * FROM users --"},
])
def test_injection_attempts_in_filters_match_nothing_and_harm_nothing(admin_client, app, calls, query):
    response = admin_client.get("/journal/", query_string=query)
    assert response.status_code == 200
    assert _listed(response.get_data(as_text=True)) == set()
    export = admin_client.get("/journal/export.csv", query_string=query).get_data(as_text=True)
    assert len(export.strip().splitlines()) == 1  # the header only
    assert _listed(admin_client.get("/journal/").get_data(as_text=True)) == {calls["c1"], calls["c2"], calls["c3"]}


def test_the_list_is_paged_and_pages_keep_the_filters(admin_client, app):
    book = _book(app)
    ids = [_call(book, f"+3598880000{n:02d}", f"2026-07-10T10:{n:02d}:00.000+00:00", queue="admissions")
           for n in range(60)]
    _call(book, "+359888999999", "2026-07-10T11:00:00.000+00:00", queue="dorms")
    first = admin_client.get("/journal/", query_string={"queue": "admissions"}).get_data(as_text=True)
    assert _listed(first) == set(ids[10:]) and "Page 1 of 2" in first
    assert 'href="/journal/?page=2&amp;queue=admissions"' in first
    second = admin_client.get("/journal/?page=2&queue=admissions").get_data(as_text=True)
    assert _listed(second) == set(ids[:10])
    assert _listed(admin_client.get("/journal/?page=x&queue=admissions").get_data(as_text=True)) == set(ids[10:])


def test_csv_export_has_a_bom_the_filters_and_safe_cells(admin_client, app, calls):
    book = _book(app)
    contacts.add_note(book.conn, calls["c1"], "admin", "Пита за общежитие")
    contacts.add_note(book.conn, calls["c1"], "admin", "=HYPERLINK(\"http://evil\")")
    response = admin_client.get("/journal/export.csv", query_string={"queue": "admissions"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert [int(row["id"]) for row in rows] == [calls["c3"], calls["c1"]]
    first = rows[1]
    assert first["caller"] == "+359888111111"  # a number stays a number
    assert first["operator"] == "op1" and first["category"] == "bachelor" and first["tags"] == "exam"
    assert "Пита за общежитие" in first["notes"]
    assert first["wait_seconds"] == "14.0" and first["talk_seconds"] == "12.5"
    contacts.add_note(book.conn, calls["c3"], "admin", "x")
    contacts.set_category(book.conn, calls["c3"], "=1+2")
    rows = list(csv.DictReader(io.StringIO(admin_client.get("/journal/export.csv?outcome=missed").data
                                           .decode("utf-8-sig"))))
    assert rows[0]["category"] == "'=1+2"  # a formula is text, not something a spreadsheet runs


def test_notes_tags_and_category_round_trip_and_are_audited(admin_client, app, calls):
    call_id = calls["c3"]
    response = admin_client.post(f"/journal/{call_id}/notes", data={"note": "  Called back, wants a dorm room  "})
    assert response.status_code == 302 and response.headers["Location"] == f"/journal/{call_id}"
    admin_client.post(f"/journal/{call_id}/tags", data={"tags": "Dorm, urgent, dorm,  follow up "})
    admin_client.post(f"/journal/{call_id}/category", data={"category": "dormitories"})
    page = admin_client.get(f"/journal/{call_id}").get_data(as_text=True)
    assert "Called back, wants a dorm room" in page
    assert '<span class="tag">dorm</span><span class="tag">follow up</span><span class="tag">urgent</span>' in page
    assert '<dd id="call-category">dormitories</dd>' in page
    book = _book(app)
    assert [note["text"] for note in contacts.notes(book.conn, call_id)] == ["Called back, wants a dorm room"]
    assert contacts.notes(book.conn, call_id)[0]["author"] == ADMIN[0]
    assert contacts.tags(book.conn, call_id) == ["dorm", "follow up", "urgent"]
    assert book.get_call(call_id)["category"] == "dormitories"
    assert _audit(app, "journal.note")[0]["detail"]["call_id"] == call_id
    assert _audit(app, "journal.tags")[0]["detail"]["tags"] == ["dorm", "follow up", "urgent"]
    assert _audit(app, "journal.category")[0]["username"] == ADMIN[0]
    admin_client.post(f"/journal/{call_id}/category", data={"category": ""})
    admin_client.post(f"/journal/{call_id}/tags", data={"tags": ""})
    assert book.get_call(call_id)["category"] is None and contacts.tags(book.conn, call_id) == []
    assert _listed(admin_client.get("/journal/?tag=urgent").get_data(as_text=True)) == {calls["c2"]}


@pytest.mark.parametrize("path, form, field", [
    ("notes", {"note": "   "}, "note"),
    ("notes", {"note": "x" * 2001}, "note"),
    ("tags", {"tags": ",".join(f"t{n}" for n in range(21))}, "tags"),
    ("tags", {"tags": "y" * 33}, "tags"),
    ("category", {"category": "z" * 61}, "category"),
])
def test_a_refused_change_is_named_next_to_its_field_and_not_audited(admin_client, app, calls, path, form, field):
    response = admin_client.post(f"/journal/{calls['c1']}/{path}", data=form)
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert _audit(app, f"journal.{'note' if path == 'notes' else path}") == []


def test_changes_to_an_unknown_call_are_404(admin_client, calls):
    for path, form in (("notes", {"note": "x"}), ("tags", {"tags": "x"}), ("category", {"category": "x"}),
                       ("pin", {}), ("unpin", {})):
        assert admin_client.post(f"/journal/9999/{path}", data=form).status_code == 404


def test_the_call_page_shows_path_digits_collected_wait_operator_and_legs(admin_client, app, calls):
    book = _book(app)
    call_id = calls["c1"]
    book.add_event(call_id, "ivr", node="start", type="menu")
    book.add_digit(call_id, "1")
    book.add_event(call_id, "menu_choice", node="start", key="1")
    book.add_event(call_id, "queue_join", queue="admissions", position=1)
    book.set_collected(call_id, "application", "20260042")
    page = admin_client.get(f"/journal/{call_id}").get_data(as_text=True)
    path = re.search(r'<ol class="ivr-path" id="ivr-path">(.*?)</ol>', page).group(1)
    assert re.findall(r"<li>(.*?)</li>", path) == ["start (menu)", "key 1", "queue admissions"]
    assert '<dd class="collected">20260042</dd>' in page
    assert "14.0 s" in page and '<dd id="call-operator">op1</dd>' in page
    assert f'href="/journal/{calls["leg"]}"' in page and "+359700000100" in page
    assert 'href="/contacts/+359888111111"' in page


@pytest.fixture
def recorded(app, calls):
    """c1 and c2 with a recording each on disk."""
    book = _book(app)
    names = {}
    for key in ("c1", "c2"):
        relative = os.path.join("recordings", "2026", "07", "01", f"call-{calls[key]}.wav")
        os.makedirs(os.path.join(app.config["DATA_DIR"], os.path.dirname(relative)), exist_ok=True)
        with open(os.path.join(app.config["DATA_DIR"], relative), "wb") as handle:
            handle.write(b"RIFF" + bytes(500))
        book.set_call(calls[key], recording=relative)
        names[key] = relative
    return names


def test_pinning_writes_pinned_recordings_and_unpinning_removes_it(admin_client, app, calls, recorded):
    call_id = calls["c1"]
    assert "Pin (never delete)" in admin_client.get(f"/journal/{call_id}").get_data(as_text=True)
    assert admin_client.post(f"/journal/{call_id}/pin").status_code == 302
    book = _book(app)
    row = book.conn.execute("SELECT * FROM pinned_recordings").fetchone()
    assert row["recording"] == recorded["c1"] and row["number"] == "+359888111111"
    assert book.pinned_recordings() == {recorded["c1"]}
    admin_client.post(f"/journal/{call_id}/pin")  # twice is still one pin
    assert book.conn.execute("SELECT COUNT(*) FROM pinned_recordings").fetchone()[0] == 1
    page = admin_client.get(f"/journal/{call_id}").get_data(as_text=True)
    assert 'id="pinned"' in page and "Unpin" in page
    admin_client.post(f"/journal/{call_id}/unpin")
    assert book.pinned_recordings() == set()
    assert [entry["action"] for entry in _audit(app, "journal.pin") + _audit(app, "journal.unpin")] == \
        ["journal.pin", "journal.pin", "journal.unpin"]
    assert admin_client.post(f"/journal/{calls['c3']}/pin").status_code == 404  # no recording to pin


def test_an_operator_sees_and_annotates_only_the_calls_they_answered(client, app, calls, recorded):
    _login(client, app, "olga", "operator", operator_id="op1")
    own, other = calls["c1"], calls["c2"]
    page = client.get(f"/journal/{own}")
    assert page.status_code == 200 and f'src="/journal/{own}/recording"' in page.get_data(as_text=True)
    assert "Pin (never delete)" not in page.get_data(as_text=True)
    assert client.get(f"/journal/{own}/recording").data.startswith(b"RIFF")
    assert client.post(f"/journal/{own}/notes", data={"note": "Sent the dates by SMS"}).status_code == 302
    assert client.post(f"/journal/{own}/category", data={"category": "dates"}).status_code == 302
    assert client.post(f"/journal/{own}/tags", data={"tags": "sms"}).status_code == 302
    book = _book(app)
    assert contacts.notes(book.conn, own)[0]["author"] == "olga"
    assert _audit(app, "journal.note")[0]["username"] == "olga"
    for path in (f"/journal/{other}", f"/journal/{other}/recording", f"/journal/{calls['c3']}",
                 "/journal/", "/journal/export.csv"):
        assert client.get(path).status_code == 403, path
    for path, form in (("notes", {"note": "x"}), ("category", {"category": "x"}), ("tags", {"tags": "x"})):
        assert client.post(f"/journal/{other}/{path}", data=form).status_code == 403
    assert client.post(f"/journal/{own}/pin").status_code == 403
    assert contacts.notes(book.conn, other) == [] and book.get_call(other)["category"] == "dorm"


def test_an_operator_account_not_linked_to_an_operator_sees_no_call(client, app, calls, recorded):
    _login(client, app, "ivan", "operator")
    # c3 has no operator: "no operator" must never count as "this operator".
    for call_id in (calls["c1"], calls["c3"]):
        assert client.get(f"/journal/{call_id}").status_code == 403
        assert client.post(f"/journal/{call_id}/notes", data={"note": "x"}).status_code == 403


def test_a_supervisor_has_the_whole_journal(client, app, calls, recorded):
    _login(client, app, "sofia", "supervisor")
    assert _listed(client.get("/journal/").get_data(as_text=True)) == {calls["c1"], calls["c2"], calls["c3"]}
    assert client.get(f"/journal/{calls['c2']}/recording").status_code == 200
    assert client.post(f"/journal/{calls['c2']}/pin").status_code == 302
    assert client.get("/journal/export.csv").status_code == 200


@pytest.mark.parametrize("name", ["../../web-secret.key", "../journal.sqlite3", "/etc/passwd",
                                  "recordings/../web-secret.key", "recordings/../../../etc/passwd"])
def test_a_recording_name_cannot_reach_outside_the_recordings(admin_client, app, calls, name):
    book = _book(app)
    book.set_call(calls["c1"], recording=name)
    assert admin_client.get(f"/journal/{calls['c1']}/recording").status_code == 404


def test_the_recording_url_takes_no_file_name(admin_client, calls, recorded):
    for path in (f"/journal/{calls['c1']}/recording/../../../web-secret.key", "/journal/..%2Fweb-secret.key/recording",
                 f"/journal/{calls['c1']}/recording/%2e%2e%2f%2e%2e%2fweb-secret.key"):
        assert admin_client.get(path).status_code == 404, path
    # A query string cannot choose the file either: the journal's own recording is what comes back.
    response = admin_client.get(f"/journal/{calls['c1']}/recording?file=../../web-secret.key")
    assert response.status_code == 200 and response.data == b"RIFF" + bytes(500)


JOURNAL_ROUTES = [("get", "/journal/"), ("get", "/journal/export.csv"), ("get", "/journal/1"),
                  ("get", "/journal/1/recording"), ("post", "/journal/1/notes"), ("post", "/journal/1/tags"),
                  ("post", "/journal/1/category"), ("post", "/journal/1/pin"), ("post", "/journal/1/unpin")]


@pytest.mark.parametrize("method, path", JOURNAL_ROUTES)
def test_every_journal_route_needs_a_login(admin_client, calls, method, path):
    admin_client.post("/logout")
    response = getattr(admin_client, method)(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_search_calls_in_python_pages_and_counts(app, calls):
    conn = _book(app).conn
    assert contacts.count_calls(conn) == 3 and contacts.count_calls(conn, role=None) == 4
    newest = contacts.search_calls(conn, limit=2)
    assert [call["id"] for call in newest] == [calls["c3"], calls["c2"]]
    assert [call["id"] for call in contacts.search_calls(conn, limit=2, offset=2)] == [calls["c1"]]
    assert contacts.search_calls(conn, tag="exam")[0]["tag_list"] == "exam"
    with pytest.raises(contacts.ContactError) as err:
        contacts.search_calls(conn, date_from="01.07.2026")
    assert err.value.field == "date_from"
