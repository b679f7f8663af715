"""Traffic reports over the call journal: counts, service level, answer speed, heat map, Erlang C, CSV.

Pure functions over a journal connection (no Flask). Every figure is computed from the
*caller rows*: ``role = 'caller'`` and ``direction = 'in'`` (people who rang the hot-line),
started inside the range; test calls, call-backs and forwards the box dialled out are not
offered calls. The per-operator report adds the operator legs (how often each was rung).
Times are bucketed in the box's local time zone; ranges are local dates, so a DST change
day has 23 or 25 hours.

Definitions:

- **offered**: every caller row except ``blocked`` ones (the blacklist refuses those
  before the hot-line serves them; they are counted apart as ``blocked``).
- **answered**: put through to an operator (outcome ``answered``). Other columns:
  voicemail, call-back, ivr (served by or hung up in the menus), missed; the rest
  (closed, forwarded, interrupted, failed, still in progress) is "other".
- **abandoned**: hung up while queued after waiting at least ``short_abandon_seconds``.
- **short abandons**: hung up while queued in under ``short_abandon_seconds`` (misdials,
  second thoughts). They stay in ``offered`` but are reported apart and count neither as
  lost calls nor in the service level.
- **service level** = answered within T / (answered + abandoned), where "within T" means
  ``wait_seconds <= T`` of the call's own queue (default 20 s) and "abandoned" excludes
  short abandons. None when the denominator is 0.
- **abandon rate** = abandoned / (offered - short abandons).
- **ASA** (average speed of answer) = mean ``wait_seconds`` of answered calls.
- **AHT** (average handle time) = mean talk of answered calls: the operator leg's
  ``talk_seconds`` when the journal has it (the caller row's own talk also counts the
  menus and the queue), else the caller row's ``talk_seconds``.
- **max wait**: the longest queue wait of any offered call (answered, abandoned, or sent on
  to voicemail or a call-back).

Erlang C (for staffing) with offered traffic A = calls per hour x AHT / 3600 erlangs and N
operators: Pw = N·B / (N - A·(1 - B)) with B the Erlang B blocking computed iteratively;
service level = 1 - Pw·exp(-(N - A)·t / AHT); ASA = Pw·AHT / (N - A).
"""
import csv
import datetime
import io
import math
import zoneinfo

GROUP_BYS = ("half_hour", "hour", "day", "line", "queue", "operator", "weekday_hour")
DEFAULT_SERVICE_LEVEL_SECONDS = 20
DEFAULT_AHT_SECONDS = 180.0  # staffing needs some handle time even before the first answered call
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Outcomes of caller rows and the column each one is counted in; the rest go to "other".
OUTCOME_KINDS = {"answered": "answered", "voicemail": "voicemail", "call-back": "callback", "ivr": "ivr",
                 "missed": "missed", "blocked": "blocked"}
COUNT_KEYS = ("answered", "abandoned", "short_abandoned", "voicemail", "callback", "ivr", "missed", "other",
              "blocked")
# An operator leg ended like this means the operator did not take the caller (not "cancelled":
# another operator took them, or the caller left).
NOT_TAKEN = ("no answer", "refused", "not accepted", "busy")

CALLER_SQL = """
    SELECT c.id, c.line_id, c.started_at, c.outcome, c.queue, c.operator, c.wait_seconds, c.talk_seconds,
           (SELECT o.talk_seconds FROM calls o
             WHERE o.parent_id = c.id AND o.role = 'operator' AND o.outcome = 'answered'
             ORDER BY o.id DESC LIMIT 1) AS leg_talk
      FROM calls c
     WHERE c.role = 'caller' AND c.direction = 'in' AND c.started_at >= ? AND c.started_at < ?
     ORDER BY c.started_at, c.id
"""

LEG_SQL = """
    SELECT operator, outcome, started_at FROM calls
     WHERE role = 'operator' AND operator IS NOT NULL AND started_at >= ? AND started_at < ?
"""


# --- time ----------------------------------------------------------------------------------

def zone(tz):
    """A tzinfo from a name like "Europe/Sofia" (or a tzinfo, returned as is)."""
    return zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz


