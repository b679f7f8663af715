"""The configuration pages for menus (the IVR editor) and lines, against a running demo box.

Forms are read from the rendered page and posted back as a browser would post them
(with only the fields a test changes altered), so what is tested is the page a user gets.
"""
import re
from html.parser import HTMLParser

import pytest
from werkzeug.datastructures import MultiDict

from appliance import accounts
from appliance.config import demo_config, validate
from web_ui import create_app

from .conftest import ADMIN, in_force, restore_sections

DEMO = validate(demo_config())
PASSWORD = "a long enough password"


# --- helpers ----------------------------------------------------------------------------------


class _FormReader(HTMLParser):
    """Collects the fields a browser would submit for the form with a given id."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, []
        self._select = self._textarea = None
        self._options = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and attrs.get("name") and attrs.get("type") not in ("file", "submit"):
            if attrs.get("type") not in ("checkbox", "radio") or "checked" in attrs:
                self.fields.append((attrs["name"], attrs.get("value", "")))
        elif tag == "select":
            self._select, self._options = attrs["name"], []
        elif tag == "option" and self._select:
            self._options.append((attrs.get("value", ""), "selected" in attrs))
        elif tag == "textarea":
            self._textarea = [attrs["name"], ""]

    def handle_data(self, data):
        if self._textarea:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            chosen = [value for value, selected in self._options if selected] or [self._options[0][0]]
            self.fields.append((self._select, chosen[0]))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append(tuple(self._textarea))
            self._textarea = None


def form_fields(page, form_id):
    """The (name, value) pairs the form ``form_id`` on ``page`` submits as it is."""
    reader = _FormReader(form_id)
    reader.feed(page)
    return MultiDict(reader.fields)


def changed(fields, **values):
    """``fields`` with single-valued fields replaced (a value of None drops the field)."""
    result = [(name, value) for name, value in fields.items(multi=True) if name not in values]
    return MultiDict(result + [(name, value) for name, value in values.items() if value is not None])


def _rows(fields):
    """A menu form's key rows, and its other fields."""
    keys, targets = fields.getlist("option_key"), fields.getlist("option_target")
    rest = [(name, value) for name, value in fields.items(multi=True) if name not in ("option_key", "option_target")]
    return keys, targets, rest


def _with_rows(rest, keys, targets):
    return MultiDict(rest + [("option_key", k) for k in keys] + [("option_target", t) for t in targets])


def with_option(fields, key, target):
    """A menu form's fields with ``key`` → ``target`` in the row of ``key`` (or the first empty row)."""
    keys, targets, rest = _rows(fields)
    row = keys.index(key) if key in keys else keys.index("")
    keys[row], targets[row] = key, target
    return _with_rows(rest, keys, targets)


def without_option(fields, key):
    """A menu form's fields with the row of ``key`` emptied, as a user removes a key."""
    keys, targets, rest = _rows(fields)
    row = keys.index(key)
    keys[row] = targets[row] = ""
    return _with_rows(rest, keys, targets)


def error_text(page, field):
    """The text of the error shown next to ``field`` (id="<field>-error"), or None."""
    match = re.search(rf'id="{re.escape(field)}-error">([^<]*)<', page)
    return match and match.group(1)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(box):
    """The web app on the running demo box, with an admin, a supervisor and an operator."""
    application = create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    with application.app_context():
        from web_ui.db import get_db

        username, password = ADMIN
        accounts.create_user(get_db(), username, password, "admin")
        accounts.create_user(get_db(), "sofia", PASSWORD, "supervisor")
        accounts.create_user(get_db(), "olga", PASSWORD, "operator")
    return application


def _logged_in(app, username, password):
    client = app.test_client()
    assert client.post("/login", data={"username": username, "password": password}).status_code == 302
    return client


@pytest.fixture(scope="module")
def clients(app):
    """A logged-in browser per role (logging in is slow on purpose, so once per module)."""
    return {"admin": _logged_in(app, *ADMIN), "supervisor": _logged_in(app, "sofia", PASSWORD),
            "operator": _logged_in(app, "olga", PASSWORD)}


