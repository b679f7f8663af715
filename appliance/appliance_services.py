"""What makes the engine an appliance: watchdog, health, clock, front panel.

The engine creates one ``ApplianceServices`` once it serves, and calls four hooks:
``tick()`` from its one-second tick, ``line_state()`` whenever a line's state changes,
``snapshot()`` for the status (the dashboard's ``health``) and ``close()`` when it stops.
The hooks run on the engine's loop thread and only read, post or queue: the measuring,
the panel's patterns and the button's actions run on threads of their own, so none of
this can delay a call. A failure in here is logged and never stops the engine.
"""
import copy
import json
import logging
import os
import secrets
import time

from . import accounts
from . import journal as journal_module
from .clock import ClockKeeper
from .health import DEFAULTS as HEALTH_DEFAULTS
from .health import HealthMonitor, line_problems, problem, reading_problems
from .watchdog import EngineLiveness, Watchdog

log = logging.getLogger(__name__)

PROBLEM_SECONDS = 5.0  # how often the problems are worked out on the loop
NOTIFY_AFTER_SECONDS = 60.0  # a problem must last this long before anyone is messaged
NOTIFY_REPEAT_SECONDS = 6 * 3600.0  # and is repeated at most this often while it lasts
STARTING_SECONDS = 120.0  # lines still coming up after this long are not "starting" any more
SECRET_KEY_FILE = "web-secret.key"  # web_ui.load_secret_key
PANEL_USER = "front panel"  # the name the audit log gives the button's actions
# The dashboard's line activity (engine._activity) as a line LED's state.
LED_STATES = {"idle": "idle", "ringing": "ringing", "dialling": "ringing", "in call": "in_call"}


