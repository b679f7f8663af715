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

from appliance import rollup

GROUP_BYS = ("half_hour", "hour", "day", "line", "queue", "operator", "weekday_hour")
DEFAULT_SERVICE_LEVEL_SECONDS = 20
DEFAULT_AHT_SECONDS = 180.0  # staffing needs some handle time even before the first answered call
EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
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
    for row in conn.execute(CALLER_SQL, rollup.padded_bounds(start_utc, end_utc)):
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
    for row in conn.execute(LEG_SQL, rollup.padded_bounds(start_utc, end_utc)):
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
    return figures_of(_part(call, service_level) for call in calls)


def _part(call, service_level):
    """One call as a roll-up part: (column, calls, answered within T, wait sum, max wait, handle sum, handles)."""
    answered = call["kind"] == "answered"
    # an answered call with no recorded wait was put through at once
    wait = call["wait"] or 0.0
    within = answered and wait <= target_seconds_for(call["queue"], service_level)
    handle = call["handle"] if answered else None
    return (call["kind"], 1, int(within), wait if answered else 0.0, call["wait"],
            handle or 0.0, int(handle is not None))


def figures_of(parts):
    """The figures of a group from its parts: single calls or the roll-up's sums (one definition for both)."""
    figures = dict.fromkeys(COUNT_KEYS, 0)
    within = handles = 0
    wait_sum = handle_sum = 0.0
    max_wait = None
    for kind, calls, part_within, part_wait_sum, part_max, part_handle_sum, part_handles in parts:
        figures[kind] += calls
        if kind == "answered":
            within += part_within
            wait_sum += part_wait_sum
            handle_sum += part_handle_sum
            handles += part_handles
        if kind != "blocked" and part_max is not None:
            max_wait = part_max if max_wait is None else max(max_wait, part_max)
    offered = sum(figures[key] for key in COUNT_KEYS) - figures["blocked"]
    sl_base = figures["answered"] + figures["abandoned"]
    lost_base = offered - figures["short_abandoned"]
    figures.update(
        offered=offered,
        answered_within=within,
        service_level=within / sl_base if sl_base else None,
        abandon_rate=figures["abandoned"] / lost_base if lost_base else None,
        asa=wait_sum / figures["answered"] if figures["answered"] else None,
        aht=handle_sum / handles if handles else None,
        max_wait=max_wait,
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


def traffic(conn, start, end, tz, group_by, short_abandon_seconds=5, service_level=None, exact=False):
    """Traffic figures per group: {"group_by", "rows": [{"key", "label", figures...}], "total": figures}.

    ``start`` and ``end`` are local dates (inclusive) or aware datetimes (half-open);
    ``service_level`` maps queue -> T seconds (or is one number for every queue). The
    figures come from the roll-up when the range allows it, else (or with ``exact``) from
    every caller row.
    """
    if group_by not in GROUP_BYS:
        raise ValueError(f"unknown grouping {group_by!r}")
    source = window(conn, start, end, tz, short_abandon_seconds, service_level, exact)
    groups = source.groups(group_by)
    keys = list(groups)
    legs = {}
    if group_by == "operator":
        legs = source.legs()
        keys += [operator for operator in legs if operator not in groups]  # rung but never answered
    rows = []
    for key in _keys(keys, group_by, source.first_day, source.last_day):
        row = {"key": key, "label": group_label(key, group_by), **figures_of(groups.get(key, []))}
        if group_by == "operator":
            row.update(legs.get(key, {"rung": 0, "not_taken": 0}))
        rows.append(row)
    total = figures_of(part for parts in groups.values() for part in parts)
    if group_by == "operator":
        total.update(rung=sum(leg["rung"] for leg in legs.values()),
                     not_taken=sum(leg["not_taken"] for leg in legs.values()))
    return {"group_by": group_by, "start": source.first_day, "end": source.last_day,
            "short_abandon_seconds": short_abandon_seconds, "rows": rows, "total": total}


def heat_map(conn, start, end, tz, exact=False):
    """Offered calls as a 7 x 24 grid: grid[weekday (0 = Monday)][local hour]."""
    grid = [[0] * 24 for _ in range(7)]
    for (weekday, hour), parts in window(conn, start, end, tz, exact=exact).groups("weekday_hour").items():
        grid[weekday][hour] = sum(calls for kind, calls, *_ in parts if kind != "blocked")
    return grid


def today_figures(conn, tzinfo, service_levels, now=None):
    """The dashboard's callers since local midnight: offered, answered by an operator, abandoned, service level.

    Live, unlike the reports: a caller being talked to counts as answered at once (the
    operator is written on the caller's row when the two are bridged), before the call ends.
    """
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    midnight = moment.astimezone(tzinfo).replace(hour=0, minute=0, second=0, microsecond=0)
    since = midnight.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
    rows = conn.execute("SELECT outcome, operator, queue, wait_seconds FROM calls"
                        " WHERE role = 'caller' AND started_at >= ?", (since,)).fetchall()
    answered = [row for row in rows if row[1]]
    in_time = [row for row in answered
               if (row[3] or 0) <= service_levels.get(row[2], DEFAULT_SERVICE_LEVEL_SECONDS)]
    return {
        "offered_today": len(rows),
        "answered_today": len(answered),
        "abandoned_today": sum(1 for row in rows if row[0] == "abandoned"),
        "service_level_percent": round(100 * len(in_time) / len(answered)) if answered else None,
    }


# --- where the figures come from: every caller row, or the roll-up ---------------------------------

def window(conn, start, end, tz, short_abandon_seconds=5, service_level=None, exact=False):
    """The calls of a range as report parts: from the roll-up if the range and limits allow, else exact."""
    tzinfo = zone(tz)
    start_utc, end_utc = utc_bounds(start, end, tzinfo)
    offsets = None if exact else _quarter_offsets(start_utc, end_utc, tzinfo)
    if offsets is None or short_abandon_seconds not in range(rollup.MAX_SHORT_SECONDS + 1):
        return _Rows(conn, start_utc, end_utc, tzinfo, short_abandon_seconds, service_level)
    rollup.refresh(conn, service_level, keep_targets=service_level is None)
    return _Rolled(conn, start_utc, end_utc, tzinfo, short_abandon_seconds, offsets)


def local_days(start_utc, end_utc, tzinfo):
    """The first and the last local date of a half-open UTC range."""
    return start_utc.astimezone(tzinfo).date(), (end_utc - datetime.timedelta(microseconds=1)).astimezone(tzinfo).date()


def _quarter_offsets(start_utc, end_utc, tzinfo):
    """[(first quarter, UTC offset s)] over the range, or None unless all fall on quarter hours."""
    quarter = rollup.SLOT_SECONDS
    low, high = int(start_utc.timestamp()), int(end_utc.timestamp())
    if low % quarter or high % quarter:
        return None
    changes = []
    for slot in _offset_changes(low // quarter, high // quarter, tzinfo):
        offset = _offset_at(slot, tzinfo)
        if offset % quarter:
            return None
        changes.append((slot, offset))
    return changes


def _offset_at(slot, tzinfo):
    moment = datetime.datetime.fromtimestamp(slot * rollup.SLOT_SECONDS, datetime.timezone.utc)
    return int(moment.astimezone(tzinfo).utcoffset().total_seconds())


def _offset_changes(first, end, tzinfo):
    """The range's first quarter and every quarter where the zone's offset changes (a day's scan, then halving)."""
    found, day = [first], 96
    slot = first
    while slot < end:
        step = min(day, end - slot)
        if _offset_at(slot + step - 1, tzinfo) != _offset_at(found[-1], tzinfo):
            low, high = slot, slot + step - 1  # the change is in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if _offset_at(middle, tzinfo) == _offset_at(low, tzinfo) else (low, middle)
            found.append(high)
            slot = high
            continue
        slot += step
    return found


class _Rows:
    """Report parts computed from every caller row of the range (the reference the roll-up must match)."""

    def __init__(self, conn, start_utc, end_utc, tzinfo, short_abandon_seconds, service_level):
        self.conn, self.start_utc, self.end_utc, self.tzinfo = conn, start_utc, end_utc, tzinfo
        self.short, self.service_level = short_abandon_seconds, service_level
        self.first_day, self.last_day = local_days(start_utc, end_utc, tzinfo)
        self._calls = None

    def calls(self):
        """The caller rows of the range (read once)."""
        if self._calls is None:
            self._calls = caller_calls(self.conn, self.start_utc, self.end_utc, self.tzinfo, self.short)
        return self._calls

    def groups(self, group_by):
        """{group key: [parts]}."""
        groups = {}
        for call in self.calls():
            groups.setdefault(group_key(call, group_by), []).append(_part(call, self.service_level))
        return groups

    def legs(self):
        """{operator: {"rung", "not_taken"}}."""
        return operator_legs(self.conn, self.start_utc, self.end_utc, self.tzinfo)

    def days(self):
        """How many local days of the range had an offered call."""
        return len({call["local"].date() for call in self.calls() if call["kind"] != "blocked"})

    def demand(self):
        """{local hour: [parts]} of the calls that asked for an operator (queued, not a short abandon)."""
        by_hour = {}
        for call in self.calls():
            if call["queue"] and call["kind"] not in ("short_abandoned", "blocked"):
                by_hour.setdefault(call["local"].hour, []).append(_part(call, self.service_level))
        return by_hour


class _Rolled:
    """The same parts summed in SQL from the roll-up: quarters for time buckets, days for ids.

    Every source gives the raw columns (all abandons as "abandoned"); the abandons under the
    short limit are counted apart from the partial index over report_slots and moved out.
    """

    KEYS = {"half_hour": "(({local}) % 86400) / 1800 * 30", "hour": "(({local}) % 86400) / 3600",
            "day": "({local}) / 86400",
            "weekday_hour": "((({local}) / 86400 + 3) % 7) * 24 + (({local}) % 86400) / 3600"}
    SUMS = "SUM(calls), SUM(within), TOTAL(wait_sum), MAX(wait_max), TOTAL(handle_sum), SUM(handles)"
    COLUMNS = "kind, calls, within, wait_sum, wait_max, handle_sum, handles"

    def __init__(self, conn, start_utc, end_utc, tzinfo, short_abandon_seconds, offsets):
        self.conn = conn
        self.first_day, self.last_day = local_days(start_utc, end_utc, tzinfo)
        first, end = (int(moment.timestamp()) // rollup.SLOT_SECONDS for moment in (start_utc, end_utc))
        self.bounds = {"first": first, "end": end, "short": short_abandon_seconds, **_whole_days(first, end)}
        # local seconds of a quarter: its UTC start plus the offset in force (integers computed above)
        offset = str(offsets[-1][1])
        if len(offsets) > 1:
            cases = " ".join(f"WHEN slot < {slot} THEN {off}" for (_, off), (slot, _) in zip(offsets, offsets[1:]))
            offset = f"CASE {cases} ELSE {offset} END"
        self.local = f"slot * {rollup.SLOT_SECONDS} + {offset}"

    def groups(self, group_by):
        """{group key: [parts]}."""
        if group_by in rollup.DIMS:
            rows, shorts = self._by_id(group_by), self._shorts(group_by)
        else:
            key = self.KEYS[group_by].format(local=self.local)
            rows, shorts = self._by_time(key), self._shorts(key)
        groups = {}
        for key, kind, calls, *sums in rows:
            short = shorts.get(key, 0) if kind == "abandoned" else 0
            parts = groups.setdefault(self._key(key, group_by), [])
            parts.append((kind, calls - short, *sums))
            if short:
                parts.append(("short_abandoned", short, 0, 0.0, None, 0.0, 0))
        return groups

    def legs(self):
        """{operator: {"rung", "not_taken"}}."""
        rows = self.conn.execute("SELECT operator, SUM(rung), SUM(not_taken) FROM report_legs"
                                 " WHERE slot >= :first AND slot < :end GROUP BY operator", self.bounds)
        return {operator: {"rung": rung, "not_taken": not_taken} for operator, rung, not_taken in rows}

    def days(self):
        """How many local days of the range had an offered call."""
        sql = (f"SELECT COUNT(DISTINCT ({self.local}) / 86400) FROM report_times"
               " WHERE slot >= :first AND slot < :end AND kind <> 'blocked'")
        return self.conn.execute(sql, self.bounds).fetchone()[0]

    def demand(self):
        """{local hour: [parts]} of the calls that asked for an operator (queued, not a short abandon)."""
        key = self.KEYS["hour"].format(local=self.local)
        shorts = self._shorts(key, "AND queue <> ''")
        by_hour = {}
        for hour, kind, calls, *sums in self._by_time(key, "AND queued AND kind <> 'blocked'"):
            short = shorts.get(hour, 0) if kind == "abandoned" else 0
            if calls > short:  # an hour whose only queued calls were short abandons asked for nobody
                by_hour.setdefault(hour, []).append((kind, calls - short, *sums))
        return by_hour

    def _by_time(self, key, where=""):
        sql = (f"SELECT {key} AS k, kind, {self.SUMS} FROM report_times"
               f" WHERE slot >= :first AND slot < :end {where} GROUP BY k, kind")
        return self.conn.execute(sql, self.bounds).fetchall()

    def _by_id(self, dim):
        # whole UTC days from report_days, the quarters before and after them from report_slots
        edge = f"SELECT {dim}, {self.COLUMNS} FROM report_slots WHERE slot >= :{{}} AND slot < :{{}}"
        sql = (f"SELECT k, kind, {self.SUMS} FROM ("
               f"SELECT value AS k, {self.COLUMNS} FROM report_days"
               f" WHERE dim = '{dim}' AND day >= :day_first AND day < :day_end"
               f" UNION ALL {edge.format('first', 'head_end')} UNION ALL {edge.format('tail_first', 'end')})"
               " GROUP BY k, kind")
        return self.conn.execute(sql, self.bounds).fetchall()

    def _shorts(self, key, where=""):
        """{key: abandons under the short limit}."""
        sql = (f"SELECT {key} AS k, SUM(calls) FROM report_slots INDEXED BY report_slots_abandons"
               f" WHERE kind = 'abandoned' AND abandon_wait < :short AND slot >= :first AND slot < :end {where}"
               " GROUP BY k")
        return dict(self.conn.execute(sql, self.bounds).fetchall())

    @staticmethod
    def _key(key, group_by):
        if group_by == "day":
            return datetime.date.fromordinal(EPOCH_ORDINAL + key)
        if group_by == "weekday_hour":
            return divmod(key, 24)
        return key


def _whole_days(first, end):
    """Quarters first..end (half-open) as whole UTC days day_first..day_end and the quarters around them."""
    day_first, day_end = -(-first // rollup.DAY_SLOTS), end // rollup.DAY_SLOTS
    if day_first >= day_end:  # no whole day inside: all quarters, read one by one
        return {"day_first": 0, "day_end": 0, "head_end": end, "tail_first": end}
    return {"day_first": day_first, "day_end": day_end, "head_end": day_first * rollup.DAY_SLOTS,
            "tail_first": day_end * rollup.DAY_SLOTS}


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
             max_occupancy=0.85, exact=False):
    """Operators to plan per local hour of day, from the measured traffic.

    Demand counts the calls that asked for an operator (joined a queue; short abandons
    left out), averaged over the days of the range that had any offered call. AHT is the
    hour's measured AHT, else the range's, else 180 s.
    """
    source = window(conn, start, end, tz, short_abandon_seconds, exact=exact)
    days = source.days()
    overall_aht = figures_of(part for parts in source.groups("hour").values() for part in parts
                             if part[0] != "blocked")["aht"]
    by_hour = source.demand()
    rows = []
    for hour in sorted(by_hour):
        hour_calls = figures_of(by_hour[hour])
        measured = hour_calls["aht"]
        aht = measured or overall_aht or DEFAULT_AHT_SECONDS
        calls = sum(hour_calls[key] for key in COUNT_KEYS)
        per_hour = calls / days
        agents = agents_needed(per_hour, aht, target_seconds, target_level, max_occupancy)
        row = erlang_row(per_hour, aht, target_seconds, agents)
        row.update(hour=hour, label=f"{hour:02d}:00", calls=calls, calls_per_hour=per_hour, aht=aht,
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

