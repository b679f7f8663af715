"""Hours: time conditions, holidays and special days, the manual closed switch, campaigns."""
import datetime as dt
import zoneinfo

from babel.dates import format_datetime
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from appliance import schedule

from .auth import role_required
from .configedit import load_config, save_section
from .forms import (FieldMap, filled_rows, find_index, intervals_form, intervals_value, page_context, put,
                    week_summary, weekly_form, weekly_value)
from .listsection import ListSection

bp = Blueprint("hours", __name__, url_prefix="/hours")

BLANK_HOLIDAY_ROWS = 2
BLANK_EXCEPTION_ROWS = 1


# --- evaluation shown on the page ------------------------------------------------------


def box_timezone(config):
    """The box's time zone name from its settings."""
    return config["settings"].get("timezone") or "UTC"


def condition_state(condition, default_tz, when=None):
    """{"open", "next", "why"}: whether ``condition`` is open now and when that next changes (local text)."""
    when = when or dt.datetime.now(dt.timezone.utc)
    zone = zoneinfo.ZoneInfo(condition.get("timezone") or default_tz)
    is_open = schedule.is_open(condition, when, default_tz)
    change = schedule.next_change(condition, when, default_tz)
    why = None
    if condition.get("closed"):
        why = _("closed by the switch")
    elif condition.get("open"):
        why = _("open by the switch")
    return {"open": is_open, "why": why,
            "next": format_datetime(change, "EEE d MMM yyyy HH:mm", tzinfo=zone, locale=get_locale())
            if change else None}


def campaign_running(campaign, default_tz, when=None):
    """Whether an enabled ``campaign`` covers today in the box's time zone."""
    when = when or dt.datetime.now(dt.timezone.utc)
    today = when.astimezone(zoneinfo.ZoneInfo(default_tz)).date().isoformat()
    return campaign.get("enabled", True) and campaign["start"] <= today <= campaign["end"]


# --- the page --------------------------------------------------------------------------


@bp.route("/")
@role_required("admin", "supervisor")
def index():
    """Every time condition, open now or not, its closed switch; the campaigns."""
    return _index_page()


def _index_page(errors=None, status=200):
    """The hours page, with ``errors`` shown above the conditions."""
    loaded = load_config()
    config = loaded["config"]
    zone = box_timezone(config)
    conditions = [dict(tc, state=condition_state(tc, zone), summary=week_summary(tc.get("weekly", {})))
                  for tc in config["time_conditions"]]
    campaigns = [dict(c, running=campaign_running(c, zone)) for c in config["campaigns"]]
    flows = {flow["id"]: flow.get("name") or flow["id"] for flow in config["flows"]}
    lines = {line["id"]: line.get("name") or line["id"] for line in config["lines"]}
    return render_template("hours.html", conditions=conditions, campaigns=campaigns, flows=flows, lines=lines,
                           timezone=zone, warnings=loaded.get("warnings", []), errors=errors or {},
                           **page_context()), status


@bp.route("/<condition_id>/closed", methods=("POST",))
@role_required("admin", "supervisor")
def set_closed(condition_id):
    """Flip the manual "closed now" switch of one condition (a seasonal line closes for a day)."""
    conditions = load_config()["config"]["time_conditions"]
    i = find_index(conditions, condition_id)
    if i is None:
        return _index_page({"form": _("There is no time condition %(id)s.", id=condition_id)}, 404)
    closed = request.form.get("closed") in ("1", "on", "true")
    conditions[i]["closed"] = closed
    answer = save_section("time_conditions", conditions, "hours.closed" if closed else "hours.reopened")
    if not answer["saved"]:
        return _index_page(FieldMap("time_conditions").errors(answer), 400)
    name = conditions[i].get("name") or condition_id
    flash(_("%(name)s is closed now.", name=name) if closed else _("%(name)s follows its hours again.", name=name))
    return redirect(_back_to(url_for("hours.index")))


def _back_to(default):
    """Where a switch was flipped from (a local path only), else ``default``."""
    target = request.form.get("next") or ""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else default


# --- time conditions -------------------------------------------------------------------


def _blank_condition():
    """A new condition's form: weekdays 09:00 to 17:00."""
    return MultiDict(weekly_form("weekly", {day: [["09:00", "17:00"]] for day in schedule.WEEKDAYS[:5]}))


def condition_form(tc):
    """The form showing time condition ``tc``."""
    pairs = [("id", tc["id"]), ("name", tc.get("name", "")), ("timezone", tc.get("timezone", ""))]
    pairs += [(flag, "on") for flag in ("closed", "open") if tc.get(flag)]
    pairs += weekly_form("weekly", tc.get("weekly", {}))
    for row, holiday in enumerate(tc.get("holidays", [])):
        first, last = (holiday, "") if isinstance(holiday, str) else (holiday["from"], holiday["to"])
        pairs += [(f"holiday-{row}-from", first), (f"holiday-{row}-to", last)]
    for row, exception in enumerate(tc.get("exceptions", [])):
        pairs.append((f"exception-{row}-date", exception["date"]))
        pairs += intervals_form(f"exception-{row}-hours", exception["hours"])
    return MultiDict(pairs)


