"""The test-call panel: ring a line, press digits, watch the call move through the flow.

Two kinds of test call: a virtual caller rings a line of the virtual twin (demo mode),
or the engine dials out of a line to a number (``originate``). Either way the panel
then follows the call live: each engine event makes testcall.js re-fetch the call's
journal timeline (``/testcall/calls/<id>``), rendered here.
"""
import os
import re
import threading
import time

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.control import ControlClient
from appliance.errors import ApplianceError, ControlError
from appliance.journal import Journal, now
from appliance.paths import TWIN_SOCKET

from .auth import role_required
from .configedit import EngineDown, audit, section
from .dashboard import command_reply, engine_status, wants_json
from .db import get_db, get_engine

bp = Blueprint("testcall", __name__, url_prefix="/testcall")

TESTCALL_ROLES = ("admin", "supervisor")
NUMBER = re.compile(r"^\+?[0-9]{3,15}$")
DIGITS = re.compile(r"^[0-9*#]{0,20}$")
MAX_HOLD_SECONDS = 300
TWIN_ANSWER_WAIT = 60  # on top of the hold: the twin waits for the answer and the hang-up
FIND_CALL_SECONDS = 10.0  # how long the panel waits for a virtual call to reach the journal
DEFAULT_FROM = "+359888000111"


def twin_client(timeout=2.0):
    """A client for the virtual twin's socket (demo mode only)."""
    return ControlClient(os.path.join(current_app.config["DATA_DIR"], TWIN_SOCKET), timeout=timeout)


def twin_state():
    """The twin's modems and phones, or None when no twin runs (a real box)."""
    try:
        return twin_client().request("status")
    except ApplianceError:
        return None


@bp.route("")
@role_required(*TESTCALL_ROLES)
def index():
    """The two test-call forms and, with ``?call=<id>``, that call followed live."""
    return render_template("testcall.html", **panel_context(request.args.get("call", type=int), {}, {}))


def panel_context(call_id, form, errors):
    """What the panel page shows: the lines to choose from, the forms, the watched call."""
    twin = twin_state()
    status = engine_status()
    return {"twin": twin, "lines": status.get("lines", []), "engine_error": status.get("error"),
            "phones": (twin or {}).get("phones", []), "call_id": call_id, "form": form, "errors": errors,
            "default_from": DEFAULT_FROM}


# --- ringing a virtual line ---------------------------------------------------------------


@bp.route("/ring", methods=("POST",))
@role_required(*TESTCALL_ROLES)
def ring():
    """A virtual caller rings a line of the twin, presses digits and holds; answer with the call's id."""
    form = {name: request.form.get(name, "").strip() for name in ("line", "from", "digits", "hold")}
    errors = ring_errors(form)
    if errors:
        return refuse(form, errors)
    hold = float(form["hold"])
    since = now()
    outcome = start_virtual_call(form["line"], form["from"], form["digits"], hold)
    call_id = find_call(form["line"], form["from"], since, outcome)
    if call_id is None:
        errors["ring"] = outcome.get("error") or _("The call did not reach the engine.")
        return refuse(form, errors, status=502)
    audit("testcall.ring", {"line": form["line"], "from": form["from"], "digits": form["digits"], "hold": hold,
                            "call": call_id})
    return follow(call_id, _("Call %(call)s is ringing on %(line)s.", call=call_id, line=form["line"]))


def ring_errors(form):
    """What is wrong with the ring form, by field."""
    errors = {}
    if not form["line"]:
        errors["line"] = _("Choose a line.")
    if not NUMBER.match(form["from"]):
        errors["from"] = _("Enter a phone number such as +359888123456.")
    if not DIGITS.match(form["digits"]):
        errors["digits"] = _("Keys are 0-9, * and #, up to 20 of them.")
    errors.update(hold_errors(form["hold"]))
    return errors


def hold_errors(text):
    """The hold field's error, if any."""
    try:
        hold = float(text)
    except ValueError:
        hold = -1
    if not 1 <= hold <= MAX_HOLD_SECONDS:
        return {"hold": _("Hold for 1 to %(max)s seconds.", max=MAX_HOLD_SECONDS)}
    return {}