class ApplianceServices:
    """The watchdog, health monitor, clock keeper and front panel of one engine."""

    def __init__(self, engine):
        self.engine = engine
        self._closed = False
        self._health_config = copy.deepcopy(engine.config.get("health", {}))
        self.settings = dict(HEALTH_DEFAULTS, **self._health_config)
        self._started = time.monotonic()
        self._problems = {}  # id -> problem with "since" (and when it was last notified)
        self._problems_worked = float("-inf")
        self._status = "starting"
        self.clock = ClockKeeper(mode=self.settings["set_clock"])
        self.clock.start()
        self.liveness = EngineLiveness(engine.clock, threads=self._line_threads)
        self.watchdog = Watchdog(self.liveness.problem)
        self.monitor = HealthMonitor(engine.data_dir, self.settings,
                                     min_free_mb=lambda: self.engine.config["settings"].get("min_free_mb", 0),
                                     on_purged=self._purged).start()
        self.panel = None
        self._panel_config = None
        self._panel_error = None
        self._apply_panel(engine.config.get("panel") or {})
        self.watchdog.ready(f"ready: {len(engine.config['lines'])} line(s)")

    # --- the engine's hooks (loop thread) ----------------------------------------------

    def tick(self):
        """The engine's one-second tick: liveness, clock, problems, panel."""
        if self._closed:
            return
        self.liveness.loop_ticked()
        try:
            if self.engine.config.get("panel", {}) != self._panel_config:
                self._apply_panel(self.engine.config.get("panel") or {})
            if self.engine.config.get("health", {}) != self._health_config:
                self._apply_health(self.engine.config.get("health") or {})
            self._ask_network_time()
            if time.monotonic() - self._problems_worked >= PROBLEM_SECONDS:
                self._problems_worked = time.monotonic()
                self._work_out_problems()
        except Exception:  # the appliance's extras never stop the engine's tick
            log.exception("appliance services: tick failed")

    def line_state(self, line_id, line):
        """A line's state changed: its LED follows (never raises: it runs inside call handling)."""
        if self.panel is None or self._closed:
            return
        try:
            index = self._line_index(line_id)
            if index is not None:
                activity = line.get("activity") or line.get("state")
                self.panel.set_line(index, LED_STATES.get(activity, "down"))
        except Exception:  # a panel fault must not disturb a call
            log.exception("appliance services: line LED for %s failed", line_id)

    def snapshot(self):
        """Problems, readings, the clock's source, the panel and the watchdog, for the status."""
        try:
            return self._snapshot()
        except Exception as err:  # the status page must still answer
            log.exception("appliance services: snapshot failed")
            return {"status": "fault", "problems": [problem("health.error", "fault", f"Health unknown: {err}")]}

    def _snapshot(self):
        readings = self.monitor.readings()
        return {
            "status": self._status,
            "problems": [_public(item) for item in self._problems.values()],
            "disk": readings.get("disk"),
            "recording_allowed": readings.get("recording_allowed", True),
            "cpu_temperature": readings.get("cpu_temperature"),
            "throttling": readings.get("throttling"),
            "clock": self.clock.snapshot(),
            "panel": None if self.panel is None else {"status": self.panel.patterns["status"],
                                                      "lines": self._panel_lines()},
            "watchdog": {"enabled": self.watchdog.enabled, "interval_seconds": self.watchdog.interval,
                         "feeds": self.watchdog.feeds, "starving": self.watchdog.starving},
        }

    def clock_trusted(self):
        """Whether the schedule may go by the system clock (for the engine's time conditions)."""
        return self.clock.trusted()

    def close(self):
        """Stop feeding the watchdog, stop the monitor, turn the panel off; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.watchdog.close()
        self.monitor.close()
        if self.panel is not None:
            self.panel.close()
            self.panel = None

    def _apply_health(self, config):
        """New thresholds from a reloaded configuration take effect at the next check."""
        self._health_config = copy.deepcopy(config)
        self.settings = dict(HEALTH_DEFAULTS, **config)
        self.monitor.settings = self.settings
        self.clock.set_mode(self.settings["set_clock"])

    # --- the front panel -----------------------------------------------------------------

    def _apply_panel(self, config):
        """Open, reopen or close the panel as its configuration says."""
        self._panel_config = copy.deepcopy(config)
        self._panel_error = None
        if self.panel is not None:
            self.panel.close()
            self.panel = None
        if not config.get("enabled"):
            return
        from firmware.panel import Panel

        try:
            self.panel = Panel(config["status_led"], config.get("line_leds", ()), config.get("button"),
                               config.get("buzzer"), on_short_press=self.toggle_closed,
                               on_long_press=self.reset_admin, hold_seconds=config.get("hold_seconds", 10))
        except Exception as err:  # no GPIO here (not a Pi, pins busy): the box runs without its panel
            log.error("front panel not available: %s", err)
            self.panel = None
            self._panel_error = str(err) or type(err).__name__
            return
        for line_id, line in list(self.engine.lines.items()):
            self.line_state(line_id, line)
        self.panel.set_status(self._status)

    def _line_index(self, line_id):
        enabled = [line["id"] for line in self.engine.config["lines"] if line.get("enabled", True)]
        return enabled.index(line_id) if line_id in enabled else None

    def _panel_lines(self):
        enabled = [line["id"] for line in self.engine.config["lines"] if line.get("enabled", True)]
        return {line_id: self.panel.patterns.get(i) for i, line_id in enumerate(enabled)
                if i in self.panel.patterns}

    def toggle_closed(self):
        """A short press: flip the closed switch of the panel's time condition (panel thread)."""
        config = self.engine.config
        condition_id = (config.get("panel") or {}).get("closed_switch") or \
            next((c["id"] for c in config["time_conditions"]), None)
        if condition_id is None:
            log.warning("panel: the button toggles a closed switch, but there is no time condition")
            return None
        conditions = copy.deepcopy(config["time_conditions"])
        condition = next(c for c in conditions if c["id"] == condition_id)
        condition["closed"] = not condition.get("closed", False)
        result = self.engine.put_config(section="time_conditions", value=conditions)
        if not result.get("saved"):
            log.error("panel: the closed switch was not saved: %s", result.get("message"))
            return None
        closed = condition["closed"]
        log.warning("panel: %s is now %s (button)", condition_id, "closed" if closed else "open")
        _audit(self._journal_path(), "panel.closed_switch", {"condition": condition_id, "closed": closed})
        self.engine.post(self.engine.publish, {"type": "panel.closed_switch", "condition": condition_id,
                                               "closed": closed})
        if self.panel is not None:
            self.panel.confirm(closed)
        return closed

    def reset_admin(self):
        """A long press: delete every web account so the web page is back at first-run setup (panel thread)."""
        removed = reset_accounts(self.engine.data_dir)
        log.warning("panel: button held: %d web account(s) removed; the web page asks for a new admin",
                    len(removed))
        self.engine.post(self.engine.publish, {"type": "panel.admin_reset", "accounts_removed": len(removed)})
        if self.panel is not None:
            self.panel.acknowledge_reset()
        return removed

    # --- health and clock ------------------------------------------------------------------

    def _line_threads(self):
        # LineRunner keeps its thread private; a runner whose thread died serves no calls.
        return [(f"line {line_id}", getattr(runner, "_thread", None))
                for line_id, runner in list(getattr(self.engine, "_runners", {}).items())]

    def _ask_network_time(self):
        """Without NTP, ask a line that is up for the GSM network's time (on that line's thread)."""
        up = [line_id for line_id, line in self.engine.lines.items()
              if line.get("state") == "up" and line.get("family") != "sip"]  # SIP has no network clock
        if not up or not self.clock.wants_nitz():
            return
        for line_id in up[:1]:
            self.engine.line_command(line_id, "network_time",
                                     lambda driver, line_id=line_id: self.clock.from_modem(line_id, driver))

    def _purged(self, deleted):
        """Retention deleted recordings for space (health thread): the journal forgets them on the loop."""
        self.engine.post(self.engine.journal.recordings_deleted, deleted)

    def _work_out_problems(self):
        min_free = self.engine.config["settings"].get("min_free_mb", 0)
        found = reading_problems(self.monitor.readings(), self.settings, min_free)
        lines = [dict(self.engine.lines.get(line["id"], {"id": line["id"], "state": "starting"}))
                 for line in self.engine.config["lines"] if line.get("enabled", True)]
        found += line_problems(lines, self.settings)
        clock = self.clock.snapshot()
        if not clock["trusted"]:
            found.append(problem("clock.unset", "fault", "The clock is not set: no network time (NTP) and no "
                                 "GSM network time yet; the schedule waits for it."))
        elif clock["error"]:
            found.append(problem("clock.error", "warning", clock["error"]))
        elif clock["source"] in ("unsynchronised", "build floor") and \
                time.monotonic() - self._started > STARTING_SECONDS:
            found.append(problem("clock.unsynchronised", "warning", "The clock is not synchronised: no network "
                                 "time (NTP) and no GSM network time; it may be off."))
        if self._panel_error:
            found.append(problem("panel.unavailable", "warning",
                                 f"The front panel is configured but cannot be used: {self._panel_error}."))
        if self.watchdog.starving:
            found.append(problem("engine.stalled", "fault", f"The engine is stalled: {self.watchdog.starving}."))
        self._update_problems(found)
        starting = any(line.get("state") == "starting" for line in lines) and \
            time.monotonic() - self._started < STARTING_SECONDS
        self._status = "fault" if any(p["level"] == "fault" for p in self._problems.values()) else \
            "starting" if starting else "ready"
        if self.panel is not None:
            self.panel.set_status(self._status)

    def _update_problems(self, found):
        now = time.monotonic()
        current = {item["id"]: item for item in found}
        for problem_id in list(self._problems):
            if problem_id not in current:
                gone = self._problems.pop(problem_id)
                log.info("health: resolved: %s", gone["message"])
                self.engine.publish({"type": "health.resolved", "problem": gone})
        for problem_id, item in current.items():
            known = self._problems.get(problem_id)
            if known is None:
                known = self._problems[problem_id] = dict(item, since=journal_module.now())
                known["_seen"], known["_notified"] = now, None
                log.warning("health: %s", item["message"])
                self.engine.publish({"type": "health.problem", "problem": _public(known)})
            else:
                known.update(item)
            if now - known["_seen"] >= NOTIFY_AFTER_SECONDS and \
                    (known["_notified"] is None or now - known["_notified"] >= NOTIFY_REPEAT_SECONDS):
                known["_notified"] = now
                self._notify(known)
        for item in self._problems.values():
            item["notified"] = item["_notified"] is not None

    def _notify(self, item):
        """Webhooks always; SMS and e-mail to those on duty when ``health.notify`` is on."""
        payload = _public(item)
        self.engine.notify("health.problem", payload)
        if not self.settings["notify"] or self.engine.dispatcher is None:
            return
        settings = self.engine.config["notifications"]
        box = self.engine.config["settings"]["box_name"]
        outbox = self.engine.dispatcher.outbox
        for number in settings.get("sms_to", []):
            outbox.enqueue("sms", number, "health.problem", {"text": f"[{box}] {item['message']}"})
        if "email" in settings:
            for address in settings.get("email_to", []):
                outbox.enqueue("email", address, "health.problem",
                               dict(payload, subject=f"[{box}] {item['level']}: {item['id']}", body=item["message"]))
        self.engine.dispatcher.wake()

    def _journal_path(self):
        return os.path.join(self.engine.data_dir, journal_module.JOURNAL_FILE)


