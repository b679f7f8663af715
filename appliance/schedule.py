"""Time conditions (open hours, holidays, special days, manual switches) and campaigns.

A time condition is judged on the wall clock of its own time zone: 09:00-17:00 stays
09:00-17:00 on the days the clocks change, an instant in the repeated autumn hour is
judged by the wall time it shows, and a wall time skipped in spring simply never occurs.
Instants are compared in UTC only, because Python compares two datetimes that share a
ZoneInfo by wall time and ignores ``fold``.

A campaign (season) is a named, inclusive date range in the box's time zone that puts
another flow on some lines; when it ends the lines fall back to their own flow.
"""
import datetime as dt
import re
import zoneinfo

from .errors import ConfigError
from .validation import ID_PATTERN, identifier, no_unknown, text

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_CONDITION_FIELDS = ("id", "name", "timezone", "weekly", "holidays", "exceptions", "closed", "open")
CAMPAIGN_FIELDS = ("id", "name", "start", "end", "lines", "flow", "enabled")
CLOCK_PATTERN = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
END_OF_DAY = 24 * 60  # "24:00", in minutes; allowed only as the end of an interval
ONE_DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc


# --- validation of time conditions ---------------------------------------------------


def validate_time_condition(tc, where):
    """Return a normalised copy of time condition ``tc``; raise ConfigError naming the bad field."""
    _object(tc, where)
    no_unknown(tc, where, TIME_CONDITION_FIELDS)
    identifier(tc, where)
    text(tc, where, "name")
    result = {key: tc[key] for key in ("id", "name") if tc.get(key) is not None}
    if tc.get("timezone") is not None:  # absent: the box's zone, which may change later
        result["timezone"] = _timezone(tc["timezone"], _at(where, "timezone"))
    result["weekly"] = _weekly(tc.get("weekly", {}), _at(where, "weekly"))
    result["holidays"] = [_holiday(item, f"{where}.holidays[{i}]")
                          for i, item in enumerate(_list(tc, where, "holidays"))]
    result["exceptions"] = _exceptions(_list(tc, where, "exceptions"), _at(where, "exceptions"))
    result["closed"] = _flag(tc, where, "closed")
    result["open"] = _flag(tc, where, "open")
    return result


def _weekly(weekly, where):
    if not isinstance(weekly, dict):
        raise ConfigError(where, "must be an object with days mon ... sun")
    for key in weekly:
        if key not in WEEKDAYS:
            raise ConfigError(f"{where}.{key}", f"unknown day; use {', '.join(WEEKDAYS)}")
    # Every day is spelled out in the copy so that a missing day reads as "closed".
    return {day: _intervals(weekly.get(day, []), f"{where}.{day}") for day in WEEKDAYS}


def _intervals(hours, where):
    if not isinstance(hours, list):
        raise ConfigError(where, 'must be a list of intervals such as [["09:00", "17:00"]]')
    checked = [_interval(item, f"{where}[{i}]") for i, item in enumerate(hours)]
    return sorted(checked)


def _interval(item, where):
    if not (isinstance(item, (list, tuple)) and len(item) == 2):
        raise ConfigError(where, 'must be a pair of times such as ["09:00", "17:00"]')
    start = _clock(item[0], f"{where}[0]", is_end=False)
    end = _clock(item[1], f"{where}[1]", is_end=True)
    if end <= start:
        raise ConfigError(where, "must end after it starts; split an interval at midnight with 24:00")
    return [_hhmm(start), _hhmm(end)]


def _clock(value, where, is_end):
    """Minutes after midnight of a "HH:MM" text; "24:00" only where an interval ends."""
    if value == "24:00" and is_end:
        return END_OF_DAY
    match = CLOCK_PATTERN.match(value) if isinstance(value, str) else None
    if not match:
        allowed = "00:00 to 24:00" if is_end else "00:00 to 23:59"
        raise ConfigError(where, f"must be a time from {allowed} such as 09:00")
    return int(match.group(1)) * 60 + int(match.group(2))


def _holiday(item, where):
    if isinstance(item, str):
        return _date(item, where)
    if not isinstance(item, dict):
        raise ConfigError(where, 'must be a date such as 2026-12-24 or {"from": ..., "to": ...}')
    no_unknown(item, where, ("from", "to"))
    first, last = _date(item.get("from"), f"{where}.from"), _date(item.get("to"), f"{where}.to")
    if last < first:  # ISO dates order as text
        raise ConfigError(f"{where}.to", f"must not be before from ({first})")
    return {"from": first, "to": last}


