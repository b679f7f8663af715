"""Web accounts: users with a role and a slow password hash, kept in the journal database.

API tokens live in the same database. Only a token's SHA-256 is stored: the plain token
is shown once when it is made and can never be read back. A random 256-bit token needs
no slow hash (nothing to brute-force), and looking it up by its hash means the plain
token is never compared byte by byte against anything stored.
"""
import datetime
import hashlib
import hmac
import re
import secrets
import sqlite3

from werkzeug.security import check_password_hash, generate_password_hash

from .errors import ApplianceError
from .journal import Transaction, now

ROLES = ("admin", "supervisor", "operator")
LANGUAGES = ("en", "bg", "uk", "ru")  # the web UI's languages (web_ui/i18n.py)
MIN_PASSWORD = 10
MAX_NAME = 64
OPERATOR_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # the configuration's id pattern
# A token used again within this many seconds keeps its last_used_at: an API client polling
# every second must not turn each read into a durable write on the SD card.
LAST_USED_GRANULARITY = 60


class AccountError(ApplianceError, ValueError):
    """An account cannot be created as asked; ``field`` names the form field."""

    def __init__(self, field, message):
        self.field = field
        super().__init__(message)


def count_users(conn):
    """How many accounts exist (none means the box is waiting for first-run setup)."""
    return conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]


def create_user(conn, username, password, role, language="en", operator_id=None):
    """Create an account; raise AccountError naming the field that is wrong."""
    language, operator_id = _check_profile(language, operator_id)
    with Transaction(conn):
        return _insert(conn, username, password, role, language, operator_id)


def create_first_admin(conn, username, password):
    """Create the first admin, only while there is no account at all."""
    with Transaction(conn):
        if count_users(conn):
            raise AccountError("username", "The box is set up already: log in instead.")
        return _insert(conn, username, password, "admin")


def authenticate(conn, username, password):
    """The user row for a correct user name and password, else None."""
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username.strip(),)).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)  # same cost whether the user exists or not
        return None
    return dict(row) if check_password_hash(row["password_hash"], password) else None


def get_user(conn, user_id):
    """The user row with ``user_id``, or None."""
    row = conn.execute("SELECT id, username, role, language, operator_id FROM users WHERE id = ?",
                       (user_id,)).fetchone()
    return dict(row) if row else None


def list_users(conn):
    """Every account (without password hashes), by user name."""
    rows = conn.execute("SELECT id, username, role, language, operator_id, created_at FROM users"
                        " ORDER BY username COLLATE NOCASE")
    return [dict(row) for row in rows]


def count_admins(conn):
    """How many accounts have the admin role."""
    return conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]


def update_user(conn, user_id, role, language, operator_id):
    """Change an account's role, UI language and linked operator; the last admin stays admin."""
    if role not in ROLES:
        raise AccountError("role", f"The role must be one of {', '.join(ROLES)}.")
    language, operator_id = _check_profile(language, operator_id)
    with Transaction(conn):
        user = _existing(conn, user_id)
        if user["role"] == "admin" and role != "admin" and count_admins(conn) <= 1:
            raise AccountError("role", "This is the last admin: make another user admin first.")
        conn.execute("UPDATE users SET role = ?, language = ?, operator_id = ? WHERE id = ?",
                     (role, language, operator_id, user_id))


def set_language(conn, user_id, language):
    """Change only an account's UI language (what any user may do for themselves)."""
    language, _ = _check_profile(language, None)
    with Transaction(conn):
        _existing(conn, user_id)
        conn.execute("UPDATE users SET language = ? WHERE id = ?", (language, user_id))


def set_password(conn, user_id, new_password, old_password=None, actor=None):
    """Give an account a new password.

    Changing one's own password (``actor`` is that user, or no actor is named) needs the
    old one, so a session left open cannot be turned into a stolen account; an admin
    resetting someone else's needs none.
    """
    if len(new_password) < MIN_PASSWORD:
        raise AccountError("password", f"The password needs at least {MIN_PASSWORD} characters.")
    own = actor is None or actor["id"] == user_id
    if not own and actor["role"] != "admin":
        raise AccountError("password", "Only an admin may reset another user's password.")
    with Transaction(conn):
        row = conn.execute("SELECT password_hash FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise AccountError("user", "There is no such user.")
        if own and not check_password_hash(row["password_hash"], old_password or ""):
            raise AccountError("old_password", "The current password is wrong.")
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                     (generate_password_hash(new_password, method="scrypt"), user_id))


