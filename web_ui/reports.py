"""Reports: traffic, service level, answer speed, heat map, Erlang C staffing, CSV."""
import datetime
import math

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _

from appliance import reports
from appliance.config import demo_config

from . import configedit
from .auth import role_required
from .db import get_db

bp = Blueprint("reports", __name__, url_prefix="/reports")

REPORT_ROLES = ("admin", "supervisor")
PRESETS = ("today", "yesterday", "7d", "season")
SEASON_DAYS = 60
MAX_RANGE_DAYS = 400  # more than a year of rows makes the page slow on a Pi
DEFAULT_GROUP_BY = "hour"
EXPORT_KINDS = ("traffic", "heat_map", "staffing")
TIME_GROUPINGS = ("half_hour", "hour", "day")  # groupings in time order, where a trend line means something
CHART = {"width": 960, "height": 260, "left": 52, "right": 44, "top": 12, "bottom": 46}
HEAT = {"cell": 34, "row": 24, "left": 44, "top": 20}


# --- the box's settings --------------------------------------------------------------------------

def box_config():
    """The configuration in force, or the demo's when the engine is not running (for the time zone)."""
    try:
        return configedit.load_config()["config"], True
    except configedit.EngineDown:
        return demo_config(), False


def service_levels(config):
    """Queue id -> its service-level threshold T in seconds (20 unless configured)."""
    return {queue["id"]: queue.get("service_level_seconds") or reports.DEFAULT_SERVICE_LEVEL_SECONDS
            for queue in config.get("queues", [])}


def names(config, section):
    """Id -> display name of the items of a list section (queues, operators, lines)."""
    return {item["id"]: item.get("name") or item["id"] for item in config.get(section, []) if "id" in item}


# --- the filters -------------------------------------------------------------------------------

def preset_range(preset, today):
    """The (first, last) local dates of a preset."""
    if preset == "yesterday":
        day = today - datetime.timedelta(days=1)
        return day, day
    if preset == "7d":
        return today - datetime.timedelta(days=6), today
    if preset == "season":
        return today - datetime.timedelta(days=SEASON_DAYS - 1), today
    return today, today


def _date(text):
    try:
        day = datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return day if 1970 <= day.year <= 2999 else None  # the ends of the calendar overflow in UTC


def _number(args, key, default, low, high, kind=int):
    """A number from the query string, clamped to [low, high]; the default if missing or not a number."""
    try:
        value = kind(args.get(key, ""))
    except ValueError:
        return default
    if isinstance(value, float) and not math.isfinite(value):
        return default
    return min(max(value, low), high)


def filters(args, tz):
    """The report's filters from the query string, with defaults and the problems found."""
    today = datetime.datetime.now(reports.zone(tz)).date()
    errors = []
    preset = args.get("preset", "")
    if preset in PRESETS:
        start, end = preset_range(preset, today)
    elif args.get("start") or args.get("end"):
        preset = ""
        start, end = _date(args.get("start")), _date(args.get("end"))
        if start is None or end is None:
            errors.append(_("Dates must look like 2026-07-01: showing today."))
            start, end, preset = today, today, "today"
        elif end < start:
            errors.append(_("The range ended before it started: the dates were swapped."))
            start, end = end, start
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            errors.append(_("At most %(days)s days at once: the range was shortened.", days=MAX_RANGE_DAYS))
            start = end - datetime.timedelta(days=MAX_RANGE_DAYS - 1)
    else:
        preset, start, end = "today", today, today
    group_by = args.get("group_by", DEFAULT_GROUP_BY)
    if group_by not in reports.GROUP_BYS:
        group_by = DEFAULT_GROUP_BY
    return {"preset": preset, "start": start, "end": end, "group_by": group_by, "errors": errors,
            "short": _number(args, "short", 5, 0, 600),
            "target_seconds": _number(args, "target_seconds", reports.DEFAULT_SERVICE_LEVEL_SECONDS, 1, 600),
            "target_percent": _number(args, "target_percent", 80, 1, 99)}


def filter_args(chosen, **changes):
    """The query string of a report (for links: export, presets), with ``changes`` applied."""
    args = {"start": chosen["start"].isoformat(), "end": chosen["end"].isoformat(), "group_by": chosen["group_by"],
            "short": chosen["short"], "target_seconds": chosen["target_seconds"],
            "target_percent": chosen["target_percent"]}
    args.update(changes)
    return args


# --- labels --------------------------------------------------------------------------------------

