"""The dashboard: lines and calls of the box, refreshed in the page without reloading."""
from flask import Blueprint, jsonify, render_template

from appliance.errors import ApplianceError

from .db import get_engine

bp = Blueprint("dashboard", __name__)


def engine_status():
    """The engine's live state, or an ``error`` saying why it is not available."""
    try:
        return get_engine().request("status")
    except ApplianceError as err:
        return {"error": f"The engine does not answer: {err}", "lines": [], "calls": []}


@bp.route("/")
def index():
    """Lines and calls now."""
    return render_template("dashboard.html", status=engine_status())


@bp.route("/api/status")
def api_status():
    """The same state as JSON, for the page's refresh."""
    return jsonify(engine_status())
