"""The call journal on the page: the newest calls, one call's timeline, its recording."""
import os

from flask import Blueprint, abort, current_app, render_template, send_file

from appliance import recordings
from appliance.errors import RecordingError
from appliance.journal import Journal

from .auth import role_required
from .db import get_db

bp = Blueprint("journal", __name__, url_prefix="/journal")

# Who may open the journal and listen to recordings (operators see their own calls
# once calls are assigned to operators).
JOURNAL_ROLES = ("admin", "supervisor")


def _journal():
    return Journal(get_db())


@bp.route("/")
@role_required(*JOURNAL_ROLES)
def index():
    """The newest calls."""
    return render_template("journal.html", calls=_journal().recent_calls(200))


@bp.route("/<int:call_id>")
@role_required(*JOURNAL_ROLES)
def call(call_id):
    """One call: its details, timeline and a player for its recording."""
    record = _journal().get_call(call_id)
    if record is None:
        abort(404)
    return render_template("call.html", call=record)


@bp.route("/<int:call_id>/recording")
@role_required(*JOURNAL_ROLES)
def recording(call_id):
    """The call's recording (WAV, or compressed after the call); the path comes from the journal, never the URL."""
    record = _journal().get_call(call_id)
    if record is None or not record["recording"]:
        abort(404)
    try:
        path = recordings.locate(current_app.config["DATA_DIR"], record["recording"])
    except RecordingError:
        abort(404)
    if path is None:
        abort(404)
    return send_file(path, mimetype=recordings.mime_type(path), conditional=True,
                     download_name=f"call-{call_id}{os.path.splitext(path)[1]}", max_age=0)
