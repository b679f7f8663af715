"""The configuration: a TinyDB file with one writer, atomic writes and a last good copy.

``config.json`` in the data directory holds one TinyDB table per section. A document is
validated as a whole before it is written; a file that fails to parse or validate on
start is reported with the field named and the last good copy is used instead. With no
configuration at all the box starts the embedded demo.
"""
import copy
import json
import logging
import os

from tinydb import TinyDB
from tinydb.storages import Storage

from . import flows as flows_module
from . import models, schedule
from .errors import ConfigError
from .files import write_atomically
# The patterns and choices live in the leaf module validation.py and the defaults in
# models.py; they are named here too, where the rest of the box has always found them.
from .models import DEFAULT_EVENTS, DEFAULT_MODEM_PORTS, PHONE_BEHAVIOURS, SIP_KEYS  # noqa: F401
from .validation import (HOST_NAME_PATTERN, ID_PATTERN, LANGUAGES, LINE_DRIVERS, NOTIFY_EVENTS,  # noqa: F401
                         NUMBER_PATTERN, SIP_CODECS, SIP_URI_PATTERN, SIP_USER_PATTERN, STRATEGIES,
                         VIRTUAL_MODELS, checked, dump, is_zone, text)

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LAST_GOOD_FILE = "config.last-good.json"
SINGLE_SECTIONS = ("settings", "virtual", "notifications", "panel", "health")
LIST_SECTIONS = ("lines", "operators", "prompts", "flows", "queues", "time_conditions", "campaigns", "blacklist")

DEMO_DATES_SMS = ("Admissions 2026: applications 1-20 July, exams 25 July, results 5 August. "
                  "Прием 2026: документи 1-20 юли, изпити 25 юли, резултати 5 август.")

