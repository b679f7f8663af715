"""Real time under load: late media ticks while a busy box does everything at once.

A demo box runs as `make run` starts it (twin, engine and web UI, each its own process),
with 16 virtual SIM7600 lines and 8 operators' phones, and a journal holding a season
(200,000 rows). For the measured minutes, all at once:

- 8 callers at a time ring lines gsm1-gsm8, queue and are bridged to an operator reached
  over the other lines; every call recorded in stereo and compressed to Opus after it
  ends; a caller hangs up after CALL_SECONDS and the next one rings at once;
- 20 live dashboards in real Chromium pages (one browser, a context each), holding the
  event stream and fetching the status on each event as the page does;
- the season's traffic report and heat map fetched through the API every 10 s;
- a full backup (journal, configuration, recordings) downloaded every BACKUP_EVERY s.

Prints the engine media clock's ticks, late ticks (a tick that starts more than a 20 ms
frame after its deadline) and worst lateness over the measured window, with the calls
bridged, reports and backups done. Goal: 0 late ticks over 10 minutes.

    python bench/bench_realtime.py [--minutes M]   (default $REALTIME_MINUTES, else 10)
"""
import argparse
import contextlib
import datetime
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402

from appliance import accounts  # noqa: E402
from appliance.config import demo_config  # noqa: E402
from appliance.control import ControlClient  # noqa: E402
from appliance.errors import ApplianceError  # noqa: E402
from appliance.journal import JOURNAL_FILE, Journal  # noqa: E402
from bench.bench_reports import DAYS, SEASON_START, fill  # noqa: E402
from bench.bench_soak import running_box  # noqa: E402

CALLS = 8
LINES = 2 * CALLS  # a caller's line and its operator's line per bridged call
BROWSERS = 20
REPORT_EVERY = 10.0
BACKUP_EVERY = 180.0
CALL_SECONDS = 40.0
SEASON_ROWS = 200_000
PASSWORD = "bench-realtime-password"


def realtime_config():
    """The demo box with 16 lines, 8 operators and a flow that queues every caller.

    Callers ring gsm1-gsm8, which take no outgoing calls; the operators are rung over
    gsm9-gsm16. (On a box whose lines do both, a caller may find a line busy with an
    operator's call: another test.)
    """
    config = demo_config()
    config["lines"] = [{"id": f"gsm{n}", "name": f"SIM {n}", "driver": "sim7600", "port": f"dev/gsm{n}-at",
                        "audio_port": f"dev/gsm{n}-audio", "enabled": True, "power": {"kind": "virtual"},
                        "flow": "queue", "outbound": n > CALLS} for n in range(1, LINES + 1)]
    config["operators"] = [{"id": f"op{n}", "name": f"Operator {n}", "number": f"+3597000002{n:02d}",
                            "groups": ["admissions"], "wrap_up_seconds": 0} for n in range(1, CALLS + 1)]
    config["flows"].append({"id": "queue", "name": "Straight to the queue", "start": "q",
                            "nodes": {"q": {"type": "queue", "queue": "bachelor"}}})
    config["virtual"] = {
        "modems": [{"line": f"gsm{n}", "model": "sim7600", "number": f"+3597000000{n:02d}"}
                   for n in range(1, LINES + 1)],
        "phones": [{"number": f"+3597000002{n:02d}", "name": f"Operator {n}", "answer_after": 1.0}
                   for n in range(1, CALLS + 1)],
    }
    config["settings"].update(recording="stereo", recording_format="ogg")
    return config


def prepare(data_dir):
    """A season in the journal, an admin and an API token; returns the token."""
    book = Journal.open(os.path.join(data_dir, JOURNAL_FILE))
    try:
        fill(book.conn, SEASON_ROWS)
        # The season's calls are over: left open, the engine would close them all at start.
        book.conn.execute("UPDATE calls SET ended_at = started_at WHERE ended_at IS NULL")
        accounts.create_user(book.conn, "bench", PASSWORD, "admin")
        return accounts.create_token(book.conn, "bench reports", "supervisor", "bench")
    finally:
        book.close()


