"""What the configuration's models share: patterns, choices, typed fields and their errors.

A leaf module: it imports nothing of the appliance but ``errors``, so the configuration,
the IVR flows and the time conditions may all use it without importing each other.

Each typed field raises a ``PydanticCustomError`` carrying the box's own message
("must be a whole number from 5 to 120"); ``refusal`` turns pydantic's first error into
the ``ConfigError(field, message)`` users see, with the field path as the box has always
named it (``queues[0].ring_timeout``, ``flows[0].nodes.menu.timeout``).
"""
import ipaddress
import re
import zoneinfo
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator, model_validator
from pydantic import WithJsonSchema
from pydantic_core import PydanticCustomError, PydanticUndefined

from .errors import ConfigError

LANGUAGES = ("en", "bg", "uk", "ru")
LINE_DRIVERS = ("auto", "sim800", "sim7600", "e1550", "ec25", "voicemodem", "sip")
VIRTUAL_MODELS = ("sim800", "sim7600", "e1550", "ec25", "voicemodem")
STRATEGIES = ("ring_all", "round_robin", "longest_idle", "fewest_calls", "random", "fixed_order")
NOTIFY_EVENTS = ("call.started", "call.answered", "call.missed", "voicemail", "callback.done")
SIP_CODECS = ("PCMA", "PCMU", "G722", "opus")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
NUMBER_PATTERN = re.compile(r"^\+?[0-9]{3,15}$")
# sip:user@host[:port] as an operator's phone or a forwarding target (no parameters, no spaces;
# UDP only, so no sips:).
SIP_URI_PATTERN = re.compile(r"^sip:([A-Za-z0-9+._~-]+@)?[A-Za-z0-9.-]+(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}"
                             r"|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$")
SIP_USER_PATTERN = re.compile(r"^[A-Za-z0-9+._~-]{1,64}$")
HOST_NAME_PATTERN = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
KEY_PATTERN = re.compile(r"^[0-9*#]?$")


class _Missing:
    """Stands for a required field left out, so that the field's own check names the fault."""

    def __repr__(self):
        return "<missing>"


MISSING = _Missing()


class Refusal(str):
    """A typed field's message, kept in its metadata so that null and missing get the same words."""