DEMO_CONFIG = {
    "settings": {
        "box_name": "Hot-line demo",
        "language": "en",
        "timezone": "Europe/Sofia",
        "max_call_seconds": 600,
        "greeting": "greeting",
        "recording": "stereo",
        "missed_sms": "We missed your call to the admissions hot-line and will call you back. "
                      "Пропуснахме обаждането ви и ще ви се обадим.",
    },
    "lines": [
        {"id": "gsm1", "name": "Demo SIM 1", "driver": "sim7600", "port": "dev/gsm1-at",
         "audio_port": "dev/gsm1-audio", "enabled": True, "power": {"kind": "virtual"}, "flow": "main"},
        {"id": "gsm2", "name": "Demo SIM 2", "driver": "sim7600", "port": "dev/gsm2-at",
         "audio_port": "dev/gsm2-audio", "enabled": True, "power": {"kind": "virtual"}, "flow": "main"},
        # Calls from a softphone or sipp on this machine, without registration, at the port
        # `hotline status` shows; disabled (and saying why) where pjsua2 is not installed.
        {"id": "sip1", "name": "Demo SIP line", "driver": "sip", "bind": "127.0.0.1", "sip_port": 0,
         "rtp_port": 0, "peers": ["127.0.0.1"], "channels": 4, "enabled": True, "flow": "main"},
    ],
    "operators": [
        {"id": "op1", "name": "Demo operator", "number": "+359700000100", "groups": ["admissions"],
         "wrap_up_seconds": 5},
    ],
    "prompts": [
        {"id": "greeting", "language": "en", "text": "Welcome to the admissions hot-line. This call is recorded."},
        {"id": "greeting", "language": "bg",
         "text": "Добре дошли на горещата линия за прием. Този разговор се записва."},
        {"id": "menu_main", "language": "en",
         "text": "For bachelor programmes, press 1. For master's programmes, press 2. For dormitories, press 3. "
                 "To receive the admission dates by text message, press 4. За български, натиснете 9."},
        {"id": "menu_main", "language": "bg",
         "text": "За бакалавърски програми натиснете 1. За магистърски програми натиснете 2. "
                 "За общежития натиснете 3. За да получите датите за прием с SMS, натиснете 4. "
                 "For English, press 9."},
        {"id": "choose_language", "language": "en", "text": "For English, press 1. За български, натиснете 2."},
        {"id": "sms_sent", "language": "en", "text": "We have sent you the admission dates by text message."},
        {"id": "sms_sent", "language": "bg", "text": "Изпратихме ви датите за прием с SMS."},
        {"id": "closed", "language": "en",
         "text": "The hot-line is closed now. We are open on weekdays from nine to five, and we will call you back."},
        {"id": "closed", "language": "bg",
         "text": "Горещата линия е затворена. Работим в делнични дни от девет до пет и ще ви се обадим."},
    ],
    "time_conditions": [
        # Open round the clock so that the demo answers whenever it is tried; the admissions
        # hours (Monday to Friday, 09:00-17:00) are one edit away on the hours page.
        {"id": "office", "name": "Hot-line hours",
         "weekly": {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
    ],
    "queues": [
        {"id": "bachelor", "name": "Bachelor programmes", "groups": ["admissions"], "strategy": "round_robin",
         "ring_timeout": 20, "max_wait": 180, "announce_every": 30, "callback_key": "5"},
        {"id": "master", "name": "Master's programmes", "groups": ["admissions"], "strategy": "round_robin",
         "ring_timeout": 20, "max_wait": 180, "announce_every": 30, "callback_key": "5"},
        {"id": "dormitories", "name": "Dormitories", "groups": ["admissions"], "strategy": "ring_all",
         "ring_timeout": 20, "max_wait": 180, "announce_every": 30, "callback_key": "5"},
    ],
    "flows": [
        {"id": "main", "name": "Admissions hot-line", "start": "hours", "nodes": {
            "hours": {"type": "time", "condition": "office", "open": "welcome", "closed": "closed"},
            "welcome": {"type": "play", "prompt": "greeting", "next": "menu"},
            "menu": {"type": "menu", "prompt": "menu_main", "timeout": 5, "retries": 2, "default": "bachelor",
                     "options": {"1": "bachelor", "2": "master", "3": "dormitories", "4": "dates",
                                 "9": "language"}},
            "language": {"type": "language", "prompt": "choose_language", "options": {"1": "en", "2": "bg"},
                         "next": "menu"},
            "bachelor": {"type": "queue", "queue": "bachelor", "overflow": "voicemail"},
            "master": {"type": "queue", "queue": "master", "overflow": "voicemail"},
            "dormitories": {"type": "queue", "queue": "dormitories", "overflow": "voicemail"},
            "dates": {"type": "sms", "text": DEMO_DATES_SMS, "prompt": "sms_sent", "next": "menu"},
            "voicemail": {"type": "voicemail", "max_seconds": 60, "next": "bye"},
            "closed": {"type": "callback", "prompt": "closed", "next": "bye"},
            "bye": {"type": "hangup", "prompt": "goodbye"},
        }},
    ],
    "virtual": {
        "modems": [
            {"line": "gsm1", "model": "sim7600", "number": "+359700000001"},
            {"line": "gsm2", "model": "sim7600", "number": "+359700000002"},
        ],
        "phones": [
            {"number": "+359700000100", "name": "Demo operator's mobile", "answer_after": 2.0},
        ],
    },
}


def demo_config():
    """A fresh copy of the embedded demo configuration."""
    return copy.deepcopy(DEMO_CONFIG)


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces its file atomically: temp file, fsync, rename."""

    def __init__(self, path, **_):
        self.path = path

    def read(self):
        """The whole document, or None when the file does not exist yet."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def write(self, data):
        """Replace the file with ``data`` so that a power cut leaves old or new, never half."""
        write_atomically(self.path, json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True))


class ConfigStore:
    """Reads and writes the configuration in a data directory; the engine is its one writer."""

    def __init__(self, data_dir):
        self.path = os.path.join(data_dir, CONFIG_FILE)
        self.last_good_path = os.path.join(data_dir, LAST_GOOD_FILE)
        self.problem = None  # why the file in force is not config.json, if it is not

    def load(self):
        """The configuration in force, writing the demo one first if there is none (writer only)."""
        if not os.path.exists(self.path) and not os.path.exists(self.last_good_path):
            log.info("no %s: starting the embedded demo configuration", self.path)
            self.save(demo_config())
        return self.read()

    def read(self):
        """The configuration in force: config.json, else the last good copy, else the demo."""
        self.problem = None
        if not os.path.exists(self.path) and not os.path.exists(self.last_good_path):
            return demo_config()
        try:
            return validate(_read_tables(self.path))
        except (ConfigError, ValueError, OSError) as err:
            self.problem = f"{CONFIG_FILE} refused: {err}"
            log.error("%s; using the last good configuration", self.problem)
        except (TypeError, KeyError, AttributeError) as err:  # a shape validation did not foresee
            self.problem = f"{CONFIG_FILE} refused: malformed ({type(err).__name__}: {err})"
            log.error("%s; using the last good configuration", self.problem)
        if os.path.exists(self.last_good_path):
            return validate(_read_tables(self.last_good_path))
        return demo_config()

    def save(self, document):
        """Validate ``document`` and make it the configuration; raise ConfigError if refused."""
        document = validate(document)
        for path in (self.path, self.last_good_path):
            _write_tables(path, document)
        self.problem = None
        return document


def _read_tables(path):
    db = TinyDB(path, storage=AtomicJSONStorage)
    try:
        document = {name: db.table(name).all() for name in db.tables()}
    except json.JSONDecodeError as err:
        raise ConfigError("(file)", f"not valid JSON: {err}") from err
    except AttributeError as err:  # valid JSON, but not tables of documents
        raise ConfigError("(file)", "not a TinyDB document of tables") from err
    finally:
        db.close()
    for name in SINGLE_SECTIONS:
        if name in document:
            rows = document[name]
            document[name] = dict(rows[0]) if rows else {}
    return {name: [dict(row) for row in rows] if name in LIST_SECTIONS else rows
            for name, rows in document.items()}


def _write_tables(path, document):
    tables = {}
    for name, value in document.items():
        rows = [value] if name in SINGLE_SECTIONS else value
        tables[name] = {str(i): row for i, row in enumerate(rows, start=1)}
    AtomicJSONStorage(path).write(tables)


# --- validation -------------------------------------------------------------------
# Each item is checked against its model (appliance/models.py: types, ranges, defaults);
# what follows here is what one item cannot know: references between sections, duplicate
# ids, and the few rules that tie one field to another.


def validate(document):
    """Return a checked copy of ``document``; raise ConfigError naming the first bad field."""
    if not isinstance(document, dict):
        raise ConfigError("(document)", "must be an object")
    for key in document:
        if key not in SINGLE_SECTIONS + LIST_SECTIONS:
            raise ConfigError(key, "unknown field")
    document = copy.deepcopy(document)
    settings = _settings(_section(document, "settings", dict))
    prompts = _items(document, "prompts", _prompt)
    lines = _items(document, "lines", _line)
    _sip_ports_unique(lines)
    operators = _items(document, "operators", _operator)
    refs = _references(document, settings, prompts, operators)
    queues = refs["queue_items"]
    flows = _items(document, "flows", lambda item, where: flows_module.validate_flow(item, where, refs))
    _line_references(settings, lines, refs, {flow["id"] for flow in flows})
    line_ids = {line["id"] for line in lines}
    flow_ids = {flow["id"] for flow in flows}
    campaigns = _items(document, "campaigns", lambda item, where: _campaign(item, where, line_ids, flow_ids))
    return {"settings": settings, "lines": lines, "operators": operators, "prompts": prompts,
            "time_conditions": refs["condition_items"], "queues": queues, "flows": flows, "campaigns": campaigns,
            "blacklist": _blacklist(_section(document, "blacklist", list)),
            "notifications": _notifications(_section(document, "notifications", dict)),
            "virtual": _virtual(document.get("virtual", {}), line_ids),
            "panel": _panel(_section(document, "panel", dict), lines, refs["conditions"]),
            "health": dump(checked(models.Health, _section(document, "health", dict), "health"))}


def _settings(settings):
    settings = dump(checked(models.Settings, settings, "settings"))
    if not is_zone(settings["timezone"]):
        raise ConfigError("settings.timezone", f"unknown time zone {settings['timezone']!r}")
    return settings


def _references(document, settings, prompts, operators):
    """The ids flows and lines may name; time conditions and queues are checked on the way."""
    from .prompts import SYSTEM_PROMPTS  # prompts imports this module

    prompt_ids = {prompt["id"] for prompt in prompts}
    _refers(settings.get("greeting"), prompt_ids, "settings.greeting", "prompt")
    conditions = _items(document, "time_conditions", schedule.validate_time_condition)
    groups = {group for operator in operators for group in operator["groups"]}
    queues = _items(document, "queues", lambda item, where: _queue(item, where, groups, prompt_ids | {"accept"}))
    return {"prompts": prompt_ids | set(SYSTEM_PROMPTS), "queues": {q["id"] for q in queues},
            "languages": set(LANGUAGES), "conditions": {c["id"] for c in conditions}, "prompt_ids": prompt_ids,
            "queue_items": queues, "condition_items": conditions}


def _line_references(settings, lines, refs, flow_ids):
    _refers(settings.get("callback_hours"), refs["conditions"], "settings.callback_hours", "time condition")
    for i, line in enumerate(lines):
        _refers(line.get("greeting"), refs["prompt_ids"], f"lines[{i}].greeting", "prompt")
        _refers(line.get("flow"), flow_ids, f"lines[{i}].flow", "flow")


def warnings(document):
    """What a valid configuration should still get a look: unreachable IVR nodes, overlapping campaigns."""
    found = [warning for flow in document["flows"] for warning in flows_module.flow_warnings(flow)]
    return found + schedule.campaign_overlaps(document["campaigns"])


def _section(document, name, kind):
    value = document.get(name, kind())
    if not isinstance(value, kind):
        raise ConfigError(name, f"must be {'an object' if kind is dict else 'a list'}")
    return value


def _items(document, name, check, key_field="id", prefix=""):
    items = _section(document, name, list)
    seen = set()
    for i, item in enumerate(items):
        where = f"{prefix}{name}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, "must be an object")
        item = items[i] = check(item, where) or item
        key = item[key_field] if name != "prompts" else (item["id"], item["language"])
        if key in seen:
            raise ConfigError(f"{where}.{key_field}", f"duplicate {name[:-1]} {key!r}")
        seen.add(key)
    return items


def _line(line, where):
    line = dump(checked(models.LINE, line, where))
    if line["driver"] == "sip":
        _sip_registration(line, where)
        return line
    bound = "imei" in line or "iccid" in line
    if not bound and line.get("port") is None:
        raise ConfigError(f"{where}.port", "required")
    # A voice modem (driver "voicemodem") streams its audio on its one port.
    if not bound and line["driver"] != "voicemodem" and line.get("audio_port") is None:
        raise ConfigError(f"{where}.audio_port", "required")
    return line


def _sip_ports_unique(lines):
    """Two SIP lines cannot listen on the same address and port (0: any free port is fine)."""
    seen = {}
    for i, line in enumerate(lines):
        if line.get("driver") != "sip" or not line["sip_port"]:
            continue
        key = (line["bind"], line["sip_port"])
        if key in seen:
            raise ConfigError(f"lines[{i}].sip_port", f"line {seen[key]} listens on {key[0]}:{key[1]} already")
        seen[key] = line["id"]


def _sip_registration(line, where):
    if line.get("registrar") is None:
        for key in ("username", "password", "auth_realm"):
            if key in line:
                raise ConfigError(f"{where}.{key}", "needs a registrar to register to")
        return
    if not (isinstance(line["registrar"], str) and SIP_URI_PATTERN.match(line["registrar"])):
        raise ConfigError(f"{where}.registrar", "must be a SIP URI such as sip:sip.provider.example (UDP: no sips:)")
    for key in ("username", "password"):
        text(line, where, key, required=True)
    if not SIP_USER_PATTERN.match(line["username"]):
        raise ConfigError(f"{where}.username", "must be letters, digits and + . _ ~ - only, as the provider gave it")
    line.setdefault("auth_realm", "*")  # any realm the provider names: the default only a registrar needs
    text(line, where, "auth_realm")


def _operator(operator, where):
    shift = operator.get("shift")
    operator = dump(checked(models.Operator, operator, where))
    if operator.get("confirm") is None:  # a mobile confirms with 1; a SIP phone on a desk need not
        operator["confirm"] = not operator["number"].startswith(("sip:", "sips:"))
    if shift is not None:
        operator["shift"] = schedule.validate_time_condition(
            dict(shift, id=operator["id"]) if isinstance(shift, dict) else shift, f"{where}.shift")
    return operator


def _queue(queue, where, groups, prompt_ids):
    queue = dump(checked(models.Queue, queue, where))
    if not queue["groups"]:
        raise ConfigError(f"{where}.groups", "must list at least one operator group")
    for i, group in enumerate(queue["groups"]):
        if not isinstance(group, str) or group not in groups:
            raise ConfigError(f"{where}.groups[{i}]", f"no operator is in group {group!r}")
    for key in ("moh", "accept_prompt"):
        _refers(queue.get(key), prompt_ids, f"{where}.{key}", "prompt")
    return queue


def _campaign(campaign, where, line_ids, flow_ids):
    campaign = schedule.validate_campaign(campaign, where)
    for i, line_id in enumerate(campaign.get("lines") or []):
        _refers(line_id, line_ids, f"{where}.lines[{i}]", "line")
    _refers(campaign.get("flow"), flow_ids, f"{where}.flow", "flow")
    return campaign


def _blacklist(entries):
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"blacklist[{i}]", "must be an object such as {\"number\": \"+359888123456\"}")
        entries[i] = dump(checked(models.BlacklistEntry, entry, f"blacklist[{i}]"))
    return entries