def delete_user(conn, user_id, actor_id=None):
    """Delete an account, never the last admin nor the acting user's own; return its user name."""
    if actor_id is not None and actor_id == user_id:
        raise AccountError("user", "You cannot delete your own account.")
    with Transaction(conn):
        user = _existing(conn, user_id)
        if user["role"] == "admin" and count_admins(conn) <= 1:
            raise AccountError("user", "This is the last admin: the box would have no administrator.")
        conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    return user["username"]


# --- API tokens -----------------------------------------------------------------------


def create_token(conn, name, role, created_by):
    """Make an API token; return the plain token, which is stored nowhere and shown once."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise AccountError("name", f"Enter a name of up to {MAX_NAME} characters, such as the CRM it is for.")
    if role not in ROLES:
        raise AccountError("role", f"The role must be one of {', '.join(ROLES)}.")
    token = secrets.token_urlsafe(32)
    with Transaction(conn):
        conn.execute("INSERT INTO api_tokens (name, token_hash, role, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
                     (name, _token_hash(token), role, created_by, now()))
    return token


def token_user(conn, token):
    """The token's row (id, name, role, created_by, ...) if it is valid and not revoked, else None."""
    if not isinstance(token, str) or not token or len(token) > 256:
        return None
    digest = _token_hash(token)
    row = conn.execute("SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (digest,)).fetchone()
    if row is None or not hmac.compare_digest(row["token_hash"], digest):
        return None
    token_row = _public_token(row)
    stamp = now()
    if _stale(row["last_used_at"], stamp):
        with Transaction(conn):
            conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (stamp, row["id"]))
        token_row["last_used_at"] = stamp
    return token_row


def revoke_token(conn, token_id):
    """Revoke a token for good; True if it was active until now."""
    with Transaction(conn):
        cursor = conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                              (now(), token_id))
    return cursor.rowcount == 1


def list_tokens(conn):
    """Every token without its hash, newest first (revoked ones too: they say who had access)."""
    rows = conn.execute("SELECT * FROM api_tokens ORDER BY id DESC")
    return [_public_token(row) for row in rows]


def _token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _public_token(row):
    return {key: row[key] for key in row.keys() if key != "token_hash"}


def _stale(last_used_at, stamp):
    if not last_used_at:
        return True
    try:
        then = datetime.datetime.fromisoformat(last_used_at)
        current = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return True
    return (current - then).total_seconds() >= LAST_USED_GRANULARITY


# --- helpers --------------------------------------------------------------------------


def _existing(conn, user_id):
    row = conn.execute("SELECT id, username, role FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise AccountError("user", "There is no such user.")
    return dict(row)


def _check_profile(language, operator_id):
    """The language and operator id as stored (an empty operator id unlinks); raise if wrong."""
    if language not in LANGUAGES:
        raise AccountError("language", f"The language must be one of {', '.join(LANGUAGES)}.")
    operator_id = (operator_id or "").strip() or None
    if operator_id is not None and not OPERATOR_ID.match(operator_id):
        raise AccountError("operator_id", "An operator id is lower-case letters, digits, '-' or '_'.")
    return language, operator_id


def _insert(conn, username, password, role, language="en", operator_id=None):
    username = username.strip()
    if not username or len(username) > MAX_NAME or not username.isprintable():
        raise AccountError("username", f"Enter a user name of up to {MAX_NAME} characters.")
    if len(password) < MIN_PASSWORD:
        raise AccountError("password", f"The password needs at least {MIN_PASSWORD} characters.")
    if role not in ROLES:
        raise AccountError("role", f"The role must be one of {', '.join(ROLES)}.")
    try:
        return conn.execute(
            "INSERT INTO users (username, password_hash, role, created_at, language, operator_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (username, generate_password_hash(password, method="scrypt"), role, now(), language,
             operator_id)).lastrowid
    except sqlite3.IntegrityError as err:
        raise AccountError("username", f"The user {username!r} exists already.") from err


_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")
