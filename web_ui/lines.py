"""Lines: the list with live state, each line's configuration, and a line's own page.

A line's page shows its modem and SIM (or, for a SIP line, its address, registration and
channels), outages and SMS, with the test SMS and balance buttons. Its configuration form
edits every setting of a line without JSON; the SIM PIN and the SIP password are
write-only (never sent back to the browser). Which settings a line gets is decided by the
posted driver: a SIP line never gets modem settings (ports, PIN, audio levels) and a modem
line never gets SIP ones.
"""
import copy
import math
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.config import ID_PATTERN, LINE_DRIVERS, SIP_CODECS, SIP_KEYS
from appliance.errors import ApplianceError, ControlError

from .auth import role_required
from .configedit import EngineDown, load_config, save_section
from .db import get_engine
from .flows import describe_field

bp = Blueprint("lines", __name__, url_prefix="/lines")

NUMBER = re.compile(r"^\+?[0-9]{3,15}$")
MAX_SMS_TEXT = 1000
BINDINGS = ("port", "imei", "iccid")
COMMON_TEXT_FIELDS = ("name", "driver", "flow", "greeting")
MODEM_TEXT_FIELDS = ("port", "audio_port", "balance_ussd", "sms_mode")
TEXT_FIELDS = COMMON_TEXT_FIELDS + MODEM_TEXT_FIELDS
INTEGER_FIELDS = ("microphone_gain", "speaker_gain", "balance_check_hours", "rings")
SWITCHES = ("inbound", "outbound", "enabled")  # the engine defaults these to on
# What only a modem line has: none of it may reach a SIP line (the engine refuses unknown keys).
MODEM_KEYS = MODEM_TEXT_FIELDS + INTEGER_FIELDS + ("imei", "iccid", "low_balance", "pin", "volte", "power")
SIP_TEXT_FIELDS = ("bind", "registrar", "username", "auth_realm", "dtmf")
SIP_INTEGER_FIELDS = ("sip_port", "rtp_port", "reregister_seconds", "keepalive_seconds", "channels")
# What a new SIP line starts with in the form (the engine's defaults; auth_realm "*" once it registers).
SIP_DEFAULTS = {"bind": "0.0.0.0", "sip_port": 5060, "rtp_port": 4000, "reregister_seconds": 300,
                "keepalive_seconds": 15, "channels": 4, "dtmf": "rfc2833", "peers": [], "codecs": list(SIP_CODECS)}
DTMF_METHODS = ("rfc2833", "info")
RESERVED_IDS = ("new",)  # /lines/new is the form for a new line


@bp.errorhandler(EngineDown)
def _engine_down(err):
    """Without the engine there is no configuration to show or change: say so."""
    return render_template("lines.html", rows=[], engine_error=str(err)), 503


@bp.route("/")
@role_required("admin")
def index():
    """Every configured line with its live state."""
    config = load_config()["config"]
    try:
        live = {line["id"]: line for line in get_engine().request("status")["lines"]}
    except ApplianceError:
        live = {}
    rows = [{"line": line, "live": live.get(line["id"]), "binding": binding_text(line)} for line in config["lines"]]
    return render_template("lines.html", rows=rows, engine_error=None)


@bp.route("/new")
@role_required("admin")
def new():
    """The form for a new line."""
    config = load_config()["config"]
    return _form_page(config, None, _form_values({"driver": "auto"}), {})


@bp.route("/", methods=("POST",))
@role_required("admin")
def create():
    """Add a line."""
    config = load_config()["config"]
    line_id = request.form.get("id", "").strip()
    errors = _new_id_errors(config, line_id)
    line, form_errors = line_from_form(request.form, {"id": line_id})
    errors.update(form_errors)
    if errors:
        return _form_page(config, None, _posted_values(), errors, status=400)
    return _save(config, None, line, _("Line %(id)s added.", id=line_id))


@bp.route("/<line_id>/edit")
@role_required("admin")
def edit(line_id):
    """A line's configuration form."""
    config = load_config()["config"]
    line = _find(config, line_id)
    return _form_page(config, line, _form_values(line), {})


