"""Journal writes: how many times the engine forces data to disk per call, counted by strace.

The demo box (twin and engine as processes, as in bench_soak) takes sequential calls, in
two runs: calls answered, greeted, recorded in stereo and compressed; then callers who go
through the demo menu (key 1) and the queue to the demo operator's phone, so each has an
operator leg. strace follows every thread of the engine and records each fsync and
fdatasync with the file it was made on. Printed per caller: those on the journal (its WAL
and database file), on recordings, and on folders (after a rename). The journal's goal is
at most 2 a call, with synchronous=FULL kept for the call's final record.

    python bench/bench_fsync.py [--calls N]   (needs strace; N defaults to 40)
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_soak import drain, place_calls, running_box  # noqa: E402

from appliance.config import demo_config  # noqa: E402
from appliance.control import ControlClient  # noqa: E402

GOAL_JOURNAL = 2
SYNC = re.compile(r"\b(fsync|fdatasync)\((\d+)<([^>]*)>")


def kind_of(path):
    """Which store a synced file belongs to."""
    if "journal.sqlite3" in path:
        return "journal"
    if "/recordings/" in path or "/voicemail/" in path:
        return "recordings" if os.path.splitext(path)[1] or path.endswith(".part") else "folders"
    return "folders" if not os.path.splitext(path)[1] else "other"


def count_syncs(trace_path):
    """{kind: syncs} from an strace -y log."""
    counts = collections.Counter()
    with open(trace_path, errors="replace") as trace:
        for line in trace:
            match = SYNC.search(line)
            if match:
                counts[kind_of(match.group(3))] += 1
    return counts


def traced(pid, trace_path):
    """strace following every thread of ``pid``, writing the syncs it sees to ``trace_path``."""
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace_path,
                               "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread
    return tracer


def queued_calls(data_dir, calls):
    """Callers who press 1 in the demo menu and talk to the demo operator for a few seconds.

    Each caller rings once the operator's wrap-up after the last one is over, so that every
    caller reaches the operator: a caller who gives up in the queue is another path (a
    call-back task and an SMS, each a durable record of its own), counted apart.
    """
    twin = ControlClient(os.path.join(data_dir, "twin.sock"), timeout=90)
    wrap_up = max(operator["wrap_up_seconds"] for operator in demo_config()["operators"])
    for n in range(calls):
        twin.request("call", line="gsm1", hold=12, digits="1", **{"from": f"+35988{n:07d}"})
        time.sleep(wrap_up + 1)


def measure(config, place, calls):
    """{kind: syncs} over ``calls`` calls placed by ``place(data_dir, pid, calls)`` on a fresh box."""
    with tempfile.TemporaryDirectory(prefix="fsync-") as data_dir:
        trace_path = os.path.join(data_dir, "strace.log")
        with running_box(data_dir, config) as pid:
            place(data_dir, pid, 2)  # warm-up: prompts spoken and cached
            drain(data_dir)
            tracer = traced(pid, trace_path)
            place(data_dir, pid, calls)
            drain(data_dir)
            time.sleep(1.0)
            tracer.terminate()
            tracer.wait(timeout=10)
        return count_syncs(trace_path)


def show(title, counts, calls):
    """Print syncs per call by kind; return the journal's."""
    print(f"{title} ({calls} calls):")
    for kind in ("journal", "recordings", "folders", "other"):
        print(f"  {kind:>10}: {counts[kind] / calls:5.2f} fsync a call")
    return counts["journal"] / calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="greeted calls (default 40; a quarter as many queued)")
    args = parser.parse_args(argv)
    if shutil.which("strace") is None:
        print("strace is not installed: make bench installs it")
        return 1
    greeted = measure(None, lambda d, p, n: place_calls(d, p, n), args.calls)
    worst = show("greeted, recorded and compressed", greeted, args.calls)
    queued = max(1, args.calls // 4)
    through = measure(demo_config(), lambda d, p, n: queued_calls(d, n), queued)
    worst = max(worst, show("through the menu and the queue to an operator (a leg each)", through, queued))
    print(f"journal fsyncs a call, worst: {worst:.2f} (goal <= {GOAL_JOURNAL}: "
          f"{'met' if worst <= GOAL_JOURNAL else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