def free_port():
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_web(port, timeout=60):
    """Wait until the web UI answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
            return
        time.sleep(0.3)
    raise SystemExit("the web UI did not come up")


def csrf_token(session, url):
    """The CSRF token of the form on the page at ``url``."""
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get(url, timeout=30).text).group(1)


def log_in(base):
    """A requests session logged in as the bench's admin, and the system page's CSRF token."""
    session = requests.Session()
    token = csrf_token(session, f"{base}/login")
    session.post(f"{base}/login", data={"csrf_token": token, "username": "bench", "password": PASSWORD},
                 timeout=10).raise_for_status()
    return session, csrf_token(session, f"{base}/system/")  # a new session after login: a new token


class Load:
    """The work the box does besides its calls, each part on a thread of its own, counted."""

    def __init__(self, base, token, data_dir):
        self.base, self.token, self.data_dir = base, token, data_dir
        self.stop = threading.Event()
        self.counts = {"calls": 0, "unanswered calls": 0, "reports": 0, "report errors": 0, "backups": 0,
                       "backup errors": 0, "backup bytes": 0, "page errors": 0}
        self._lock = threading.Lock()
        self._threads = []

    def count(self, name, by=1):
        with self._lock:
            self.counts[name] += by

    def start(self, *targets):
        for target, args in targets:
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self):
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=CALL_SECONDS + 60)

    def caller(self, index):
        """Ring line gsm<index> again and again, each caller staying CALL_SECONDS."""
        twin = ControlClient(os.path.join(self.data_dir, "twin.sock"), timeout=CALL_SECONDS + 60)
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                result = twin.request("call", line=f"gsm{index}", hold=CALL_SECONDS, digits="",
                                      **{"from": f"+35988{index:02d}{n:05d}"})
            except ApplianceError:  # the twin refused: the number was busy
                self.count("unanswered calls")
                self.stop.wait(1.0)
                continue
            self.count("calls" if result["answered"] else "unanswered calls")

    def reporter(self):
        """Fetch the season's traffic report and heat map every REPORT_EVERY seconds."""
        first = SEASON_START.isoformat()
        last = (SEASON_START + datetime.timedelta(days=DAYS - 1)).isoformat()
        headers = {"Authorization": f"Bearer {self.token}"}
        while not self.stop.wait(REPORT_EVERY):
            for path in ("reports/traffic", "reports/heat-map"):
                reply = requests.get(f"{self.base}/api/v1/{path}", params={"from": first, "to": last},
                                     headers=headers, timeout=60)
                self.count("reports" if reply.ok else "report errors")

    def backer_up(self):
        """Download a full backup, recordings included, every BACKUP_EVERY seconds."""
        session, csrf = log_in(self.base)
        pause = 30.0  # the first one early in the window, with a few recordings to carry
        while not self.stop.wait(pause):
            try:
                with session.post(f"{self.base}/system/backup", data={"csrf_token": csrf, "recordings": "1"},
                                  stream=True, timeout=300) as reply:
                    reply.raise_for_status()
                    self.count("backup bytes", sum(len(chunk) for chunk in reply.iter_content(65536)))
                self.count("backups")
            except requests.RequestException:
                self.count("backup errors")  # the web UI's log says why
            pause = BACKUP_EVERY

    def browsers(self):
        """BROWSERS live dashboards in one Chromium, open until the load stops."""
        from tests.browser import CHROMIUM, CHROMIUM_ARGS
        from playwright.sync_api import sync_playwright
        session, _ = log_in(self.base)
        cookies = [{"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": "/"} for c in session.cookies]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            pages = []
            for _ in range(BROWSERS):
                context = browser.new_context()
                context.add_cookies(cookies)
                page = context.new_page()
                page.on("pageerror", lambda _err: self.count("page errors"))
                page.goto(f"{self.base}/")
                pages.append(page)
            while not self.stop.wait(1.0):
                pages[0].wait_for_timeout(10)  # let Playwright's own loop run
            browser.close()


def window(engine, seconds):
    """The clock's counts over ``seconds`` of load: (ticks, late ticks, worst lateness ms or None)."""
    before = engine.request("status")["media"]
    time.sleep(seconds)
    after = engine.request("status")["media"]
    worst = after["max_late_ms"] if after["max_late_ms"] > before["max_late_ms"] else None
    return after["ticks"] - before["ticks"], after["late_ticks"] - before["late_ticks"], worst, before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = float(os.environ.get("REALTIME_MINUTES", "10"))
    parser.add_argument("--minutes", type=float, default=default, help=f"measured minutes (default {default:g})")
    args = parser.parse_args(argv)
    if shutil.which("chromium") is None:
        print("chromium is not installed (make bench installs it): no real-time benchmark")
        return 0
    with tempfile.TemporaryDirectory(prefix="realtime-") as data_dir:
        token = prepare(data_dir)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with running_box(data_dir, realtime_config(), web_port=port):
            engine = ControlClient(os.path.join(data_dir, "engine.sock"), timeout=10)
            wait_for_web(port)
            load = Load(base, token, data_dir)
            load.start(*[(load.caller, (n,)) for n in range(1, CALLS + 1)],
                       (load.reporter, ()), (load.backer_up, ()), (load.browsers, ()))
            time.sleep(15)  # the callers are through the queue, the pages open
            bridged = sum(1 for call in engine.request("status")["calls"]
                          if call["role"] == "operator" and call["talk_seconds"] is not None)
            ticks, late, worst, before = window(engine, args.minutes * 60)
            load.join()
    print(f"real time under load, {args.minutes:g} min on this machine ({os.cpu_count()} cores):")
    print(f"  {CALLS} callers at a time on {LINES} virtual lines ({bridged} bridged when the window opened), "
          f"stereo recording, Opus after each call")
    print(f"  {BROWSERS} live dashboards in Chromium; season report ({SEASON_ROWS:,} rows) every {REPORT_EVERY:g} s; "
          f"a full backup every {BACKUP_EVERY:g} s")
    for name, value in load.counts.items():
        print(f"  {name}: {value}")
    print(f"  media clock over the window: {ticks} ticks, {late} late, worst lateness "
          f"{'%.1f ms' % worst if worst is not None else 'below the %.1f ms seen before the window' % before['max_late_ms']}")
    print("  goal: 0 late ticks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
