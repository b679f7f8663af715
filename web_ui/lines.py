"""A line's page: its modem and SIM, outages, SMS, and the test SMS and balance buttons."""
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.errors import ApplianceError, ControlError

from .auth import role_required
from .db import get_engine

bp = Blueprint("lines", __name__, url_prefix="/lines")

NUMBER = re.compile(r"^\+?[0-9]{3,15}$")
MAX_SMS_TEXT = 1000


@bp.route("/<line_id>")
@role_required("admin", "supervisor")
def show(line_id):
    """The line's state, its recent outages and SMS."""
    try:
        details = get_engine().request("line", line=line_id)
    except ControlError:
        abort(404)
    except ApplianceError as err:
        return render_template("line.html", line_id=line_id, details=None, error=str(err), form={}), 503
    return render_template("line.html", line_id=line_id, details=details, error=None, form={})


@bp.route("/<line_id>/sms", methods=("POST",))
@role_required("admin")
def send_sms(line_id):
    """Send a test SMS through the line."""
    to, text = request.form.get("to", "").strip(), request.form.get("text", "")
    errors = {}
    if not NUMBER.match(to):
        errors["to"] = "Enter a phone number such as +359888123456."
    if not text.strip() or len(text) > MAX_SMS_TEXT:
        errors["text"] = f"Enter the message (up to {MAX_SMS_TEXT} characters)."
    if errors:
        return _page_with_errors(line_id, errors)
    try:
        result = get_engine().request("sms", line=line_id, to=to, text=text, timeout=120)
    except ApplianceError as err:
        return _page_with_errors(line_id, {"sms": str(err)})
    flash(f"SMS sent to {to} in {result['parts']} part(s).")
    return redirect(url_for("lines.show", line_id=line_id))


@bp.route("/<line_id>/balance", methods=("POST",))
@role_required("admin", "supervisor")
def check_balance(line_id):
    """Ask the network for the SIM's balance now."""
    try:
        state = get_engine().request("balance", line=line_id, timeout=60)
    except ApplianceError as err:
        return _page_with_errors(line_id, {"balance": str(err)})
    flash(f"Balance: {state['balance_text']}")
    return redirect(url_for("lines.show", line_id=line_id))


def _page_with_errors(line_id, errors):
    try:
        details = get_engine().request("line", line=line_id)
    except ApplianceError:
        details = None
    return render_template("line.html", line_id=line_id, details=details, error=None,
                           errors=errors, form=request.form), 400
