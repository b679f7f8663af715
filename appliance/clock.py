"""The system clock: is it synchronised, and if not, set it from the GSM network (NITZ).

A Raspberry Pi has no real-time clock. With internet, systemd-timesyncd (or chrony) sets
the clock and the kernel's ``STA_UNSYNC`` flag clears; that is the question asked here,
through ``adjtimex`` (read-only, allowed to any user), as ``timedatectl`` asks it. A box on
a GSM line alone has no NTP: the modems hear the network's time (NITZ) and report it with
``AT+CCLK?`` (``GsmLine.network_time``), and this module sets the clock from it with
``clock_settime``, which needs ``CAP_SYS_TIME`` (the engine's unit grants exactly that).

A clock earlier than the build floor (this release's date, or the time systemd or
fake-hwclock last saved) is never trusted: the box starts it at the floor, as systemd
does at boot, so no schedule ever runs on a 1970 clock, and says the clock is not set.
"""
import ctypes
import ctypes.util
import datetime
import logging
import os
import shutil
import subprocess
import threading
import time

log = logging.getLogger(__name__)

# No clock earlier than this release is believed.
RELEASE_FLOOR = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
# Files whose modification time proves the clock was at least that late once.
FLOOR_FILES = ("/var/lib/systemd/timesync/clock", "/etc/fake-hwclock.data")
TIME_ERROR = 5  # adjtimex's return value for an unsynchronised clock
STA_UNSYNC = 0x0040
SET_THRESHOLD_SECONDS = 5.0  # NITZ has one-second resolution and a modem answers late
NITZ_RETRY_SECONDS = 60.0
NTP_CHECK_SECONDS = 60.0


class _Timex(ctypes.Structure):
    """struct timex from <sys/timex.h>, enough of it for adjtimex to fill (padding included)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("_padding", ctypes.c_int * 11)]


_libc = None


def _adjtimex():
    """The C library's adjtimex, loaded once (find_library runs ldconfig, not for every call)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc.adjtimex


def ntp_synchronised():
    """True when the kernel clock is synchronised over the network, False if not, None if unknown."""
    try:
        timex = _Timex()
        state = _adjtimex()(ctypes.byref(timex))
    except (OSError, AttributeError):
        return _timedatectl_synchronised()
    if state < 0:
        return _timedatectl_synchronised()
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


def _timedatectl_synchronised():
    if not shutil.which("timedatectl"):
        return None
    try:
        done = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    return {"yes": True, "no": False}.get(value)


def build_floor(files=FLOOR_FILES):
    """The earliest time the clock can honestly show: this release, or a saved later time."""
    floor = RELEASE_FLOOR.timestamp()
    for path in files:
        try:
            floor = max(floor, os.stat(path).st_mtime)
        except OSError:
            continue
    return datetime.datetime.fromtimestamp(floor, datetime.timezone.utc)


def clock_trusted(now=None, floor=None):
    """Whether the system clock is not obviously wrong (not before the build floor)."""
    now = now if now is not None else time.time()
    return now >= (floor or build_floor()).timestamp()


def set_system_clock(when):
    """Set the system clock to the aware datetime ``when`` (needs CAP_SYS_TIME)."""
    time.clock_settime(time.CLOCK_REALTIME, when.timestamp())


def _running_as_service():
    """Whether systemd started this process (it sets INVOCATION_ID for every service)."""
    return bool(os.environ.get("INVOCATION_ID"))