@bp.route("/<line_id>/edit", methods=("POST",))
@role_required("admin")
def update(line_id):
    """Save a line's configuration; the engine restarts the line only if something changed."""
    config = load_config()["config"]
    old = _find(config, line_id)
    line, errors = line_from_form(request.form, old)
    if errors:
        return _form_page(config, old, _posted_values(), errors, status=400)
    return _save(config, line_id, line, _("Line %(id)s saved.", id=line_id))


@bp.route("/<line_id>/delete", methods=("POST",))
@role_required("admin")
def delete(line_id):
    """Remove a line; refused while a campaign or a virtual modem still names it."""
    config = load_config()["config"]
    old = _find(config, line_id)
    remaining = [line for line in config["lines"] if line["id"] != line_id]
    answer = save_section("lines", remaining, "lines.delete")
    if not answer["saved"]:
        message = f"{describe_field(answer['field'], config)}: {answer['message']}"
        return _form_page(config, old, _form_values(old), {"delete": message}, status=400)
    flash(_("Line %(id)s deleted.", id=line_id))
    return redirect(url_for("lines.index"))


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
    configured = _configured(line_id)
    return render_template("line.html", line_id=line_id, details=details, error=None, form={},
                           can_edit=configured is not None, is_sip=_is_sip(details, configured),
                           binding=binding_text(configured) if configured else "")


@bp.route("/<line_id>/sms", methods=("POST",))
@role_required("admin")
def send_sms(line_id):
    """Send a test SMS through the line."""
    to, text = request.form.get("to", "").strip(), request.form.get("text", "")
    errors = {}
    if not NUMBER.fullmatch(to):
        errors["to"] = _("Enter a phone number such as +359888123456.")
    if not text.strip() or len(text) > MAX_SMS_TEXT:
        errors["text"] = _("Enter the message (up to %(n)s characters).", n=MAX_SMS_TEXT)
    if errors:
        return _page_with_errors(line_id, errors)
    try:
        result = get_engine().request("sms", line=line_id, to=to, text=text, timeout=120)
    except ApplianceError as err:
        return _page_with_errors(line_id, {"sms": str(err)})
    flash(_("SMS sent to %(to)s in %(parts)s part(s).", to=to, parts=result["parts"]))
    return redirect(url_for("lines.show", line_id=line_id))


@bp.route("/<line_id>/balance", methods=("POST",))
@role_required("admin", "supervisor")
def check_balance(line_id):
    """Ask the network for the SIM's balance now."""
    try:
        state = get_engine().request("balance", line=line_id, timeout=60)
    except ApplianceError as err:
        return _page_with_errors(line_id, {"balance": str(err)})
    flash(_("Balance: %(text)s", text=state["balance_text"]))
    return redirect(url_for("lines.show", line_id=line_id))


def _page_with_errors(line_id, errors):
    try:
        details = get_engine().request("line", line=line_id)
    except ApplianceError:
        details = None
    configured = _configured(line_id)
    return render_template("line.html", line_id=line_id, details=details, error=None, errors=errors,
                           form=request.form, can_edit=configured is not None,
                           is_sip=_is_sip(details, configured),
                           binding=binding_text(configured) if configured else ""), 400


def _is_sip(details, configured):
    """Whether the line is a SIP line (the engine's line state does not always carry its driver)."""
    if configured is not None:
        return configured.get("driver") == "sip"
    live = (details or {}).get("line") or {}
    return live.get("driver") == "sip" or live.get("family") == "sip"


# --- configuration ------------------------------------------------------------------------


def line_from_form(form, old):
    """The line a posted form describes, built on ``old`` so that fields it does not show (power) stay.

    The posted driver decides which fieldsets count: a SIP line takes the SIP fieldset and
    loses every modem setting; any other driver takes the modem fieldsets and loses the SIP ones.
    """
    line, errors = copy.deepcopy(old), {}
    for key in COMMON_TEXT_FIELDS:
        _set_or_drop(line, key, form.get(key, "").strip())
    for key in SWITCHES:
        line[key] = key in form
    if line.get("driver") == "sip":
        for key in MODEM_KEYS:
            line.pop(key, None)
        _sip_from_form(line, form)
    else:
        for key in SIP_KEYS:
            line.pop(key, None)
        errors.update(_modem_from_form(line, form))
    return line, errors


