"""The call journal on the page: search and export, one call's details, notes, tags, playback.

Admins and supervisors see every call. An operator sees only the calls they answered
(``calls.operator`` is the operator id their account is linked to): those calls' pages and
recordings, where they may add notes, tags and a category; everything else is 403.
"""
import csv
import io
import json
import os

from flask import (Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request, send_file,
                   url_for)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from appliance import contacts, recordings
from appliance.errors import RecordingError
from appliance.journal import Journal

from .auth import role_required
from .configedit import audit
from .db import get_db

bp = Blueprint("journal", __name__, url_prefix="/journal")

# Who may search the whole journal and export it.
JOURNAL_ROLES = ("admin", "supervisor")
# Who may open one call; an operator only their own (see _call_or_403).
CALL_ROLES = JOURNAL_ROLES + ("operator",)
PAGE_SIZE = 50
EXPORT_LIMIT = 100_000  # a season of a busy line is a few tens of thousands of calls
# Form field -> message shown next to it when the appliance refuses a value.
FIELD_MESSAGES = {
    "date_from": _l("Enter a date as YYYY-MM-DD."),
    "date_to": _l("Enter a date as YYYY-MM-DD, not before the start date."),
    "tag": _l("A tag has at most 32 characters."),
    "role": _l("Choose one of the listed kinds of call."),
    "note": _l("Write a note of 1 to 2000 characters."),
    "tags": _l("Enter at most 20 tags of up to 32 characters, separated by commas."),
    "category": _l("A category has at most 60 characters."),
}
# The kinds of call the list can show, as the filter offers them.
ROLE_LABELS = (("caller", _l("people who rang the line")), ("operator", _l("operator legs")),
               ("callback", _l("call-backs")), ("forward", _l("forwards")), ("test", _l("test calls")))
EXPORT_COLUMNS = ("id", "started_at", "answered_at", "ended_at", "line_id", "direction", "role", "caller", "callee",
                  "outcome", "ended_by", "flow", "campaign", "language", "queue", "operator", "wait_seconds",
                  "talk_seconds", "digits", "collected", "category", "tags", "notes", "recording", "parent_id")


def _journal():
    return Journal(get_db())


def _is_operator():
    return g.user["role"] == "operator"


def _call_or_403(call_id):
    """The call with its events, or 404; 403 when an operator did not answer it."""
    record = _journal().get_call(call_id)
    if record is None:
        abort(404)
    if _is_operator():
        # An operator account not linked to an operator owns no calls (None never matches).
        own = g.user.get("operator_id")
        if not own or record["operator"] != own:
            abort(403)
    return record


def _field_error(err):
    """The translated message for a refused form field."""
    return FIELD_MESSAGES.get(err.field, err.message)


# --- the list, its filters and the export --------------------------------------


def _filters_from(args):
    """The filter values of a query string: every filter present, empty when not given."""
    values = {name: args.get(name, "").strip() for name in contacts.FILTERS}
    values["role"] = values["role"] or "caller"  # by default the list is people who rang the line
    return values


def _search_args(values):
    """Filter values as search_calls arguments; raises ContactError naming a bad field."""
    role = values["role"]
    if role != "all" and role not in contacts.CALL_ROLES:
        raise contacts.ContactError("role", "unknown role")
    if len(values["tag"]) > contacts.MAX_TAG:
        raise contacts.ContactError("tag", "tag too long")
    return dict(values, role=None if role == "all" else role)


def _page_number():
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


