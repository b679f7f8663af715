"""The Users, My account and System pages: roles, accounts, API tokens, backup and restore, health."""
import hashlib
import io
import json
import os
import re
import tarfile

import pytest

from appliance import accounts, backup
from appliance.config import ConfigStore, demo_config
from appliance.journal import Journal, connect
from web_ui import create_app

from .conftest import ADMIN, wait_for

ADMIN_ROUTES = [
    ("GET", "/users/"), ("POST", "/users/create"), ("GET", "/users/1"), ("POST", "/users/1"),
    ("POST", "/users/1/password"), ("POST", "/users/1/delete"), ("POST", "/users/tokens"),
    ("POST", "/users/tokens/1/revoke"),
    ("GET", "/system/"), ("POST", "/system/backup"), ("POST", "/system/restore"),
    ("POST", "/system/restore/apply"), ("POST", "/system/restore/discard"),
]
ACCOUNT_ROUTES = [("GET", "/account"), ("POST", "/account/password"), ("POST", "/account/language")]
PASSWORDS = {"olga": "operator password", "sam": "supervisor password", "ivan": "second admin pass"}


def db(app):
    """A journal connection on the app's data directory."""
    return connect(os.path.join(app.config["DATA_DIR"], "journal.sqlite3"))


def add_user(app, username, role, **profile):
    """Create an account directly; return its id."""
    conn = db(app)
    try:
        return accounts.create_user(conn, username, PASSWORDS[username], role, **profile)
    finally:
        conn.close()


def log_in(client, username, password):
    """Log the client in as ``username``."""
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def audit_actions(app):
    conn = db(app)
    try:
        return [row[0] for row in conn.execute("SELECT action FROM audit ORDER BY id")]
    finally:
        conn.close()


def request(client, method, path, **kwargs):
    return client.get(path, **kwargs) if method == "GET" else client.post(path, **kwargs)


# --- who may open what -----------------------------------------------------------------------


def test_the_route_lists_cover_every_route_of_both_blueprints(app):
    listed = {re.sub(r"/1(?=/|$)", "/<id>", path) for _method, path in ADMIN_ROUTES + ACCOUNT_ROUTES}
    rules = {re.sub(r"<int:\w+>", "<id>", rule.rule) for rule in app.url_map.iter_rules()
             if rule.endpoint.split(".")[0] in ("users", "system")}
    assert rules == listed


@pytest.mark.parametrize("role, username", [("operator", "olga"), ("supervisor", "sam")])
@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
def test_admin_pages_refuse_operators_and_supervisors(admin_client, app, role, username, method, path):
    add_user(app, username, role)
    log_in(admin_client, username, PASSWORDS[username])
    assert request(admin_client, method, path).status_code == 403


