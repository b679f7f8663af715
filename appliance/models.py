"""The configuration's typed models: every field's type, range and default in one place.

``appliance.config.validate`` checks each item of a section against its model here, then
checks what a single item cannot know (references between sections, duplicate ids). A
line is a ``SipLine`` or a ``ModemLine``, told apart by its driver; a modem's power
switch by its kind. The IVR nodes are in ``flows.py``, next to the graph checks.
The OpenAPI description (web_ui/openapi.py) takes its configuration schemas from here.
"""
import re
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter

from firmware.panel import DEFAULT_PIN_MAP, HOLD_SECONDS

from .health import DEFAULTS as HEALTH_DEFAULTS
from .validation import (ID_PATTERN, LINE_DRIVERS, NOTIFY_EVENTS, SIP_CODECS, STRATEGIES, VIRTUAL_MODELS, Amount,
                         Flag, Identifier, IpAddress, Key, Language, Number, NumberOrUri, OptionalText, Peers,
                         Section, Text, list_of, matching, nullable, one_of, seconds, whole)

# Where a line bound by IMEI or ICCID looks for its modem (relative: in the data directory).
DEFAULT_MODEM_PORTS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "dev/*-at")
DEFAULT_EVENTS = ("call.missed", "voicemail")
# How a virtual phone treats a call: see hardware/virtual/phones.py.
PHONE_BEHAVIOURS = ("answer", "busy", "no answer", "reject", "voicemail", "refuse")
GPIO = whole(0, 27)


def _full(pattern):
    """``pattern`` matched against the whole text (no trailing newline slips through)."""
    return re.compile(pattern)


# The field types the models below share or name; each carries its own refusal message.
RecordingMode = one_of(("mono", "stereo", "off"))
RecordingFormat = one_of(("wav", "flac", "ogg", "mp3"))
AnonymousCalls = one_of(("allow", "block"))
ConditionId = matching(ID_PATTERN, "must be the id of a time condition")
PortPatterns = list_of(lambda p: isinstance(p, str) and bool(p.strip()),
                      "must be a list of port patterns such as /dev/ttyUSB*", {"type": "string"})
UsbDevice = matching(re.compile(r"^/dev/(bus/usb|hotline)/"),
                     "must be a USB device node such as /dev/hotline/sim7600-1.2-usb or /dev/bus/usb/001/004")
PowerKind = one_of(("gpio", "usb", "virtual"))
Imei = matching(_full(r"\d{15}"), "must be the IMEI digits, in quotes")
Iccid = matching(_full(r"\d{18,22}"), "must be the ICCID digits, in quotes")
SimPin = matching(_full(r"\d{4,8}"), "must be 4 to 8 digits, in quotes")
UssdCode = matching(_full(r"[*#][0-9*#]{1,30}"), "must be a USSD code such as *100#")
SmsMode = one_of(("pdu", "text"))
Codecs = list_of(lambda c: c in SIP_CODECS, f"must be a list of {', '.join(SIP_CODECS)}",
                 {"enum": list(SIP_CODECS)}, empty=False)
DtmfMode = one_of(("rfc2833", "info"))
GroupNames = list_of(lambda g: isinstance(g, str) and bool(ID_PATTERN.match(g)),
                     "must be a list of group names such as bachelor", {"type": "string"})
PromptSource = one_of(("text", "upload"))
QueueGroups = list_of(lambda g: True, "must list at least one operator group", {"type": "string"}, empty=False)
NumberOrPrefix = matching(_full(r"\+?[0-9]{3,15}\*?"), "must be a number, or a prefix ending in * (+7900*)")
EmailAddresses = list[matching(_full(r"[^@\s]+@[^@\s]+"), "must be an e-mail address")]
WebhookUrls = list[matching(re.compile(r"^https?://[^\s]+$"), "must be an http:// or https:// URL")]
GpioList = list_of(lambda p: True, "must be a list of GPIO numbers, one per line", {"type": "integer"})
SetClock = one_of(("auto", "on", "off"))