@bp.route("/")
@role_required(*JOURNAL_ROLES)
def index():
    """The calls matching the filter form, newest first, a page at a time."""
    values = _filters_from(request.args)
    page, errors, calls, total = _page_number(), {}, [], 0
    try:
        search = _search_args(values)
        total = contacts.count_calls(get_db(), **search)
        calls = contacts.search_calls(get_db(), **search, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except contacts.ContactError as err:
        errors[err.field] = _field_error(err)
    pages = max(1, -(-total // PAGE_SIZE))
    # Links keep the filters but drop empty ones, so URLs stay short and bookmarkable.
    link_args = {name: value for name, value in values.items() if value and not (name == "role" and value == "caller")}
    return render_template("journal.html", calls=calls, filters=values, errors=errors, total=total, page=page,
                           pages=pages, link_args=link_args, choices=contacts.filter_choices(get_db()),
                           roles=ROLE_LABELS, is_number=contacts.valid_number), 400 if errors else 200


def _csv_cell(value):
    """A value safe to open in a spreadsheet: text that would run as a formula is quoted.

    Phone numbers like +359... are plain numbers to a spreadsheet, so they stay as they are.
    """
    if value is None:
        return ""
    text = str(value)
    risky = text[:1] in ("=", "@", "\t", "\r") or (
        text[:1] in ("+", "-") and not text[1:].replace(" ", "").replace(".", "").isdigit())
    return "'" + text if risky else text


def _export_row(conn, call):
    """One CSV row of a call, notes joined into one cell."""
    note_texts = " | ".join(f"{note['author']}: {note['text']}" for note in contacts.notes(conn, call["id"]))
    row = dict(call, tags=call["tag_list"] or "", notes=note_texts, recording="yes" if call["recording"] else "")
    if row["collected"] in ("{}", None):
        row["collected"] = ""
    return [_csv_cell(row.get(column)) for column in EXPORT_COLUMNS]


@bp.route("/export.csv")
@role_required(*JOURNAL_ROLES)
def export_csv():
    """The calls matching the filters as CSV (UTF-8 with a BOM, so spreadsheets read Cyrillic right)."""
    try:
        search = _search_args(_filters_from(request.args))
        calls = contacts.search_calls(get_db(), **search, limit=EXPORT_LIMIT)
    except contacts.ContactError as err:
        return Response(f"{err.field}: {_field_error(err)}\n", status=400, mimetype="text/plain")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for call in calls:
        writer.writerow(_export_row(get_db(), call))
    body = "\ufeff" + buffer.getvalue()
    return Response(body.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=journal.csv"})


# --- one call ---------------------------------------------------------------------


IVR_KINDS = ("ivr", "menu_choice", "menu_invalid", "menu_timeout", "language", "time_condition", "queue_join",
             "queue_leave", "operator_answered", "voicemail", "callback_task")


def ivr_path(events):
    """The steps the caller took through the menus, as short labels in order."""
    steps = []
    for event in events:
        kind = event["kind"]
        if kind == "ivr":
            steps.append(f"{event.get('node')} ({event.get('type')})")
        elif kind == "menu_choice":
            steps.append(_("key %(key)s", key=event.get("key")))
        elif kind == "menu_invalid":
            steps.append(_("wrong key %(key)s", key=event.get("key")))
        elif kind == "menu_timeout":
            steps.append(_("no key"))
        elif kind == "language":
            steps.append(_("language %(language)s", language=event.get("language")))
        elif kind == "time_condition":
            state = _("open") if event.get("open") else _("closed")
            steps.append(f"{event.get('condition')}: {state}")
        elif kind == "queue_join":
            steps.append(_("queue %(queue)s", queue=event.get("queue")))
        elif kind == "operator_answered":
            steps.append(_("answered by %(operator)s", operator=event.get("operator")))
        elif kind == "voicemail":
            steps.append(_("voicemail"))
        elif kind == "callback_task":
            steps.append(_("call-back task"))
    return steps


def _render_call(record, errors=None, form=None):
    conn = get_db()
    collected = json.loads(record.get("collected") or "{}")
    page = render_template(
        "call.html", call=record, ivr=ivr_path(record["events"]), collected=collected,
        legs=contacts.call_legs(conn, record["id"]), notes=contacts.notes(conn, record["id"]),
        tags=contacts.tags(conn, record["id"]),
        pinned=bool(record["recording"]) and contacts.is_pinned(conn, record["recording"]),
        card_link=contacts.valid_number(record["caller"]), categories=contacts.filter_choices(conn)["category"],
        errors=errors or {}, form=form or {}, full_access=not _is_operator())
    return page, 400 if errors else 200


@bp.route("/<int:call_id>")
@role_required(*CALL_ROLES)
def call(call_id):
    """One call: details, IVR path, timeline, operator legs, notes, tags, category, recording."""
    return _render_call(_call_or_403(call_id))


@bp.route("/<int:call_id>/recording")
@role_required(*CALL_ROLES)
def recording(call_id):
    """The call's recording (WAV, or compressed after the call); the path comes from the journal, never the URL."""
    record = _call_or_403(call_id)
    if not record["recording"]:
        abort(404)
    try:
        path = recordings.locate(current_app.config["DATA_DIR"], record["recording"])
    except RecordingError:
        abort(404)
    if path is None:
        abort(404)
    return send_file(path, mimetype=recordings.mime_type(path), conditional=True,
                     download_name=f"call-{call_id}{os.path.splitext(path)[1]}", max_age=0)


def _change(call_id, action, apply, field):
    """Run one change to a call from a form: audit it and go back, or show the refusal by its field."""
    record = _call_or_403(call_id)
    try:
        detail = apply()
    except contacts.ContactError as err:
        return _render_call(record, errors={field: _field_error(err)}, form=request.form)
    audit(action, dict(detail, call_id=call_id))
    return redirect(url_for("journal.call", call_id=call_id))


@bp.route("/<int:call_id>/notes", methods=("POST",))
@role_required(*CALL_ROLES)
def add_note(call_id):
    """Add a note to the call."""
    def apply():
        text = request.form.get("note", "")
        note_id = contacts.add_note(get_db(), call_id, g.user["username"], text)
        flash(_("Note added."))
        return {"note_id": note_id, "text": text.strip()}
    return _change(call_id, "journal.note", apply, "note")


@bp.route("/<int:call_id>/tags", methods=("POST",))
@role_required(*CALL_ROLES)
def set_tags(call_id):
    """Replace the call's tags with the comma-separated list of the form."""
    def apply():
        stored = contacts.set_tags(get_db(), call_id, contacts.parse_tags(request.form.get("tags", "")))
        flash(_("Tags saved."))
        return {"tags": stored}
    return _change(call_id, "journal.tags", apply, "tags")


@bp.route("/<int:call_id>/category", methods=("POST",))
@role_required(*CALL_ROLES)
def set_category(call_id):
    """Set or clear the call's category."""
    def apply():
        stored = contacts.set_category(get_db(), call_id, request.form.get("category", ""))
        flash(_("Category saved."))
        return {"category": stored}
    return _change(call_id, "journal.category", apply, "category")


def _pin_change(call_id, pin):
    record = _call_or_403(call_id)
    if not record["recording"]:
        abort(404)
    if pin:
        contacts.pin_recording(get_db(), record["recording"], record["caller"])
        flash(_("The recording is kept until you unpin it."))
    else:
        contacts.unpin_recording(get_db(), record["recording"])
        flash(_("The recording follows the retention rules again."))
    audit("journal.pin" if pin else "journal.unpin", {"call_id": call_id, "recording": record["recording"]})
    return redirect(url_for("journal.call", call_id=call_id))


@bp.route("/<int:call_id>/pin", methods=("POST",))
@role_required(*JOURNAL_ROLES)
def pin(call_id):
    """Pin the call's recording: retention never deletes it."""
    return _pin_change(call_id, True)


@bp.route("/<int:call_id>/unpin", methods=("POST",))
@role_required(*JOURNAL_ROLES)
def unpin(call_id):
    """Unpin the call's recording."""
    return _pin_change(call_id, False)
