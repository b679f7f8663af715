"""The configuration: a TinyDB file with one writer, atomic writes and a last good copy.

``config.json`` in the data directory holds one TinyDB table per section. A document is
validated as a whole before it is written; a file that fails to parse or validate on
start is reported with the field named and the last good copy is used instead. With no
configuration at all the box starts the embedded demo.
"""
import copy
import ipaddress
import json
import logging
import os
import re
import zoneinfo

from tinydb import TinyDB
from tinydb.storages import Storage

from . import flows as flows_module
from . import schedule
from .errors import ConfigError
from .files import write_atomically

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LAST_GOOD_FILE = "config.last-good.json"
LANGUAGES = ("en", "bg", "uk", "ru")
LINE_DRIVERS = ("auto", "sim800", "sim7600", "e1550", "ec25", "voicemodem", "sip")
VIRTUAL_MODELS = ("sim800", "sim7600", "e1550", "ec25", "voicemodem")
# How a virtual phone treats a call: see hardware/virtual/phones.py.
PHONE_BEHAVIOURS = ("answer", "busy", "no answer", "reject", "voicemail", "refuse")
SINGLE_SECTIONS = ("settings", "virtual", "notifications", "panel", "health")
LIST_SECTIONS = ("lines", "operators", "prompts", "flows", "queues", "time_conditions", "campaigns", "blacklist")
STRATEGIES = ("ring_all", "round_robin", "longest_idle", "fewest_calls", "random", "fixed_order")
NOTIFY_EVENTS = ("call.started", "call.answered", "call.missed", "voicemail", "callback.done")
DEFAULT_EVENTS = ("call.missed", "voicemail")
# Where a line bound by IMEI or ICCID looks for its modem (relative: in the data directory).
DEFAULT_MODEM_PORTS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "dev/*-at")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
NUMBER_PATTERN = re.compile(r"^\+?[0-9]{3,15}$")
# sip:user@host[:port] as an operator's phone or a forwarding target (no parameters, no spaces;
# UDP only, so no sips:).
SIP_URI_PATTERN = re.compile(r"^sip:([A-Za-z0-9+._~-]+@)?[A-Za-z0-9.-]+(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}"
                             r"|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$")
SIP_USER_PATTERN = re.compile(r"^[A-Za-z0-9+._~-]{1,64}$")
SIP_KEYS = ("bind", "sip_port", "rtp_port", "registrar", "username", "password", "auth_realm",
            "reregister_seconds", "keepalive_seconds", "peers", "channels", "codecs", "dtmf")
SIP_CODECS = ("PCMA", "PCMU", "G722", "opus")
HOST_NAME_PATTERN = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")

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


def validate(document):
    """Return a checked copy of ``document``; raise ConfigError naming the first bad field."""
    if not isinstance(document, dict):
        raise ConfigError("(document)", "must be an object")
    _no_unknown(document, "", SINGLE_SECTIONS + LIST_SECTIONS)
    document = copy.deepcopy(document)
    settings = _settings(_section(document, "settings", dict))
    prompts = _items(document, "prompts", _prompt)
    lines = _items(document, "lines", _line)
    _sip_ports_unique(lines)
    operators = _items(document, "operators", _operator)
    prompt_ids = {prompt["id"] for prompt in prompts}
    _refers(settings.get("greeting"), prompt_ids, "settings.greeting", "prompt")
    conditions = _items(document, "time_conditions", _time_condition)
    groups = {group for operator in operators for group in operator["groups"]}
    queues = _items(document, "queues", lambda item, where: _queue(item, where, groups, prompt_ids | {"accept"}))
    from .prompts import SYSTEM_PROMPTS  # prompts imports this module

    refs = {"prompts": prompt_ids | set(SYSTEM_PROMPTS), "queues": {q["id"] for q in queues}, "languages": set(LANGUAGES),
            "conditions": {c["id"] for c in conditions}}
    flows = _items(document, "flows", lambda item, where: flows_module.validate_flow(item, where, refs))
    flow_ids = {flow["id"] for flow in flows}
    _refers(settings.get("callback_hours"), refs["conditions"], "settings.callback_hours", "time condition")
    for i, line in enumerate(lines):
        _refers(line.get("greeting"), prompt_ids, f"lines[{i}].greeting", "prompt")
        _refers(line.get("flow"), flow_ids, f"lines[{i}].flow", "flow")
    line_ids = {line["id"] for line in lines}
    campaigns = _items(document, "campaigns", lambda item, where: _campaign(item, where, line_ids, flow_ids))
    blacklist = _blacklist(_section(document, "blacklist", list))
    notifications = _notifications(_section(document, "notifications", dict))
    virtual = _virtual(document.get("virtual", {}), line_ids)
    panel = _panel(_section(document, "panel", dict), lines, refs["conditions"])
    health = _health(_section(document, "health", dict))
    return {"settings": settings, "lines": lines, "operators": operators, "prompts": prompts,
            "time_conditions": conditions, "queues": queues, "flows": flows, "campaigns": campaigns,
            "blacklist": blacklist, "notifications": notifications, "virtual": virtual,
            "panel": panel, "health": health}