def start_virtual_call(line, number, digits, hold):
    """Start the twin's caller in a thread (the twin answers only when the call is over); return its outcome dict."""
    outcome = {}
    client = twin_client(timeout=hold + TWIN_ANSWER_WAIT)

    def place():
        try:
            outcome["result"] = client.request("call", line=line, digits=digits, hold=hold, **{"from": number})
        except ApplianceError as err:
            outcome["error"] = _twin_error(err)
        outcome["done"] = True

    threading.Thread(target=place, name=f"testcall-{line}", daemon=True).start()
    return outcome


def _twin_error(err):
    """The twin's refusal as the panel says it (no twin at all reads differently from a refused call)."""
    if isinstance(err, ControlError):
        return str(err)
    return _("%(error)s — the virtual twin runs in demo mode only", error=str(err))


def find_call(line, number, since, outcome):
    """The id of the call ``number`` placed on ``line`` after ``since``, once the engine has journalled it."""
    deadline = time.monotonic() + FIND_CALL_SECONDS
    while time.monotonic() < deadline:
        row = get_db().execute(
            "SELECT id FROM calls WHERE line_id = ? AND caller = ? AND role = 'caller' AND started_at >= ?"
            " ORDER BY id DESC LIMIT 1", (line, number, since)).fetchone()
        if row is not None:
            return row["id"]
        if outcome.get("done"):
            return None  # the twin gave up (no such line, nobody answered) without the call reaching us
        time.sleep(0.1)
    return None


# --- an outbound test call ----------------------------------------------------------------


@bp.route("/originate", methods=("POST",))
@role_required(*TESTCALL_ROLES)
def originate():
    """The engine dials out of a line to a number, plays the greeting and hangs up after the hold."""
    form = {name: request.form.get(name, "").strip() for name in ("line", "to", "hold")}
    errors = {}
    if not form["line"]:
        errors["line"] = _("Choose a line.")
    if not NUMBER.match(form["to"]):
        errors["to"] = _("Enter a phone number such as +359888123456.")
    errors.update(hold_errors(form["hold"]))
    if errors:
        return refuse(form, errors)
    hold = float(form["hold"])
    try:
        call_id = get_engine(timeout=10).request("originate", line=form["line"], to=form["to"], hold=hold)["call"]
    except ApplianceError as err:
        return refuse(form, {"originate": str(err)}, status=409 if isinstance(err, ControlError) else 503)
    audit("testcall.originate", {"line": form["line"], "to": form["to"], "hold": hold, "call": call_id})
    return follow(call_id, _("Call %(call)s is dialling %(to)s.", call=call_id, to=form["to"]))


# --- answers and the watched call ------------------------------------------------------------


def follow(call_id, message):
    """Tell the page which call to watch: JSON for the script, else the panel showing that call."""
    if wants_json():
        return command_reply(True, message, call=call_id, url=url_for("testcall.call", call_id=call_id))
    return redirect(url_for("testcall.index", call=call_id))


def refuse(form, errors, status=400):
    """A refused form: JSON errors for the script, else the panel with the errors next to the fields."""
    if wants_json():
        return command_reply(False, " ".join(errors.values()), status, errors=errors)
    return render_template("testcall.html", **panel_context(None, form, errors)), status


@bp.route("/calls/<int:call_id>")
@role_required(*TESTCALL_ROLES)
def call(call_id):
    """The watched call as a fragment: live step, timeline, operator legs, outcome, journal link."""
    journal = Journal(get_db())
    record = journal.get_call(call_id)
    if record is None:
        abort(404)
    live = {c["id"]: c for c in engine_status().get("calls", [])}
    legs = [dict(row) for row in get_db().execute(
        "SELECT id, role, callee, operator, outcome, answered_at, ended_at, talk_seconds FROM calls"
        " WHERE parent_id = ? ORDER BY id", (call_id,))]
    return render_template("testcall_call.html", call=record, live=live.get(call_id), legs=legs, live_calls=live,
                           names=operator_names())


def operator_names():
    """Operators' names by id, to show a person rather than an id; empty while the engine is down."""
    try:
        return {operator["id"]: operator["name"] for operator in section("operators")}
    except EngineDown:
        return {}
