"""Hours: time conditions, holidays and special days, the manual closed switch, campaigns.

This module also holds the few form helpers the other configuration pages (operators,
queues, settings) share: the weekly-hours editor, the map from the engine's refused
field back to an input, and the page shown while the engine is not running.
"""
import datetime as dt
import functools
import re
import zoneinfo

from babel.dates import format_datetime
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from appliance import schedule
from appliance.errors import ApplianceError

from .auth import role_required
from .configedit import EngineDown, load_config, save_section
from .db import get_engine

bp = Blueprint("hours", __name__, url_prefix="/hours")

DAY_LABELS = {"mon": _l("Monday"), "tue": _l("Tuesday"), "wed": _l("Wednesday"),
              "thu": _l("Thursday"), "fri": _l("Friday"), "sat": _l("Saturday"),
              "sun": _l("Sunday")}
DAY_SHORT = {"mon": _l("Mon"), "tue": _l("Tue"), "wed": _l("Wed"),
             "thu": _l("Thu"), "fri": _l("Fri"), "sat": _l("Sat"),
             "sun": _l("Sun")}
BLANK_HOLIDAY_ROWS = 2
BLANK_EXCEPTION_ROWS = 1


# --- shared by the configuration pages ------------------------------------------------


def engine_needed(view):
    """Show a clear "engine not running" page instead of an error when the engine is down."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except EngineDown as err:
            return render_template("settings_engine_down.html", message=str(err)), 503
    return wrapped


def live_status():
    """The engine's live state; raises EngineDown when it does not answer."""
    try:
        return get_engine().request("status")
    except ApplianceError as err:
        raise EngineDown(_("The engine does not answer: %(error)s", error=err)) from err


class FieldMap:
    """Where each part of a section built from a form came from: the engine's refusal goes next to its input."""

    def __init__(self, prefix, simple=()):
        self.prefix = prefix
        self.paths = {name: (name, None) for name in simple}

    def add(self, path, key, label=None):
        """Errors at ``path`` (relative to the prefix) show at input ``key``, prefixed by ``label``."""
        self.paths[path] = (key, label)

    def errors(self, answer):
        """{input key: message} for the engine's refusal ``answer``; "form" when no input fits."""
        field, message = answer.get("field") or "", answer.get("message") or _("refused")
        if field == self.prefix or field.startswith((f"{self.prefix}.", f"{self.prefix}[")):
            path = field[len(self.prefix):].lstrip(".")
            while path:
                if path in self.paths:
                    key, label = self.paths[path]
                    return {key: f"{label}: {message}" if label else message}
                path = _parent(path)
        return {"form": _("Not saved: %(field)s: %(message)s", field=field, message=message)}


def _parent(path):
    """The path one step up: a.b[2] -> a.b -> a."""
    match = re.match(r"^(.*)(\[\d+\]|\.[^.\[]+)$", path)
    return match.group(1) if match else ""


