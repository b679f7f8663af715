"""Media path cost: what one 20 ms tick costs per call, through real ports on ptys.

Each leg is a real SerialAudioPort on a pseudo-terminal (the far end fed by this script),
a Player with the greeting and a Recorder writing WAV. Prints the work per leg per tick,
the share of the 20 ms frame budget that N legs use, and late ticks over a timed run.
"""
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appliance.media import FRAME_BYTES, CallMedia, MediaClock, Player, Recorder  # noqa: E402
from appliance.prompts import speak  # noqa: E402
from firmware.audio import SerialAudioPort  # noqa: E402
from hardware.virtual.pty import PtyPort  # noqa: E402

FRAME_MS = 20.0


def make_legs(count, tmp, greeting):
    legs = []
    for i in range(count):
        pty = PtyPort()
        port = SerialAudioPort(pty.path, name=f"bench{i}")
        media = CallMedia(port, Recorder(os.path.join(tmp, f"rec{i}.wav")), lambda p: None, lambda e: None)
        media.play(Player(greeting))
        legs.append((pty, port, media))
    return legs


def close_legs(legs):
    for pty, port, media in legs:
        media.recorder.finish()
        port.close()
        pty.close()


def tick_cost(count, tmp, greeting, ticks=500):
    """Mean CPU microseconds of one tick for ``count`` legs (frames waiting on each port)."""
    legs = make_legs(count, tmp, greeting)
    frame = bytes(range(256)) + bytes(FRAME_BYTES - 256)
    spent = 0.0
    for _ in range(ticks):
        for pty, _, _ in legs:
            pty.write(frame)
        time.sleep(0.002)  # let the port readers pick the frames up
        for pty, _, _ in legs:
            pty.read(0)  # drain what the legs sent, as a modem would
        started = time.process_time()
        for _, _, media in legs:
            media.tick()
        spent += time.process_time() - started
    close_legs(legs)
    return spent / ticks * 1e6


def play_modem(legs, stop):
    """Every 20 ms write a frame to each port and read what the engine sent."""
    frame = bytes(FRAME_BYTES)
    deadline = time.monotonic()
    while not stop.is_set():
        for pty, _, _ in legs:
            pty.write(frame)
            pty.read(0)
        deadline += FRAME_MS / 1000
        time.sleep(max(0.0, deadline - time.monotonic()))


def clock_run(count, tmp, greeting, seconds=5.0):
    """Run the real media clock with ``count`` legs; return its stats."""
    legs = make_legs(count, tmp, greeting)
    stop = threading.Event()
    modem = threading.Thread(target=play_modem, args=(legs, stop))  # feeds and drains like a modem
    modem.start()
    clock = MediaClock()
    for _, _, media in legs:
        clock.attach(media)
    clock.start()
    time.sleep(seconds)
    clock.stop()
    stop.set()
    modem.join()
    close_legs(legs)
    return clock.stats()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        greeting = os.path.join(tmp, "greeting.wav")
        speak("Welcome to the hotline. This call is recorded.", "en", greeting)
        print("media path: work per 20 ms tick (CPU time, real ports on ptys, player + recorder)")
        print(f"{'legs':>5} {'us/tick':>9} {'us/leg':>8} {'% of 20 ms':>11}")
        for count in (1, 4, 8, 16):
            micros = tick_cost(count, tmp, greeting)
            print(f"{count:>5} {micros:>9.1f} {micros / count:>8.1f} {micros / (FRAME_MS * 10):>10.2f}%")
        print("media clock run, 5 s per row: ticks, ticks that started more than one frame late")
        for count in (2, 8):
            stats = clock_run(count, tmp, greeting)
            print(f"{count:>5} legs: {stats['ticks']} ticks, {stats['late_ticks']} late, "
                  f"worst lateness {stats['max_late_ms']} ms, mean tick {stats['mean_tick_us']} us")


if __name__ == "__main__":
    main()
