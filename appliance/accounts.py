"""Web accounts: users with a role and a slow password hash, kept in the journal database."""
import sqlite3

from werkzeug.security import check_password_hash, generate_password_hash

from .errors import ApplianceError
from .journal import Transaction, now

ROLES = ("admin", "supervisor", "operator")
MIN_PASSWORD = 10


class AccountError(ApplianceError, ValueError):
    """An account cannot be created as asked; ``field`` names the form field."""

    def __init__(self, field, message):
        self.field = field
        super().__init__(message)


def count_users(conn):
    """How many accounts exist (none means the box is waiting for first-run setup)."""
    return conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]


def create_user(conn, username, password, role):
    """Create an account; raise AccountError naming the field that is wrong."""
    with Transaction(conn):
        return _insert(conn, username, password, role)


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


def _insert(conn, username, password, role):
    username = username.strip()
    if not username or len(username) > 64 or not username.isprintable():
        raise AccountError("username", "Enter a user name of up to 64 characters.")
    if len(password) < MIN_PASSWORD:
        raise AccountError("password", f"The password needs at least {MIN_PASSWORD} characters.")
    if role not in ROLES:
        raise AccountError("role", f"The role must be one of {', '.join(ROLES)}.")
    try:
        return conn.execute(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
            (username, generate_password_hash(password, method="scrypt"), role, now())).lastrowid
    except sqlite3.IntegrityError as err:
        raise AccountError("username", f"The user {username!r} exists already.") from err


_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")
