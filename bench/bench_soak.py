"""Soak: thousands of sequential calls through the demo box, recorded in stereo and compressed.

The twin and the engine run as their own processes, as `make run` starts them, in a fresh
data directory; one virtual caller after another rings a virtual SIM7600 line, is
answered, greeted and recorded, and hangs up. At checkpoints the engine's resident
memory, open file descriptors and threads are read from /proc; growth is measured from
the 1,000th call to the last, after warm-up (the journal's page cache, the espeak
phrases, pjsua2's pools). At the end the after-call work is let finish and the data
directory is checked: one compressed recording per call, named by the journal, and no
``.part``, ``.tmp`` or WAV left behind.

    python bench/bench_soak.py [--calls N]   (N from $SOAK_CALLS, else 10000; about 0.5 s a call)
"""
import argparse
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance.config import ConfigStore, demo_config  # noqa: E402
from appliance.control import ControlClient  # noqa: E402
from appliance.errors import ApplianceError  # noqa: E402
from appliance.journal import JOURNAL_FILE  # noqa: E402

CHECKPOINTS = (100, 1000, 2000, 5000, 10000)
BASELINE = 1000  # growth is measured from here: the box has warmed up
GOAL_GROWTH = 0.05
DRAIN_TIMEOUT = 300  # seconds for the last compressions


def soak_config():
    """The demo box without its menu: every call is answered, greeted and recorded in stereo, then Opus."""
    config = demo_config()
    for line in config["lines"]:
        line.pop("flow", None)
    config["settings"].update(recording="stereo", recording_format="ogg")
    return config


@contextlib.contextmanager
def running_box(data_dir, config=None, web_port=None):
    """Twin and engine (and the web UI on ``web_port``) of a box in ``data_dir``; yields the engine's pid.

    The configuration is the soak's unless ``config`` is given.
    """
    ConfigStore(data_dir).save(config or soak_config())
    commands = [["twin"], ["engine"]] + ([["web", "--port", str(web_port)]] if web_port else [])
    processes = []
    try:
        for command in commands:
            log = open(os.path.join(data_dir, f"{command[0]}.log"), "ab")
            processes.append(subprocess.Popen([sys.executable, "-m", "appliance.cli", *command, "--data", data_dir],
                                              stdout=log, stderr=subprocess.STDOUT))
            log.close()
        wait_until_up(ControlClient(os.path.join(data_dir, "engine.sock"), timeout=10), timeout=120)
        yield processes[1].pid
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def wait_until_up(engine, timeout=60):
    """Wait until every GSM line of the engine is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ApplianceError):
            lines = engine.request("status")["lines"]
            if lines and all(line["state"] in ("up", "disabled") for line in lines):
                return
        time.sleep(0.2)
    raise SystemExit("the box did not come up")


def resources(pid):
    """(RSS in KiB, open fds, threads) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def place_calls(data_dir, pid, calls):
    """Ring the box ``calls`` times, one caller after another; return {checkpoint: resources}."""
    twin = ControlClient(os.path.join(data_dir, "twin.sock"), timeout=60)
    figures, failed = {}, 0
    wanted = sorted({n for n in CHECKPOINTS if n <= calls} | {calls})
    started = time.monotonic()
    for n in range(1, calls + 1):
        result = twin.request("call", line="gsm1" if n % 2 else "gsm2", hold=0, digits="",
                              **{"from": f"+35989{n:07d}"})
        failed += not result["answered"]
        if n in wanted:
            figures[n] = resources(pid)
            rss, fds, threads = figures[n]
            print(f"  after {n:>6} calls: engine RSS {rss / 1024:7.1f} MiB, {fds:3d} fds, {threads:3d} threads"
                  f"  ({time.monotonic() - started:6.0f} s)", flush=True)
    return figures, failed


def drain(data_dir, timeout=DRAIN_TIMEOUT):
    """Wait until no WAV is left to compress; return the files still in flight."""
    deadline = time.monotonic() + timeout
    while True:
        pending = leftovers(data_dir)
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(0.5)


def leftovers(data_dir):
    """Files under recordings/ that are not finished recordings: WAVs, ``.part``, temps."""
    found = []
    for folder, _subdirs, names in os.walk(os.path.join(data_dir, "recordings")):
        found += [os.path.join(folder, name) for name in names if not name.endswith(".ogg")]
    return found


def journal_check(data_dir):
    """(calls journaled, their recordings that exist as named, calls still open)."""
    conn = sqlite3.connect(f"file:{os.path.join(data_dir, JOURNAL_FILE)}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT recording, ended_at FROM calls").fetchall()
    finally:
        conn.close()
    named = sum(1 for recording, _ in rows if recording and recording.endswith(".ogg")
                and os.path.isfile(os.path.join(data_dir, recording)))
    return len(rows), named, sum(1 for _, ended in rows if ended is None)


def growth(before, after):
    """Relative growth from ``before`` to ``after``."""
    return (after - before) / before if before else 0.0


def report(figures, calls):
    """Print growth from the baseline to the last checkpoint; return True when within the goal."""
    if BASELINE not in figures or calls <= BASELINE:
        print(f"  (growth needs more than {BASELINE} calls)")
        return True
    ok = True
    for index, name in enumerate(("RSS", "fds", "threads")):
        change = growth(figures[BASELINE][index], figures[calls][index])
        ok &= change < GOAL_GROWTH
        print(f"  {name} growth {BASELINE} -> {calls} calls: {change:+.1%} (goal < {GOAL_GROWTH:.0%})")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = int(os.environ.get("SOAK_CALLS", "10000"))
    parser.add_argument("--calls", type=int, default=default,
                        help=f"how many calls (default: $SOAK_CALLS or 10000, now {default})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as data_dir:
        with running_box(data_dir) as pid:
            print(f"soak: {args.calls} sequential calls, stereo recording compressed to Opus", flush=True)
            figures, failed = place_calls(data_dir, pid, args.calls)
            pending = drain(data_dir)
            after_drain = resources(pid)
            journaled, named, still_open = journal_check(data_dir)
        print(f"  after the compressions: engine RSS {after_drain[0] / 1024:.1f} MiB, {after_drain[1]} fds,"
              f" {after_drain[2]} threads")
        within = report(figures, args.calls)
        print(f"  calls not answered: {failed}; journaled {journaled} of {args.calls}, {still_open} still open")
        print(f"  recordings named by the journal and on disk: {named} of {args.calls}")
        print(f"  files left behind under recordings/ (WAV, .part, temp): {len(pending)}")
        for path in pending[:5]:
            print(f"    {os.path.relpath(path, data_dir)}")
    clean = not failed and journaled == named == args.calls and not still_open and not pending
    return 0 if within and clean else 1


if __name__ == "__main__":
    sys.exit(main())
