"""The web UI: a Flask application factory and one blueprint per screen."""
import importlib
import os
import secrets

from flask import Flask, g
from flask_wtf.csrf import CSRFProtect

from appliance.paths import default_data_dir

csrf = CSRFProtect()


def create_app(test_config=None):
    """Build the web application for the box whose data directory is ``DATA_DIR``."""
    app = Flask(__name__)
    app.config.from_mapping(
        DATA_DIR=default_data_dir(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="hotline_session",
        # The box is reached over plain HTTP on the LAN; behind HTTPS set this to True.
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        LOGIN_ATTEMPTS=5,
        LOGIN_WINDOW_SECONDS=300,
    )
    if test_config:
        app.config.update(test_config)
    app.config["DATA_DIR"] = os.path.abspath(app.config["DATA_DIR"])
    os.makedirs(app.config["DATA_DIR"], exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(app.config["DATA_DIR"])
    csrf.init_app(app)

    from . import auth, configedit, db, i18n

    db.init_app(app)  # the journal's teardown and the engine client, app.extensions["hotline_engine"]
    auth.init_app(app)
    i18n.init_app(app)
    app.register_error_handler(configedit.EngineDown, configedit.engine_down)
    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(f".{name}", __name__).bp)
    app.context_processor(lambda: {"nav_groups": _nav_groups(app, g.get("user"))})
    return app


# One module per screen, each with a blueprint ``bp``.
BLUEPRINTS = ("auth", "dashboard", "journal", "contacts", "lines", "operators", "queues", "hours", "prompts",
              "flows", "settings", "reports", "testcall", "me", "users", "system", "api", "onboarding")

# The menu: (endpoint, label, roles that see it). An entry shows only once its page exists.
NAV = (
    ("dashboard.index", "Dashboard", ("admin", "supervisor", "operator")),
    ("me.index", "My calls", ("operator",)),
    ("journal.index", "Journal", ("admin", "supervisor")),
    ("contacts.index", "Callers", ("admin", "supervisor", "operator")),
    ("reports.index", "Reports", ("admin", "supervisor")),
    ("testcall.index", "Test call", ("admin", "supervisor")),
    ("lines.index", "Lines", ("admin",)),
    ("operators.index", "Operators", ("admin", "supervisor")),
    ("queues.index", "Queues", ("admin",)),
    ("flows.index", "Menus", ("admin",)),
    ("prompts.index", "Prompts", ("admin",)),
    ("hours.index", "Hours", ("admin", "supervisor")),
    ("settings.index", "Settings", ("admin",)),
    ("users.index", "Users", ("admin",)),
    ("system.index", "System", ("admin",)),
)


# The menu's groups, so a newcomer sees where the day's work is and where the set-up is.
NAV_GROUPS = (
    ("Calls", ("dashboard.index", "me.index", "journal.index", "contacts.index", "reports.index", "testcall.index")),
    ("Setup", ("lines.index", "operators.index", "queues.index", "flows.index", "prompts.index", "hours.index")),
    ("System", ("settings.index", "users.index", "system.index")),
)


def _nav_groups(app, user):
    """The menu ``user`` sees: (group, [(endpoint, label)]), empty groups left out."""
    if not user:
        return []
    groups = []
    for group, endpoints in NAV_GROUPS:
        items = [(endpoint, label) for endpoint, label, roles in NAV
                 if endpoint in endpoints and endpoint in app.view_functions and user["role"] in roles]
        if items:
            groups.append((group, items))
    return groups


def load_secret_key(data_dir):
    """The box's session-signing key: made once, readable by the box only."""
    path = os.path.join(data_dir, "web-secret.key")
    if not os.path.exists(path):
        temp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # atomic: whoever links first wins, nobody reads half a key
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    with open(path, "rb") as handle:
        return handle.read()