def weekday_names():
    """Monday..Sunday, short, in the user's language."""
    return [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


def group_by_choices():
    """The groupings offered in the form, with their labels."""
    return [("half_hour", _("Half hour")), ("hour", _("Hour of day")), ("day", _("Day")), ("line", _("Line")),
            ("queue", _("Queue")), ("operator", _("Operator")), ("weekday_hour", _("Weekday and hour"))]


def labeller(group_by, config):
    """A function giving the text shown for a report row (names instead of ids, translated weekdays)."""
    sections = {"line": "lines", "queue": "queues", "operator": "operators"}
    known = names(config, sections[group_by]) if group_by in sections else {}
    empty = {"line": _("(no line)"), "queue": _("(no queue)"), "operator": _("(no operator)")}
    days = weekday_names()

    def label(row):
        key = row["key"]
        if group_by == "weekday_hour":
            return f"{days[key[0]]} {key[1]:02d}:00"
        if group_by in sections:
            if key == "":
                return empty[group_by]
            return known.get(key, key)
        return row["label"]
    return label


# --- the charts ----------------------------------------------------------------------------------

def bar_chart(rows, label, connect=True):
    """Geometry of the stacked bar chart (answered, abandoned, rest of offered) with service-level dots.

    ``connect`` joins the dots with a line: for times of day and days, not for lines, queues, operators.
    """
    width, height = CHART["width"], CHART["height"]
    plot_w = width - CHART["left"] - CHART["right"]
    plot_h = height - CHART["top"] - CHART["bottom"]
    top = max([row["offered"] for row in rows] + [1])
    scale = _nice_ceiling(top)
    slot = plot_w / max(len(rows), 1)
    bar_w = max(2.0, slot * 0.7)
    bottom = CHART["top"] + plot_h
    bars, points, runs = [], [], [[]]
    every = max(1, math.ceil(len(rows) / 24))  # keep the axis labels readable with many bars
    for i, row in enumerate(rows):
        x = CHART["left"] + i * slot + (slot - bar_w) / 2
        rest = row["offered"] - row["answered"] - row["abandoned"]
        segments, y = [], bottom
        for kind, value, title in (("answered", row["answered"], _("Answered")),
                                   ("abandoned", row["abandoned"], _("Abandoned")),
                                   ("other", rest, _("Other offered"))):
            if value <= 0:
                continue
            h = value / scale * plot_h
            y -= h
            segments.append({"kind": kind, "y": round(y, 1), "h": round(h, 1), "value": value, "title": title})
        text = label(row)
        bars.append({"x": round(x, 1), "w": round(bar_w, 1), "segments": segments, "label": text,
                     "axis": _axis_label(row, text), "offered": row["offered"], "cx": round(x + bar_w / 2, 1),
                     "show_label": i % every == 0})
        if row["service_level"] is None:
            runs.append([])  # no line across an hour or day without queued calls
            continue
        point = {"x": round(x + bar_w / 2, 1), "y": round(bottom - row["service_level"] * plot_h, 1),
                 "value": row["service_level"], "label": text}
        points.append(point)
        runs[-1].append(f"{point['x']},{point['y']}")
    ticks = [{"y": round(bottom - value / scale * plot_h, 1), "value": value} for value in _ticks(scale)]
    return {"width": width, "height": height, "left": CHART["left"], "right": width - CHART["right"],
            "top": CHART["top"], "bottom": bottom, "bars": bars, "ticks": ticks, "points": points,
            "sl_lines": [" ".join(run) for run in runs if len(run) > 1] if connect else [],
            "percent_ticks": [{"y": round(bottom - p / 100 * plot_h, 1), "value": p} for p in (0, 50, 100)]}


def _axis_label(row, text):
    """The label under a bar: days as 27.09 (a full date per bar does not fit), the rest as in the table."""
    if isinstance(row["key"], datetime.date):
        return f"{row['key'].day:02d}.{row['key'].month:02d}"
    return text


def _nice_ceiling(value):
    """The smallest 1, 2 or 5 x 10^k at or above ``value``: round numbers on the axis."""
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def _ticks(scale):
    step = scale / 5 if scale >= 5 else 1
    count = int(round(scale / step))
    return [round(i * step, 6) for i in range(count + 1)]


def heat_cells(grid):
    """Geometry and colour of the 7 x 24 heat map cells."""
    peak = max(max(row) for row in grid) or 1
    days = weekday_names()
    cells = []
    for day, counts in enumerate(grid):
        for hour, count in enumerate(counts):
            cells.append({"x": HEAT["left"] + hour * HEAT["cell"], "y": HEAT["top"] + day * HEAT["row"],
                          "count": count, "fill": heat_colour(count / peak), "dark": count / peak > 0.55,
                          "title": f"{days[day]} {hour:02d}:00 – {count}"})
    return {"cells": cells, "cell": HEAT["cell"], "row": HEAT["row"], "left": HEAT["left"], "top": HEAT["top"],
            "width": HEAT["left"] + 24 * HEAT["cell"] + 4, "height": HEAT["top"] + 7 * HEAT["row"] + 4,
            "days": [{"y": HEAT["top"] + i * HEAT["row"], "name": name} for i, name in enumerate(days)],
            "peak": max(max(row) for row in grid)}


def heat_colour(share):
    """A colour from white (no calls) to deep blue (the busiest hour)."""
    if share <= 0:
        return "#ffffff"
    low, high = (232, 240, 254), (23, 64, 160)
    return "#" + "".join(f"{round(a + (b - a) * share):02x}" for a, b in zip(low, high))


# --- the calculator --------------------------------------------------------------------------

def free_calculator(args, plan):
    """The free Erlang C calculator: its inputs (prefilled from the busiest measured hour) and result."""
    busiest = max(plan["rows"], key=lambda row: row["calls_per_hour"], default=None)
    calls = _number(args, "calc_calls", round(busiest["calls_per_hour"], 1) if busiest else 60.0, 0.0, 100000.0,
                    float)
    aht = _number(args, "calc_aht", round(busiest["aht"]) if busiest else reports.DEFAULT_AHT_SECONDS,
                  1.0, 7200.0, float)
    target = _number(args, "calc_target", reports.DEFAULT_SERVICE_LEVEL_SECONDS, 1, 600)
    level = _number(args, "calc_level", 80, 1, 99)
    occupancy = _number(args, "calc_occupancy", 85, 10, 100)
    result = reports.calculator(calls, aht, target, level / 100, occupancy / 100)
    return {"calls": calls, "aht": aht, "target": target, "level": level, "occupancy": occupancy, **result}


# --- routes --------------------------------------------------------------------------------------

def _report(chosen, config):
    tz = config["settings"]["timezone"]
    conn = get_db()
    start, end = chosen["start"], chosen["end"]
    return {
        "traffic": reports.traffic(conn, start, end, tz, chosen["group_by"], chosen["short"], service_levels(config)),
        "heat": reports.heat_map(conn, start, end, tz),
        "plan": reports.staffing(conn, start, end, tz, chosen["target_seconds"], chosen["target_percent"] / 100,
                                 chosen["short"]),
    }


@bp.route("/")
@role_required(*REPORT_ROLES)
def index():
    """Traffic per group with a chart, the heat map, and Erlang C staffing from the measured traffic."""
    config, engine_up = box_config()
    tz = config["settings"]["timezone"]
    chosen = filters(request.args, tz)
    report = _report(chosen, config)
    label = labeller(chosen["group_by"], config)
    rows = [dict(row, text=label(row)) for row in report["traffic"]["rows"]]
    chart = bar_chart(report["traffic"]["rows"], label, connect=chosen["group_by"] in TIME_GROUPINGS)
    return render_template(
        "reports.html", chosen=chosen, tz=tz, engine_up=engine_up, rows=rows, total=report["traffic"]["total"],
        chart=chart, heat=heat_cells(report["heat"]), plan=report["plan"],
        calc=free_calculator(request.args, report["plan"]), group_by_choices=group_by_choices(),
        presets=[("today", _("Today")), ("yesterday", _("Yesterday")), ("7d", _("Last 7 days")),
                 ("season", _("This season (60 days)"))],
        filter_args=filter_args, targets=targets_text(config), inf=math.inf,
        group_title=dict(group_by_choices())[chosen["group_by"]])


def targets_text(config):
    """The queues' service-level thresholds in words, for the definitions under the table."""
    queues = names(config, "queues")
    levels = service_levels(config)
    if not levels:
        return _("%(s)s s", s=reports.DEFAULT_SERVICE_LEVEL_SECONDS)
    return ", ".join(f"{queues.get(queue, queue)} {seconds} s" for queue, seconds in levels.items())


@bp.route("/export.csv")
@role_required(*REPORT_ROLES)
def export():
    """The report as CSV (traffic, heat map or staffing), UTF-8 with a BOM so Excel reads Cyrillic right."""
    config, _engine_up = box_config()
    chosen = filters(request.args, config["settings"]["timezone"])
    kind = request.args.get("kind", "traffic")
    if kind not in EXPORT_KINDS:
        kind = "traffic"
    report = _report(chosen, config)
    if kind == "heat_map":
        text = reports.heat_map_csv(report["heat"], translate=_)
    elif kind == "staffing":
        text = reports.staffing_csv(report["plan"], translate=_)
    else:
        text = reports.traffic_csv(report["traffic"], translate=_, labels=labeller(chosen["group_by"], config))
    name = f"hotline-{kind.replace('_', '-')}-{chosen['start'].isoformat()}_{chosen['end'].isoformat()}"
    if kind == "traffic":
        name += f"-{chosen['group_by'].replace('_', '-')}"
    return Response("\ufeff" + text, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                             "Cache-Control": "no-store"})
