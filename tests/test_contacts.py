"""Caller cards: the card, every call of a number, reminders, call-back tasks, pins (Python and pages)."""
import datetime
import json
import os
import re
import zoneinfo

import pytest

from appliance import accounts, contacts, recordings
from appliance.config import demo_config
from appliance.journal import Journal, connect

NUMBER = "+359888123456"
OTHER = "+359888654321"
UTC = datetime.timezone.utc


def _book(app):
    return Journal(connect(os.path.join(app.config["DATA_DIR"], "journal.sqlite3")))


def _call(book, caller, operator=None, outcome="answered", role="caller", parent_id=None, recording=None):
    call_id = book.start_call("gsm1", "in", caller=caller, role=role, parent_id=parent_id)
    if operator:
        book.set_call(call_id, operator=operator, queue="admissions")
    book.end_call(call_id, outcome, "caller", talk_seconds=30.0, recording=recording)
    return call_id


@pytest.fixture
def conn(tmp_path):
    """A fresh journal connection."""
    connection = connect(str(tmp_path / "journal.sqlite3"))
    yield connection
    connection.close()


@pytest.fixture
def history(app):
    """Three calls from NUMBER (one answered by op1, one by op2, one missed), one from OTHER, one operator leg."""
    book = _book(app)
    ids = {"first": _call(book, NUMBER, operator="op1"), "other": _call(book, OTHER, operator="op1")}
    ids["leg"] = _call(book, "+359700000100", role="operator", parent_id=ids["first"])
    ids["second"] = _call(book, NUMBER, operator="op2")
    ids["missed"] = _call(book, NUMBER, outcome="missed")
    contacts.add_note(book.conn, ids["first"], "olga", "Asked about the exam dates")
    contacts.add_note(book.conn, ids["second"], "petar", "Wants a dorm room")
    contacts.set_tags(book.conn, ids["second"], ["dorm"])
    yield ids
    book.close()


def _login(client, app, username, role, operator_id=None):
    with app.app_context():
        from web_ui.db import get_db
        user_id = accounts.create_user(get_db(), username, "a long password", role)
        if operator_id:
            get_db().execute("UPDATE users SET operator_id = ? WHERE id = ?", (operator_id, user_id))
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": "a long password"}).status_code == 302
    return client


def _audit(app, action):
    with app.app_context():
        from web_ui.db import get_db
        return [dict(row, detail=json.loads(row["detail"])) for row in
                get_db().execute("SELECT * FROM audit WHERE action = ? ORDER BY id", (action,))]


def _box_zone():
    """The zone the web app reads reminder times in: the demo configuration's, as no config is written."""
    return zoneinfo.ZoneInfo(demo_config()["settings"]["timezone"])


# --- the functions ----------------------------------------------------------------


def test_a_card_round_trips_with_tags_normalised(conn):
    assert contacts.get_contact(conn, NUMBER) == {"number": NUMBER, "name": "", "status": "", "notes": "",
                                                  "tags": [], "updated_at": None}
    stored = contacts.save_contact(conn, NUMBER, "  Мария   Иванова ", "vip", "Prefers Bulgarian",
                                   ["VIP", "vip", " exam "])
    assert stored["name"] == "Мария Иванова" and stored["tags"] == ["exam", "vip"] and stored["updated_at"]
    contacts.save_contact(conn, NUMBER, "Мария", "", "", [])
    card = contacts.get_contact(conn, NUMBER)
    assert card["tags"] == [] and card["name"] == "Мария"
    assert conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 1


@pytest.mark.parametrize("number", ["", "abc", "+", "12", "+35988812345a", "1' OR '1'='1", "+1234567890123456",
                                    "../etc", "+359 888"])
def test_a_card_needs_a_phone_number(conn, number):
    with pytest.raises(contacts.ContactError) as err:
        contacts.save_contact(conn, number, "x")
    assert err.value.field == "number"


def test_calls_of_has_every_call_from_the_number_newest_first_with_notes(app, history):
    calls = contacts.calls_of(_book(app).conn, NUMBER)
    assert [call["id"] for call in calls] == [history["missed"], history["second"], history["first"]]
    assert [note["text"] for note in calls[2]["notes"]] == ["Asked about the exam dates"]
    assert calls[1]["tags"] == ["dorm"] and calls[1]["operator"] == "op2" and calls[0]["outcome"] == "missed"