def _notifications(notifications):
    notifications = dump(checked(models.Notifications, notifications, "notifications"))
    secret = notifications.get("webhook_secret")
    if secret not in (None, "") and not isinstance(secret, str):
        raise ConfigError("notifications.webhook_secret", "must be text (a long random phrase)")
    if notifications["webhooks"] and not secret:
        raise ConfigError("notifications.webhook_secret", "required when webhooks are set: receivers check it")
    return notifications


def _prompt(prompt, where):
    """A prompt is spoken from ``text``, or was uploaded (``source: upload``) and converted to its WAV."""
    prompt = dump(checked(models.Prompt, prompt, where))
    text(prompt, where, "text", required=prompt["source"] == "text")
    return prompt


def _virtual(virtual, line_ids):
    if not isinstance(virtual, dict):
        raise ConfigError("virtual", "must be an object")
    checked(models.Virtual, virtual, "virtual")
    modems = _items(virtual, "modems", lambda item, where: _modem(item, where, line_ids),
                    key_field="line", prefix="virtual.")
    phones = _items(virtual, "phones", lambda item, where: dump(checked(models.VirtualPhone, item, where)),
                    key_field="number", prefix="virtual.")
    numbers = [item["number"] for item in modems + phones]
    for number in numbers:
        if numbers.count(number) > 1:
            raise ConfigError("virtual", f"number {number} is used twice")
    return {"modems": modems, "phones": phones}


