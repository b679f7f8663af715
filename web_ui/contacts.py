"""Caller cards: every call from a number, name, status, notes, tags, reminders."""
import datetime
import zoneinfo

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from appliance import contacts
from appliance.config import ConfigStore

from .auth import role_required
from .configedit import audit
from .db import get_db

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

# Everyone who answers the line uses caller cards; an operator opens only their own calls from one.
CONTACT_ROLES = ("admin", "supervisor", "operator")
FIELD_MESSAGES = {
    "name": _l("A name has at most 100 characters."),
    "status": _l("A status has at most 40 characters."),
    "notes": _l("Notes have at most 4000 characters."),
    "tags": _l("Enter at most 20 tags of up to 32 characters, separated by commas."),
    "due_at": _l("Enter a date and a time."),
    "text": _l("Write a reminder of 1 to 500 characters."),
}


def _number_or_404(number):
    """The number from the URL if it is a phone number (an optional + and digits), else 404."""
    if not contacts.valid_number(number):
        abort(404)
    return number


def _field_error(err):
    return FIELD_MESSAGES.get(err.field, err.message)


def box_timezone():
    """The box's time zone (settings.timezone): people type and read reminder times on its clock."""
    try:
        return zoneinfo.ZoneInfo(ConfigStore(current_app.config["DATA_DIR"]).read()["settings"]["timezone"])
    except Exception:  # an unreadable configuration must not take the caller card down with it
        return datetime.timezone.utc


def local_time(utc_text, zone):
    """A journal UTC timestamp as 'YYYY-MM-DD HH:MM' on the box's clock."""
    if not utc_text:
        return ""
    return datetime.datetime.fromisoformat(utc_text).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _due_from_form(form, zone):
    """The reminder's due time from the date and time fields, read on the box's clock."""
    try:
        day = datetime.date.fromisoformat(form.get("due_date", "").strip())
        clock = datetime.time.fromisoformat(form.get("due_time", "").strip() or "09:00")
    except ValueError as err:
        raise contacts.ContactError("due_at", "bad date or time") from err
    return datetime.datetime.combine(day, clock, tzinfo=zone)


@bp.route("/")
@role_required(*CONTACT_ROLES)
def index():
    """Search callers by number or name; without a search, the latest callers."""
    query = request.args.get("q", "").strip()
    found = contacts.find_contacts(get_db(), query, limit=100)
    zone = box_timezone()
    for item in found:
        item["last_local"] = local_time(item["last_call"], zone)
    return render_template("contacts.html", query=query, found=found)


def _may_open(call):
    """Whether the user may open a call's page from the card (operators: only calls they answered)."""
    if g.user["role"] != "operator":
        return True
    return bool(g.user.get("operator_id")) and call["operator"] == g.user["operator_id"]


def _render_card(number, errors=None, form=None):
    conn, zone = get_db(), box_timezone()
    calls = contacts.calls_of(conn, number)
    for call in calls:
        call["may_open"] = _may_open(call)
    reminders = contacts.reminders_of(conn, number)
    cutoff = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    for item in reminders:
        item["due_local"] = local_time(item["due_at"], zone)
        item["overdue"] = item["done_at"] is None and item["due_at"] <= cutoff
    page = render_template("contacts_card.html", number=number, card=contacts.get_contact(conn, number),
                           calls=calls, reminders=reminders, callbacks=contacts.callbacks_of(conn, number),
                           statuses=contacts.SUGGESTED_STATUSES, zone=str(zone), errors=errors or {},
                           form=form or {}, today=datetime.datetime.now(zone).date().isoformat())
    return page, 400 if errors else 200


@bp.route("/<number>")
@role_required(*CONTACT_ROLES)
def card(number):
    """The caller's card: every call from the number, the card itself, reminders and call-back tasks."""
    return _render_card(_number_or_404(number))


@bp.route("/<number>", methods=("POST",))
@role_required(*CONTACT_ROLES)
def save(number):
    """Save the card's name, status, notes and tags."""
    number = _number_or_404(number)
    form = request.form
    try:
        stored = contacts.save_contact(get_db(), number, form.get("name", ""), form.get("status", ""),
                                       form.get("notes", ""), contacts.parse_tags(form.get("tags", "")))
    except contacts.ContactError as err:
        return _render_card(number, errors={err.field: _field_error(err)}, form=form)
    audit("contacts.save", {"number": number, "name": stored["name"], "status": stored["status"],
                            "tags": stored["tags"]})
    flash(_("The card is saved."))
    return redirect(url_for("contacts.card", number=number))


@bp.route("/<number>/reminders", methods=("POST",))
@role_required(*CONTACT_ROLES)
def add_reminder(number):
    """Add a reminder for the number, due at the date and time given on the box's clock."""
    number = _number_or_404(number)
    form = request.form
    try:
        due = _due_from_form(form, box_timezone())
        reminder_id = contacts.add_reminder(get_db(), number, due, form.get("text", ""), g.user["username"])
    except contacts.ContactError as err:
        return _render_card(number, errors={err.field: _field_error(err)}, form=form)
    audit("contacts.reminder", {"number": number, "reminder_id": reminder_id,
                                "due_at": contacts.to_utc_text(due), "text": form.get("text", "").strip()})
    flash(_("Reminder added."))
    return redirect(url_for("contacts.card", number=number))


def _reminder_of(number, reminder_id):
    """The reminder, only if it belongs to this card (404 otherwise)."""
    item = contacts.reminder(get_db(), reminder_id)
    if item is None or item["number"] != number:
        abort(404)
    return item


@bp.route("/<number>/reminders/<int:reminder_id>/done", methods=("POST",))
@role_required(*CONTACT_ROLES)
def reminder_done(number, reminder_id):
    """Mark a reminder done."""
    number = _number_or_404(number)
    _reminder_of(number, reminder_id)
    if contacts.mark_done(get_db(), reminder_id):
        audit("contacts.reminder_done", {"number": number, "reminder_id": reminder_id})
        flash(_("Reminder done."))
    return redirect(url_for("contacts.card", number=number))


@bp.route("/<number>/reminders/<int:reminder_id>/callback", methods=("POST",))
@role_required(*CONTACT_ROLES)
def reminder_callback(number, reminder_id):
    """Turn a reminder into a call-back task (the number's open task, if it has one already)."""
    number = _number_or_404(number)
    _reminder_of(number, reminder_id)
    callback_id, created = contacts.reminder_to_callback(get_db(), reminder_id)
    audit("contacts.reminder_callback", {"number": number, "reminder_id": reminder_id,
                                         "callback_id": callback_id, "created": created})
    flash(_("Call-back task opened.") if created else _("The number has an open call-back task already: "
                                                         "the reminder is linked to it."))
    return redirect(url_for("contacts.card", number=number))
