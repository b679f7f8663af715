"""Per-request access to the journal database; the engine's control client of the app."""
import os

from flask import current_app, g

from appliance import journal
from appliance.control import ControlClient
from appliance.paths import ENGINE_SOCKET as SOCKET_NAME

ENGINE = "hotline_engine"  # app.extensions key of the engine's control client
PAGE_TIMEOUT = 2.0  # pages never hang on an engine that does not answer


def get_db():
    """The journal connection of this request (opened on first use)."""
    if "db" not in g:
        g.db = journal.connect(os.path.join(current_app.config["DATA_DIR"], journal.JOURNAL_FILE))
    return g.db


def get_engine(timeout=PAGE_TIMEOUT):
    """The app's client for the engine's control API, with a short timeout unless told: pages never hang."""
    engine = current_app.extensions[ENGINE]
    return engine if timeout == engine.timeout else ControlClient(engine.path, timeout=timeout)


def close_db(_error=None):
    """Close the request's journal connection, if one was opened."""
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app):
    """Make the app's engine client (app.extensions["hotline_engine"]) and register the teardown."""
    app.extensions[ENGINE] = ControlClient(os.path.join(app.config["DATA_DIR"], SOCKET_NAME), timeout=PAGE_TIMEOUT)
    app.teardown_appcontext(close_db)