def test_find_contacts_by_number_part_and_by_name_in_any_case(conn):
    book = Journal(conn)
    _call(book, NUMBER)
    _call(book, OTHER)
    contacts.save_contact(conn, "+359777000111", "Олга Петрова")  # a card without calls is found too
    assert [item["number"] for item in contacts.find_contacts(conn, "123 456")] == [NUMBER]
    assert [item["number"] for item in contacts.find_contacts(conn, "олга")] == ["+359777000111"]
    assert [item["number"] for item in contacts.find_contacts(conn, "ПЕТРОВА")] == ["+359777000111"]
    assert contacts.find_contacts(conn, "%") == [] and contacts.find_contacts(conn, "' OR 1=1 --") == []
    latest = contacts.recent_callers(conn)
    assert [item["number"] for item in latest][:2] == [OTHER, NUMBER] and latest[0]["calls"] == 1


def test_due_reminders_are_the_open_ones_due_by_then_most_overdue_first(conn):
    contacts.save_contact(conn, NUMBER, "Maria")
    at = datetime.datetime(2030, 7, 1, 9, 0, tzinfo=UTC)
    late = contacts.add_reminder(conn, NUMBER, at + datetime.timedelta(hours=2), "Tell her the results", "admin")
    early = contacts.add_reminder(conn, NUMBER, at, "Ask for the documents", "admin")
    other = contacts.add_reminder(conn, OTHER, at + datetime.timedelta(minutes=30), "Call back", "olga")
    assert contacts.due_reminders(conn, at - datetime.timedelta(seconds=1)) == []
    due = contacts.due_reminders(conn, now=at + datetime.timedelta(hours=1))
    assert [item["id"] for item in due] == [early, other]
    assert due[0]["name"] == "Maria" and due[0]["number"] == NUMBER and due[0]["text"] == "Ask for the documents"
    assert due[0]["due_at"] == "2030-07-01T09:00:00.000+00:00"
    assert [item["id"] for item in contacts.due_reminders(conn, "2030-07-01T14:00:00+03:00")] == [early, other, late]
    assert contacts.mark_done(conn, early) and not contacts.mark_done(conn, early)
    assert [item["id"] for item in contacts.due_reminders(conn, at + datetime.timedelta(days=1))] == [other, late]
    assert contacts.due_reminders(conn) == []  # 2030 is not due yet


@pytest.mark.parametrize("due, text, field", [
    ("tomorrow", "x", "due_at"), (None, "x", "due_at"), ("2030-07-01T09:00", " ", "text"),
    ("2030-07-01T09:00", "x" * 501, "text"),
])
def test_a_bad_reminder_is_refused_by_field(conn, due, text, field):
    with pytest.raises(contacts.ContactError) as err:
        contacts.add_reminder(conn, NUMBER, due, text, "admin")
    assert err.value.field == field


def test_reminders_become_one_open_call_back_task_per_number(conn):
    now = datetime.datetime.now(UTC)
    first = contacts.add_reminder(conn, NUMBER, now - datetime.timedelta(hours=1), "Overdue", "admin")
    second = contacts.add_reminder(conn, NUMBER, now + datetime.timedelta(days=2), "Later", "admin")
    task, created = contacts.reminder_to_callback(conn, first)
    assert created
    again, created_again = contacts.reminder_to_callback(conn, second)
    assert again == task and not created_again
    open_tasks = contacts.callbacks_of(conn, NUMBER)
    assert [item["id"] for item in open_tasks] == [task] and open_tasks[0]["reason"] == "reminder"
    assert Journal(conn).open_callbacks()[0]["number"] == NUMBER
    assert contacts.reminder(conn, first)["callback_id"] == task and contacts.reminder(conn, first)["done_at"]
    assert contacts.reminder(conn, second)["callback_id"] == task
    assert contacts.due_reminders(conn, now + datetime.timedelta(days=3)) == []
    assert contacts.reminder_to_callback(conn, 999) is None


def test_a_reminder_for_later_makes_a_task_due_then(conn):
    later = datetime.datetime(2031, 1, 1, 8, 0, tzinfo=UTC)
    reminder_id = contacts.add_reminder(conn, NUMBER, later, "New year call", "admin")
    task, _ = contacts.reminder_to_callback(conn, reminder_id)
    assert Journal(conn).callback(task)["next_attempt_at"] == "2031-01-01T08:00:00.000+00:00"