def whole(text):
    """A typed whole number as int; other text goes to the engine as typed, to be refused there with its message."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def put(item, key, value):
    """Set ``item[key]`` to ``value``, or drop the key when the value is empty (the engine's default then)."""
    if value is None or value == "":
        item.pop(key, None)
    else:
        item[key] = value


def split_items(text):
    """Entries typed one a line or separated by commas."""
    return [part.strip() for part in re.split(r"[,;\n]", text or "") if part.strip()]


def new_id(name, taken, fallback):
    """An id made from ``name`` (lower-case letters, digits, -) that no other item has."""
    base = re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")[:28]
    if not base or not base[0].isalpha():
        base = f"{fallback}-{base}".strip("-")[:28] if base else fallback
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def find_index(items, item_id):
    """The position of the item with ``item_id``, or None."""
    return next((i for i, item in enumerate(items) if item.get("id") == item_id), None)


def filled_rows(form, prefix):
    """How many rows (prefix-0-..., prefix-1-...) the form has up to the last that is not blank."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-")
    found = [int(m.group(1)) for name, value in form.items(multi=True)
             if value.strip() and (m := pattern.match(name))]
    return max(found) + 1 if found else 0


def intervals_form(key, hours):
    """Form pairs showing ``hours`` ([["09:00", "17:00"], ...]) as rows under ``key``."""
    pairs = []
    for row, (start, end) in enumerate(hours):
        pairs += [(f"{key}-{row}-from", start), (f"{key}-{row}-to", end)]
    return pairs


def intervals_value(form, key, path, fields):
    """The intervals typed under ``key``; a half-filled row is sent so that the engine names what is missing."""
    result = []
    fields.add(path, key)
    for row in range(filled_rows(form, key)):
        start, end = (form.get(f"{key}-{row}-{side}", "").strip() for side in ("from", "to"))
        if not start and not end:
            continue  # the blank row the page offers for one more interval
        where = f"{path}[{len(result)}]"
        fields.add(where, f"{key}-{row}")
        fields.add(f"{where}[0]", f"{key}-{row}-from")
        fields.add(f"{where}[1]", f"{key}-{row}-to")
        result.append([start, end])
    return result


def weekly_form(prefix, weekly):
    """Form pairs for a week of hours, keys like weekly-mon-0-from."""
    return [pair for day in schedule.WEEKDAYS for pair in intervals_form(f"{prefix}-{day}", weekly.get(day, []))]


def weekly_value(form, prefix, path, fields):
    """The week typed under ``prefix`` as {"mon": [...], ...}."""
    fields.add(path, prefix)
    return {day: intervals_value(form, f"{prefix}-{day}", f"{path}.{day}", fields) for day in schedule.WEEKDAYS}


def week_summary(weekly):
    """A short text of a week's hours, days with the same hours joined: "Mon–Fri 09:00–17:00; Sat–Sun closed"."""
    runs = []  # [first day, last day, hours text]
    for day in schedule.WEEKDAYS:
        hours = weekly.get(day) or []
        text = ", ".join(f"{start}–{end}" for start, end in hours) if hours else _("closed")
        if runs and runs[-1][2] == text:
            runs[-1][1] = day
        else:
            runs.append([day, day, text])
    return "; ".join(f"{DAY_SHORT[first]}{'–' + str(DAY_SHORT[last]) if last != first else ''} {text}"
                     for first, last, text in runs)


def page_context():
    """What every template of these pages needs: labels and helpers."""
    return {"day_labels": DAY_LABELS, "rows_in": filled_rows}


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
@engine_needed
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
@engine_needed
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


@bp.route("/new", methods=("GET", "POST"))
@role_required("admin")
@engine_needed
def new_condition():
    """Add a time condition (open hours, holidays, special days)."""
    config = load_config()["config"]
    if request.method == "GET":
        form = MultiDict(weekly_form("weekly", {day: [["09:00", "17:00"]] for day in schedule.WEEKDAYS[:5]}))
        return _condition_page(config, form, None, {})
    return _save_condition(config, None)


@bp.route("/<condition_id>/edit", methods=("GET", "POST"))
@role_required("admin")
@engine_needed
def edit_condition(condition_id):
    """Change a time condition's hours, holidays, special days and switches."""
    config = load_config()["config"]
    i = find_index(config["time_conditions"], condition_id)
    if i is None:
        return _index_page({"form": _("There is no time condition %(id)s.", id=condition_id)}, 404)
    if request.method == "GET":
        return _condition_page(config, condition_form(config["time_conditions"][i]), condition_id, {})
    return _save_condition(config, i)


@bp.route("/<condition_id>/delete", methods=("POST",))
@role_required("admin")
@engine_needed
def delete_condition(condition_id):
    """Remove a time condition; the engine refuses while a flow or setting still uses it."""
    return delete_item("time_conditions", condition_id,
                       (_("There is no time condition %(id)s.", id=condition_id),
                        _("Time condition %(id)s deleted.", id=condition_id)),
                       _index_page, "hours.index", "hours.delete")


def delete_item(section, item_id, messages, index_page, endpoint, action):
    """Remove ``item_id`` from a list section through the engine; the index page with its refusal if refused.

    ``messages`` is (text when there is no such item, text when it was deleted).
    """
    config = load_config()["config"]
    items = config[section]
    i = find_index(items, item_id)
    if i is None:
        return index_page({"form": messages[0]}, 404)
    del items[i]
    answer = save_section(section, items, action)
    if not answer["saved"]:
        return index_page({"form": refusal_text(answer, config)}, 400)
    flash(messages[1])
    return redirect(url_for(endpoint))


def refusal_text(answer, config):
    """The engine's refusal, naming the item that still needs what was changed (a queue, a menu)."""
    return _("The engine refused the change: %(field)s: %(message)s", field=describe_field(answer.get("field"), config),
             message=answer.get("message"))


def describe_field(field, config):
    """A refused field said with its item's name: queues[0].groups[0] -> queues “Bachelor”: groups[0]."""
    match = re.match(r"^(\w+)\[(\d+)\]\.?(.*)$", field or "")
    if not match or match.group(1) not in config or int(match.group(2)) >= len(config[match.group(1)]):
        return field
    entry = config[match.group(1)][int(match.group(2))]
    name = f"{match.group(1)} “{entry.get('name') or entry.get('id')}”"
    return f"{name}, {match.group(3)}" if match.group(3) else name


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


def _save_condition(config, index):
    """Send the typed condition to the engine; on refusal show the form again with the message."""
    conditions = config["time_conditions"]
    old = conditions[index] if index is not None else None
    fields = FieldMap("time_conditions" if index is None else f"time_conditions[{index}]",
                      simple=("id", "name", "timezone", "closed", "open"))
    tc = condition_value(request.form, old, fields)
    if index is None:
        if not tc["id"]:
            tc["id"] = new_id(tc.get("name"), {c["id"] for c in conditions}, "hours")
        conditions.append(tc)
        fields.prefix = f"time_conditions[{len(conditions) - 1}]"
    else:
        conditions[index] = tc
    answer = save_section("time_conditions", conditions, "hours.add" if index is None else "hours.edit")
    if not answer["saved"]:
        return _condition_page(config, request.form, old and old["id"], fields.errors(answer), 400)
    flash(_("Time condition %(name)s saved.", name=tc.get("name") or tc["id"]))
    return redirect(url_for("hours.index"))


def _condition_page(config, form, condition_id, errors, status=200):
    """The add/edit form of one time condition."""
    return render_template("hours_condition.html", form=form, condition_id=condition_id, errors=errors,
                           holiday_rows=filled_rows(form, "holiday") + BLANK_HOLIDAY_ROWS,
                           exception_rows=filled_rows(form, "exception") + BLANK_EXCEPTION_ROWS,
                           timezone=box_timezone(config), timezones=sorted(zoneinfo.available_timezones()),
                           **page_context()), status


# --- campaigns -------------------------------------------------------------------------


@bp.route("/campaigns/new", methods=("GET", "POST"))
@role_required("admin")
@engine_needed
def new_campaign():
    """Add a campaign (season): dates, lines and the flow they run."""
    config = load_config()["config"]
    if request.method == "GET":
        return _campaign_page(config, MultiDict([("enabled", "on")]), None, {})
    return _save_campaign(config, None)


@bp.route("/campaigns/<campaign_id>/edit", methods=("GET", "POST"))
@role_required("admin")
@engine_needed
def edit_campaign(campaign_id):
    """Change a campaign."""
    config = load_config()["config"]
    i = find_index(config["campaigns"], campaign_id)
    if i is None:
        return _index_page({"form": _("There is no campaign %(id)s.", id=campaign_id)}, 404)
    if request.method == "GET":
        return _campaign_page(config, campaign_form(config["campaigns"][i]), campaign_id, {})
    return _save_campaign(config, i)


@bp.route("/campaigns/<campaign_id>/delete", methods=("POST",))
@role_required("admin")
@engine_needed
def delete_campaign(campaign_id):
    """Remove a campaign; its lines fall back to their own flow."""
    return delete_item("campaigns", campaign_id,
                       (_("There is no campaign %(id)s.", id=campaign_id),
                        _("Campaign %(id)s deleted.", id=campaign_id)),
                       _index_page, "hours.index", "campaigns.delete")


def campaign_form(campaign):
    """The form showing ``campaign``."""
    pairs = [(key, campaign.get(key, "")) for key in ("id", "name", "start", "end", "flow")]
    pairs += [("lines", line) for line in campaign.get("lines", [])]
    if campaign.get("enabled", True):
        pairs.append(("enabled", "on"))
    return MultiDict(pairs)


def _save_campaign(config, index):
    """Send the typed campaign to the engine; on refusal show the form again with the message."""
    campaigns, form = config["campaigns"], request.form
    old = campaigns[index] if index is not None else {}
    campaign = dict(old)
    campaign["id"] = old.get("id") or form.get("id", "").strip() or new_id(
        form.get("name"), {c["id"] for c in campaigns}, "season")
    for key in ("name", "flow"):
        put(campaign, key, form.get(key, "").strip())
    campaign["start"], campaign["end"] = (form.get(key, "").strip() or None for key in ("start", "end"))
    campaign["lines"] = form.getlist("lines")
    campaign["enabled"] = "enabled" in form
    if index is None:
        campaigns.append(campaign)
        index_now = len(campaigns) - 1
    else:
        campaigns[index] = campaign
        index_now = index
    fields = FieldMap(f"campaigns[{index_now}]", simple=("id", "name", "start", "end", "lines", "flow", "enabled"))
    answer = save_section("campaigns", campaigns, "campaigns.add" if not old else "campaigns.edit")
    if not answer["saved"]:
        return _campaign_page(config, form, old.get("id"), fields.errors(answer), 400)
    for warning in answer.get("warnings", []):
        if "campaign" in warning:
            flash(warning)  # overlapping seasons are allowed but deserve a look
    flash(_("Campaign %(name)s saved.", name=campaign.get("name") or campaign["id"]))
    return redirect(url_for("hours.index"))


def _campaign_page(config, form, campaign_id, errors, status=200):
    """The add/edit form of one campaign."""
    return render_template("hours_campaign.html", form=form, campaign_id=campaign_id, errors=errors,
                           lines=config["lines"], flows=config["flows"], **page_context()), status