class Section(BaseModel):
    """A part of the configuration: unknown fields refused, values checked when set too."""

    model_config = ConfigDict(extra="forbid", validate_default=False, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _mark_missing(cls, data):
        """A required field left out is checked as MISSING: "must be one of en, bg" says more than "required"."""
        if not isinstance(data, dict):
            return data
        absent = {field.alias or name: MISSING for name, field in cls.model_fields.items()
                  if field.is_required() and (field.alias or name) not in data and name not in data}
        return {**data, **absent} if absent else data

    @field_validator("*", mode="after")
    @classmethod
    def _not_empty(cls, value, info):
        """A field that must be there, or has a default, cannot be null (an optional one can)."""
        field = cls.model_fields[info.field_name]
        if value is None and NULLABLE in field.metadata:
            return value
        if value is MISSING or (value is None and (field.is_required() or field.default is not None
                                                   or field.default_factory)):
            own = [item for item in field.metadata if isinstance(item, Refusal)]
            raise refuse(own[0] if own else "required")
        return value


class _Nullable:
    """Marks a field whose null means "none" although its default is something (a panel's buzzer)."""

    def __repr__(self):
        return "<nullable>"


NULLABLE = _Nullable()


def nullable(kind):
    """``kind``, or null for none: a default applies only when the field is left out."""
    return Annotated[kind, NULLABLE]


def refuse(message):
    """The error a typed field raises: the box's own message, shown at the field."""
    return PydanticCustomError("hotline", message)


def field_type(test, message, schema, missing=None):
    """A field type: ``test(value)`` must hold, else ``message`` (``missing`` if left out); ``schema`` for the API."""
    def check(value):
        if value is MISSING:
            raise refuse(missing or message)
        if value is not None and not test(value):  # null: see Section._not_empty
            raise refuse(message)
        return value
    return Annotated[Any, BeforeValidator(check), WithJsonSchema(schema), Refusal(missing or message)]


def whole(low, high):
    """A whole number from ``low`` to ``high`` (true and false are not numbers)."""
    return field_type(lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
                    f"must be a whole number from {low} to {high}",
                    {"type": "integer", "minimum": low, "maximum": high})


def seconds(low, high):
    """A number of seconds from ``low`` to ``high``, fractions allowed."""
    return field_type(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high,
                    f"must be a number of seconds from {low} to {high}",
                    {"type": "number", "minimum": low, "maximum": high})


def one_of(choices):
    """One of ``choices``."""
    return field_type(lambda v: v in choices, f"must be one of {', '.join(choices)}", {"enum": list(choices)})


def matching(pattern, message):
    """Text matching ``pattern``: from its start if anchored with ^, else the whole text."""
    anchored = pattern.pattern.startswith("^")
    test = pattern.match if anchored else pattern.fullmatch
    schema = pattern.pattern if anchored else f"^(?:{pattern.pattern})$"
    return field_type(lambda v: isinstance(v, str) and bool(test(v)), message, {"type": "string", "pattern": schema})


def _is_text(value):
    return isinstance(value, str) and bool(value.strip())


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


def is_zone(value):
    """Whether ``value`` names a time zone of the tz database (Europe/Sofia)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


Flag = field_type(lambda v: isinstance(v, bool), "must be true or false", {"type": "boolean"})
Text = field_type(_is_text, "must be non-empty text", {"type": "string", "minLength": 1}, missing="required")
OptionalText = Text  # the same check; the field's default (None) makes it optional
Identifier = matching(ID_PATTERN, "required: lower-case letters, digits, - or _, starting with a letter")
Number = matching(NUMBER_PATTERN, "must be a phone number such as +359888123456")
NumberOrUri = field_type(lambda v: isinstance(v, str) and bool(NUMBER_PATTERN.match(v) or SIP_URI_PATTERN.match(v)),
                       "must be a phone number such as +359888123456 or a SIP URI such as sip:alice@192.168.1.20",
                       {"type": "string"})
Key = matching(KEY_PATTERN, "must be one key (0-9, * or #), or empty for none")
Language = one_of(LANGUAGES)
IpAddress = field_type(_is_ip, "must be an IP address such as 0.0.0.0 or 127.0.0.1", {"type": "string"})
Peers = field_type(lambda v: isinstance(v, list) and all(_is_peer(p) for p in v),
                 "must be a list of hosts or networks such as 192.168.1.10 or 192.168.1.0/24",
                 {"type": "array", "items": {"type": "string"}})
TimeZone = field_type(is_zone, "unknown time zone", {"type": "string"})
Amount = field_type(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                  "must be an amount such as 5 or 2.50", {"type": "number"})


def list_of(test, message, items_schema, empty=True):
    """A list whose every item passes ``test`` (and that has items, unless ``empty`` is allowed)."""
    return field_type(lambda v: isinstance(v, list) and (empty or bool(v)) and all(test(item) for item in v),
                    message, {"type": "array", "items": items_schema, "minItems": 0 if empty else 1})


# --- from pydantic's errors to the box's -------------------------------------------------


def path(where, loc):
    """``where`` and a pydantic location as the box names a field: lines[0].power.pin."""
    text = where
    for part in loc:
        if isinstance(part, str) and part.startswith("~"):
            continue  # a union's tag (see models.Line): not a field users know
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text


def _message(error):
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required"
    if error["type"] == "hotline":
        return error["msg"]
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return "must be an object"
    if error["type"] == "list_type":
        return "must be a list"
    return error["msg"]


def _first(errors):
    """The error users see first: an unknown field, then the others in the fields' order."""
    unknown = [error for error in errors if error["type"] == "extra_forbidden"]
    return (unknown or errors)[0]


def refusal(err, where):
    """``ConfigError`` for pydantic's ``err`` at ``where``."""
    error = _first(err.errors())
    return ConfigError(path(where, error["loc"]), _message(error))


def checked(model, item, where):
    """``model`` (a model or a TypeAdapter) validated from ``item``; ConfigError at ``where`` if refused."""
    validate = getattr(model, "validate_python", None) or model.model_validate
    try:
        return validate(item)
    except ValidationError as err:
        raise refusal(err, where) from err


def dump(model):
    """A model as the configuration's plain dict: fields given, and fields with a default, no others."""
    out = {}
    for name, field in type(model).model_fields.items():
        has_default = field.default is not PydanticUndefined and field.default is not None
        if name in model.model_fields_set or has_default or field.default_factory is not None:
            out[field.alias or name] = _plain(getattr(model, name))
    return out


def _plain(value):
    if isinstance(value, BaseModel):
        return dump(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value



# --- hand-written checks, for what is not a model yet (flows' graph, time conditions) ----


def no_unknown(item, where, known):
    """Refuse the first key of ``item`` not in ``known``."""
    for key in item:
        if key not in known:
            raise ConfigError(f"{where}.{key}" if where else key, "unknown field")


def identifier(item, where):
    """``item["id"]`` must be an id: lower-case letters, digits, - or _."""
    value = item.get("id")
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ConfigError(f"{where}.id", "required: lower-case letters, digits, - or _, starting with a letter")


def text(item, where, key, required=False):
    """``item[key]``, if there (or ``required``), must be non-empty text."""
    value = item.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", "required" if value is None else "must be non-empty text")
