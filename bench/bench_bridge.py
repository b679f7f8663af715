"""Bridged calls: how many caller-and-operator bridges one core keeps in real time.

Answers "how many caller-and-operator bridges with stereo recording one core keeps in
real time with no late frame, and the media work per frame per call", in two parts:

1. Work per frame, no clock: N bridged pairs of CallMedia over in-memory ports (speech-like
   frames in, frames out discarded), the caller leg recording (stereo, mono, or not at all;
   and stereo with an in-band DTMF detector on the caller leg). All legs are ticked for
   FRAMES frames; the CPU time gives the work per frame per bridge and the number of
   bridges one core could tick inside a 20 ms frame (20000 us / cost). Port I/O is not in it.
2. Real time, real ports: the real MediaClock ticks K bridges whose legs are
   SerialAudioPorts on pseudo-terminals, fed every 20 ms by one thread standing in for
   the modems. Prints the clock's own counts (ticks, late ticks, worst lateness, mean
   tick) and the whole process's CPU use, which includes the port threads and the feeder.
"""
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance.dtmf import DtmfDetector  # noqa: E402
from appliance.media import (FRAME_BYTES, SAMPLE_RATE, CallMedia, MediaClock,  # noqa: E402
                             Recorder, bridge)
from firmware.audio import SerialAudioPort  # noqa: E402
from hardware.virtual.pty import PtyPort  # noqa: E402

FRAME_MS = 20.0
FRAME_US = FRAME_MS * 1000
FRAMES = 3000  # per variant in part 1 (60 s of audio per bridge)
COST_BRIDGES = 8  # bridges ticked together in part 1
CLOCK_BRIDGES = (2, 4, 8, 12, 16, 24, 32)  # part 2 rows (about 75 s in all)
CLOCK_SECONDS = 10.0  # per part 2 row