@pytest.fixture(scope="module")
def web(clients):
    """A browser logged in as the admin."""
    return clients["admin"]




@pytest.fixture(autouse=True)
def demo_again(engine):
    """Every test starts from, and leaves, the demo's menus and lines."""
    yield
    restore_sections(engine, DEMO, ("flows", "lines"))


def node_form(web, node_id, flow_id="main"):
    page = web.get(f"/flows/{flow_id}/nodes/{node_id}").get_data(as_text=True)
    return form_fields(page, "node-form")


# --- the tree -----------------------------------------------------------------------------------


def test_the_menus_page_lists_the_demo_flow(web):
    page = web.get("/flows/").get_data(as_text=True)
    assert 'data-flow="main"' in page and "Admissions hot-line" in page and "gsm1, gsm2, sip1" in page
    assert 'href="/flows/"' in web.get("/").get_data(as_text=True)  # in the menu


def test_the_demo_flow_reads_as_a_tree_from_its_start(web):
    page = web.get("/flows/main").get_data(as_text=True)
    tree = page[page.index('id="flow-tree"'):]
    # the start first, then each branch with what leads along it
    assert tree.index('data-node="hours"') < tree.index('data-node="welcome"') < tree.index('data-node="menu"')
    for label, target in (("open", "welcome"), ("closed", "closed"), ("then", "menu"), ("1", "bachelor"),
                          ("2", "master"), ("3", "dormitories"), ("4", "dates"), ("9", "language"),
                          ("no valid key", "bachelor"), ("nobody answers", "voicemail")):
        assert f'data-branch="{label}" data-target="{target}"' in tree, (label, target)
    bachelor = tree[tree.index('data-node="bachelor"'):]
    assert "Queue for operators" in bachelor[:600] and "queue Bachelor programmes (bachelor)" in bachelor[:1200]
    assert "says menu_main" in tree and "1 → English, 2 → Български" in tree
    assert 'id="unreachable"' not in page and 'id="warnings"' not in page


@pytest.mark.parametrize("node_id", sorted(DEMO["flows"][0]["nodes"]))
def test_a_node_form_saved_unchanged_changes_nothing(web, engine, node_id):
    response = web.post(f"/flows/main/nodes/{node_id}", data=node_form(web, node_id))
    assert response.status_code == 302, error_text(response.get_data(as_text=True), "node")
    assert in_force(engine, "flows") == DEMO["flows"]


# --- editing -------------------------------------------------------------------------------------


def add_fees_node(web):
    """A new play node, not linked from anywhere yet."""
    page = web.get("/flows/main/nodes/new?type=play&node_id=fees").get_data(as_text=True)
    fields = changed(form_fields(page, "node-form"), prompt="greeting", next="menu", label="Tuition fees")
    return web.post("/flows/main/nodes", data=fields)


def test_a_menu_key_to_a_new_play_node_is_saved_and_runs_in_the_engine(web, engine):
    assert add_fees_node(web).status_code == 302
    assert in_force(engine, "flows")[0]["nodes"]["fees"] == {"type": "play", "prompt": "greeting", "next": "menu",
                                                             "label": "Tuition fees"}
    page = web.get("/flows/main").get_data(as_text=True)
    assert "node &#39;fees&#39; cannot be reached" in page[page.index('id="warnings"'):]
    assert 'data-node="fees"' in page[page.index('id="unreachable"'):]

    response = web.post("/flows/main/nodes/menu", data=with_option(node_form(web, "menu"), "5", "fees"))
    assert response.status_code == 302
    menu = in_force(engine, "flows")[0]["nodes"]["menu"]
    assert menu["options"] == dict(DEMO["flows"][0]["nodes"]["menu"]["options"], **{"5": "fees"})
    page = web.get("/flows/main").get_data(as_text=True)
    assert 'data-branch="5" data-target="fees"' in page and 'id="unreachable"' not in page


