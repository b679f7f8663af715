"""The guided setup after the first admin is made: language, lines, a template, people and hours, a test call.

Every step writes ordinary configuration through the engine (``save_section``), can be
skipped, and is changed later on its own page. The only state of its own is whether the
guide was finished or dismissed, in a small file of the data directory.
"""
import datetime
import json
import os
import re
import zoneinfo

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from appliance import templates
from appliance.config import NUMBER_PATTERN
from appliance.errors import ApplianceError, ControlError
from appliance.files import write_atomically

from .auth import role_required
from .configedit import load_config, save_section
from .db import get_engine
from .forms import FieldMap, find_index, new_id
from .i18n import LANGUAGES
from .listsection import describe_field
from .testcall import DEFAULT_FROM, twin_state

bp = Blueprint("onboarding", __name__, url_prefix="/onboarding")

STATE_FILE = "onboarding.json"  # a fixed name in the data directory: nothing of the request reaches the path
STEPS = (("basics", _l("Language and time zone")), ("lines", _l("Lines")),
         ("template", _l("A hot-line to start from")), ("people", _l("Operators and opening hours")),
         ("test", _l("A test call")))
TEMPLATE_TEXTS = {
    "admissions": (_l("University admissions hot-line"),
                   _l("A menu of three queues (bachelor, master's, dormitories), position announcements, "
                      "a call-back key (5), voicemail and a call back after hours.")),
    "business": (_l("Small-business line"),
                 _l("Rings whoever is on duty, takes a message after hours and texts missed calls "
                    "to the operators' mobiles.")),
    "gateway": (_l("Gateway for an existing PBX"),
                _l("The box as a GSM gateway for Asterisk, FreeSWITCH or Kamailio over SIP.")),
}
OPERATOR_ROWS = 3  # blank rows offered for new operators
IMEI = re.compile(r"^\d{15}$")
CLOCK = re.compile(r"^\d{2}:\d{2}$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
DISCOVERY_TIMEOUT = 30.0  # probing a port that is not a modem takes a couple of seconds


# --- the finished/dismissed flag ------------------------------------------------------------


def state_path():
    """Where the guide's own state lives."""
    return os.path.join(current_app.config["DATA_DIR"], STATE_FILE)


def guide_state():
    """{"state": "done" | "dismissed", ...} once the guide is closed, else {}."""
    try:
        with open(state_path(), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("state") in ("done", "dismissed") else {}


def close_guide(state):
    """Mark the guide finished or dismissed (atomically: a power cut leaves the old file or the new)."""
    record = {"state": state, "by": g.user["username"],
              "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    write_atomically(state_path(), json.dumps(record))


@bp.app_context_processor
def guide_flag():
    """``onboarding_open`` for the templates: an admin sees a way back into an unfinished guide."""
    user = g.get("user")
    return {"onboarding_open": bool(user and user["role"] == "admin" and not guide_state())}


def page(template, step, status=200, **context):
    """Render a step with the steps list around it."""
    return render_template(template, steps=STEPS, step=step, next_step=_next(step), **context), status


def _next(step):
    names = [name for name, _label in STEPS]
    return names[names.index(step) + 1] if step in names and step != names[-1] else None


# --- the overview and closing ---------------------------------------------------------------


@bp.route("/")
@role_required("admin")
def index():
    """The welcome: what the guide does, its steps, and a way to leave it."""
    return page("onboarding.html", None, state=guide_state())


@bp.route("/dismiss", methods=("POST",))
@role_required("admin")
def dismiss():
    """Stop offering the guide; everything it made stays."""
    close_guide("dismissed")
    flash(_("The guided setup is closed. Every setting is on its own page."))
    return redirect(url_for("dashboard.index"))


@bp.route("/finish", methods=("POST",))
@role_required("admin")
def finish():
    """The guide is done."""
    close_guide("done")
    flash(_("The guided setup is done."))
    return redirect(url_for("dashboard.index"))


# --- 1. language and time zone --------------------------------------------------------------


@bp.route("/basics", methods=("GET", "POST"))
@role_required("admin")
def basics():
    """The box's name, the language of its prompts and its time zone."""
    settings = load_config()["config"]["settings"]
    if request.method == "GET":
        return _basics_page(settings, {})
    form = {key: request.form.get(key, "").strip() for key in ("box_name", "language", "timezone")}
    errors = {}
    if not form["box_name"]:
        errors["box_name"] = _("Give the box a name.")
    if form["language"] not in LANGUAGES:
        errors["language"] = _("Choose a language.")
    if form["timezone"] not in zoneinfo.available_timezones():
        errors["timezone"] = _("Choose a time zone from the list.")
    if not errors:
        answer = save_section("settings", dict(settings, **form), "onboarding.basics")
        if answer["saved"]:
            flash(_("Language and time zone saved."))
            return redirect(url_for("onboarding.lines"))
        errors = FieldMap("settings", simple=form).errors(answer)
    return _basics_page(form, errors, 400)


def _basics_page(values, errors, status=200):
    return page("onboarding_basics.html", "basics", status, values=values, errors=errors, languages=LANGUAGES,
                timezones=sorted(zoneinfo.available_timezones()))


# --- 2. the lines found ---------------------------------------------------------------------


@bp.route("/lines")
@role_required("admin")
def lines():
    """The lines the engine runs and the modems it found that are not lines yet."""
    return _lines_page({}, {})


def _lines_page(form, errors, status=200):
    config = load_config()["config"]
    live, engine_error = _live_lines()
    modems, discovery = unbound_modems()
    configured = {line["id"]: line for line in config["lines"]}
    rows = [{"line": configured.get(item["id"], {}), "live": item} for item in live]
    running = {item["id"] for item in live}
    rows += [{"line": line, "live": None} for line in config["lines"] if line["id"] not in running]  # disabled ones
    return page("onboarding_lines.html", "lines", status, rows=rows, modems=modems, discovery=discovery,
                engine_error=engine_error, form=form, errors=errors)


def _live_lines():
    """The lines in the engine's status, and the error if it does not answer."""
    try:
        return get_engine().request("status")["lines"], None
    except ApplianceError as err:
        return [], str(err)


def unbound_modems():
    """(modems, None) from the engine's ``modems`` request; ([], why) where it cannot list them."""
    try:
        return get_engine(timeout=DISCOVERY_TIMEOUT).request("modems")["modems"], None
    except ControlError as err:
        if "unknown command" not in str(err):
            return [], str(err)
        # An engine without the request: the page shows the configured lines only.
        return [], _("This engine does not list modems that are not lines yet: add one on the Lines page.")
    except ApplianceError as err:
        return [], str(err)


@bp.route("/lines/bind", methods=("POST",))
@role_required("admin")
def bind():
    """Bind a line to a modem by its IMEI: a new line, or an existing one (its port binding replaced)."""
    config = load_config()["config"]
    imei, line_id = request.form.get("imei", "").strip(), request.form.get("line", "").strip()
    form = {"imei": imei, "line": line_id}
    if not IMEI.match(imei):
        return _lines_page(form, {"imei": _("An IMEI is 15 digits.")}, 400)
    lines_now = [dict(line) for line in config["lines"]]
    position = find_index(lines_now, line_id) if line_id else None
    if line_id and position is None:
        return _lines_page(form, {"imei": _("There is no line %(id)s.", id=line_id)}, 400)
    if position is None:
        line = {"id": new_id("gsm", {item["id"] for item in lines_now}, "gsm"), "driver": "auto",
                "name": request.form.get("name", "").strip() or _("Line %(imei)s", imei=imei[-4:])}
        flows = config["flows"]
        if flows:
            line["flow"] = (lines_now[0].get("flow") if lines_now else None) or flows[0]["id"]
        lines_now.append(line)
        position = len(lines_now) - 1
    line = lines_now[position]
    # The IMEI replaces the port: the engine then finds the modem wherever the ttys were numbered.
    for key in ("port", "audio_port", "iccid"):
        line.pop(key, None)
    line["imei"] = imei
    answer = save_section("lines", lines_now, "onboarding.bind")
    if not answer["saved"]:
        return _lines_page(form, {"imei": f"{describe_field(answer['field'], config)}: {answer['message']}"}, 400)
    flash(_("Line %(id)s is bound to the modem with IMEI %(imei)s.", id=line["id"], imei=imei))
    return redirect(url_for("onboarding.lines"))


# --- 3. a template --------------------------------------------------------------------------


@bp.route("/template", methods=("GET", "POST"))
@role_required("admin")
def template():
    """Choose a hot-line to start from; applying it sends its sections to the engine one by one."""
    config = load_config()["config"]
    if request.method == "GET":
        return _template_page(config, {}, {})
    form = {key: request.form.get(key, "").strip() for key in ("template", "name", "number")}
    errors = {}
    if form["template"] not in templates.TEMPLATES:
        errors["template"] = _("Choose one of the templates.")
    first = None
    if not config["operators"]:
        first = {"name": form["name"], "number": form["number"]}
        if not form["name"]:
            errors["name"] = _("Enter the operator's name.")
        if not NUMBER_PATTERN.match(form["number"]):
            errors["number"] = _("Enter a phone number such as +359888123456.")
    if errors:
        return _template_page(config, form, errors, 400)
    for section, value in templates.sections(config, form["template"], first):
        answer = save_section(section, value, f"onboarding.template.{section}")
        if not answer["saved"]:
            message = _("The engine refused the template: %(field)s: %(message)s",
                        field=describe_field(answer["field"], config), message=answer["message"])
            return _template_page(config, form, {"template": message}, 400)
    flash(_("The template is in place: its queues, menu and prompts are on their pages."))
    return redirect(url_for("onboarding.people"))


def _template_page(config, form, errors, status=200):
    in_use = {line.get("flow") for line in config["lines"]}
    choices = [(name, *TEMPLATE_TEXTS[name], name in templates.TEMPLATES, templates.TEMPLATES.get(name, {}).get("flow")
                in in_use) for name in (*templates.TEMPLATES, *templates.UNAVAILABLE)]
    return page("onboarding_template.html", "template", status, choices=choices, form=form, errors=errors,
                needs_operator=not config["operators"])


# --- 4. operators and opening hours ---------------------------------------------------------


@bp.route("/people", methods=("GET", "POST"))
@role_required("admin")
def people():
    """Operators' names and mobiles, and the weekday opening hours of the lines' flow."""
    config = load_config()["config"]
    condition = hours_condition(config)
    if request.method == "GET":
        return _people_page(config, condition, _people_form(config, condition), {})
    errors = _save_operators(config)
    if not errors and condition is not None:
        errors = _save_hours(config, condition)
    if errors:
        return _people_page(config, condition, request.form, errors, 400)
    flash(_("Operators and opening hours saved."))
    return redirect(url_for("onboarding.test"))


def hours_condition(config):
    """The time condition the lines' flow checks first (the first one there is, else None)."""
    flow_ids = [line.get("flow") for line in config["lines"] if line.get("flow")]
    for flow in sorted(config["flows"], key=lambda f: f["id"] not in flow_ids):
        for node in flow["nodes"].values():
            if node["type"] == "time":
                found = find_index(config["time_conditions"], node["condition"])
                if found is not None:
                    return config["time_conditions"][found]
    return config["time_conditions"][0] if config["time_conditions"] else None


def _people_form(config, condition):
    values = {}
    for i, operator in enumerate(config["operators"]):
        values[f"op-{i}-name"], values[f"op-{i}-number"] = operator["name"], operator["number"]
    if condition is not None:
        hours = condition["weekly"].get("mon") or []
        if hours and hours[0] != ["00:00", "24:00"]:  # round the clock: nothing to narrow yet
            values["from"], values["to"] = hours[0]
    return values


def _save_operators(config):
    """Send the operators typed in the rows, if any changed; {field: message} when refused."""
    operators = [dict(operator) for operator in config["operators"]]
    groups = sorted({group for queue in config["queues"] for group in queue["groups"]})
    fields = FieldMap("operators")
    rows = len(operators) + OPERATOR_ROWS
    for row in range(rows):
        name = request.form.get(f"op-{row}-name", "").strip()
        number = request.form.get(f"op-{row}-number", "").strip()
        if row < len(operators):
            operators[row].update(name=name or operators[row]["name"], number=number or operators[row]["number"])
            index = row
        elif name or number:
            if not name:
                return {f"op-{row}-name": _("Enter the operator's name.")}
            operators.append({"id": new_id(name, {o["id"] for o in operators}, "op"), "name": name,
                              "number": number, "groups": list(groups)})
            index = len(operators) - 1
        else:
            continue
        for key in ("name", "number"):
            fields.add(f"[{index}].{key}", f"op-{row}-{key}")
        fields.add(f"[{index}]", f"op-{row}-number")
    if operators == config["operators"]:
        return {}
    answer = save_section("operators", operators, "onboarding.operators")
    return {} if answer["saved"] else fields.errors(answer)


def _save_hours(config, condition):
    """Weekdays from/to into the condition (Saturday and Sunday closed); nothing typed keeps the hours."""
    start, end = request.form.get("from", "").strip(), request.form.get("to", "").strip()
    if not start and not end:
        return {}
    if not CLOCK.match(start) or not CLOCK.match(end):
        return {"hours": _("Enter the hours as HH:MM, such as 09:00 and 17:00.")}
    weekly = {day: [[start, end]] if day in WEEKDAYS else [] for day in condition["weekly"]}
    if weekly == condition["weekly"]:
        return {}
    conditions = [dict(item) for item in config["time_conditions"]]
    index = find_index(conditions, condition["id"])
    conditions[index]["weekly"] = weekly
    answer = save_section("time_conditions", conditions, "onboarding.hours")
    if not answer["saved"]:
        return {"hours": answer["message"]}
    return {}


def _people_page(config, condition, form, errors, status=200):
    return page("onboarding_people.html", "people", status, operators=config["operators"],
                rows=len(config["operators"]) + OPERATOR_ROWS, condition=condition, form=form, errors=errors)


# --- 5. a test call -------------------------------------------------------------------------


@bp.route("/test")
@role_required("admin")
def test():
    """A button that rings the new flow from a virtual caller, or how to call the box on a real one."""
    config = load_config()["config"]
    twin = twin_state()
    live, engine_error = _live_lines()
    line = test_line(config, live, twin)
    flow = next((f for f in config["flows"] if line and f["id"] == line.get("flow")), None)
    return page("onboarding_test.html", "test", line=line, flow=flow, twin=twin, engine_error=engine_error,
                digits=keys_to_queue(flow) if flow else "", default_from=DEFAULT_FROM)


def test_line(config, live, twin):
    """The line to try: one that is up and has a flow, a virtual one when the twin runs."""
    up = {item["id"] for item in live if item.get("state") == "up"}
    virtual = {modem["line"] for modem in (twin or {}).get("modems", [])}
    candidates = [line for line in config["lines"] if line.get("flow") and line.get("enabled", True)]
    for wanted in (lambda l: l["id"] in up and l["id"] in virtual, lambda l: l["id"] in up, lambda l: True):
        found = next((line for line in candidates if wanted(line)), None)
        if found is not None:
            return found
    return None


def keys_to_queue(flow):
    """The keys a caller presses to reach the flow's first queue ("" when no menu stands in the way)."""
    nodes, keys, node_id, seen = flow["nodes"], "", flow["start"], set()
    while node_id in nodes and node_id not in seen:
        seen.add(node_id)
        node = nodes[node_id]
        if node["type"] == "queue":
            return keys
        if node["type"] == "menu":
            options = node.get("options", {})
            key = next((k for k in sorted(options) if nodes.get(options[k], {}).get("type") == "queue"), None)
            if key is None:
                return keys
            keys, node_id = keys + key, options[key]
            continue
        node_id = node.get("open") or node.get("next")
    return keys