def _exceptions(items, where):
    result, seen = [], set()
    for i, item in enumerate(items):
        exception = _exception(item, f"{where}[{i}]")
        if exception["date"] in seen:
            raise ConfigError(f"{where}[{i}].date", f"{exception['date']} already has an exception")
        seen.add(exception["date"])
        result.append(exception)
    return result


def _exception(item, where):
    _object(item, where)
    no_unknown(item, where, ("date", "hours"))
    if "hours" not in item:
        raise ConfigError(f"{where}.hours", "required; an empty list means closed all day")
    return {"date": _date(item.get("date"), f"{where}.date"),
            "hours": _intervals(item["hours"], f"{where}.hours")}


def _timezone(name, where):
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as err:
        raise ConfigError(where, f"unknown time zone {name!r}; use a name such as Europe/Sofia") from err
    return name


# --- validation of campaigns --------------------------------------------------------


def validate_campaign(c, where):
    """Return a normalised copy of campaign ``c``; raise ConfigError naming the bad field."""
    _object(c, where)
    no_unknown(c, where, CAMPAIGN_FIELDS)
    identifier(c, where)
    text(c, where, "name")
    text(c, where, "flow")
    start, end = _date(c.get("start"), _at(where, "start")), _date(c.get("end"), _at(where, "end"))
    if end < start:
        raise ConfigError(_at(where, "end"), f"must not be before start ({start})")
    result = {key: c[key] for key in ("id", "name", "flow") if c.get(key) is not None}
    result.update(start=start, end=end, lines=_line_ids(c, where), enabled=_flag(c, where, "enabled", True))
    return result


def _line_ids(c, where):
    lines = _list(c, where, "lines")
    for i, line in enumerate(lines):
        if not (isinstance(line, str) and ID_PATTERN.match(line)):
            raise ConfigError(f"{where}.lines[{i}]", "must be a line id such as gsm1")
    return list(lines)


# --- shared validation helpers ------------------------------------------------------


def _at(where, key):
    return f"{where}.{key}" if where else key


def _object(item, where):
    if not isinstance(item, dict):
        raise ConfigError(where or "(item)", "must be an object")


def _list(item, where, key):
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(_at(where, key), "must be a list")
    return value


def _flag(item, where, key, default=False):
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(_at(where, key), "must be true or false")
    return value


def _date(value, where):
    """The ISO text of a "YYYY-MM-DD" date, checked to exist."""
    if value is None:
        raise ConfigError(where, "required: a date such as 2026-12-24")
    try:
        if isinstance(value, str) and DATE_PATTERN.match(value):
            return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise ConfigError(where, f"must be a date such as 2026-12-24, not {value!r}")