def reset_accounts(data_dir):
    """Delete every web account and renew the web sessions' key; return the user names removed.

    ``accounts.delete_user`` keeps the last admin by design; the button is the one way past
    that, for a box whose admin password is lost. The session key is renewed as well, so a
    cookie of an old account cannot pass for a new account that gets the same id and name
    (the web UI reads the new key when it restarts: hotline-web-reload.path does that).
    """
    path = os.path.join(data_dir, journal_module.JOURNAL_FILE)
    conn = journal_module.connect(path)
    try:
        names = [user["username"] for user in accounts.list_users(conn)]
        with journal_module.Transaction(conn):
            conn.execute("DELETE FROM users")
            conn.execute("INSERT INTO audit (at, username, action, detail) VALUES (?, ?, ?, ?)",
                         (journal_module.now(), PANEL_USER, "accounts.reset",
                          json.dumps({"accounts_removed": len(names), "users": names})))
    finally:
        conn.close()
    _renew_secret_key(data_dir)
    return names


def _renew_secret_key(data_dir):
    path = os.path.join(data_dir, SECRET_KEY_FILE)
    temp = path + ".tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _audit(journal_path, action, detail):
    """One line in the audit log the System page shows, in the front panel's name."""
    conn = journal_module.connect(journal_path)
    try:
        with journal_module.Transaction(conn):
            conn.execute("INSERT INTO audit (at, username, action, detail) VALUES (?, ?, ?, ?)",
                         (journal_module.now(), PANEL_USER, action, json.dumps(detail)))
    finally:
        conn.close()


def _public(item):
    """A problem without its private bookkeeping."""
    return {key: value for key, value in item.items() if not key.startswith("_")}