def _modem_from_form(line, form):
    """The modem fieldsets: how the box finds the modem, SIM, audio levels."""
    errors = {}
    for key in MODEM_TEXT_FIELDS:
        _set_or_drop(line, key, form.get(key, "").strip())
    binding = form.get("binding", "port")
    if binding not in BINDINGS:
        errors["binding"] = _("Choose how the box finds the modem.")
    for key in ("imei", "iccid"):
        # Only the chosen identity is kept: a line bound by IMEI must not also be held to an old ICCID.
        _set_or_drop(line, key, form.get(key, "").strip() if binding == key else "")
    for key in INTEGER_FIELDS:
        _set_or_drop(line, key, _number(form.get(key, ""), int))
    _set_or_drop(line, "low_balance", _number(form.get("low_balance", "").replace(",", "."), float))
    if "volte" in form:
        line["volte"] = True
    elif "volte" in line:
        line["volte"] = False  # written only once it was set, so an untouched line stays byte-equal
    _apply_secret(line, form, "pin")
    return errors


def _sip_from_form(line, form):
    """The SIP fieldset: where it listens, where it registers, who may call, channels and codecs."""
    for key in SIP_TEXT_FIELDS:
        _set_or_drop(line, key, form.get(key, "").strip())
    for key in SIP_INTEGER_FIELDS:
        _set_or_drop(line, key, _number(form.get(key, ""), int))
    line["peers"] = split_peers(form.get("peers", ""))
    # In the order the boxes come (the line's order of preference); an unknown one goes to the engine to refuse.
    line["codecs"] = list(dict.fromkeys(c.strip() for c in form.getlist("codecs") if c.strip()))
    if not line.get("registrar"):
        line.pop("auth_realm", None)  # a realm means something only to a registrar
        if not line.get("username") and not form.get("password", "").strip():
            line.pop("password", None)  # calls from peers only: a stored password has nothing left to log in to
    _apply_secret(line, form, "password")


def split_peers(text):
    """Allowed peers typed one per line or comma-separated, as a list (each once, in order)."""
    return list(dict.fromkeys(item.strip() for item in re.split(r"[,;\s]+", text) if item.strip()))


def _apply_secret(line, form, key):
    """A typed secret (PIN, password) replaces the old one, "remove" drops it, an empty field keeps it."""
    if form.get(f"{key}_remove"):
        line.pop(key, None)
    elif form.get(key, "").strip():
        line[key] = form[key].strip()


def _set_or_drop(line, key, value):
    if value in ("", None):
        line.pop(key, None)
    else:
        line[key] = value


def _number(text, kind):
    """``text`` as a number of ``kind``; as typed when it is not one, so that the engine names the problem."""
    text = text.strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if kind is float and value.is_integer() else value


def _save(config, line_id, line, done_message):
    """Send the lines section with ``line`` added or replaced; the form again with the refusal, if refused."""
    lines = copy.deepcopy(config["lines"])
    position = next((i for i, item in enumerate(lines) if item["id"] == line_id), None)
    if position is None:
        position = len(lines)
        lines.append(line)
    else:
        lines[position] = line
    answer = save_section("lines", lines, "lines.create" if line_id is None else "lines.update")
    if not answer["saved"]:
        old = None if line_id is None else _find(config, line_id)
        errors = _errors_for(answer, position, config)
        return _form_page(config, old, _posted_values(), errors, status=400)
    flash(done_message)
    return redirect(url_for("lines.index"))


def _errors_for(answer, position, config):
    """The refusal at the form field it names ("lines[2].pin" → pin), else above the form."""
    prefix = f"lines[{position}]."
    if answer["field"].startswith(prefix):
        field = answer["field"][len(prefix):].split(".")[0].split("[")[0]
        return {field: answer["message"]}
    return {"form": f"{describe_field(answer['field'], config)}: {answer['message']}"}


