"""A SIP line under load: sipp callers at rising rates against the real engine and its IVR.

Answers "how many calls a second, and how many calls at once, one SIP line of the box
carries with no failed call, at what CPU and memory; and does memory stay put over many
calls", in three parts:

0. Frame costs: the Python side of one call's audio per 20 ms frame, the two
   AudioMediaPort callbacks and the buffers, and the frame copy by ctypes against bytes().
1. Rising rates: the engine runs as its own process with one SIP line (pjsua2, 32
   channels) whose flow plays a short prompt and hangs up. sipp places calls at each rate
   for STEP_SECONDS with RTP echoed back (media flows both ways, every call recorded and
   compressed as in service). Per rate: calls placed, successful, failed, the most calls
   at once that sipp counted, the engine's CPU (share of one core) and resident memory.
   Then the highest rate and the most concurrent calls that had no failed call.
2. Leak check: a fresh engine whose flow hangs up as soon as it answered; sipp places
   1,000 calls one after the other. The engine's resident memory after 100 and after
   1,000 calls, and the difference per call.

Needs pjsua2 and sipp (`make test` installs sip-tester); prints why and exits 0 without.
"""
import csv
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance.config import ConfigStore, demo_config  # noqa: E402
from appliance.control import ControlClient  # noqa: E402
from appliance.errors import ApplianceError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME_BYTES = 320
SCENARIO = os.path.join(HERE, "sipp_bench_uac.xml")
RATES = (1, 2, 3, 4, 6, 8)  # calls per second
STEP_SECONDS = 12
CHANNELS = 32  # asked for; the line says how many its SIP stack carries (the x86_64 wheel: 4)
LEAK_CALLS = (100, 1000)
TICKS = os.sysconf("SC_CLK_TCK")


def free_udp_port():
    """A UDP port on loopback nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_config(sip_port, flow):
    """The demo configuration with one SIP line running ``flow`` (no modems, no virtual phones)."""
    config = demo_config()
    config["lines"] = [{"id": "sip1", "name": "Bench SIP line", "driver": "sip", "bind": "127.0.0.1",
                        "sip_port": sip_port, "rtp_port": 0, "peers": ["127.0.0.1"], "channels": CHANNELS,
                        "flow": flow}]
    config["virtual"] = {"modems": [], "phones": []}
    config["prompts"].append({"id": "hello", "language": "en", "text": "Hello, this is the hot-line."})
    config["flows"] += [
        {"id": "short", "name": "A short IVR", "start": "hello", "nodes": {
            "hello": {"type": "play", "prompt": "hello", "next": "bye"}, "bye": {"type": "hangup"}}},
        {"id": "quick", "name": "Answer and hang up", "start": "bye", "nodes": {"bye": {"type": "hangup"}}},
    ]
    return config


class Engine:
    """`hotline engine` as its own process on a data directory of its own."""

    def __init__(self, flow):
        self.data_dir = tempfile.mkdtemp(prefix="bench-sip-")
        self.port = free_udp_port()
        ConfigStore(self.data_dir).save(bench_config(self.port, flow))
        self._log = open(os.path.join(self.data_dir, "engine.log"), "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "appliance.cli", "engine", "--data", self.data_dir],
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.control = ControlClient(os.path.join(self.data_dir, "engine.sock"))
        self._wait_up()

    def _wait_up(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                lines = self.control.request("status")["lines"]
                if lines and lines[0]["state"] == "up":
                    return
                if lines and lines[0]["state"] == "disabled":
                    raise SystemExit(f"the SIP line is disabled: {lines[0].get('error')}")
            except ApplianceError:
                pass
            time.sleep(0.2)
        raise SystemExit("the engine's SIP line did not come up")

    def cpu_seconds(self):
        """User plus system CPU time of the engine so far."""
        with open(f"/proc/{self.process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self):
        """The engine's resident memory in MB."""
        with open(f"/proc/{self.process.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def idle(self, timeout=60):
        """Wait until no call is in progress (the last BYEs and journal writes are done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.control.request("status")["calls"]:
            time.sleep(0.2)

    def stop(self):
        """Stop the engine and remove its data."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def run_sipp(port, rate, calls, limit, workdir, period_ms=1000):
    """Place ``calls`` at ``rate`` per ``period_ms`` (at most ``limit`` at once); return sipp's counts."""
    # One at a time, a call lasts as long as the IVR: give sipp time for all of them.
    seconds = calls / rate * period_ms / 1000 + (calls * 3 if limit == 1 else 0) + 90
    command = ["sipp", f"127.0.0.1:{port}", "-sf", SCENARIO, "-s", "hotline", "-i", "127.0.0.1",
               "-mi", "127.0.0.1", "-p", str(free_udp_port()), "-r", str(rate), "-rp", str(period_ms), "-m", str(calls), "-l", str(limit),
               "-rtp_echo", "-nostdin", "-trace_stat", "-fd", "1", "-timeout", f"{seconds:.0f}s"]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=seconds + 30)
    rows = _stat_rows(workdir)
    if not rows:
        raise SystemExit(f"sipp wrote no statistics (exit {done.returncode}): {done.stderr[-500:]}")
    last = rows[-1]
    return {"placed": int(last["OutgoingCall(C)"]), "successful": int(last["SuccessfulCall(C)"]),
            "failed": int(last["FailedCall(C)"]), "most_at_once": max(int(r["CurrentCall"]) for r in rows),
            "answer_seconds": _sipp_seconds(last.get("ResponseTime1(C)"))}