class Settings(Section):
    """The box as a whole: its name, language, zone, recording and call-back rules."""

    recording: RecordingMode = "mono"
    recording_format: RecordingFormat = "ogg"
    anonymous: AnonymousCalls = "allow"
    retention_days: whole(0, 3650) = 0
    min_free_mb: whole(0, 1_000_000) = 200
    callback_retries: whole(0, 20) = 3
    callback_retry_minutes: whole(1, 1440) = 30
    callback_hours: ConditionId = None
    missed_sms: OptionalText = None
    operator_sms_commands: Flag = True
    box_name: Text
    language: Language
    timezone: Text
    max_call_seconds: whole(10, 86400)
    greeting: Any = None
    modem_poll_seconds: whole(1, 3600) = 30
    modem_ports: PortPatterns = Field(
        default_factory=lambda: list(DEFAULT_MODEM_PORTS))


class GpioPower(Section):
    """A modem's power key on a GPIO pin (and optionally its reset pin)."""

    kind: Literal["gpio"]
    pin: GPIO
    reset_pin: GPIO = None
    active_high: Any = None
    pulse_seconds: Any = None


class UsbPower(Section):
    """A modem power-cycled by resetting its USB device (the udev rules' stable link)."""

    kind: Literal["usb"]
    device: UsbDevice


class VirtualPower(Section):
    """The twin's power switch of an emulated modem."""

    kind: Literal["virtual"]


class UnknownPower(Section):
    """A power switch of a kind the box does not know: refused at its kind."""

    model_config = Section.model_config | {"extra": "allow"}
    kind: PowerKind


def _power_kind(value):
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return f"~{kind}" if kind in ("gpio", "usb", "virtual") else "~unknown"


Power = Annotated[Union[Annotated[GpioPower, Tag("~gpio")], Annotated[UsbPower, Tag("~usb")],
                        Annotated[VirtualPower, Tag("~virtual")], Annotated[UnknownPower, Tag("~unknown")]],
                  Discriminator(_power_kind)]


class LineBase(Section):
    """What every line has: id, name, driver, calls in and out, its greeting and flow."""

    inbound: Flag = True
    outbound: Flag = True
    enabled: Flag = True
    id: Identifier
    name: OptionalText = None
    greeting: Any = None
    flow: Any = None


class ModemLine(LineBase):
    """A GSM modem or a voice modem, on its ports or found by its IMEI or SIM ICCID."""

    driver: one_of(LINE_DRIVERS)
    imei: Imei = None
    iccid: Iccid = None
    port: OptionalText = None
    audio_port: OptionalText = None
    rings: whole(1, 15) = None  # rings before an analog line answers (default 2)
    pin: SimPin = None
    microphone_gain: whole(0, 100) = None
    speaker_gain: whole(0, 100) = None
    power: Power = None
    balance_ussd: UssdCode = None
    balance_check_hours: whole(0, 24 * 31) = None
    sms_mode: SmsMode = None
    volte: Flag = None
    low_balance: Amount = None


class SipLine(LineBase):
    """A SIP trunk that registers to a provider, or calls from listed peers without registration."""

    driver: Literal["sip"]
    bind: IpAddress = "0.0.0.0"
    sip_port: whole(0, 65535) = 5060  # 0: any free port (hotline status shows which)
    rtp_port: whole(0, 65535) = 4000
    reregister_seconds: whole(30, 86400) = 300
    keepalive_seconds: whole(0, 600) = 15
    channels: whole(1, 64) = 4
    registrar: Any = None
    username: Any = None
    password: Any = None
    auth_realm: Any = None
    peers: Peers = Field(default_factory=list)
    codecs: Codecs = Field(default_factory=lambda: list(SIP_CODECS))
    dtmf: DtmfMode = "rfc2833"


SIP_KEYS = tuple(name for name in SipLine.model_fields if name not in LineBase.model_fields and name != "driver")


def _driver(value):
    return "~sip" if isinstance(value, dict) and value.get("driver") == "sip" else "~modem"


Line = Annotated[Union[Annotated[SipLine, Tag("~sip")], Annotated[ModemLine, Tag("~modem")]],
                 Discriminator(_driver)]
LINE = TypeAdapter(Line)


class Operator(Section):
    """A person who answers: a mobile number or a SIP phone, in groups, on a shift."""

    id: Identifier
    name: Text
    number: NumberOrUri
    # A mobile must confirm with 1 (its voicemail would take the call); a SIP phone on a desk
    # need not: the default follows the number (config.py).
    confirm: Flag = None
    groups: GroupNames = Field(
        default_factory=list)
    shift: Any = None  # a time condition, checked by schedule.validate_time_condition
    wrap_up_seconds: whole(0, 600) = 0
    enabled: Flag = True


