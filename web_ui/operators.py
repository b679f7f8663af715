"""Operators: endpoints, groups, shifts, wrap-up; their live state, pause and ready.

An operator's number is a phone number (a mobile, dialled out over a line) or a SIP URI
(a desk phone or softphone, called through a SIP line); ``confirm`` says whether they must
press 1 to accept a call (a mobile must: its voicemail would otherwise take the caller).
"""
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from appliance import schedule
from appliance.errors import ApplianceError, ControlError

from .auth import role_required
from .configedit import EngineDown, audit, load_config
from .db import get_engine
from .forms import page_context, split_items, week_summary, weekly_form, weekly_value, whole
from .hours import box_timezone, condition_state
from .listsection import ListSection

bp = Blueprint("operators", __name__, url_prefix="/operators")

STATES = ("ready", "paused")
SIMPLE_FIELDS = ("id", "name", "number", "groups", "wrap_up_seconds", "enabled", "shift", "confirm")
STATE_LABELS = {"ready": _l("ready"), "paused": _l("paused"), "ringing": _l("ringing"),
                "on call": _l("on call"), "wrap-up": _l("wrap-up"),
                "offline": _l("offline (off shift or disabled)"), "unknown": _l("unknown")}


@bp.route("/")
@role_required("admin", "supervisor")
def index():
    """Every operator with their live state, and pause / ready buttons."""
    return _index_page()


def live_status():
    """The engine's live state; raises EngineDown when it does not answer."""
    try:
        return get_engine().request("status")
    except ApplianceError as err:
        raise EngineDown(_("The engine does not answer: %(error)s", error=err)) from err


def _index_page(errors=None, status=200):
    """The operators page, with ``errors`` shown above the list."""
    config = load_config()["config"]
    live = {op["id"]: op for op in live_status()["operators"]}
    operators = [dict(op, live=live.get(op["id"], {}),
                      shift_text=week_summary(op["shift"].get("weekly", {})) if op.get("shift") else None)
                 for op in config["operators"]]
    zone = box_timezone(config)
    conditions = [dict(tc, state=condition_state(tc, zone)) for tc in config["time_conditions"]]
    # The page refreshes the states from the dashboard's JSON when that screen is installed.
    status_url = url_for("dashboard.api_status") if "dashboard.api_status" in current_app.view_functions else ""
    return render_template("operators.html", operators=operators, conditions=conditions, errors=errors or {},
                           state_labels=STATE_LABELS, state_texts={k: str(v) for k, v in STATE_LABELS.items()},
                           status_url=status_url), status


@bp.route("/<operator_id>/state", methods=("POST",))
@role_required("admin", "supervisor")
def set_state(operator_id):
    """Pause an operator or make them ready again (as their PAUSE / READY SMS would)."""
    state = request.form.get("state", "")
    if state not in STATES:
        return _index_page({"form": _("The state must be ready or paused.")}, 400)
    try:
        get_engine().request("operator", operator=operator_id, state=state)
    except ControlError as err:  # the engine answered: no such operator
        return _index_page({"form": str(err)}, 400)
    except ApplianceError as err:
        raise EngineDown(_("The engine does not answer: %(error)s", error=err)) from err
    audit("operator.state", {"operator": operator_id, "state": state})
    flash(_("%(id)s is paused.", id=operator_id) if state == "paused" else _("%(id)s is ready.", id=operator_id))
    return redirect(url_for("operators.index"))


def operator_form(operator):
    """The form showing ``operator``."""
    pairs = [(key, operator.get(key, "")) for key in ("id", "name", "number")]
    pairs += [("groups", group) for group in operator.get("groups", [])]
    pairs.append(("wrap_up_seconds", str(operator.get("wrap_up_seconds", 0))))
    if operator.get("enabled", True):
        pairs.append(("enabled", "on"))
    if operator.get("confirm", not str(operator.get("number", "")).startswith(("sip:", "sips:"))):
        pairs.append(("confirm", "on"))
    shift = operator.get("shift")
    pairs.append(("shift_mode", "weekly" if shift else "always"))
    if shift:
        pairs += weekly_form("shift", shift.get("weekly", {}))
    return MultiDict(pairs)


def operator_value(form, old, fields):
    """The operator typed in ``form``, keeping what the page does not show from ``old``."""
    operator = dict(old or {})
    operator["id"] = (old or {}).get("id") or form.get("id", "").strip()
    operator["name"] = form.get("name", "").strip()
    operator["number"] = form.get("number", "").strip().replace(" ", "")
    groups = form.getlist("groups") + split_items(form.get("new_groups", "").lower())
    operator["groups"] = list(dict.fromkeys(groups))  # in order, each once
    for i, group in enumerate(operator["groups"]):
        fields.add(f"groups[{i}]", "groups", group)
    wrap_up = whole(form.get("wrap_up_seconds"))
    operator["wrap_up_seconds"] = 0 if wrap_up is None else wrap_up
    operator["enabled"] = "enabled" in form
    if "confirm_shown" in form:
        operator["confirm"] = "confirm" in form  # as posted: the page's box says it in so many words
    if form.get("shift_mode") == "weekly":
        # Holidays or special days set elsewhere stay; the page edits the week.
        shift = dict(operator.get("shift") or {})
        shift["weekly"] = weekly_value(form, "shift", "shift.weekly", fields)
        operator["shift"] = shift
    else:
        operator.pop("shift", None)
    return operator


def known_groups(config):
    """Every group an operator is in or a queue asks for, sorted."""
    groups = {g for op in config["operators"] for g in op.get("groups", [])}
    groups |= {g for queue in config["queues"] for g in queue.get("groups", [])}
    return sorted(groups)


def _form_page(config, form, operator_id, errors, status=200):
    """The add/edit form of one operator."""
    groups = known_groups(config)
    groups += [g for g in form.getlist("groups") if g not in groups]
    return render_template("operators_form.html", form=form, operator_id=operator_id, errors=errors,
                           groups=groups, weekdays=schedule.WEEKDAYS, **page_context()), status


def _blank():
    """A new operator's form: enabled, confirming, always on shift, no wrap-up."""
    return MultiDict([("enabled", "on"), ("confirm", "on"), ("shift_mode", "always"), ("wrap_up_seconds", "0")])


VIEWS = ListSection("operators", (_blank, operator_form, operator_value), (_index_page, _form_page),
                    {"missing": lambda item_id: _("There is no operator %(id)s.", id=item_id),
                     "deleted": lambda item_id: _("Operator %(id)s deleted.", id=item_id),
                     "saved": lambda operator: _("Operator %(name)s saved.", name=operator["name"])},
                    fallback_id="operator", simple=SIMPLE_FIELDS)
VIEWS.explain_refusal = True  # a queue left with nobody: name the queue
VIEWS.register(bp, "operator_id")