def _sipp_seconds(stamp):
    """sipp's HH:MM:SS:micros as seconds (None when sipp did not write it)."""
    if not stamp:
        return None
    hours, minutes, seconds, micros = (int(part) for part in stamp.split(":"))
    return hours * 3600 + minutes * 60 + seconds + micros / 1e6


def _stat_rows(workdir):
    files = glob.glob(os.path.join(workdir, "*_.csv"))
    if not files:
        return []
    with open(files[0], newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    for path in files:
        os.remove(path)
    return rows


def rising_rates():
    """Part 1: one row per rate until calls fail; then the best rate with no failure."""
    engine = Engine("short")
    line = engine.control.request("status")["lines"][0]
    engine_channels = min(line["channels"], line.get("stack_max_calls") or line["channels"])
    best = None
    print(f"{'calls/s':>8} {'placed':>7} {'ok':>6} {'failed':>7} {'at once':>8} {'CPU %':>6} {'RSS MB':>7}")
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for rate in RATES:
                cpu, started = engine.cpu_seconds(), time.monotonic()
                counts = run_sipp(engine.port, rate, rate * STEP_SECONDS, 64, workdir)
                cpu_share = 100 * (engine.cpu_seconds() - cpu) / (time.monotonic() - started)
                print(f"{rate:>8} {counts['placed']:>7} {counts['successful']:>7} {counts['failed']:>7} "
                      f"{counts['most_at_once']:>8} {cpu_share:>6.1f} {engine.rss_mb():>7.1f}", flush=True)
                engine.idle()
                if counts["failed"]:
                    break
                best = (rate, counts["most_at_once"], cpu_share, engine.rss_mb())
    finally:
        engine.stop()
    if best is None:
        print("no rate ran without a failed call")
        return
    else:
        print(f"highest rate with no failed call: {best[0]} calls/s, {best[1]} calls at once, "
              f"engine CPU {best[2]:.1f} % of one core, RSS {best[3]:.1f} MB "
              f"(channels: {engine_channels} of the {CHANNELS} asked for)")


def leak_check():
    """Part 2: resident memory after 100 and after 1,000 sequential calls."""
    engine = Engine("quick")
    try:
        with tempfile.TemporaryDirectory() as workdir:
            placed, rss = 0, {}
            for total in LEAK_CALLS:
                counts = run_sipp(engine.port, 20, total - placed, 1, workdir)
                placed += counts["placed"]
                engine.idle()
                time.sleep(2)  # the after-call worker compresses the last recordings
                rss[total] = engine.rss_mb()
                print(f"after {placed} sequential calls ({counts['failed']} failed in this run): "
                      f"RSS {rss[total]:.1f} MB", flush=True)
                if placed != total:
                    raise SystemExit(f"sipp placed {placed} calls, not {total}: no leak figure")
        low, high = LEAK_CALLS
        per_call_kb = (rss[high] - rss[low]) * 1024 / (high - low)
        print(f"RSS growth from call {low} to call {high}: {rss[high] - rss[low]:+.1f} MB "
              f"({per_call_kb:+.2f} kB per call)")
    finally:
        engine.stop()


def frame_costs():
    """Part 0: the Python side of one call's audio per 20 ms frame (no network)."""
    import timeit

    import pjsua2 as pj

    from firmware import sip

    data = bytes(FRAME_BYTES)
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(data)
    fast = min(timeit.repeat(lambda: sip._fast_read(frame.buf), number=2000, repeat=3)) / 2000
    slow = min(timeit.repeat(lambda: sip._slow_read(frame.buf), number=200, repeat=3)) / 200
    audio, port, out = sip.SipAudio("bench"), sip._FramePort(), pj.MediaFrame()
    port.attach(audio)

    def one_tick():
        port.onFrameReceived(frame)
        audio.read_frame()
        audio.write_frame(data)
        port.onFrameRequested(out)

    tick = min(timeit.repeat(one_tick, number=2000, repeat=3)) / 2000
    print(f"frame copy out of pjsua2: {fast * 1e6:.1f} us (ctypes) against {slow * 1e6:.1f} us (bytes()), "
          f"{slow / fast:.0f}x; both callbacks and the buffers: {tick * 1e6:.1f} us per call per 20 ms frame "
          f"({tick / 0.02 * 100:.3f} % of one core per call)")


def main():
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        print("pjsua2 is not installed: no SIP benchmark")
        return 0
    if shutil.which("sipp") is None:
        print("sipp is not installed (Debian package sip-tester): no SIP benchmark")
        return 0
    frame_costs()
    rising_rates()
    leak_check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