@pytest.mark.parametrize("method, path", ADMIN_ROUTES + ACCOUNT_ROUTES)
def test_visitors_are_sent_to_log_in(admin_client, method, path):
    admin_client.post("/logout")
    response = request(admin_client, method, path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_menu_shows_users_and_system_to_admins_only(admin_client, app):
    page = admin_client.get("/").get_data(as_text=True)
    assert 'href="/users/"' in page and 'href="/system/"' in page
    add_user(app, "olga", "operator")
    log_in(admin_client, "olga", PASSWORDS["olga"])
    page = admin_client.get("/").get_data(as_text=True)
    assert 'href="/users/"' not in page and 'href="/system/"' not in page


# --- users ------------------------------------------------------------------------------------


def test_users_are_created_edited_reset_and_deleted(admin_client, app):
    form = {"username": "olga", "password": "operator password", "confirm": "operator password",
            "role": "operator", "language": "uk", "operator_id": "op1"}
    response = admin_client.post("/users/create", data=form)
    assert response.status_code == 302
    page = admin_client.get("/users/").get_data(as_text=True)
    assert 'data-user="olga"' in page and "Українська" in page
    olga = next(u for u in accounts.list_users(db(app)) if u["username"] == "olga")
    assert (olga["role"], olga["language"], olga["operator_id"]) == ("operator", "uk", "op1")

    response = admin_client.post(f"/users/{olga['id']}",
                                 data={"role": "supervisor", "language": "ru", "operator_id": ""})
    assert response.status_code == 302
    changed = accounts.get_user(db(app), olga["id"])
    assert (changed["role"], changed["language"], changed["operator_id"]) == ("supervisor", "ru", None)

    response = admin_client.post(f"/users/{olga['id']}/password",
                                 data={"password": "a new password", "confirm": "a new password"})
    assert response.status_code == 302
    assert accounts.authenticate(db(app), "olga", "a new password")

    assert admin_client.post(f"/users/{olga['id']}/delete").status_code == 302
    assert accounts.get_user(db(app), olga["id"]) is None
    assert admin_client.get(f"/users/{olga['id']}").status_code == 404
    assert audit_actions(app) == ["users.create", "users.update", "users.password_reset", "users.delete"]


@pytest.mark.parametrize("change, field", [
    ({"confirm": "something else"}, "confirm"),
    ({"password": "short", "confirm": "short"}, "password"),
    ({"username": "admin"}, "username"),
    ({"role": "root"}, "role"),
    ({"language": "de"}, "language"),
    ({"operator_id": "Not An Id"}, "operator_id"),
])
def test_a_bad_new_user_is_refused_next_to_the_field(admin_client, app, change, field):
    form = dict({"username": "olga", "password": "operator password", "confirm": "operator password",
                 "role": "operator", "language": "en", "operator_id": ""}, **change)
    response = admin_client.post("/users/create", data=form)
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert accounts.count_users(db(app)) == 1 and audit_actions(app) == []


def test_the_last_admin_can_be_neither_deleted_nor_demoted(admin_client, app):
    conn = db(app)
    admin_id = accounts.authenticate(conn, *ADMIN)["id"]
    with pytest.raises(accounts.AccountError, match="last admin"):
        accounts.delete_user(conn, admin_id)
    with pytest.raises(accounts.AccountError, match="last admin"):
        accounts.update_user(conn, admin_id, "operator", "en", None)
    response = admin_client.post(f"/users/{admin_id}", data={"role": "operator", "language": "en", "operator_id": ""})
    assert response.status_code == 400 and 'id="role-error"' in response.get_data(as_text=True)
    response = admin_client.post(f"/users/{admin_id}/delete")
    assert response.status_code == 400 and 'id="delete-error"' in response.get_data(as_text=True)
    assert accounts.get_user(conn, admin_id)["role"] == "admin"

    ivan = add_user(app, "ivan", "admin")
    accounts.update_user(conn, ivan, "supervisor", "en", None)  # two admins: one may step down
    assert accounts.count_admins(conn) == 1
    with pytest.raises(accounts.AccountError, match="last admin"):
        accounts.update_user(conn, admin_id, "supervisor", "en", None)


def test_an_admin_cannot_delete_or_demote_themselves(admin_client, app):
    add_user(app, "ivan", "admin")
    conn = db(app)
    admin_id = accounts.authenticate(conn, *ADMIN)["id"]
    with pytest.raises(accounts.AccountError, match="own account"):
        accounts.delete_user(conn, admin_id, actor_id=admin_id)
    response = admin_client.post(f"/users/{admin_id}/delete")
    assert response.status_code == 400 and "own account" in response.get_data(as_text=True)
    response = admin_client.post(f"/users/{admin_id}", data={"role": "operator", "language": "en", "operator_id": ""})
    assert response.status_code == 400 and accounts.get_user(conn, admin_id)["role"] == "admin"


def test_changing_ones_own_password_needs_the_old_one(admin_client, app):
    conn = db(app)
    admin = accounts.authenticate(conn, *ADMIN)
    with pytest.raises(accounts.AccountError) as refused:
        accounts.set_password(conn, admin["id"], "brand new password", old_password="wrong", actor=admin)
    assert refused.value.field == "old_password"
    response = admin_client.post("/account/password", data={"old_password": "wrong", "password": "brand new password",
                                                             "confirm": "brand new password"})
    assert response.status_code == 400 and 'id="old_password-error"' in response.get_data(as_text=True)
    assert accounts.authenticate(conn, *ADMIN)
    response = admin_client.post("/account/password", data={"old_password": ADMIN[1], "password": "brand new password",
                                                             "confirm": "brand new password"})
    assert response.status_code == 302
    assert accounts.authenticate(conn, ADMIN[0], "brand new password") and not accounts.authenticate(conn, *ADMIN)
    assert "account.password" in audit_actions(app)


def test_only_an_admin_resets_someone_elses_password(app, admin_client):
    conn = db(app)
    olga, sam = add_user(app, "olga", "operator"), add_user(app, "sam", "supervisor")
    supervisor = accounts.get_user(conn, sam)
    with pytest.raises(accounts.AccountError, match="Only an admin"):
        accounts.set_password(conn, olga, "taken over password", actor=supervisor)
    admin = accounts.authenticate(conn, *ADMIN)
    accounts.set_password(conn, olga, "reset by the admin", actor=admin)
    assert accounts.authenticate(conn, "olga", "reset by the admin")


def test_an_operator_uses_their_account_page(admin_client, app):
    olga = add_user(app, "olga", "operator", operator_id="op1")
    log_in(admin_client, "olga", PASSWORDS["olga"])
    page = admin_client.get("/account").get_data(as_text=True)
    assert "olga" in page and 'id="account-password"' in page and "op1" in page
    assert admin_client.post("/account/language", data={"language": "bg"}).status_code == 302
    assert accounts.get_user(db(app), olga)["language"] == "bg"
    assert admin_client.post("/account/language", data={"language": "xx"}).status_code == 400
    response = admin_client.post("/account/password", data={"old_password": PASSWORDS["olga"],
                                                             "password": "olga's new password",
                                                             "confirm": "olga's new password"})
    assert response.status_code == 302
    log_in(admin_client, "olga", "olga's new password")
    assert audit_actions(app)[-2:] == ["account.language", "account.password"]


# --- API tokens --------------------------------------------------------------------------------


def test_a_token_is_shown_once_stored_as_a_hash_and_revocable(admin_client, app):
    response = admin_client.post("/users/tokens", data={"name": "CRM", "role": "supervisor"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    token = re.search(r'<div class="token-once" id="new-token".*?<code>([^<]+)</code>', response.get_data(as_text=True),
                      re.S).group(1)
    assert len(token) >= 43
    conn = db(app)
    stored = conn.execute("SELECT * FROM api_tokens").fetchone()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps([dict(row) for row in conn.execute("SELECT * FROM api_tokens")])
    assert token not in admin_client.get("/users/").get_data(as_text=True)  # never shown again

    used = accounts.token_user(conn, token)
    assert (used["name"], used["role"], used["created_by"]) == ("CRM", "supervisor", ADMIN[0])
    assert "token_hash" not in used and used["last_used_at"]
    assert accounts.token_user(conn, token + "x") is None and accounts.token_user(conn, "") is None
    assert "Last used" in admin_client.get("/users/").get_data(as_text=True)

    assert admin_client.post(f"/users/tokens/{stored['id']}/revoke").status_code == 302
    assert accounts.token_user(conn, token) is None
    assert accounts.list_tokens(conn)[0]["revoked_at"]
    assert admin_client.post("/users/tokens/999/revoke").status_code == 404
    assert audit_actions(app) == ["tokens.create", "tokens.revoke"]
    assert token not in json.dumps(accounts.list_tokens(conn))


def test_a_token_needs_a_name_and_a_role(admin_client, app):
    response = admin_client.post("/users/tokens", data={"name": " ", "role": "supervisor"})
    assert response.status_code == 400 and 'id="token_name-error"' in response.get_data(as_text=True)
    response = admin_client.post("/users/tokens", data={"name": "x", "role": "root"})
    assert response.status_code == 400 and 'id="token_role-error"' in response.get_data(as_text=True)
    assert accounts.list_tokens(db(app)) == []


def test_token_last_use_is_written_at_most_once_a_minute(app, admin_client):
    conn = db(app)
    token = accounts.create_token(conn, "poller", "operator", "admin")
    first = accounts.token_user(conn, token)["last_used_at"]
    assert accounts.token_user(conn, token)["last_used_at"] == first


# --- the system page without an engine --------------------------------------------------------


def test_the_system_page_without_an_engine(admin_client, app):
    data = app.config["DATA_DIR"]
    with open(os.path.join(data, "engine.log"), "w") as handle:
        handle.writelines(f"engine line {i}\n" for i in range(500))
    with open(os.path.join(data, "secret.log"), "w") as handle:
        handle.write("must not be shown\n")
    page = admin_client.get("/system/").get_data(as_text=True)
    assert "The engine does not answer" in page
    assert f'<dd id="version">{backup.app_version()}</dd>' in page and backup.app_version() != "unknown"
    assert "engine line 499" in page and "engine line 400" not in page
    assert 'data-log="engine.log"' in page and "must not be shown" not in page
    assert 'id="disk"' in page and 'id="restore-form"' in page
    admin_client.post("/users/tokens", data={"name": "CRM", "role": "operator"})
    assert "tokens.create" in admin_client.get("/system/").get_data(as_text=True)


def test_the_backup_downloads_as_a_tar_gz(admin_client, app):
    data = app.config["DATA_DIR"]
    ConfigStore(data).save(demo_config())
    os.makedirs(os.path.join(data, "recordings", "2026"))
    with open(os.path.join(data, "recordings", "2026", "call-1.wav"), "wb") as handle:
        handle.write(b"RIFF" + bytes(100))
    response = admin_client.post("/system/backup")
    assert response.status_code == 200 and response.mimetype == "application/gzip"
    assert re.match(r'attachment; filename="hotline-backup-hot-line-demo-\d{8}-\d{6}\.tar\.gz"',
                    response.headers["Content-Disposition"])
    with tarfile.open(fileobj=io.BytesIO(response.data)) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and "journal.sqlite3" in names and "recordings/2026/call-1.wav" not in names
    with_recordings = admin_client.post("/system/backup", data={"recordings": "1"})
    with tarfile.open(fileobj=io.BytesIO(with_recordings.data)) as tar:
        assert "recordings/2026/call-1.wav" in tar.getnames()
    assert audit_actions(app) == ["system.backup", "system.backup"]


def other_box_archive(tmp_path, box_name="Restored box"):
    """A backup of another box with its own admin and one call."""
    other = str(tmp_path / "other")
    os.makedirs(other)
    document = demo_config()
    document["settings"]["box_name"] = box_name
    ConfigStore(other).save(document)
    book = Journal(connect(os.path.join(other, "journal.sqlite3")))
    accounts.create_user(book.conn, "restored-admin", "restored password", "admin")
    book.end_call(book.start_call("gsm1", "in", caller="+359888444444"), "missed", "caller")
    book.close()
    path = str(tmp_path / "other.tar.gz")
    with open(path, "wb") as handle:
        backup.write_backup(other, handle)
    return path


def test_a_restore_with_the_engine_stopped_brings_everything_in_and_ends_sessions(admin_client, app, tmp_path):
    path = other_box_archive(tmp_path)
    with open(path, "rb") as handle:
        response = admin_client.post("/system/restore", data={"archive": (handle, "other.tar.gz")},
                                     content_type="multipart/form-data")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    data = app.config["DATA_DIR"]
    assert ConfigStore(data).read()["settings"]["box_name"] == "Restored box"
    conn = db(app)
    assert [u["username"] for u in accounts.list_users(conn)] == ["restored-admin"]
    assert conn.execute("SELECT caller FROM calls").fetchall()[0][0] == "+359888444444"
    assert conn.execute("SELECT action FROM audit ORDER BY id DESC").fetchone()[0] == "system.restore"
    # The old session's cookie names a user id of the replaced journal: it opens nothing now.
    assert admin_client.get("/system/").headers["Location"].startswith("/login")
    log_in(admin_client, "restored-admin", "restored password")
    assert admin_client.get("/system/").status_code == 200


def test_a_bad_upload_is_refused_with_a_message_and_nothing_changes(admin_client, app):
    data = app.config["DATA_DIR"]
    ConfigStore(data).save(demo_config())
    config_before = open(os.path.join(data, "config.json"), "rb").read()
    response = admin_client.post("/system/restore", data={"archive": (io.BytesIO(b"not an archive"), "x.tar.gz")},
                                 content_type="multipart/form-data")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="archive-error"' in page and "not a .tar.gz" in page
    assert open(os.path.join(data, "config.json"), "rb").read() == config_before
    assert not [name for name in os.listdir(data) if name.startswith(backup.STAGING_PREFIX)]
    assert admin_client.post("/system/restore", data={}).status_code == 400
    assert "system.restore" not in audit_actions(app)


def test_a_pending_journal_is_shown_applied_or_discarded(admin_client, app, tmp_path):
    data = app.config["DATA_DIR"]
    path = other_box_archive(tmp_path)
    backup.restore(data, path, lambda document: ConfigStore(data).save(document), journal_in_use=True)
    page = admin_client.get("/system/").get_data(as_text=True)
    assert 'id="pending-journal"' in page and "restart" in page
    assert admin_client.post("/system/restore/discard").status_code == 302
    assert backup.pending_journal(data) is None
    backup.restore(data, path, lambda document: ConfigStore(data).save(document), journal_in_use=True)
    response = admin_client.post("/system/restore/apply")  # the engine is stopped: it may be applied now
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert [u["username"] for u in accounts.list_users(db(app))] == ["restored-admin"]


# --- with the engine running --------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(box):
    app = create_app({"DATA_DIR": box.data_dir, "TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    username, password = ADMIN
    client.post("/setup", data={"username": username, "password": password, "confirm": password})
    return client


def test_the_system_page_shows_the_engine_health(web):
    page = web.get("/system/").get_data(as_text=True)
    assert 'id="engine-health"' in page and 'id="uptime"' in page and 'id="media"' in page
    assert 'id="outbox"' in page and "in force, no problem" in page
    assert 'data-log="engine.log"' in page


def test_operators_come_from_the_configuration(web):
    page = web.get("/users/").get_data(as_text=True)
    assert '<option value="op1">Demo operator (op1)</option>' in page
    response = web.post("/users/create", data={"username": "nadia", "password": "operator password",
                                               "confirm": "operator password", "role": "operator",
                                               "language": "en", "operator_id": "op9"})
    assert response.status_code == 400 and "no operator op9" in response.get_data(as_text=True)


def test_a_restore_with_the_engine_running_reloads_the_config_and_waits_with_the_journal(web, box, tmp_path):
    path = other_box_archive(tmp_path, box_name="Restored while running")
    before = box.status()["uptime_seconds"]
    with open(path, "rb") as handle:
        response = web.post("/system/restore", data={"archive": (handle, "other.tar.gz")},
                            content_type="multipart/form-data", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="pending-journal"' in page, page
    wait_for(lambda: (box.status() or {}).get("box") == "Restored while running", timeout=30)
    assert box.status()["uptime_seconds"] >= before  # reloaded, not restarted
    assert os.path.exists(os.path.join(box.data_dir, "journal.sqlite3.restore"))
    assert web.post("/system/restore/apply").status_code == 409  # not under a running engine
    assert web.post("/system/restore/discard").status_code == 302
    assert not os.path.exists(os.path.join(box.data_dir, "journal.sqlite3.restore"))