def test_pins_are_what_retention_reads(conn):
    name = "recordings/2026/07/01/call-1.ogg"
    assert contacts.pin_recording(conn, name, NUMBER) and not contacts.pin_recording(conn, name, NUMBER)
    assert contacts.is_pinned(conn, name) and recordings.load_pinned(conn) == frozenset({name})
    assert contacts.unpin_recording(conn, name) and not contacts.is_pinned(conn, name)
    with pytest.raises(contacts.ContactError):
        contacts.pin_recording(conn, "", NUMBER)


# --- the pages --------------------------------------------------------------------


def _card_calls(page):
    table = re.search(r'<table id="caller-calls">(.*?)</table>', page, re.S).group(1)
    return [int(n) for n in re.findall(r"<tr>\s*<td>(?:<a [^>]*>)?(\d+)", table)]


def test_the_card_shows_every_call_of_the_number_with_outcome_and_notes(admin_client, history):
    page = admin_client.get(f"/contacts/{NUMBER}").get_data(as_text=True)
    assert _card_calls(page) == [history["missed"], history["second"], history["first"]]
    assert "Asked about the exam dates" in page and "Wants a dorm room" in page and "missed" in page
    assert f'href="/journal/{history["first"]}"' in page
    assert f'href="/journal/{history["other"]}"' not in page


@pytest.mark.parametrize("number", ["abc", "359888x", "%2B359%20888", "1'%20OR%20'1", "+", "..%2F..%2Fetc",
                                    "+3598881234567890"])
def test_a_number_in_the_url_that_is_not_a_number_is_404(admin_client, number):
    assert admin_client.get(f"/contacts/{number}").status_code == 404
    assert admin_client.post(f"/contacts/{number}", data={"name": "x"}).status_code == 404
    assert admin_client.post(f"/contacts/{number}/reminders", data={"text": "x"}).status_code == 404


def test_an_unknown_number_has_an_empty_card(admin_client):
    response = admin_client.get("/contacts/0888123456")
    assert response.status_code == 200 and "No calls from this number yet." in response.get_data(as_text=True)


def test_the_card_is_saved_audited_and_searchable(admin_client, app, history):
    form = {"name": "Мария Иванова", "status": "in progress", "notes": "Applies for master's", "tags": "master, Dorm"}
    response = admin_client.post(f"/contacts/{NUMBER}", data=form)
    assert response.status_code == 302 and response.headers["Location"] == f"/contacts/{NUMBER}"
    page = admin_client.get(f"/contacts/{NUMBER}").get_data(as_text=True)
    assert "Мария Иванова" in page and 'value="in progress"' in page and "Applies for master&#39;s" in page
    assert 'value="dorm, master"' in page
    entry = _audit(app, "contacts.save")[0]
    assert entry["detail"] == {"number": NUMBER, "name": "Мария Иванова", "status": "in progress",
                               "tags": ["dorm", "master"]} and entry["username"] == "admin"
    found = admin_client.get("/contacts/", query_string={"q": "мария"}).get_data(as_text=True)
    assert f'href="/contacts/{NUMBER}"' in found and f'href="/contacts/{OTHER}"' not in found
    latest = admin_client.get("/contacts/").get_data(as_text=True)
    assert f'href="/contacts/{NUMBER}"' in latest and f'href="/contacts/{OTHER}"' in latest


@pytest.mark.parametrize("form, field", [
    ({"name": "x" * 101}, "name"), ({"status": "y" * 41}, "status"), ({"notes": "z" * 4001}, "notes"),
    ({"tags": "t" * 33}, "tags"),
])
def test_a_refused_card_names_the_field_and_keeps_the_input(admin_client, app, form, field):
    response = admin_client.post(f"/contacts/{NUMBER}", data=form)
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert _audit(app, "contacts.save") == []