def parse_time(text):
    """A journal timestamp (ISO-8601, UTC) as an aware datetime."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)  # the journal writes UTC
    return moment


def utc_bounds(start, end, tz):
    """The half-open UTC interval for local dates ``start``..``end`` (inclusive) or aware datetimes."""
    tzinfo = zone(tz)
    if not isinstance(start, datetime.datetime):
        start = datetime.datetime.combine(start, datetime.time(), tzinfo)
    if not isinstance(end, datetime.datetime):
        # local midnight after the last day: 23 or 25 hours later on a DST change day
        end = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time(), tzinfo)
    return start.astimezone(datetime.timezone.utc), end.astimezone(datetime.timezone.utc)


def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _padded(start_utc, end_utc):
    """SQL bounds a day wider: timestamps written in another ISO style still compare, then get filtered exactly."""
    day = datetime.timedelta(days=1)
    return _iso(start_utc - day), _iso(end_utc + day)


# --- reading the journal ---------------------------------------------------------------------

def classify(outcome, wait_seconds, short_abandon_seconds=5):
    """The column a caller row counts in: answered, abandoned, short_abandoned, voicemail, ... or other."""
    if outcome == "abandoned":
        if wait_seconds is not None and wait_seconds < short_abandon_seconds:
            return "short_abandoned"
        return "abandoned"  # an unknown wait counts as lost: nobody may be lost unnoticed
    return OUTCOME_KINDS.get(outcome, "other")


def caller_calls(conn, start, end, tz, short_abandon_seconds=5):
    """The caller rows started in the range, each a dict with its local start time and column."""
    tzinfo = zone(tz)
    start_utc, end_utc = utc_bounds(start, end, tzinfo)
    calls = []
    for row in conn.execute(CALLER_SQL, _padded(start_utc, end_utc)):
        started = parse_time(row["started_at"])
        if not start_utc <= started < end_utc:
            continue
        talk = row["leg_talk"] if row["leg_talk"] is not None else row["talk_seconds"]
        calls.append({
            "id": row["id"], "local": started.astimezone(tzinfo), "outcome": row["outcome"],
            "kind": classify(row["outcome"], row["wait_seconds"], short_abandon_seconds),
            "line": row["line_id"] or "", "queue": row["queue"] or "", "operator": row["operator"] or "",
            "wait": row["wait_seconds"], "handle": talk,
        })
    return calls


def operator_legs(conn, start, end, tz):
    """Per operator: how often the box rang them and how often they did not take the caller."""
    start_utc, end_utc = utc_bounds(start, end, tz)
    legs = {}
    for row in conn.execute(LEG_SQL, _padded(start_utc, end_utc)):
        if not start_utc <= parse_time(row["started_at"]) < end_utc:
            continue
        counts = legs.setdefault(row["operator"], {"rung": 0, "not_taken": 0})
        counts["rung"] += 1
        counts["not_taken"] += row["outcome"] in NOT_TAKEN
    return legs


# --- traffic -----------------------------------------------------------------------------------

def target_seconds_for(queue, service_level=None):
    """The service-level threshold T of ``queue``: from a dict queue -> T, one number for all, or 20 s."""
    if isinstance(service_level, dict):
        return service_level.get(queue) or DEFAULT_SERVICE_LEVEL_SECONDS
    if service_level:
        return service_level
    return DEFAULT_SERVICE_LEVEL_SECONDS


def summarise(calls, service_level=None):
    """The figures of one group of caller calls (see the module docstring for the formulas)."""
    figures = dict.fromkeys(COUNT_KEYS, 0)
    for call in calls:
        figures[call["kind"]] += 1
    offered = len(calls) - figures["blocked"]
    answered = [call for call in calls if call["kind"] == "answered"]
    # an answered call with no recorded wait was put through at once
    waits = [call["wait"] or 0.0 for call in answered]
    handles = [call["handle"] for call in answered if call["handle"] is not None]
    within = sum(1 for call in answered if (call["wait"] or 0.0) <= target_seconds_for(call["queue"], service_level))
    sl_base = figures["answered"] + figures["abandoned"]
    lost_base = offered - figures["short_abandoned"]
    queued = [call["wait"] for call in calls if call["wait"] is not None and call["kind"] != "blocked"]
    figures.update(
        offered=offered,
        answered_within=within,
        service_level=within / sl_base if sl_base else None,
        abandon_rate=figures["abandoned"] / lost_base if lost_base else None,
        asa=_mean(waits),
        aht=_mean(handles),
        max_wait=max(queued) if queued else None,
    )
    return figures


def _mean(values):
    return sum(values) / len(values) if values else None


def group_key(call, group_by):
    """The bucket of one call: minute of day, hour, local date, (weekday, hour), or an id."""
    local = call["local"]
    if group_by == "half_hour":
        return local.hour * 60 + local.minute // 30 * 30
    if group_by == "hour":
        return local.hour
    if group_by == "day":
        return local.date()
    if group_by == "weekday_hour":
        return local.weekday(), local.hour
    if group_by in ("line", "queue", "operator"):
        return call[group_by]
    raise ValueError(f"unknown grouping {group_by!r}")


def group_label(key, group_by):
    """A plain-text label of a bucket ("09:30", "2026-07-01", "Mon 09:00", an id or "")."""
    if group_by == "half_hour":
        return f"{key // 60:02d}:{key % 60:02d}"
    if group_by == "hour":
        return f"{key:02d}:00"
    if group_by == "day":
        return key.isoformat()
    if group_by == "weekday_hour":
        return f"{WEEKDAYS[key[0]]} {key[1]:02d}:00"
    return key


def _keys(found, group_by, first_day, last_day):
    """Every bucket to show, in order: times of day and days without calls are shown as gaps in the chart."""
    if group_by == "day":
        days = (last_day - first_day).days + 1
        return [first_day + datetime.timedelta(days=i) for i in range(days)]
    if group_by in ("hour", "half_hour") and found:
        step = 1 if group_by == "hour" else 30  # hours, or minutes of the day
        return list(range(min(found), max(found) + step, step))
    # ids sort by name, the empty one ("no queue", "no operator") last
    return sorted(found, key=lambda key: (key == "", key))


def traffic(conn, start, end, tz, group_by, short_abandon_seconds=5, service_level=None):
    """Traffic figures per group: {"group_by", "rows": [{"key", "label", figures...}], "total": figures}.

    ``start`` and ``end`` are local dates (inclusive) or aware datetimes (half-open);
    ``service_level`` maps queue -> T seconds (or is one number for every queue).
    """
    if group_by not in GROUP_BYS:
        raise ValueError(f"unknown grouping {group_by!r}")
    tzinfo = zone(tz)
    calls = caller_calls(conn, start, end, tzinfo, short_abandon_seconds)
    groups = {}
    for call in calls:
        groups.setdefault(group_key(call, group_by), []).append(call)
    start_utc, end_utc = utc_bounds(start, end, tzinfo)
    first_day = start_utc.astimezone(tzinfo).date()
    last_day = (end_utc - datetime.timedelta(microseconds=1)).astimezone(tzinfo).date()
    keys = list(groups)
    legs = {}
    if group_by == "operator":
        legs = operator_legs(conn, start, end, tzinfo)
        keys += [operator for operator in legs if operator not in groups]  # rung but never answered
    rows = []
    for key in _keys(keys, group_by, first_day, last_day):
        row = {"key": key, "label": group_label(key, group_by), **summarise(groups.get(key, []), service_level)}
        if group_by == "operator":
            row.update(legs.get(key, {"rung": 0, "not_taken": 0}))
        rows.append(row)
    total = summarise(calls, service_level)
    if group_by == "operator":
        total.update(rung=sum(leg["rung"] for leg in legs.values()),
                     not_taken=sum(leg["not_taken"] for leg in legs.values()))
    return {"group_by": group_by, "start": first_day, "end": last_day,
            "short_abandon_seconds": short_abandon_seconds, "rows": rows, "total": total}


def heat_map(conn, start, end, tz):
    """Offered calls as a 7 x 24 grid: grid[weekday (0 = Monday)][local hour]."""
    grid = [[0] * 24 for _ in range(7)]
    for call in caller_calls(conn, start, end, tz):
        if call["kind"] != "blocked":
            grid[call["local"].weekday()][call["local"].hour] += 1
    return grid


# --- Erlang C ------------------------------------------------------------------------------------

def offered_traffic(calls_per_hour, aht_seconds):
    """Offered load in erlangs: calls per hour x handle time in hours."""
    return calls_per_hour * aht_seconds / 3600.0


def erlang_b(traffic_erlangs, agents):
    """Erlang B blocking, by the recurrence B(n) = A·B(n-1) / (n + A·B(n-1)) (no factorials, no overflow)."""
    blocking = 1.0
    for n in range(1, int(agents) + 1):
        blocking = traffic_erlangs * blocking / (n + traffic_erlangs * blocking)
    return blocking


def erlang_c(traffic_erlangs, agents):
    """Probability that a caller has to wait, with ``agents`` operators and ``traffic_erlangs`` offered."""
    if traffic_erlangs <= 0:
        return 0.0
    if agents <= traffic_erlangs:
        return 1.0  # the queue grows without end: everyone waits
    blocking = erlang_b(traffic_erlangs, agents)
    return agents * blocking / (agents - traffic_erlangs * (1 - blocking))


def service_level(traffic, agents, target_seconds, aht):
    """Share of callers answered within ``target_seconds``: 1 - Pw·exp(-(N - A)·t / AHT)."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    waiting = erlang_c(traffic, agents)
    return max(0.0, 1.0 - waiting * math.exp(-(agents - traffic) * target_seconds / aht))


