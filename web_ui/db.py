"""Per-request access to the journal database and the engine's control socket."""
import os

from flask import current_app, g

from appliance import journal
from appliance.control import ControlClient
from appliance.paths import ENGINE_SOCKET as SOCKET_NAME


def get_db():
    """The journal connection of this request (opened on first use)."""
    if "db" not in g:
        g.db = journal.connect(os.path.join(current_app.config["DATA_DIR"], journal.JOURNAL_FILE))
    return g.db


def get_engine(timeout=2.0):
    """A client for the engine's control API, with a short timeout unless told: pages never hang."""
    return ControlClient(os.path.join(current_app.config["DATA_DIR"], SOCKET_NAME), timeout=timeout)


def close_db(_error=None):
    """Close the request's journal connection, if one was opened."""
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app):
    """Register the teardown that closes connections."""
    app.teardown_appcontext(close_db)
