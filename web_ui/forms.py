"""Form helpers the configuration pages share (operators, queues, hours, settings).

The map from the engine's refused field back to an input, the small converters from typed
text to a section's values, new ids, and the weekly-hours editor.
"""
import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from appliance import schedule

DAY_LABELS = {"mon": _l("Monday"), "tue": _l("Tuesday"), "wed": _l("Wednesday"),
              "thu": _l("Thursday"), "fri": _l("Friday"), "sat": _l("Saturday"),
              "sun": _l("Sunday")}
DAY_SHORT = {"mon": _l("Mon"), "tue": _l("Tue"), "wed": _l("Wed"),
             "thu": _l("Thu"), "fri": _l("Fri"), "sat": _l("Sat"),
             "sun": _l("Sun")}


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