class Prompt(Section):
    """A prompt spoken from ``text``, or uploaded (``source: upload``) and converted to its WAV."""

    id: Identifier
    language: Language
    source: PromptSource = "text"
    text: OptionalText = None
    file_name: OptionalText = None


class Queue(Section):
    """Callers waiting for a group of operators, rung by a strategy."""

    id: Identifier
    name: OptionalText = None
    groups: QueueGroups
    strategy: one_of(STRATEGIES) = "ring_all"
    ring_timeout: whole(5, 120) = 20
    max_wait: whole(10, 3600) = 300
    max_length: whole(1, 500) = 20
    announce_every: whole(0, 600) = 30
    service_level_seconds: whole(1, 600) = 20
    retry_pause: whole(0, 60) = 2
    moh: Any = None
    accept_prompt: Any = None
    callback_key: Key = ""


class BlacklistEntry(Section):
    """A number, or a prefix ending in *, refused before the box answers."""

    number: NumberOrPrefix
    note: Any = None


class Smtp(Section):
    """The mail server that sends notifications and voicemail."""

    host: Text
    port: whole(1, 65535) = 25
    username: Any = None
    password: Any = None
    starttls: Any = None
    sender: Text = Field(alias="from")


class Notifications(Section):
    """Who hears of missed calls and voicemail: SMS, e-mail, signed webhooks."""

    email: Smtp = None
    sms_to: list[Number] = Field(default_factory=list)
    email_to: EmailAddresses = Field(default_factory=list)
    webhooks: WebhookUrls = Field(
        default_factory=list)
    events: list[one_of(NOTIFY_EVENTS)] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    webhook_secret: Any = None


class VirtualModem(Section):
    """An emulated modem of the twin, on a line's ports."""

    line: Any = Field()
    model: one_of(VIRTUAL_MODELS)
    number: Number
    pin: Any = None
    imei: Any = None
    # Emulated firmware without voice (Huawei ^CVOICE:1, or ERROR to AT^CVOICE?): the line
    # page and `hotline modem probe` must say so instead of failing the first call.
    voice: one_of(("ok", "locked", "error")) = None


class VirtualPhone(Section):
    """An emulated phone of the twin: an operator's mobile, or a caller."""

    behaviour: one_of(PHONE_BEHAVIOURS) = "answer"
    accept_key: Key = "1"
    accept_after: seconds(0, 60) = 1.0
    number: Number
    name: OptionalText = None
    answer_after: seconds(0, 60) = 1.0


class Virtual(Section):
    """The virtual twin: its modems and phones (demo mode and tests)."""

    modems: list[Any] = Field(default_factory=list)
    phones: list[Any] = Field(default_factory=list)


class Panel(Section):
    """The GPIO front panel: off unless enabled; pins default to hardware/pins.md's map."""

    enabled: Flag = False
    status_led: GPIO = DEFAULT_PIN_MAP["status_led"]
    line_leds: GpioList = Field(
        default_factory=lambda: list(DEFAULT_PIN_MAP["line_leds"]))
    button: nullable(GPIO) = DEFAULT_PIN_MAP["button"]  # null: no button fitted
    buzzer: nullable(GPIO) = DEFAULT_PIN_MAP["buzzer"]  # null: no buzzer fitted
    closed_switch: Any = None
    hold_seconds: whole(2, 60) = int(HOLD_SECONDS)


class Health(Section):
    """Health thresholds and notifications; every field has a default (health.DEFAULTS)."""

    check_seconds: whole(5, 3600) = HEALTH_DEFAULTS["check_seconds"]
    disk_warning_mb: whole(0, 1_000_000) = HEALTH_DEFAULTS["disk_warning_mb"]
    temperature_warning: whole(40, 110) = HEALTH_DEFAULTS["temperature_warning"]
    signal_warning_dbm: whole(-130, -50) = HEALTH_DEFAULTS["signal_warning_dbm"]
    notify: Flag = HEALTH_DEFAULTS["notify"]
    set_clock: SetClock = HEALTH_DEFAULTS["set_clock"]


# The sections whose items are checked by a model, for the OpenAPI description.
SECTION_MODELS = {"settings": Settings, "lines": Line, "operators": Operator, "prompts": Prompt, "queues": Queue,
                  "blacklist": BlacklistEntry, "notifications": Notifications, "virtual": Virtual,
                  "panel": Panel, "health": Health}
