"""The media path against PJSIP's C conference bridge: CPU per bridged, recorded call-second.

Both sides run in this one run, each in a fresh child process of its own, for the same
seconds and the same numbers of calls, and are timed the same way (the child's CPU time
over a window in which only the media work runs):

- box: the real MediaClock ticking N bridged calls, each a caller leg and an operator leg
  over in-memory ports (speech-like frames in, frames out discarded), the caller leg
  recording both sides in stereo WAV, as a recorded call does in service;
- pjsip: pjsua2's own conference bridge on the null sound device, clocked at 8 kHz with
  20 ms frames like the box; per call two looping WAV players (caller and operator)
  transmitting into one WAV recorder, which the bridge mixes.

Per N: CPU per call-second, total (all the child's CPU over N x seconds) and marginal
(above the same child with no calls), and the ratio box / pjsip; the goal is a ratio of
at most 1.0 at 15 calls. Needs pjsua2; prints why and exits 0 without.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HERE = os.path.abspath(__file__)
CALLS = (0, 1, 5, 10, 15)
SECONDS = 8.0  # the measured window per child
ROUNDS = 3  # children per side and N; the median is printed
SAMPLE_RATE = 8000


def speech(tmp):
    """The caller's and the operator's speech-like audio (bench_bridge's) as WAV files."""
    from bench.bench_bridge import CALLER_FRAMES, OPERATOR_FRAMES
    paths = []
    for name, frames in (("caller", CALLER_FRAMES), ("operator", OPERATOR_FRAMES)):
        path = os.path.join(tmp, f"{name}.wav")
        with wave.open(path, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(b"".join(frames))
        paths.append(path)
    return paths


def measure(seconds):
    """CPU seconds this process spends over ``seconds`` of wall time, and the wall time."""
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(seconds)
    return time.process_time() - cpu, time.monotonic() - wall


def run_box(calls, seconds, tmp):
    """The box's MediaClock over ``calls`` recorded bridges; returns (cpu, wall, clock stats)."""
    from appliance.media import MediaClock
    from bench.bench_bridge import memory_bridges
    pairs, _ = memory_bridges(calls, tmp, "box", "stereo", False)
    clock = MediaClock()
    for caller, operator in pairs:
        clock.attach(caller)
        clock.attach(operator)
    clock.start()
    time.sleep(1.0)  # warm up: first numpy calls, file buffers
    cpu, wall = measure(seconds)
    clock.stop()
    for caller, _ in pairs:
        caller.recorder.finish()
    return cpu, wall, clock.stats()


def pjsip_call(pj, tmp, index, wavs):
    """One call's media in pjsua2's bridge: a player per side transmitting into one recorder."""
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(os.path.join(tmp, f"pjsip-{index}.wav"))
    players = []
    for path in wavs:
        player = pj.AudioMediaPlayer()
        player.createPlayer(path)  # loops by default
        player.startTransmit(recorder)
        players.append(player)
    return players + [recorder]


def run_pjsip(calls, seconds, tmp):
    """pjsua2's conference bridge: per call two players into one recorder; returns (cpu, wall, {})."""
    import pjsua2 as pj
    caller_wav, operator_wav = speech(tmp)
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.logConfig.level = config.logConfig.consoleLevel = 1
    media = config.medConfig
    media.clockRate = media.sndClockRate = SAMPLE_RATE
    media.channelCount = 1
    media.audioFramePtime = media.ptime = 20
    media.ecTailLen = 0
    ep.libInit(config)
    ep.audDevManager().setNullDev()
    ep.libStart()
    objects = [item for i in range(calls) for item in pjsip_call(pj, tmp, i, (caller_wav, operator_wav))]
    time.sleep(1.0)
    cpu, wall = measure(seconds)
    recorded = sum(os.path.getsize(os.path.join(tmp, f"pjsip-{i}.wav")) for i in range(calls))
    objects.clear()  # destroyed here, before the library, never by the collector
    ep.libDestroy()
    return cpu, wall, {"recorded_bytes": recorded}


def child(side, calls, seconds):
    """Run one side in this process and print its figures as one JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        if side == "box":
            cpu, wall, stats = run_box(calls, seconds, tmp)
        else:
            cpu, wall, stats = run_pjsip(calls, seconds, tmp)
    print(json.dumps({"cpu": cpu, "wall": wall, "stats": stats}))


def spawn(side, calls, seconds):
    """One child's figures (a fresh process, so neither side inherits the other's threads)."""
    done = subprocess.run([sys.executable, HERE, "--side", side, "--calls", str(calls), "--seconds", str(seconds)],
                          capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(HERE)))
    return json.loads(done.stdout.strip().splitlines()[-1])


def medians(seconds, rounds):
    """{(side, calls): median CPU share of one core, worst late ticks}; sides interleaved per round."""
    runs = {}
    for _ in range(rounds):
        for calls in CALLS:
            for side in ("box", "pjsip"):
                runs.setdefault((side, calls), []).append(spawn(side, calls, seconds))
    return {key: (statistics.median(r["cpu"] / r["wall"] for r in items),
                  max(r["stats"].get("late_ticks", 0) for r in items))
            for key, items in runs.items()}


def report(figures):
    """Print per N the CPU per call-second of each side and their ratio."""
    print(f"   {'calls':>5} {'box us/call-s':>13} {'pjsip us/call-s':>15} {'ratio':>6} "
          f"{'box marginal':>12} {'pjsip marginal':>14} {'ratio':>6} {'box late':>8}")
    idle = {side: figures[(side, 0)][0] for side in ("box", "pjsip")}
    for calls in CALLS[1:]:
        box, late = figures[("box", calls)]
        pjsip, _ = figures[("pjsip", calls)]
        total = (box * 1e6 / calls, pjsip * 1e6 / calls)
        marginal = ((box - idle["box"]) * 1e6 / calls, (pjsip - idle["pjsip"]) * 1e6 / calls)
        print(f"   {calls:>5} {total[0]:>13.0f} {total[1]:>15.0f} {total[0] / total[1]:>6.2f} "
              f"{marginal[0]:>12.0f} {marginal[1]:>14.0f} {marginal[0] / marginal[1]:>6.2f} {late:>8}")
    print(f"   idle child (0 calls): box {idle['box'] * 100:.2f} % of a core, pjsip {idle['pjsip'] * 100:.2f} %")
    print("   us/call-s = CPU microseconds per second of one bridged, recorded call (all the child's threads);")
    print("   marginal = the same above the idle child; ratio = box / pjsip (goal: <= 1.0 at 15 calls)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("box", "pjsip"), help="run one side (a child of the bench)")
    parser.add_argument("--calls", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    if args.side:
        return child(args.side, args.calls, args.seconds)
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        print("pjsua2 is not installed: no comparison with PJSIP's bridge")
        return 0
    print(f"media path against PJSIP's conference bridge, {args.seconds:.0f} s per child, median of {args.rounds}, "
          f"on this machine ({os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()})")
    report(medians(args.seconds, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