def test_a_key_to_a_missing_node_is_refused_next_to_that_key(web, engine):
    response = web.post("/flows/main/nodes/menu", data=with_option(node_form(web, "menu"), "7", "nowhere"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_text(page, "options.7") == "no node &#39;nowhere&#39; in this flow"
    assert '<option value="nowhere" selected>' in page  # what was chosen is kept
    assert in_force(engine, "flows") == DEMO["flows"]


def test_a_loop_without_caller_input_is_refused_at_the_field_that_closes_it(web, engine):
    response = web.post("/flows/main/nodes/welcome", data=changed(node_form(web, "welcome"), next="hours"))
    assert response.status_code == 400
    assert error_text(response.get_data(as_text=True), "next") == "loop without caller input: hours → welcome → hours"
    assert in_force(engine, "flows") == DEMO["flows"]


@pytest.mark.parametrize("kind, values, field, message", [
    ("queue", {}, "queue", "required"),
    ("time", {"condition": "office", "open": "welcome"}, "closed", "required"),
    ("collect", {"prompt": "greeting", "field": "application number", "next": "menu"}, "field",
     "required: a name such as application_number"),
    ("menu", {"prompt": "menu_main", "timeout": "500"}, "timeout", "must be a whole number from 1 to 120"),
    ("menu", {"prompt": "menu_main", "timeout": "soon"}, "timeout", "must be a whole number from 1 to 120"),
    ("menu", {"prompt": "menu_main"}, "options", "must map keys to choices, such as {&#34;1&#34;: ...}"),
    ("forward", {"number": "call me"}, "number", "must be a phone number such as +359888123456 or a SIP URI"),
])
def test_a_new_node_the_engine_refuses_shows_why_next_to_the_field(web, engine, kind, values, field, message):
    page = web.get(f"/flows/main/nodes/new?type={kind}&node_id=draft").get_data(as_text=True)
    response = web.post("/flows/main/nodes", data=changed(form_fields(page, "node-form"), **values))
    assert response.status_code == 400
    shown = error_text(response.get_data(as_text=True), field)
    assert shown and (message is None or shown == message)
    assert in_force(engine, "flows") == DEMO["flows"]


def test_a_node_id_must_be_new_and_well_formed(web):
    for node_id, expected in (("menu", "There is a node menu already."), ("Bad Id", "Use lower-case")):
        response = web.get(f"/flows/main/nodes/new?type=play&node_id={node_id}")
        assert response.status_code == 400 and error_text(response.get_data(as_text=True), "node_id").startswith(expected)


def test_a_node_still_led_to_cannot_be_deleted_and_one_that_is_not_can(web, engine):
    assert add_fees_node(web).status_code == 302
    assert web.post("/flows/main/nodes/menu", data=with_option(node_form(web, "menu"), "5", "fees")).status_code == 302
    response = web.post("/flows/main/nodes/fees/delete")
    assert response.status_code == 400
    assert error_text(response.get_data(as_text=True), "node-menu") == \
        "node menu, key 5: no node &#39;fees&#39; in this flow"
    assert "fees" in in_force(engine, "flows")[0]["nodes"]

    assert web.post("/flows/main/nodes/menu", data=without_option(node_form(web, "menu"), "5")).status_code == 302
    assert web.post("/flows/main/nodes/fees/delete").status_code == 302
    assert in_force(engine, "flows") == DEMO["flows"]


def test_the_start_node_can_be_moved_and_the_skipped_nodes_are_listed_apart(web, engine):
    page = web.get("/flows/main").get_data(as_text=True)
    response = web.post("/flows/main/settings", data=changed(form_fields(page, "flow-settings"), start="welcome"))
    assert response.status_code == 302
    assert in_force(engine, "flows")[0]["start"] == "welcome"
    page = web.get("/flows/main").get_data(as_text=True)
    unreachable = page[page.index('id="unreachable"'):]
    assert 'data-node="hours"' in unreachable and 'data-node="closed"' in unreachable


def test_a_menu_is_created_renamed_and_deleted(web, engine):
    response = web.post("/flows/", data={"id": "summer", "name": "Summer school"})
    assert response.status_code == 302 and response.headers["Location"] == "/flows/summer"
    page = web.get("/flows/summer").get_data(as_text=True)
    assert 'data-node="start"' in page and "Hang up" in page
    fields = changed(form_fields(page, "flow-settings"), name="Summer school 2026", id="summer26")
    response = web.post("/flows/summer/settings", data=fields)
    assert response.status_code == 302 and response.headers["Location"] == "/flows/summer26"
    assert [(f["id"], f["name"]) for f in in_force(engine, "flows")][-1] == ("summer26", "Summer school 2026")
    assert web.post("/flows/summer26/delete").status_code == 302
    assert in_force(engine, "flows") == DEMO["flows"]


def test_a_menu_a_line_uses_can_be_neither_deleted_nor_renamed(web, engine):
    response = web.post("/flows/main/delete")
    assert response.status_code == 400
    assert error_text(response.get_data(as_text=True), "delete") == "line gsm1, flow: no flow &#39;main&#39;"
    page = web.get("/flows/main").get_data(as_text=True)
    response = web.post("/flows/main/settings", data=changed(form_fields(page, "flow-settings"), id="main2"))
    assert response.status_code == 400 and "gsm1, gsm2, sip1 use this menu" in error_text(response.get_data(as_text=True), "id")
    assert in_force(engine, "flows") == DEMO["flows"]


def test_a_new_menu_needs_a_new_id(web):
    response = web.post("/flows/", data={"id": "main", "name": "Again"})
    assert response.status_code == 400 and error_text(response.get_data(as_text=True), "id") == \
        "There is a menu main already."


# --- lines ---------------------------------------------------------------------------------------


def test_the_lines_page_lists_the_lines_with_their_live_state(web):
    page = web.get("/lines/").get_data(as_text=True)
    for line_id in ("gsm1", "gsm2"):
        row = page[page.index(f'data-line="{line_id}"'):]
        row = row[:row.index("</tr>")]
        assert "SIMCOM_SIM7600E-H" in row and "idle" in row and "dev/gsm1-at" in page
        assert f'href="/lines/{line_id}/edit"' in row and f'href="/lines/{line_id}"' in row
    assert 'href="/lines/"' in web.get("/").get_data(as_text=True)
    assert 'id="line-settings"' in web.get("/lines/gsm1").get_data(as_text=True)


def test_a_line_form_saved_unchanged_leaves_the_line_as_it_was(web, engine):
    page = web.get("/lines/gsm1/edit").get_data(as_text=True)
    assert web.post("/lines/gsm1/edit", data=form_fields(page, "line-form")).status_code == 302
    assert in_force(engine, "lines") == DEMO["lines"]


NEW_LINE = {"id": "gsm3", "name": "Admissions SIM 3", "driver": "sim800", "binding": "imei",
            "imei": "861234567890123", "flow": "main", "inbound": "on", "outbound": "on", "pin": "4321",
            "balance_ussd": "*100#", "balance_check_hours": "12", "low_balance": "2,50", "sms_mode": "text",
            "volte": "on", "microphone_gain": "60", "speaker_gain": "40"}  # not enabled: there is no such modem


def test_a_line_is_added_and_edited_and_its_pin_never_shown(web, engine):
    response = web.post("/lines/", data=NEW_LINE)
    assert response.status_code == 302, response.get_data(as_text=True)
    line = in_force(engine, "lines")[-1]
    assert line == {"id": "gsm3", "name": "Admissions SIM 3", "driver": "sim800", "imei": "861234567890123",
                    "flow": "main", "inbound": True, "outbound": True, "pin": "4321", "balance_ussd": "*100#",
                    "balance_check_hours": 12, "low_balance": 2.5, "sms_mode": "text", "volte": True,
                    "microphone_gain": 60, "speaker_gain": 40, "enabled": False}
    assert "disabled" in web.get("/lines/").get_data(as_text=True).split('data-line="gsm3"')[1].split("</tr>")[0]

    page = web.get("/lines/gsm3/edit").get_data(as_text=True)
    assert "4321" not in page and "Admissions SIM 3" in page
    fields = changed(form_fields(page, "line-form"), name="Admissions SIM three", volte=None, pin="")
    assert web.post("/lines/gsm3/edit", data=fields).status_code == 302
    line = in_force(engine, "lines")[-1]
    assert (line["name"], line["pin"], line["volte"]) == ("Admissions SIM three", "4321", False)

    response = web.post("/lines/gsm3/edit", data=changed(fields, pin="987"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and error_text(page, "pin") == "must be 4 to 8 digits, in quotes"
    assert "987" not in page and "4321" not in page and "Admissions SIM three" in page
    assert in_force(engine, "lines")[-1]["pin"] == "4321"

    assert web.post("/lines/gsm3/edit", data=changed(fields, pin_remove="on")).status_code == 302
    assert "pin" not in in_force(engine, "lines")[-1]
    assert web.post("/lines/gsm3/delete").status_code == 302
    assert in_force(engine, "lines") == DEMO["lines"]


@pytest.mark.parametrize("values, field, message", [
    ({"id": "gsm1"}, "id", "There is a line gsm1 already."),
    ({"binding": "port", "imei": ""}, "port", "required"),
    ({"imei": "12345"}, "imei", "must be the IMEI digits, in quotes"),
    ({"balance_ussd": "100"}, "balance_ussd", "must be a USSD code such as *100#"),
    ({"microphone_gain": "loud"}, "microphone_gain", "must be a whole number from 0 to 100"),
    ({"low_balance": "some"}, "low_balance", "must be an amount such as 5 or 2.50"),
])
def test_a_line_the_engine_refuses_shows_why_next_to_the_field(web, engine, values, field, message):
    response = web.post("/lines/", data=dict(NEW_LINE, **values))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and error_text(page, field) == message
    assert "4321" not in page  # the PIN is not sent back, even to the one who typed it
    assert in_force(engine, "lines") == DEMO["lines"]


def test_a_line_a_virtual_modem_uses_cannot_be_removed(web, engine):
    response = web.post("/lines/gsm2/delete")
    assert response.status_code == 400
    assert "no line &#39;gsm2&#39;" in error_text(response.get_data(as_text=True), "delete")
    assert in_force(engine, "lines") == DEMO["lines"]


# --- who may ---------------------------------------------------------------------------------------


ADMIN_ROUTES = [
    ("get", "/flows/"), ("post", "/flows/"), ("get", "/flows/main"), ("post", "/flows/main/settings"),
    ("post", "/flows/main/delete"), ("get", "/flows/main/nodes/new?type=play&node_id=x"),
    ("post", "/flows/main/nodes"), ("get", "/flows/main/nodes/menu"), ("post", "/flows/main/nodes/menu"),
    ("post", "/flows/main/nodes/menu/delete"),
    ("get", "/lines/"), ("get", "/lines/new"), ("post", "/lines/"), ("get", "/lines/gsm1/edit"),
    ("post", "/lines/gsm1/edit"), ("post", "/lines/gsm1/delete"), ("post", "/lines/gsm1/sms"),
]


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
@pytest.mark.parametrize("who", ["operator", "supervisor"])
def test_only_the_admin_may_configure(clients, engine, method, path, who):
    assert getattr(clients[who], method)(path).status_code == 403
    assert in_force(engine, "flows") == DEMO["flows"] and in_force(engine, "lines") == DEMO["lines"]


@pytest.mark.parametrize("method, path", ADMIN_ROUTES + [("get", "/lines/gsm1"), ("post", "/lines/gsm1/balance")])
def test_visitors_are_sent_to_log_in(app, method, path):
    response = getattr(app.test_client(), method)(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_operators_may_not_open_a_line_page(clients):
    client = clients["operator"]
    assert client.get("/lines/gsm1").status_code == 403
    assert 'href="/lines/"' not in client.get("/").get_data(as_text=True)


def test_the_menus_and_lines_are_the_demos_at_the_end(engine):
    assert in_force(engine, "flows") == DEMO["flows"] and in_force(engine, "lines") == DEMO["lines"]
