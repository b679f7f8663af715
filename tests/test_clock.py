"""The clock: NTP or not, the GSM network's time (NITZ) from an emulated modem, the build floor.

The system clock itself is never touched: a ClockKeeper is handed a stand-in for the
kernel's clock (what it reads and what ``clock_settime`` would set). The modem is real
enough: the SIM7600 driver asks an emulated SIM7600 on a pseudo-terminal for AT+CCLK?.
"""
import datetime
import os
import time

import pytest

from appliance.clock import (RELEASE_FLOOR, SET_THRESHOLD_SECONDS, ClockKeeper, build_floor, clock_trusted,
                             ntp_synchronised)
from firmware.simcom import Sim7600Line

from .conftest import Box, wait_for

UTC = datetime.timezone.utc


class SystemClock:
    """A stand-in for the kernel clock: reads ``offset`` seconds away from the real one; set() moves it."""

    def __init__(self, now):
        self.offset = now - time.time()
        self.set_to = []

    def now(self):
        return time.time() + self.offset

    def set(self, when):
        self.set_to.append(when)
        self.offset = when.timestamp() - time.time()


@pytest.fixture
def line(sim7600):
    driver = Sim7600Line(sim7600.at.path, lambda event: None, audio_port=sim7600.audio.path, name="gsm1")
    yield driver
    driver.close()


def test_ntp_state_is_read_from_the_kernel():
    assert ntp_synchronised() in (True, False, None)  # adjtimex answers on any Linux, as any user


def test_build_floor_is_the_release_or_a_later_saved_time(tmp_path):
    assert build_floor(files=()) == RELEASE_FLOOR
    saved = tmp_path / "fake-hwclock.data"
    saved.write_text("2031-05-06 07:08:09\n")
    later = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
    os.utime(saved, (later, later))
    assert build_floor(files=(str(saved), str(tmp_path / "missing"))).timestamp() == later
    assert not clock_trusted(0)  # 1970
    assert clock_trusted(time.time())


def test_clock_falls_back_to_the_gsm_network_time_when_ntp_is_missing(line):
    system = SystemClock(time.time() - 3600)  # booted with the time saved an hour ago, no NTP
    keeper = ClockKeeper(mode="on", synchronised=lambda: False, set_clock=system.set, now=system.now)
    keeper.start()
    assert keeper.snapshot()["source"] == "unsynchronised"
    assert keeper.wants_nitz()
    keeper.from_modem("gsm1", line)  # AT+CCLK? on the emulated modem: the network's time
    assert len(system.set_to) == 1
    assert abs(system.set_to[0].timestamp() - time.time()) < 3  # set to the real time, from the modem
    state = keeper.snapshot()
    assert state["source"] == "gsm" and state["line"] == "gsm1" and state["trusted"]
    assert 3590 < state["offset_seconds"] < 3610
    assert not keeper.wants_nitz()  # set once; the kernel keeps it
    assert abs(system.now() - time.time()) < 3


def test_a_clock_within_seconds_of_the_network_is_left_alone(line):
    system = SystemClock(time.time())
    keeper = ClockKeeper(mode="on", synchronised=lambda: False, set_clock=system.set, now=system.now)
    keeper.from_modem("gsm1", line)
    assert system.set_to == [] and abs(keeper.offset_seconds) < SET_THRESHOLD_SECONDS
    assert keeper.snapshot()["source"] == "gsm"


def test_ntp_wins_and_no_modem_is_asked(line):
    system = SystemClock(time.time())
    keeper = ClockKeeper(mode="on", synchronised=lambda: True, set_clock=system.set, now=system.now)
    keeper.start()
    assert keeper.snapshot()["source"] == "ntp"
    assert not keeper.wants_nitz()


def test_the_schedule_never_runs_on_a_1970_clock():
    system = SystemClock(0.0)  # a Pi without RTC, fake-hwclock and NTP: 1 January 1970
    floor = datetime.datetime(2026, 3, 1, tzinfo=UTC)
    keeper = ClockKeeper(mode="on", synchronised=lambda: False, set_clock=system.set, now=system.now, floor=floor)
    keeper.start()
    assert system.set_to == [floor]  # started at the floor at once, as systemd does at boot
    assert system.now() >= floor.timestamp() and keeper.snapshot()["source"] == "build floor"
    # A modem that has not heard the network's time yet (its RTC says 2004) changes nothing.
    assert keeper.from_network_time("gsm1", None) is None
    assert keeper.from_network_time("gsm1", datetime.datetime(2004, 1, 1, tzinfo=UTC)) is None
    assert system.set_to == [floor]


def test_without_permission_the_clock_is_only_reported(line):
    system = SystemClock(time.time() - 600)
    keeper = ClockKeeper(mode="off", synchronised=lambda: False, set_clock=system.set, now=system.now)
    keeper.from_modem("gsm1", line)
    assert system.set_to == []
    assert "not set" in keeper.snapshot()["error"]


def test_a_clock_that_cannot_be_set_says_why(line):
    def refuse(when):
        raise PermissionError(1, "Operation not permitted")

    system = SystemClock(time.time() - 600)
    keeper = ClockKeeper(mode="on", synchronised=lambda: False, set_clock=refuse, now=system.now)
    keeper.from_modem("gsm1", line)
    assert "cannot set the clock" in keeper.snapshot()["error"]


def test_a_modem_without_network_time_is_skipped(sim7600, line):
    sim7600.hang()  # AT+CCLK? goes unanswered
    keeper = ClockKeeper(mode="on", synchronised=lambda: False, set_clock=lambda when: None)
    assert keeper.from_modem("gsm1", line) is None
    assert keeper.snapshot()["source"] == "unsynchronised"


def test_the_running_box_says_where_its_clock_came_from(tmp_path):
    box = Box(tmp_path)
    box.start("twin", "engine")
    try:
        clock = wait_for(lambda: _clock_settled(box.status()), timeout=20)
    finally:
        box.stop()
    if clock["synchronised"]:
        assert clock["source"] == "ntp"
    else:  # this machine has no NTP: the engine asked a virtual modem for the network's time
        assert clock["source"] == "gsm" and clock["line"] in ("gsm1", "gsm2")
    assert clock["trusted"]


def _clock_settled(status):
    clock = ((status or {}).get("health") or {}).get("clock")
    return clock if clock and clock["source"] in ("ntp", "gsm") else None