def _modem(modem, where, line_ids):
    modem = dump(checked(models.VirtualModem, modem, where))
    _refers(modem["line"], line_ids, f"{where}.line", "line")
    if modem.get("voice", "ok") != "ok" and modem["model"] != "e1550":
        raise ConfigError(f"{where}.voice", "only the e1550 (Huawei) emulator has firmware with voice locked")
    return modem


def _panel(panel, lines, condition_ids):
    """The front panel: the model's pins, each used once, none a modem's power key."""
    panel = dump(checked(models.Panel, panel, "panel"))
    for i, pin in enumerate(panel["line_leds"]):
        if isinstance(pin, bool) or not isinstance(pin, int) or not 0 <= pin <= 27:
            raise ConfigError(f"panel.line_leds[{i}]", "must be a whole number from 0 to 27")
    _refers(panel.get("closed_switch"), condition_ids, "panel.closed_switch", "time condition")
    pins = [pin for pin in (panel["status_led"], *panel["line_leds"], panel["button"], panel["buzzer"])
            if pin is not None]
    for pin in pins:
        if pins.count(pin) > 1:
            raise ConfigError("panel", f"GPIO {pin} is used twice")
    for i, line in enumerate(lines):
        power = line.get("power") or {}
        if panel["enabled"] and power.get("kind") == "gpio" and power.get("pin") in pins:
            raise ConfigError(f"lines[{i}].power.pin", f"GPIO {power['pin']} is the front panel's")
    return panel


def _refers(value, known, field, kind):
    if value is not None and (not isinstance(value, str) or value not in known):
        raise ConfigError(field, f"no {kind} {value!r}")
