"""The web UI: a Flask application factory and one blueprint per screen."""
import os
import secrets

from flask import Flask
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
        app.config["SECRET_KEY"] = _secret_key(app.config["DATA_DIR"])
    csrf.init_app(app)

    from . import auth, dashboard, db, journal, lines

    db.init_app(app)
    auth.init_app(app)
    for blueprint in (auth.bp, dashboard.bp, journal.bp, lines.bp):
        app.register_blueprint(blueprint)
    return app


def _secret_key(data_dir):
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