def condition_value(form, old, fields):
    """The time condition typed in ``form``, keeping what the page does not show from ``old``."""
    tc = dict(old or {})
    tc["id"] = (old or {}).get("id") or form.get("id", "").strip()
    put(tc, "name", form.get("name", "").strip())
    put(tc, "timezone", form.get("timezone", "").strip())
    tc["closed"], tc["open"] = "closed" in form, "open" in form
    tc["weekly"] = weekly_value(form, "weekly", "weekly", fields)
    tc["holidays"] = _holidays_value(form, fields)
    tc["exceptions"] = _exceptions_value(form, fields)
    return tc


def _holidays_value(form, fields):
    """Holidays typed as rows of from (and optional to) dates."""
    holidays = []
    for row in range(filled_rows(form, "holiday")):
        first, last = (form.get(f"holiday-{row}-{side}", "").strip() for side in ("from", "to"))
        if not first and not last:
            continue
        where = f"holidays[{len(holidays)}]"
        fields.add(where, f"holiday-{row}-from")
        fields.add(f"{where}.from", f"holiday-{row}-from")
        fields.add(f"{where}.to", f"holiday-{row}-to")
        holidays.append(first if not last or last == first else {"from": first or None, "to": last})
    return holidays


def _exceptions_value(form, fields):
    """Special days typed as a date and its own hours (none: closed all day)."""
    exceptions = []
    for row in range(filled_rows(form, "exception")):
        date = form.get(f"exception-{row}-date", "").strip()
        key = f"exception-{row}-hours"
        probe = FieldMap("")
        hours = intervals_value(form, key, "hours", probe)
        if not date and not hours:
            continue
        where = f"exceptions[{len(exceptions)}]"
        fields.add(where, f"exception-{row}-date")
        fields.add(f"{where}.date", f"exception-{row}-date")
        for path, target in probe.paths.items():
            fields.add(f"{where}.{path}", *target)
        exceptions.append({"date": date or None, "hours": hours})
    return exceptions


def _condition_page(config, form, condition_id, errors, status=200):
    """The add/edit form of one time condition."""
    return render_template("hours_condition.html", form=form, condition_id=condition_id, errors=errors,
                           holiday_rows=filled_rows(form, "holiday") + BLANK_HOLIDAY_ROWS,
                           exception_rows=filled_rows(form, "exception") + BLANK_EXCEPTION_ROWS,
                           timezone=box_timezone(config), timezones=sorted(zoneinfo.available_timezones()),
                           **page_context()), status


CONDITIONS = ListSection(
    "time_conditions", (_blank_condition, condition_form, condition_value), (_index_page, _condition_page),
    {"missing": lambda item_id: _("There is no time condition %(id)s.", id=item_id),
     "deleted": lambda item_id: _("Time condition %(id)s deleted.", id=item_id),
     "saved": lambda tc: _("Time condition %(name)s saved.", name=tc.get("name") or tc["id"])},
    fallback_id="hours", simple=("id", "name", "timezone", "closed", "open"), action="hours")
CONDITIONS.register(bp, "condition_id", names=("new_condition", "edit_condition", "delete_condition"))


# --- campaigns -------------------------------------------------------------------------


def campaign_form(campaign):
    """The form showing ``campaign``."""
    pairs = [(key, campaign.get(key, "")) for key in ("id", "name", "start", "end", "flow")]
    pairs += [("lines", line) for line in campaign.get("lines", [])]
    if campaign.get("enabled", True):
        pairs.append(("enabled", "on"))
    return MultiDict(pairs)


def campaign_value(form, old, _fields):
    """The campaign typed in ``form``: dates, lines and the flow they run."""
    campaign = dict(old or {})
    campaign["id"] = campaign.get("id") or form.get("id", "").strip()
    for key in ("name", "flow"):
        put(campaign, key, form.get(key, "").strip())
    campaign["start"], campaign["end"] = (form.get(key, "").strip() or None for key in ("start", "end"))
    campaign["lines"] = form.getlist("lines")
    campaign["enabled"] = "enabled" in form
    return campaign


def _flash_campaign_warnings(answer):
    """Overlapping seasons are allowed but deserve a look."""
    for warning in answer.get("warnings", []):
        if "campaign" in warning:
            flash(warning)


def _campaign_page(config, form, campaign_id, errors, status=200):
    """The add/edit form of one campaign."""
    return render_template("hours_campaign.html", form=form, campaign_id=campaign_id, errors=errors,
                           lines=config["lines"], flows=config["flows"], **page_context()), status


CAMPAIGNS = ListSection(
    "campaigns", (lambda: MultiDict([("enabled", "on")]), campaign_form, campaign_value),
    (_index_page, _campaign_page),
    {"saved": lambda campaign: _("Campaign %(name)s saved.", name=campaign.get("name") or campaign["id"]),
     "missing": lambda item_id: _("There is no campaign %(id)s.", id=item_id),
     "deleted": lambda item_id: _("Campaign %(id)s deleted.", id=item_id)},
    fallback_id="season", simple=("id", "name", "start", "end", "lines", "flow", "enabled"))
CAMPAIGNS.after_save = _flash_campaign_warnings
CAMPAIGNS.register(bp, "campaign_id", "/campaigns", names=("new_campaign", "edit_campaign", "delete_campaign"))