class ClockKeeper:
    """Knows where the clock came from; sets it from a modem's NITZ time when NTP is missing."""

    def __init__(self, mode="auto", synchronised=ntp_synchronised, set_clock=set_system_clock,
                 floor=None, now=time.time):
        self.may_set = False
        self.set_mode(mode)
        self._synchronised = synchronised
        self._set_clock = set_clock
        self._now = now
        self.floor = floor or build_floor()
        self._lock = threading.Lock()
        self.source = "unsynchronised"  # ntp, gsm, build floor, or unsynchronised (as the system had it)
        self.line = None
        self.set_at = None
        self.offset_seconds = None
        self.error = None
        self._ntp = None
        self._ntp_checked = float("-inf")
        self._nitz_asked = float("-inf")

    def set_mode(self, mode):
        """auto, on or off: whether this process may set the system clock."""
        # "auto" sets the clock only under systemd, so a development run never moves the clock
        # of the machine it runs on; "on" always, "off" never (then it only reports).
        self.may_set = mode == "on" or (mode == "auto" and _running_as_service())

    def start(self):
        """Check the clock at start: never run on a clock earlier than the floor."""
        self.check_ntp(force=True)
        if self._ntp:
            return
        if not clock_trusted(self._now(), self.floor):
            if self.may_set:
                try:
                    self._set_clock(self.floor)
                except OSError as err:
                    self.error = f"cannot set the clock: {err}"
                    log.error("the clock says %s, before %s, and %s", _iso(self._now()), _iso(self.floor.timestamp()),
                              self.error)
                    return
                self.source = "build floor"
                log.warning("the clock was before %s: set to it until the network gives the time", self.floor.date())
            else:
                self.error = f"the clock says {_iso(self._now())}, before this release"

    def check_ntp(self, force=False):
        """Whether NTP keeps the clock (asked at most once a minute)."""
        monotonic = time.monotonic()
        if force or monotonic - self._ntp_checked >= NTP_CHECK_SECONDS:
            self._ntp_checked = monotonic
            self._ntp = self._synchronised()
            if self._ntp:
                with self._lock:
                    self.source, self.line, self.error = "ntp", None, None
        return self._ntp

    def wants_nitz(self):
        """Whether to ask a modem for the network's time now."""
        if self.check_ntp():
            return False
        with self._lock:
            if self.source == "gsm":
                return False  # set once; the kernel keeps it from there, NTP takes over when it comes
            if time.monotonic() - self._nitz_asked < NITZ_RETRY_SECONDS:
                return False
            self._nitz_asked = time.monotonic()
            return True

    def from_modem(self, line_id, driver):
        """Read the network's time from a line's driver and set the clock by it (on the line's thread)."""
        try:
            network = driver.network_time()
        except Exception as err:  # a modem without +CCLK is common (some Huawei firmware)
            log.info("line %s gives no network time: %s", line_id, err)
            return None
        return self.from_network_time(line_id, network)

    def from_network_time(self, line_id, network):
        """Set the clock from NITZ time ``network`` (an aware datetime, or None when the modem has none)."""
        if network is None or network.timestamp() < self.floor.timestamp():
            return None  # the modem has not heard the network's time yet
        offset = network.timestamp() - self._now()
        with self._lock:
            self.offset_seconds = round(offset, 1)
            if self.may_set and abs(offset) > SET_THRESHOLD_SECONDS:
                try:
                    self._set_clock(network)
                except OSError as err:
                    self.error = f"cannot set the clock: {err}"
                    log.error("line %s: network time %s, but %s", line_id, network.isoformat(), self.error)
                    return None
                log.warning("clock set from the GSM network time of line %s (it was %+.0f s off)", line_id, -offset)
                self.set_at = time.time()
            elif not self.may_set and abs(offset) > SET_THRESHOLD_SECONDS:
                self.error = f"the GSM network says the clock is {offset:+.0f} s off; not set (set_clock is off)"
                return network
            self.source, self.line, self.error = "gsm", line_id, None
        return network

    def trusted(self):
        """Whether the schedule can go by the clock: NTP, the GSM network, or at least not before the floor."""
        return self.source in ("ntp", "gsm") or clock_trusted(self._now(), self.floor)

    def snapshot(self):
        """Where the clock came from, for the dashboard."""
        with self._lock:
            return {"source": self.source, "line": self.line, "synchronised": bool(self._ntp),
                    "trusted": self.trusted(), "offset_seconds": self.offset_seconds,
                    "set_at": _iso(self.set_at) if self.set_at else None, "error": self.error,
                    "now": _iso(self._now())}


def _iso(stamp):
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat(timespec="seconds")