def _hhmm(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --- evaluation of time conditions --------------------------------------------------


def is_open(tc, when, default_tz):
    """Whether time condition ``tc`` is open at the aware instant ``when``."""
    return _open_at(tc, _utc(when), _zone(tc, default_tz))


def next_open(tc, when, default_tz, horizon_days=366):
    """The first instant from ``when`` on at which ``tc`` is open (``when`` itself if open), or None."""
    if is_open(tc, when, default_tz):
        return when
    return next_change(tc, when, default_tz, horizon_days)  # from closed, the next change opens


def next_change(tc, when, default_tz, horizon_days=366):
    """The first instant after ``when`` at which ``tc`` opens or closes, or None within the horizon."""
    if tc.get("closed") or tc.get("open"):
        return None  # a manual switch holds until someone flips it, not until a time
    zone, now = _zone(tc, default_tz), _utc(when)
    state = _open_at(tc, now, zone)
    first = now.astimezone(zone).date()
    for offset in range(horizon_days + 1):
        for instant in _change_points(tc, zone, first + offset * ONE_DAY):
            if instant > now and _open_at(tc, instant, zone) != state:
                return instant.astimezone(when.tzinfo)
    return None


def hours_on(tc, day):
    """The open intervals of local date ``day`` as (start, end) minutes, after holidays and exceptions."""
    iso = day.isoformat()
    for exception in tc.get("exceptions", ()):
        if exception["date"] == iso:  # a special day beats a holiday
            return _minutes(exception["hours"])
    if any(_holiday_covers(holiday, iso) for holiday in tc.get("holidays", ())):
        return []
    return _minutes(tc.get("weekly", {}).get(WEEKDAYS[day.weekday()], []))


def _open_at(tc, instant, zone):
    if tc.get("closed"):  # closed wins over open when both switches are on
        return False
    if tc.get("open"):
        return True
    local = instant.astimezone(zone)  # wall clock; fold does not matter to a wall-clock rule
    second = local.hour * 3600 + local.minute * 60 + local.second
    return any(start * 60 <= second < end * 60 for start, end in hours_on(tc, local.date()))


def _holiday_covers(holiday, iso):
    if isinstance(holiday, dict):
        return holiday["from"] <= iso <= holiday["to"]
    return holiday == iso


def _minutes(hours):
    return [(_clock(start, "", False), _clock(end, "", True)) for start, end in hours]


def _change_points(tc, zone, day):
    """Every instant within local ``day`` where the open state may change, in order.

    The state changes only where the wall clock reaches an interval's start or end (in
    either fold), at midnight, or where the clocks jump; a neighbouring day's "24:00"
    end lands in this day, so those are looked at too.
    """
    begin, end = _midnight(day, zone), _midnight(day + ONE_DAY, zone)
    points = {begin}
    for near in (day - ONE_DAY, day, day + ONE_DAY):
        points.update(_boundaries(tc, zone, near))
    points.update(_transitions(zone, begin, end))
    return sorted(point for point in points if begin <= point < end)


def _boundaries(tc, zone, day):
    for interval in hours_on(tc, day):
        for minutes in interval:
            for fold in (0, 1):
                yield _instant(day, minutes, fold, zone)


def _transitions(zone, begin, end):
    """The instant in [begin, end) where the zone's UTC offset changes, found by bisection."""
    after = _offset(end, zone)
    if _offset(begin, zone) == after:
        return []
    low, high = int(begin.timestamp()), int(end.timestamp())
    while high - low > 1:  # tz transitions fall on whole seconds
        middle = (low + high) // 2
        if _offset(dt.datetime.fromtimestamp(middle, UTC), zone) == after:
            high = middle
        else:
            low = middle
    return [dt.datetime.fromtimestamp(high, UTC)]


def _instant(day, minutes, fold, zone):
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _midnight(day, zone):
    return _instant(day, 0, 0, zone)


def _offset(instant, zone):
    return instant.astimezone(zone).utcoffset()


def _utc(when):
    if not isinstance(when, dt.datetime) or when.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, not {when!r}")
    # Through UTC so that a wall time in a spring gap becomes the instant it really denotes.
    return when.astimezone(UTC)


def _zone(tc, default_tz):
    name = tc.get("timezone") or default_tz
    return zoneinfo.ZoneInfo(name) if isinstance(name, str) else name


# --- campaigns ----------------------------------------------------------------------


def active_campaign(campaigns, line_id, when, default_tz):
    """The enabled campaign in force on ``line_id`` at ``when``, or None; the latest start wins."""
    today = _utc(when).astimezone(_zone({}, default_tz)).date().isoformat()
    running = [c for c in campaigns if _applies(c, line_id) and c["start"] <= today <= c["end"]]
    return max(running, key=_precedence, default=None)  # on a full tie the first listed wins


def campaign_overlaps(campaigns):
    """Human-readable warnings for enabled campaigns whose dates overlap on a shared line."""
    enabled = [c for c in campaigns if c.get("enabled", True)]
    found = [_overlap(first, second) for i, first in enumerate(enabled) for second in enabled[i + 1:]]
    return [warning for warning in found if warning]


def _applies(campaign, line_id):
    return campaign.get("enabled", True) and (not campaign.get("lines") or line_id in campaign["lines"])


def _precedence(campaign):
    """Later start first; on the same start the shorter campaign, being the more special one."""
    end = dt.date.fromisoformat(campaign["end"]).toordinal()
    return campaign["start"], -end


def _overlap(first, second):
    start, end = max(first["start"], second["start"]), min(first["end"], second["end"])
    shared = _shared_lines(first, second)
    if start > end or shared == []:
        return None
    winner = second if _precedence(second) > _precedence(first) else first
    lines = "all lines" if shared is None else f"line{'s' if len(shared) > 1 else ''} {', '.join(shared)}"
    return (f"campaigns {first['id']!r} and {second['id']!r} overlap from {start} to {end} on {lines}; "
            f"{winner['id']!r} is in force there")


def _shared_lines(first, second):
    """The lines both campaigns run on: None for all lines, [] for none."""
    ours, theirs = first.get("lines") or None, second.get("lines") or None
    if ours is None or theirs is None:
        return ours or theirs
    return [line for line in ours if line in theirs]
