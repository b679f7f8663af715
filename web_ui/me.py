"""The operator's own page (mobile-friendly): ready and pause, the current caller's card, notes after the call.

An operator sees the operator their account is linked to; an admin may look at any
operator's page with ``?operator=<id>``. The live part is re-rendered on the server
(``/me/panel``) and swapped in by me.js on each engine event.
"""
import json

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.journal import Transaction, now

from .auth import role_required
from .configedit import audit
from .dashboard import OPERATOR_STATES, command_reply, engine_status, set_operator_state
from .db import get_db

bp = Blueprint("me", __name__)

ME_ROLES = ("operator", "admin")
MAX_CATEGORY = 60
MAX_NOTE = 2000


def operator_id():
    """The operator this page is about: the user's own, or ``operator`` from the request for an admin."""
    if g.user["role"] == "operator":
        return g.user["operator_id"]
    return request.values.get("operator") or None


def page_url(endpoint, **values):
    """A URL of this page that keeps an admin's ``operator`` choice."""
    if g.user["role"] != "operator" and operator_id():
        values["operator"] = operator_id()
    return url_for(endpoint, **values)


def current_call(status, number):
    """The operator leg ringing or talking to ``number``, and the caller's call it is for (live and journal)."""
    leg = next((call for call in status.get("calls", [])
                if call.get("role") == "operator" and call.get("callee") == number), None)
    if leg is None:
        return None, None
    row = get_db().execute("SELECT parent_id FROM calls WHERE id = ?", (leg["id"],)).fetchone()
    parent = journal_call(row["parent_id"]) if row and row["parent_id"] else None
    if parent is not None:
        live = next((call for call in status.get("calls", []) if call["id"] == parent["id"]), None)
        parent["live"] = live
        parent["earlier_calls"] = earlier_calls(parent)
    return leg, parent