def test_reminders_on_the_card_are_read_on_the_box_clock_done_and_made_call_backs(admin_client, app, history):
    response = admin_client.post(f"/contacts/{NUMBER}/reminders",
                                 data={"due_date": "2030-07-01", "due_time": "10:30", "text": "Results are out"})
    assert response.status_code == 302
    book = _book(app)
    [item] = contacts.reminders_of(book.conn, NUMBER)
    expected = datetime.datetime(2030, 7, 1, 10, 30, tzinfo=_box_zone()).astimezone(UTC)
    assert item["due_at"] == expected.isoformat(timespec="milliseconds") and item["author"] == "admin"
    page = admin_client.get(f"/contacts/{NUMBER}").get_data(as_text=True)
    assert "<time>2030-07-01 10:30</time> Results are out" in page
    assert [row["id"] for row in contacts.due_reminders(book.conn, expected)] == [item["id"]]
    assert _audit(app, "contacts.reminder")[0]["detail"]["reminder_id"] == item["id"]

    assert admin_client.post(f"/contacts/{NUMBER}/reminders/{item['id']}/callback").status_code == 302
    second = contacts.add_reminder(book.conn, NUMBER, expected, "Again", "admin")
    admin_client.post(f"/contacts/{NUMBER}/reminders/{second}/callback")
    assert [task["reason"] for task in contacts.callbacks_of(book.conn, NUMBER)] == ["reminder"]
    page = admin_client.get(f"/contacts/{NUMBER}").get_data(as_text=True)
    callbacks = re.search(r'<ul id="callbacks">(.*?)</ul>', page, re.S).group(1)
    assert callbacks.count("<li>") == 1 and "reminder" in callbacks
    assert [entry["detail"]["created"] for entry in _audit(app, "contacts.reminder_callback")] == [True, False]

    third = contacts.add_reminder(book.conn, NUMBER, expected, "Check the documents", "admin")
    assert admin_client.post(f"/contacts/{NUMBER}/reminders/{third}/done").status_code == 302
    assert contacts.reminder(book.conn, third)["done_at"] and _audit(app, "contacts.reminder_done")
    assert contacts.due_reminders(book.conn, expected) == []


@pytest.mark.parametrize("form, field", [
    ({"due_date": "", "due_time": "10:00", "text": "x"}, "due_at"),
    ({"due_date": "2030-02-30", "due_time": "10:00", "text": "x"}, "due_at"),
    ({"due_date": "2030-07-01", "due_time": "25:00", "text": "x"}, "due_at"),
    ({"due_date": "2030-07-01", "due_time": "10:00", "text": ""}, "text"),
])
def test_a_refused_reminder_names_the_field(admin_client, app, form, field):
    response = admin_client.post(f"/contacts/{NUMBER}/reminders", data=form)
    assert response.status_code == 400 and f'id="{field}-error"' in response.get_data(as_text=True)
    assert contacts.reminders_of(_book(app).conn, NUMBER) == []


def test_a_reminder_is_changed_only_through_its_own_card(admin_client, app):
    reminder_id = contacts.add_reminder(_book(app).conn, OTHER, "2030-07-01T09:00", "x", "admin")
    assert admin_client.post(f"/contacts/{NUMBER}/reminders/{reminder_id}/done").status_code == 404
    assert admin_client.post(f"/contacts/{NUMBER}/reminders/{reminder_id}/callback").status_code == 404
    assert admin_client.post(f"/contacts/{NUMBER}/reminders/999/done").status_code == 404
    assert contacts.reminder(_book(app).conn, reminder_id)["done_at"] is None


def test_an_operator_uses_cards_but_opens_only_their_own_calls(client, app, history):
    _login(client, app, "olga", "operator", operator_id="op1")
    assert "Callers</a>" in client.get("/").get_data(as_text=True)
    page = client.get(f"/contacts/{NUMBER}").get_data(as_text=True)
    assert _card_calls(page) == [history["missed"], history["second"], history["first"]]
    assert f'href="/journal/{history["first"]}"' in page
    assert f'href="/journal/{history["second"]}"' not in page and f'href="/journal/{history["missed"]}"' not in page
    assert client.get(f"/journal/{history['second']}").status_code == 403
    assert client.post(f"/contacts/{NUMBER}", data={"name": "Maria"}).status_code == 302
    assert _audit(app, "contacts.save")[0]["username"] == "olga"


CONTACT_ROUTES = [("get", "/contacts/"), ("get", f"/contacts/{NUMBER}"), ("post", f"/contacts/{NUMBER}"),
                  ("post", f"/contacts/{NUMBER}/reminders"), ("post", f"/contacts/{NUMBER}/reminders/1/done"),
                  ("post", f"/contacts/{NUMBER}/reminders/1/callback")]


@pytest.mark.parametrize("method, path", CONTACT_ROUTES)
def test_every_contacts_route_needs_a_login(admin_client, method, path):
    admin_client.post("/logout")
    response = getattr(admin_client, method)(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
