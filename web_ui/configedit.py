"""Reading and changing the box's configuration from the web: through the engine, audited.

The engine is the configuration's one writer; a page sends it a section and gets back
either "saved" or the field it refused with its message, which the page shows next to
that field. Every accepted change is written to the audit log (who, when, what).
"""
import json

from flask import g, jsonify, render_template, request

from appliance.errors import ApplianceError
from appliance.journal import Transaction, now

from .db import get_db, get_engine

SAVE_TIMEOUT = 60.0  # speaking new prompts and restarting changed lines take a while


class EngineDown(ApplianceError, ConnectionError):
    """The engine does not answer, so the configuration can be neither read nor changed."""


def engine_down(err):
    """The app's one answer to an engine that is down: the "engine not running" page (JSON under /api/), 503."""
    if request.path.startswith("/api/"):
        return jsonify(error=str(err)), 503
    return render_template("settings_engine_down.html", message=str(err)), 503


def load_config():
    """The configuration in force: {"config", "warnings", "problem"}; raises EngineDown."""
    try:
        return get_engine().request("config")
    except ApplianceError as err:
        raise EngineDown(f"The engine does not answer: {err}") from err


def section(name):
    """One section of the configuration in force."""
    return load_config()["config"][name]


def save_section(name, value, action=None):
    """Ask the engine to apply ``value`` as section ``name``; return its answer.

    The answer is {"saved": True, "warnings": [...]} or {"saved": False, "field", "message"}.
    """
    try:
        answer = get_engine(timeout=SAVE_TIMEOUT).request("config_put", section=name, value=value)
    except ApplianceError as err:
        raise EngineDown(f"The engine does not answer: {err}") from err
    if answer.get("saved"):
        audit(action or f"config.{name}", {"section": name, "value": redact(value)})
    return answer


SECRET_KEYS = ("password", "webhook_secret", "pin")


def redact(value):
    """``value`` with secrets (SMTP password, webhook secret, SIM PIN) replaced by "(set)" for the audit log."""
    if isinstance(value, dict):
        return {key: "(set)" if key in SECRET_KEYS and item else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def audit(action, detail):
    """Record who did what, now, in the audit log."""
    username = g.user["username"] if g.get("user") else "api"
    with Transaction(get_db()) as conn:
        conn.execute("INSERT INTO audit (at, username, action, detail) VALUES (?, ?, ?, ?)",
                     (now(), username, action, json.dumps(detail, ensure_ascii=False)))


def audit_log(limit=200):
    """The newest audit entries first."""
    rows = get_db().execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
    return [dict(row, detail=json.loads(row["detail"])) for row in rows]