def speech_like(seconds, f0, seed):
    """Voiced harmonics with a gliding pitch, cut into syllables, over a faint hiss, as 20 ms frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = f0 * (1 + 0.12 * np.sin(2 * np.pi * 0.7 * t + seed))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 2.1 * t + seed), 0, None) ** 0.7  # ~4 syllables/s, pauses between
    signal = voiced * syllables
    signal = 0.5 * signal / np.abs(signal).max() + rng.normal(0, 0.003, t.size)  # about -6 dBFS peaks
    pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype("<i2").tobytes()
    return [pcm[i:i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


CALLER_FRAMES = speech_like(4.0, 120.0, 1)
OPERATOR_FRAMES = speech_like(4.0, 210.0, 2)


class MemoryPort:
    """A port with no I/O: read_frame cycles through prepared frames, write_frame discards."""

    def __init__(self, frames):
        self._frames = frames
        self._next = 0

    def read_frame(self):
        frame = self._frames[self._next]
        self._next = (self._next + 1) % len(self._frames)
        return frame

    def write_frame(self, frame):
        pass


def ignore(*_):
    pass


def memory_bridges(count, tmp, tag, recording, dtmf):
    """``count`` bridged (caller, operator) pairs over MemoryPorts; the caller leg records."""
    keys = []
    pairs = []
    for i in range(count):
        recorder = None
        if recording != "off":
            recorder = Recorder(os.path.join(tmp, f"{tag}-{i}.wav"), stereo=recording == "stereo")
        caller = CallMedia(MemoryPort(CALLER_FRAMES), recorder, ignore, ignore,
                           dtmf_detector=DtmfDetector() if dtmf else None, on_dtmf=keys.append)
        operator = CallMedia(MemoryPort(OPERATOR_FRAMES), None, ignore, ignore)
        bridge(caller, operator)
        pairs.append((caller, operator))
    return pairs, keys


def frame_cost(tmp, tag, recording, dtmf=False, count=COST_BRIDGES, frames=FRAMES):
    """CPU microseconds per frame per bridge, and keys the detector (wrongly) found in speech."""
    pairs, keys = memory_bridges(count, tmp, tag, recording, dtmf)
    legs = [leg for pair in pairs for leg in pair]
    for _ in range(50):  # warm up (first numpy calls, file buffers)
        for leg in legs:
            leg.tick()
    started = time.process_time()
    for _ in range(frames):
        for leg in legs:
            leg.tick()
    spent = time.process_time() - started
    for caller, _ in pairs:
        if caller.recorder is not None:
            caller.recorder.finish()
    return spent / frames / count * 1e6, len(keys)


class CountingPort(SerialAudioPort):
    """SerialAudioPort that counts ticks on which no frame had arrived (the leg sent silence)."""

    empty_reads = 0

    def read_frame(self):
        frame = super().read_frame()
        if frame is None:
            self.empty_reads += 1
        return frame


class PtyBridge:
    """A caller leg and an operator leg on real SerialAudioPorts over ptys, bridged; the caller leg records."""

    def __init__(self, index, tmp):
        self.ptys = (PtyPort(), PtyPort())
        self.ports = (CountingPort(self.ptys[0].path, name=f"caller{index}"),
                      CountingPort(self.ptys[1].path, name=f"operator{index}"))
        self.recorder = Recorder(os.path.join(tmp, f"clock-{index}.wav"), stereo=True)
        self.caller = CallMedia(self.ports[0], self.recorder, ignore, ignore)
        self.operator = CallMedia(self.ports[1], None, ignore, ignore)
        bridge(self.caller, self.operator)

    def close(self):
        self.recorder.finish()
        for port in self.ports:
            port.close()
        for pty in self.ptys:
            pty.close()


def play_modems(bridges, stop):
    """Every 20 ms write a speech frame to each pty and drain what the engine sent, as modems would."""
    deadline = time.monotonic()
    index = 0
    while not stop.is_set():
        for item in bridges:
            for pty, frames in zip(item.ptys, (CALLER_FRAMES, OPERATOR_FRAMES)):
                pty.write(frames[index % len(frames)])
                pty.read(0)
        index += 1
        deadline += FRAME_MS / 1000
        time.sleep(max(0.0, deadline - time.monotonic()))


def clock_run(count, tmp, seconds=CLOCK_SECONDS):
    """Run the real media clock over ``count`` pty bridges; return its stats and the process CPU share."""
    bridges = [PtyBridge(i, tmp) for i in range(count)]
    stop = threading.Event()
    modems = threading.Thread(target=play_modems, args=(bridges, stop), name="bench-modems")
    modems.start()
    clock = MediaClock()
    for item in bridges:
        clock.attach(item.caller)
        clock.attach(item.operator)
    cpu, wall = time.process_time(), time.monotonic()
    clock.start()
    time.sleep(seconds)
    clock.stop()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    stop.set()
    modems.join()
    empty = sum(port.empty_reads for item in bridges for port in item.ports)
    for item in bridges:
        item.close()
    return clock.stats(), cpu / wall, empty


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def main():
    machine = f"{cores()} cores, {platform.machine()}, Python {platform.python_version()}"
    with tempfile.TemporaryDirectory() as tmp:
        print("1. media work per 20 ms frame per bridge (caller + operator leg), no clock, in-memory ports")
        print(f"   {COST_BRIDGES} bridges ticked together for {FRAMES} frames each; CPU time; on this machine "
              f"({machine})")
        print(f"   {'variant':<32} {'us/frame/bridge':>15} {'% of 20 ms':>10} {'max bridges/core':>16}")
        variants = (("stereo recording", "stereo", False),
                    ("mono recording", "mono", False),
                    ("no recording", "off", False),
                    ("stereo recording + DTMF detector", "stereo", True))
        for label, recording, dtmf in variants:
            micros, keys = frame_cost(tmp, recording + ("-dtmf" if dtmf else ""), recording, dtmf)
            note = f"   ({keys} false keys in speech)" if dtmf else ""
            print(f"   {label:<32} {micros:>15.1f} {micros / FRAME_US * 100:>9.2f}% {int(FRAME_US // micros):>16d}"
                  f"{note}")
        print("   max bridges/core = 20000 us / cost: the media work alone, no port I/O, no other work")
        print()
        print(f"2. real MediaClock, real SerialAudioPorts on ptys, stereo recording on each caller leg, "
              f"{CLOCK_SECONDS:.0f} s per row")
        print(f"   on this machine ({machine}); one feeder thread stands in for the modems and,")
        print("   with the two port threads per leg, shares the CPU with the clock")
        print(f"   {'bridges':>7} {'legs':>5} {'ticks':>6} {'late':>5} {'worst late ms':>13} {'mean tick us':>12} "
              f"{'us/bridge':>9} {'process CPU':>11} {'empty reads':>11}")
        clean = []
        for count in CLOCK_BRIDGES:
            stats, share, empty = clock_run(count, tmp)
            per_bridge = stats["mean_tick_us"] / count
            print(f"   {count:>7} {stats['legs']:>5} {stats['ticks']:>6} {stats['late_ticks']:>5} "
                  f"{stats['max_late_ms']:>13.2f} {stats['mean_tick_us']:>12.1f} {per_bridge:>9.1f} "
                  f"{share * 100:>10.1f}% {empty:>11}", flush=True)
            if stats["late_ticks"] == 0:
                clean.append(count)
        print("   late = a tick that started more than one 20 ms frame after its deadline")
        print("   mean tick us = wall time of a tick, so it includes waiting for the GIL held by port threads")
        print("   process CPU = process_time / wall over the run, all threads (100 % = one core)")
        print("   empty reads = leg ticks on which no frame had come from the port yet (summed over all legs)")
        tried = max(CLOCK_BRIDGES)
        if clean:
            best = max(clean)
            print(f"   largest K with zero late ticks in this run: {best} bridges ({2 * best} legs)")
            if best == tried:
                print("   (the most tried: the limit lies higher)")
            print(f"   measured on this machine ({machine}); the feeder thread standing in for the modems")
            print("   and the port threads share the same CPU with the media clock")
        else:
            print(f"   no K tried ran without a late tick on this machine ({machine})")


if __name__ == "__main__":
    main()