def average_speed_of_answer(traffic, agents, aht):
    """Expected mean wait in seconds: Pw·AHT / (N - A); infinite when N <= A."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(traffic, agents) * aht / (agents - traffic)


def agents_needed(calls_per_hour, aht_seconds, target_seconds, target_level, max_occupancy=0.85):
    """The smallest number of operators meeting the target service level and the occupancy cap."""
    if not 0 < target_level < 1:
        raise ValueError("the target service level must be between 0 and 1 (exclusive)")
    traffic = offered_traffic(calls_per_hour, aht_seconds)
    if traffic <= 0:
        return 0
    agents = math.floor(traffic) + 1  # fewer than A operators can never keep up
    if max_occupancy:
        # nobody can talk 100 % of the hour: keep A / N at or under the cap (the epsilon absorbs float noise)
        agents = max(agents, math.ceil(traffic / max_occupancy - 1e-9))
    while service_level(traffic, agents, target_seconds, aht_seconds) < target_level:
        agents += 1
    return agents


def erlang_row(calls_per_hour, aht_seconds, target_seconds, agents):
    """What ``agents`` operators give: probability of waiting, service level, ASA and occupancy."""
    traffic = offered_traffic(calls_per_hour, aht_seconds)
    return {"agents": agents, "traffic": traffic, "wait_probability": erlang_c(traffic, agents),
            "service_level": service_level(traffic, agents, target_seconds, aht_seconds),
            "asa": average_speed_of_answer(traffic, agents, aht_seconds),
            "occupancy": traffic / agents if agents else None}


def calculator(calls_per_hour, aht_seconds, target_seconds, target_level, max_occupancy=0.85, spread=2):
    """The free Erlang C calculator: the operators needed and the figures around that number."""
    needed = agents_needed(calls_per_hour, aht_seconds, target_seconds, target_level, max_occupancy)
    low = max(1, needed - spread)
    rows = [erlang_row(calls_per_hour, aht_seconds, target_seconds, n) for n in range(low, needed + spread + 1)]
    return {"agents": needed, "traffic": offered_traffic(calls_per_hour, aht_seconds),
            "result": erlang_row(calls_per_hour, aht_seconds, target_seconds, needed) if needed else None,
            "rows": rows if needed else []}


def staffing(conn, start, end, tz, target_seconds=20, target_level=0.8, short_abandon_seconds=5,
             max_occupancy=0.85):
    """Operators to plan per local hour of day, from the measured traffic.

    Demand counts the calls that asked for an operator (joined a queue; short abandons
    left out), averaged over the days of the range that had any offered call. AHT is the
    hour's measured AHT, else the range's, else 180 s.
    """
    calls = [call for call in caller_calls(conn, start, end, tz, short_abandon_seconds) if call["kind"] != "blocked"]
    days = len({call["local"].date() for call in calls})
    overall_aht = summarise(calls)["aht"]
    by_hour = {}
    for call in calls:
        if call["queue"] and call["kind"] != "short_abandoned":
            by_hour.setdefault(call["local"].hour, []).append(call)
    rows = []
    for hour in sorted(by_hour):
        hour_calls = by_hour[hour]
        measured = summarise(hour_calls)["aht"]
        aht = measured or overall_aht or DEFAULT_AHT_SECONDS
        per_hour = len(hour_calls) / days
        agents = agents_needed(per_hour, aht, target_seconds, target_level, max_occupancy)
        row = erlang_row(per_hour, aht, target_seconds, agents)
        row.update(hour=hour, label=f"{hour:02d}:00", calls=len(hour_calls), calls_per_hour=per_hour, aht=aht,
                   aht_measured=measured is not None)
        rows.append(row)
    return {"days": days, "target_seconds": target_seconds, "target_level": target_level,
            "aht": overall_aht, "peak_agents": max((row["agents"] for row in rows), default=0), "rows": rows}


# --- CSV -------------------------------------------------------------------------------------------

TRAFFIC_COLUMNS = (
    ("offered", "Offered"), ("answered", "Answered"), ("abandoned", "Abandoned"),
    ("short_abandoned", "Short abandons"), ("voicemail", "Voicemail"), ("callback", "Call-back"),
    ("ivr", "Served in IVR"), ("missed", "Missed"), ("other", "Other"), ("blocked", "Blocked"),
    ("answered_within", "Answered within target"), ("service_level", "Service level %"),
    ("abandon_rate", "Abandon rate %"), ("asa", "ASA s"), ("aht", "AHT s"), ("max_wait", "Max wait s"),
)
OPERATOR_COLUMNS = (("rung", "Rung"), ("not_taken", "Not taken"))
PERCENT_KEYS = ("service_level", "abandon_rate")


def _cell(key, value):
    """A CSV cell: percentages and seconds with one decimal, nothing for "no data"."""
    if value is None:
        return ""
    if key in PERCENT_KEYS:
        return f"{value * 100:.1f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _csv_text(rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # CRLF: what Excel and RFC 4180 expect
    writer.writerows(rows)
    return out.getvalue()


def traffic_csv(report, translate=str, labels=None):
    """The traffic report as CSV text: one line per group and a total line.

    ``translate`` turns the English headers into the user's language; ``labels`` maps a
    group key to the text shown for it (default: the plain label).
    """
    columns = TRAFFIC_COLUMNS + (OPERATOR_COLUMNS if report["group_by"] == "operator" else ())
    lines = [[translate("Group")] + [translate(header) for _, header in columns]]
    for row in report["rows"]:
        label = labels(row) if labels else row["label"]
        lines.append([label] + [_cell(key, row.get(key)) for key, _ in columns])
    lines.append([translate("Total")] + [_cell(key, report["total"].get(key)) for key, _ in columns])
    return _csv_text(lines)


def heat_map_csv(grid, translate=str):
    """The heat map as CSV text: one line per weekday, one column per hour."""
    lines = [[translate("Weekday")] + [f"{hour:02d}" for hour in range(24)]]
    lines += [[translate(WEEKDAYS[day])] + [str(count) for count in grid[day]] for day in range(7)]
    return _csv_text(lines)


def staffing_csv(plan, translate=str):
    """The staffing plan as CSV text: one line per hour of day with traffic."""
    lines = [[translate(header) for header in ("Hour", "Calls", "Calls per hour", "AHT s", "Erlangs",
                                                "Operators", "Service level %", "ASA s", "Occupancy %")]]
    for row in plan["rows"]:
        lines.append([row["label"], str(row["calls"]), f"{row['calls_per_hour']:.2f}", f"{row['aht']:.1f}",
                      f"{row['traffic']:.2f}", str(row["agents"]), f"{row['service_level'] * 100:.1f}",
                      f"{row['asa']:.1f}", f"{row['occupancy'] * 100:.1f}"])
    return _csv_text(lines)

