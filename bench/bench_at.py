"""AT channel round trips through a real pty to the emulated SIM7600."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from firmware.at import ATChannel  # noqa: E402
from hardware.virtual.network import VirtualNetwork  # noqa: E402
from hardware.virtual.families import Sim7600Emulator  # noqa: E402

COUNT = 500


def main():
    modem = Sim7600Emulator(VirtualNetwork(), "+359700000001")
    urcs = []
    channel = ATChannel(modem.at.path, urcs.append, name="bench")
    channel.command("ATE0")
    started = time.perf_counter()
    for _ in range(COUNT):
        channel.command("AT+CSQ", prefix="+CSQ:")
    elapsed = time.perf_counter() - started
    channel.close()
    modem.close()
    print(f"AT+CSQ round trips: {COUNT} in {elapsed:.2f} s: {COUNT / elapsed:.0f} per second, "
          f"{1000 * elapsed / COUNT:.2f} ms each, {len(urcs)} stray URCs")


if __name__ == "__main__":
    main()