def _new_id_errors(config, line_id):
    if not ID_PATTERN.fullmatch(line_id) or line_id in RESERVED_IDS:
        return {"id": _("Use lower-case letters, digits, - or _, starting with a letter (not \"new\").")}
    if any(line["id"] == line_id for line in config["lines"]):
        return {"id": _("There is a line %(id)s already.", id=line_id)}
    return {}


def _find(config, line_id):
    """The configured line ``line_id``; 404 if there is none."""
    line = next((line for line in config["lines"] if line["id"] == line_id), None)
    if line is None:
        abort(404)
    return line


def _configured(line_id):
    """The configured line ``line_id``, or None (not configured, or the engine does not answer)."""
    try:
        return next((line for line in load_config()["config"]["lines"] if line["id"] == line_id), None)
    except EngineDown:
        return None


def binding_text(line):
    """How the box finds the line's modem (for a SIP line: where it listens and who it takes calls from), in words."""
    if line.get("driver") == "sip":
        port = line.get("sip_port", SIP_DEFAULTS["sip_port"]) or _("any port")
        address = f"{line.get('bind', SIP_DEFAULTS['bind'])}:{port}"
        parts = [_("SIP %(address)s via %(registrar)s", address=address, registrar=line["registrar"])
                 if line.get("registrar") else _("SIP %(address)s", address=address)]
        if line.get("peers"):
            parts.append(_("peers %(peers)s", peers=", ".join(line["peers"])))
        return ", ".join(parts)
    if line.get("imei"):
        return _("IMEI %(imei)s", imei=line["imei"])
    if line.get("iccid"):
        return _("SIM %(iccid)s", iccid=line["iccid"])
    return f"{line.get('port', '')} + {line.get('audio_port', '')}"


def _form_values(line):
    """A line as its form shows it; the PIN and the SIP password only as "set" or not.

    A modem line's form shows the SIP defaults too, so that switching it to SIP starts from them.
    """
    values = {key: "" if line.get(key) is None else str(line[key])
              for key in ("id", "imei", "iccid", "low_balance") + TEXT_FIELDS + INTEGER_FIELDS}
    values["binding"] = "imei" if line.get("imei") else "iccid" if line.get("iccid") else "port"
    for key in SWITCHES:
        values[key] = line.get(key, True)
    values["volte"] = bool(line.get("volte"))
    values["pin_set"] = bool(line.get("pin"))
    sip = line if line.get("driver") == "sip" else SIP_DEFAULTS
    for key in SIP_TEXT_FIELDS + SIP_INTEGER_FIELDS:
        value = sip.get(key, SIP_DEFAULTS.get(key))
        values[key] = "" if value is None else str(value)
    values["peers"] = "\n".join(sip.get("peers", []))
    values["codecs"] = list(sip.get("codecs", SIP_CODECS))
    values["password_set"] = bool(line.get("password"))
    return values


def _posted_values():
    """The posted form, to show again as typed (all but the PIN and the password)."""
    values = {key: request.form.get(key, "") for key in ("id", "binding", "imei", "iccid", "low_balance", "peers")
              + TEXT_FIELDS + INTEGER_FIELDS + SIP_TEXT_FIELDS + SIP_INTEGER_FIELDS}
    for key in SWITCHES + ("volte",):
        values[key] = key in request.form
    values["codecs"] = request.form.getlist("codecs")
    return values


def codec_choices(chosen):
    """The codecs as the form's boxes list them: the chosen ones first in their order, then the rest."""
    return [c for c in chosen if c in SIP_CODECS] + [c for c in SIP_CODECS if c not in chosen]


def _form_page(config, line, values, errors, status=200):
    """The configuration form of ``line`` (None: a new line)."""
    if line is not None:
        values["id"] = line["id"]  # not a field of the edit form: a line keeps its id
        values["pin_set"] = bool(line.get("pin"))
        values["password_set"] = bool(line.get("password"))
    prompts = sorted({p["id"] for p in config["prompts"]})
    page = render_template("lines_form.html", line=line, values=values, errors=errors, drivers=LINE_DRIVERS,
                           flows=[(f["id"], f.get("name") or f["id"]) for f in config["flows"]], prompts=prompts,
                           codecs=codec_choices(values.get("codecs", [])), dtmf_methods=DTMF_METHODS)
    return page, status