def journal_call(call_id):
    """One call's journal row as a dict (``collected`` parsed), or None."""
    row = get_db().execute("SELECT * FROM calls WHERE id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    call = dict(row)
    call["collected"] = json.loads(call.get("collected") or "{}")
    return call


def earlier_calls(call):
    """How many times the caller called before this call."""
    if not call.get("caller"):
        return 0
    return get_db().execute("SELECT COUNT(*) FROM calls WHERE caller = ? AND role = 'caller' AND id < ?",
                            (call["caller"], call["id"])).fetchone()[0]


def last_answered(op_id):
    """The newest caller this operator talked to (in progress or over), with its notes; or None."""
    row = get_db().execute(
        "SELECT id FROM calls WHERE operator = ? AND role != 'operator' ORDER BY id DESC LIMIT 1", (op_id,)).fetchone()
    if row is None:
        return None
    call = journal_call(row["id"])
    call["notes"] = [dict(note) for note in get_db().execute(
        "SELECT author, at, text FROM call_notes WHERE call_id = ? ORDER BY id", (call["id"],))]
    call["earlier_calls"] = earlier_calls(call)
    return call


def categories():
    """Categories to suggest: a few common ones in the user's language and every one used before."""
    common = {_("question answered"), _("call back later"), _("complaint"), _("wrong number")}
    used = {row[0] for row in get_db().execute(
        "SELECT DISTINCT category FROM calls WHERE category IS NOT NULL AND category != ''")}
    return sorted(common | used)


def panel_context(op_id):
    """What the live panel shows: the operator's state, the call now, the last call, the queue."""
    status = engine_status()
    operator = next((op for op in status.get("operators", []) if op["id"] == op_id), None)
    leg, caller_call = current_call(status, operator["number"]) if operator else (None, None)
    return {"status": status, "operator": operator, "operator_id": op_id, "leg": leg, "caller_call": caller_call,
            "waiting": len(status.get("queue", [])), "last_call": last_answered(op_id) if op_id else None}


def operator_choices():
    """Every operator of the box, for an admin who has not picked one."""
    return engine_status().get("operators", [])


@bp.route("/me")
@role_required(*ME_ROLES)
def index():
    """My state with big Ready / Pause buttons, the caller I am talking to, and notes on my last call."""
    op_id = operator_id()
    if op_id is None and g.user["role"] != "operator":
        return render_template("me_choose.html", operators=operator_choices())
    return render_template("me.html", categories=categories(), errors={}, form={}, **panel_context(op_id))


@bp.route("/me/panel")
@role_required(*ME_ROLES)
def panel():
    """The live part of the page alone, for me.js to swap in."""
    return render_template("me_panel.html", **panel_context(operator_id()))


@bp.route("/me/note-form")
@role_required(*ME_ROLES)
def note_form():
    """The category-and-note form for my last call alone, for me.js to swap in after a call."""
    op_id = operator_id()
    return render_template("me_note.html", categories=categories(), errors={}, form={}, operator_id=op_id,
                           last_call=last_answered(op_id) if op_id else None)


@bp.route("/me/state", methods=("POST",))
@role_required(*ME_ROLES)
def set_state():
    """Ready or pause myself."""
    op_id = operator_id()
    if not op_id:
        abort(403)  # an account not linked to an operator has no state to set
    state = request.form.get("state", "")
    if state not in OPERATOR_STATES:
        return command_reply(False, _("The state must be ready or paused."), 400, back=page_url("me.index"))
    ok, message, status, snapshot = set_operator_state(op_id, state)
    return command_reply(ok, message, status, back=page_url("me.index"), operator=snapshot)


@bp.route("/me/note", methods=("POST",))
@role_required(*ME_ROLES)
def note():
    """Set the category of a call I answered and add a note to it."""
    op_id = operator_id()
    call = journal_call(request.form.get("call", type=int) or 0)
    if call is None:
        abort(404)
    if not op_id or call["operator"] != op_id or call["role"] == "operator":
        abort(403)  # only the operator who talked to the caller writes on the call
    form = {"category": request.form.get("category", "").strip(), "note": request.form.get("note", "").strip()}
    errors = note_errors(form)
    if not errors:
        try:
            save_note(call["id"], form["category"], form["note"])
        except ValueError as err:  # appliance.contacts refused it, naming the field
            errors[getattr(err, "field", "note")] = getattr(err, "message", str(err))
    if errors:
        return render_template("me.html", categories=categories(), errors=errors, form=form,
                               **panel_context(op_id)), 400
    flash(_("Saved on call %(call)s.", call=call["id"]))
    return redirect(page_url("me.index"))


def note_errors(form):
    """What is wrong with a category-and-note form, by field."""
    errors = {}
    if len(form["category"]) > MAX_CATEGORY or not form["category"].isprintable():
        errors["category"] = _("Enter a category of up to %(count)s characters.", count=MAX_CATEGORY)
    if len(form["note"]) > MAX_NOTE:
        errors["note"] = _("The note may have up to %(count)s characters.", count=MAX_NOTE)
    return errors


def save_note(call_id, category, text):
    """Write the call's category and a note on it (through appliance.contacts when it is there), and audit it."""
    try:
        from appliance.contacts import add_note, set_category
    except ImportError:
        _save_note_sql(call_id, category, text)
    else:
        set_category(get_db(), call_id, category)
        if text:
            add_note(get_db(), call_id, g.user["username"], text)
    audit("call.note", {"call": call_id, "category": category, "note": text})


def _save_note_sql(call_id, category, text):
    """The same writes in one transaction, for a box without the caller cards module."""
    with Transaction(get_db()) as conn:
        conn.execute("UPDATE calls SET category = ? WHERE id = ?", (category or None, call_id))
        if text:
            conn.execute("INSERT INTO call_notes (call_id, author, at, text) VALUES (?, ?, ?, ?)",
                         (call_id, g.user["username"], now(), text))