def warnings(document):
    """What a valid configuration should still get a look: unreachable IVR nodes, overlapping campaigns."""
    found = [text for flow in document["flows"] for text in flows_module.flow_warnings(flow)]
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


def _settings(settings):
    _no_unknown(settings, "settings", ("box_name", "language", "timezone", "max_call_seconds", "greeting",
                                       "modem_poll_seconds", "modem_ports", "recording", "recording_format",
                                       "retention_days", "min_free_mb", "anonymous", "callback_retries",
                                       "callback_retry_minutes", "callback_hours", "missed_sms",
                                       "operator_sms_commands"))
    _call_settings(settings)
    _text(settings, "settings", "box_name", required=True)
    _choice(settings, "settings", "language", LANGUAGES)
    _text(settings, "settings", "timezone", required=True)
    try:
        zoneinfo.ZoneInfo(settings["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError("settings.timezone", f"unknown time zone {settings['timezone']!r}") from err
    _integer(settings, "settings", "max_call_seconds", 10, 86400)
    settings.setdefault("modem_poll_seconds", 30)
    _integer(settings, "settings", "modem_poll_seconds", 1, 3600)
    settings.setdefault("modem_ports", list(DEFAULT_MODEM_PORTS))
    ports = settings["modem_ports"]
    if not isinstance(ports, list) or not all(isinstance(p, str) and p.strip() for p in ports):
        raise ConfigError("settings.modem_ports", "must be a list of port patterns such as /dev/ttyUSB*")
    return settings


def _line(line, where):
    if isinstance(line, dict) and line.get("driver") == "sip":
        return _sip_line(line, where)
    _no_unknown(line, where, ("id", "name", "driver", "port", "audio_port", "enabled", "greeting", "pin",
                              "microphone_gain", "speaker_gain", "power", "balance_ussd",
                              "balance_check_hours", "low_balance", "imei", "iccid", "sms_mode", "volte",
                              "flow", "inbound", "outbound", "rings"))
    _line_common(line, where)
    bound = _binding(line, where)
    _text(line, where, "port", required=not bound)
    # A voice modem (driver "voicemodem") streams its audio on its one port.
    _text(line, where, "audio_port", required=not bound and line.get("driver") != "voicemodem")
    if "rings" in line:
        _integer(line, where, "rings", 1, 15)  # rings before an analog line answers (default 2)
    if "pin" in line and not (isinstance(line["pin"], str) and re.fullmatch(r"\d{4,8}", line["pin"])):
        raise ConfigError(f"{where}.pin", "must be 4 to 8 digits, in quotes")
    for key in ("microphone_gain", "speaker_gain"):
        if key in line:
            _integer(line, where, key, 0, 100)
    if "power" in line:
        _power(line["power"], f"{where}.power")
    if "balance_ussd" in line and not re.fullmatch(r"[*#][0-9*#]{1,30}", str(line["balance_ussd"])):
        raise ConfigError(f"{where}.balance_ussd", "must be a USSD code such as *100#")
    if "balance_check_hours" in line:
        _integer(line, where, "balance_check_hours", 0, 24 * 31)
    if "sms_mode" in line:
        _choice(line, where, "sms_mode", ("pdu", "text"))
    if "volte" in line and not isinstance(line["volte"], bool):
        raise ConfigError(f"{where}.volte", "must be true or false")
    low = line.get("low_balance")
    if low is not None and (isinstance(low, bool) or not isinstance(low, (int, float))):
        raise ConfigError(f"{where}.low_balance", "must be an amount such as 5 or 2.50")


def _line_common(line, where):
    """What every line has: id, name, driver, enabled, calls in and out."""
    for key in ("inbound", "outbound", "enabled"):
        line.setdefault(key, True)
        if not isinstance(line[key], bool):
            raise ConfigError(f"{where}.{key}", "must be true or false")
    _identifier(line, where)
    _text(line, where, "name")
    _choice(line, where, "driver", LINE_DRIVERS)


def _sip_line(line, where):
    """A SIP line: a trunk that registers to a provider, or calls from listed peers without registration."""
    _no_unknown(line, where, ("id", "name", "driver", "enabled", "greeting", "flow", "inbound", "outbound")
                + SIP_KEYS)
    _line_common(line, where)
    line.setdefault("bind", "0.0.0.0")
    if not _is_ip(line["bind"]):
        raise ConfigError(f"{where}.bind", "must be an IP address such as 0.0.0.0 or 127.0.0.1")
    for key, default in (("sip_port", 5060), ("rtp_port", 4000)):
        line.setdefault(key, default)
        _integer(line, where, key, 0, 65535)  # 0: any free port (hotline status shows which)
    for key, default, low, high in (("reregister_seconds", 300, 30, 86400), ("keepalive_seconds", 15, 0, 600),
                                    ("channels", 4, 1, 64)):
        line.setdefault(key, default)
        _integer(line, where, key, low, high)
    _sip_registration(line, where)
    line.setdefault("peers", [])
    peers = line["peers"]
    if not isinstance(peers, list) or not all(_is_peer(p) for p in peers):
        raise ConfigError(f"{where}.peers", "must be a list of hosts or networks such as 192.168.1.10 or "
                                            "192.168.1.0/24")
    line.setdefault("codecs", list(SIP_CODECS))
    codecs = line["codecs"]
    if not isinstance(codecs, list) or not codecs or not all(c in SIP_CODECS for c in codecs):
        raise ConfigError(f"{where}.codecs", f"must be a list of {', '.join(SIP_CODECS)}")
    line.setdefault("dtmf", "rfc2833")
    _choice(line, where, "dtmf", ("rfc2833", "info"))


def _is_ip(value):
    try:
        ipaddress.ip_address(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_peer(value):
    """A host name, an IP address or a network (192.168.1.0/24)."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return bool(HOST_NAME_PATTERN.match(value))
    return True


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
    if "registrar" not in line:
        for key in ("username", "password", "auth_realm"):
            if key in line:
                raise ConfigError(f"{where}.{key}", "needs a registrar to register to")
        return
    if not (isinstance(line["registrar"], str) and SIP_URI_PATTERN.match(line["registrar"])):
        raise ConfigError(f"{where}.registrar", "must be a SIP URI such as sip:sip.provider.example (UDP: no sips:)")
    for key in ("username", "password"):
        _text(line, where, key, required=True)
    if not SIP_USER_PATTERN.match(line["username"]):
        raise ConfigError(f"{where}.username", "must be letters, digits and + . _ ~ - only, as the provider gave it")
    line.setdefault("auth_realm", "*")
    _text(line, where, "auth_realm")


def _binding(line, where):
    """Whether the line is bound to its modem by IMEI or SIM ICCID rather than by port."""
    for key, pattern in (("imei", r"\d{15}"), ("iccid", r"\d{18,22}")):
        if key in line and not (isinstance(line[key], str) and re.fullmatch(pattern, line[key])):
            raise ConfigError(f"{where}.{key}", f"must be the {key.upper()} digits, in quotes")
    return "imei" in line or "iccid" in line


def _power(power, where):
    if not isinstance(power, dict):
        raise ConfigError(where, "must be an object")
    _choice(power, where, "kind", ("gpio", "usb", "virtual"))
    known = {"gpio": ("kind", "pin", "reset_pin", "active_high", "pulse_seconds"), "usb": ("kind", "device"),
             "virtual": ("kind",)}[power["kind"]]
    _no_unknown(power, where, known)
    if power["kind"] == "gpio":
        _integer(power, where, "pin", 0, 27)
        if "reset_pin" in power:
            _integer(power, where, "reset_pin", 0, 27)
    # /dev/hotline/<model>-<port>-usb is the udev rules' stable link; the bus number is not stable.
    if power["kind"] == "usb" and not str(power.get("device", "")).startswith(("/dev/bus/usb/", "/dev/hotline/")):
        raise ConfigError(f"{where}.device", "must be a USB device node such as /dev/hotline/sim7600-1.2-usb "
                                             "or /dev/bus/usb/001/004")


def _operator(operator, where):
    _no_unknown(operator, where, ("id", "name", "number", "groups", "shift", "wrap_up_seconds", "enabled",
                                  "confirm"))
    _identifier(operator, where)
    _text(operator, where, "name", required=True)
    _number_or_uri(operator, where, "number")
    # A mobile must confirm with 1 (its voicemail would take the call); a SIP phone on a desk need not.
    operator.setdefault("confirm", not operator["number"].startswith(("sip:", "sips:")))
    if not isinstance(operator["confirm"], bool):
        raise ConfigError(f"{where}.confirm", "must be true or false")
    operator.setdefault("groups", [])
    groups = operator["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, str) and ID_PATTERN.match(g) for g in groups):
        raise ConfigError(f"{where}.groups", "must be a list of group names such as bachelor")
    if "shift" in operator:
        operator["shift"] = schedule.validate_time_condition(
            dict(operator["shift"], id=operator["id"]) if isinstance(operator["shift"], dict) else operator["shift"],
            f"{where}.shift")
    operator.setdefault("wrap_up_seconds", 0)
    _integer(operator, where, "wrap_up_seconds", 0, 600)
    operator.setdefault("enabled", True)
    if not isinstance(operator["enabled"], bool):
        raise ConfigError(f"{where}.enabled", "must be true or false")


def _time_condition(condition, where):
    return schedule.validate_time_condition(condition, where)


def _queue(queue, where, groups, prompt_ids):
    _no_unknown(queue, where, ("id", "name", "groups", "strategy", "ring_timeout", "max_wait", "max_length",
                               "announce_every", "moh", "callback_key", "accept_prompt", "service_level_seconds",
                               "retry_pause"))
    _identifier(queue, where)
    _text(queue, where, "name")
    wanted = queue.get("groups")
    if not isinstance(wanted, list) or not wanted:
        raise ConfigError(f"{where}.groups", "must list at least one operator group")
    for i, group in enumerate(wanted):
        if group not in groups:
            raise ConfigError(f"{where}.groups[{i}]", f"no operator is in group {group!r}")
    queue.setdefault("strategy", "ring_all")
    _choice(queue, where, "strategy", STRATEGIES)
    for key, default, low, high in (("ring_timeout", 20, 5, 120), ("max_wait", 300, 10, 3600),
                                    ("max_length", 20, 1, 500), ("announce_every", 30, 0, 600),
                                    ("service_level_seconds", 20, 1, 600), ("retry_pause", 2, 0, 60)):
        queue.setdefault(key, default)
        _integer(queue, where, key, low, high)
    for key in ("moh", "accept_prompt"):
        _refers(queue.get(key), prompt_ids, f"{where}.{key}", "prompt")
    key = queue.setdefault("callback_key", "")
    if not (isinstance(key, str) and re.fullmatch(r"[0-9*#]?", key)):
        raise ConfigError(f"{where}.callback_key", "must be one key (0-9, * or #), or empty for none")


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
        _no_unknown(entry, f"blacklist[{i}]", ("number", "note"))
        if not (isinstance(entry.get("number"), str) and re.fullmatch(r"\+?[0-9]{3,15}\*?", entry["number"])):
            raise ConfigError(f"blacklist[{i}].number", "must be a number, or a prefix ending in * (+7900*)")
    return entries


def _call_settings(settings):
    for key, default, choices in (("recording", "mono", ("mono", "stereo", "off")),
                                  ("recording_format", "ogg", ("wav", "flac", "ogg", "mp3")),
                                  ("anonymous", "allow", ("allow", "block"))):
        settings.setdefault(key, default)
        _choice(settings, "settings", key, choices)
    for key, default, low, high in (("retention_days", 0, 0, 3650), ("min_free_mb", 200, 0, 1_000_000),
                                    ("callback_retries", 3, 0, 20), ("callback_retry_minutes", 30, 1, 1440)):
        settings.setdefault(key, default)
        _integer(settings, "settings", key, low, high)
    if settings.get("callback_hours") is not None:
        _refers_later(settings, "callback_hours")
    if "missed_sms" in settings:
        _text(settings, "settings", "missed_sms")
    settings.setdefault("operator_sms_commands", True)
    if not isinstance(settings["operator_sms_commands"], bool):
        raise ConfigError("settings.operator_sms_commands", "must be true or false")


def _refers_later(settings, key):
    if not isinstance(settings[key], str) or not ID_PATTERN.match(settings[key]):
        raise ConfigError(f"settings.{key}", "must be the id of a time condition")


def _notifications(notifications):
    _no_unknown(notifications, "notifications", ("email", "webhooks", "sms_to", "email_to", "events",
                                                 "webhook_secret"))
    for key in ("sms_to", "email_to", "webhooks", "events"):
        if not isinstance(notifications.setdefault(key, [] if key != "events" else list(DEFAULT_EVENTS)), list):
            raise ConfigError(f"notifications.{key}", "must be a list")
    for i, number in enumerate(notifications["sms_to"]):
        if not isinstance(number, str) or not NUMBER_PATTERN.match(number):
            raise ConfigError(f"notifications.sms_to[{i}]", "must be a phone number such as +359888123456")
    for i, address in enumerate(notifications["email_to"]):
        if not (isinstance(address, str) and re.fullmatch(r"[^@\s]+@[^@\s]+", address)):
            raise ConfigError(f"notifications.email_to[{i}]", "must be an e-mail address")
    for i, url in enumerate(notifications["webhooks"]):
        if not (isinstance(url, str) and re.match(r"https?://[^\s]+$", url)):
            raise ConfigError(f"notifications.webhooks[{i}]", "must be an http:// or https:// URL")
    events = notifications["events"]
    for i, event in enumerate(events):
        if event not in NOTIFY_EVENTS:
            raise ConfigError(f"notifications.events[{i}]", f"must be one of {', '.join(NOTIFY_EVENTS)}")
    if "email" in notifications:
        _smtp(notifications["email"], "notifications.email")
    secret = notifications.get("webhook_secret")
    if secret not in (None, "") and not isinstance(secret, str):
        raise ConfigError("notifications.webhook_secret", "must be text (a long random phrase)")
    if notifications["webhooks"] and not secret:
        raise ConfigError("notifications.webhook_secret", "required when webhooks are set: receivers check it")
    return notifications


def _smtp(smtp, where):
    if not isinstance(smtp, dict):
        raise ConfigError(where, "must be an object")
    _no_unknown(smtp, where, ("host", "port", "username", "password", "starttls", "from"))
    _text(smtp, where, "host", required=True)
    smtp.setdefault("port", 25)
    _integer(smtp, where, "port", 1, 65535)
    _text(smtp, where, "from", required=True)


def _prompt(prompt, where):
    """A prompt is spoken from ``text``, or was uploaded (``source: upload``) and converted to its WAV."""
    _no_unknown(prompt, where, ("id", "language", "text", "source", "file_name"))
    _identifier(prompt, where)
    _choice(prompt, where, "language", LANGUAGES)
    prompt.setdefault("source", "text")
    _choice(prompt, where, "source", ("text", "upload"))
    _text(prompt, where, "text", required=prompt["source"] == "text")
    _text(prompt, where, "file_name")


def _virtual(virtual, line_ids):
    if not isinstance(virtual, dict):
        raise ConfigError("virtual", "must be an object")
    _no_unknown(virtual, "virtual", ("modems", "phones"))
    modems = _items(virtual, "modems", lambda item, where: _modem(item, where, line_ids),
                    key_field="line", prefix="virtual.")
    phones = _items(virtual, "phones", _phone, key_field="number", prefix="virtual.")
    numbers = [item["number"] for item in modems + phones]
    for number in numbers:
        if numbers.count(number) > 1:
            raise ConfigError("virtual", f"number {number} is used twice")
    return {"modems": modems, "phones": phones}


def _modem(modem, where, line_ids):
    _no_unknown(modem, where, ("line", "model", "number", "pin", "imei"))
    if "line" not in modem:
        raise ConfigError(f"{where}.line", "required")
    _refers(modem["line"], line_ids, f"{where}.line", "line")
    _choice(modem, where, "model", VIRTUAL_MODELS)
    _number(modem, where, "number")


def _phone(phone, where):
    _no_unknown(phone, where, ("number", "name", "answer_after", "behaviour", "accept_key", "accept_after"))
    phone.setdefault("behaviour", "answer")
    _choice(phone, where, "behaviour", PHONE_BEHAVIOURS)
    phone.setdefault("accept_key", "1")
    if not (isinstance(phone["accept_key"], str) and re.fullmatch(r"[0-9*#]?", phone["accept_key"])):
        raise ConfigError(f"{where}.accept_key", "must be one key (0-9, * or #), or empty for none")
    phone.setdefault("accept_after", 1.0)
    value = phone["accept_after"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
        raise ConfigError(f"{where}.accept_after", "must be a number of seconds from 0 to 60")
    _number(phone, where, "number")
    _text(phone, where, "name")
    phone.setdefault("answer_after", 1.0)
    value = phone["answer_after"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
        raise ConfigError(f"{where}.answer_after", "must be a number of seconds from 0 to 60")


def _panel(panel, lines, condition_ids):
    """The front panel (appliance issue): off unless enabled; pins default to hardware/pins.md's map."""
    from firmware.panel import DEFAULT_PIN_MAP, HOLD_SECONDS

    _no_unknown(panel, "panel", ("enabled", "status_led", "line_leds", "button", "buzzer", "closed_switch",
                                 "hold_seconds"))
    panel.setdefault("enabled", False)
    if not isinstance(panel["enabled"], bool):
        raise ConfigError("panel.enabled", "must be true or false")
    for key in ("status_led", "line_leds", "button", "buzzer"):
        panel.setdefault(key, copy.deepcopy(DEFAULT_PIN_MAP[key]))
    _integer(panel, "panel", "status_led", 0, 27)
    if not isinstance(panel["line_leds"], list):
        raise ConfigError("panel.line_leds", "must be a list of GPIO numbers, one per line")
    for i, pin in enumerate(panel["line_leds"]):
        if isinstance(pin, bool) or not isinstance(pin, int) or not 0 <= pin <= 27:
            raise ConfigError(f"panel.line_leds[{i}]", "must be a whole number from 0 to 27")
    for key in ("button", "buzzer"):
        if panel[key] is not None:
            _integer(panel, "panel", key, 0, 27)
    panel.setdefault("hold_seconds", int(HOLD_SECONDS))
    _integer(panel, "panel", "hold_seconds", 2, 60)
    _refers(panel.get("closed_switch"), condition_ids, "panel.closed_switch", "time condition")
    pins = [panel["status_led"], *panel["line_leds"], panel["button"], panel["buzzer"]]
    pins = [pin for pin in pins if pin is not None]
    for pin in pins:
        if pins.count(pin) > 1:
            raise ConfigError("panel", f"GPIO {pin} is used twice")
    for i, line in enumerate(lines):
        power = line.get("power") or {}
        if panel["enabled"] and power.get("kind") == "gpio" and power.get("pin") in pins:
            raise ConfigError(f"lines[{i}].power.pin", f"GPIO {power['pin']} is the front panel's")
    return panel


def _health(health):
    """Health thresholds and notifications (appliance issue); every field has a default."""
    from .health import DEFAULTS

    _no_unknown(health, "health", tuple(DEFAULTS))
    for key, value in DEFAULTS.items():
        health.setdefault(key, value)
    for key, low, high in (("check_seconds", 5, 3600), ("disk_warning_mb", 0, 1_000_000),
                           ("temperature_warning", 40, 110), ("signal_warning_dbm", -130, -50)):
        _integer(health, "health", key, low, high)
    if not isinstance(health["notify"], bool):
        raise ConfigError("health.notify", "must be true or false")
    _choice(health, "health", "set_clock", ("auto", "on", "off"))
    return health


def _no_unknown(item, where, known):
    for key in item:
        if key not in known:
            raise ConfigError(f"{where}.{key}" if where else key, "unknown field")


def _identifier(item, where):
    value = item.get("id")
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ConfigError(f"{where}.id", "required: lower-case letters, digits, - or _, starting with a letter")


def _text(item, where, key, required=False):
    value = item.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", "required" if value is None else "must be non-empty text")


def _choice(item, where, key, choices):
    if item.get(key) not in choices:
        raise ConfigError(f"{where}.{key}", f"must be one of {', '.join(choices)}")


def _integer(item, where, key, low, high):
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key}", f"must be a whole number from {low} to {high}")


def _number(item, where, key):
    value = item.get(key)
    if not isinstance(value, str) or not NUMBER_PATTERN.match(value):
        raise ConfigError(f"{where}.{key}", "must be a phone number such as +359888123456")


def _number_or_uri(item, where, key):
    value = item.get(key)
    if not isinstance(value, str) or not (NUMBER_PATTERN.match(value) or SIP_URI_PATTERN.match(value)):
        raise ConfigError(f"{where}.{key}", "must be a phone number such as +359888123456 or a SIP URI such as "
                                            "sip:alice@192.168.1.20")


def _refers(value, known, field, kind):
    if value is not None and value not in known:
        raise ConfigError(field, f"no {kind} {value!r}")
