"""The box's health: disk space, CPU temperature, under-voltage, modems; problems to show.

Readings come from where a Raspberry Pi keeps them and are simply absent elsewhere:
the CPU temperature from ``/sys/class/thermal``, under-voltage and throttling from the
firmware's ``get_throttled`` (the sysfs file, else ``vcgencmd get_throttled``). A
problem is a small dict (``id``, ``level``, ``message``) that the dashboard lists and
the notifications carry.

Disk space is guarded at two heights. Below ``settings.min_free_mb`` retention deletes
the oldest recordings (never a pinned one) at once rather than at its hourly round; below
``RECORDING_RESERVE_MB`` new recordings are refused, so the journal (SQLite needs room for
its WAL) and the configuration can still be written when nothing more can be deleted.
"""
import glob
import logging
import os
import shutil
import subprocess
import threading
import time

from . import journal as journal_module
from . import recordings

log = logging.getLogger(__name__)

MB = 1024 * 1024
# Below this much free space no new recording starts: what is left is the journal's.
RECORDING_RESERVE_MB = 64
THERMAL_ROOT = "/sys/class/thermal"
THROTTLED_PATH = "/sys/devices/platform/soc/soc:firmware/get_throttled"
VCGENCMD = "vcgencmd"
# get_throttled bits (Raspberry Pi firmware): what is happening now, and what happened since boot.
THROTTLE_BITS = {
    0: "under_voltage", 1: "frequency_capped", 2: "throttled", 3: "soft_temperature_limit",
    16: "under_voltage_occurred", 17: "frequency_capped_occurred", 18: "throttled_occurred",
    19: "soft_temperature_limit_occurred",
}
REGISTERED = ("home", "roaming")

DEFAULTS = {
    "check_seconds": 30,
    "disk_warning_mb": 500,
    "temperature_warning": 75,  # °C; the Pi's firmware starts throttling at 80-85 °C
    "signal_warning_dbm": -105,  # below this a GSM call breaks up
    "notify": True,  # SMS and e-mail to the notifications' sms_to / email_to
    "set_clock": "auto",  # set the system clock from the GSM network: auto (under systemd), on, off
}


# --- disk ---------------------------------------------------------------------------

def disk_status(path, disk_usage=shutil.disk_usage):
    """Total and free bytes of the filesystem holding ``path``."""
    usage = disk_usage(_existing(path))
    return {"total_bytes": usage.total, "free_bytes": usage.free,
            "used_percent": round(100.0 * (usage.total - usage.free) / usage.total, 1) if usage.total else 0.0}


def recording_refusal(data_dir, reserve_mb=RECORDING_RESERVE_MB, disk_usage=shutil.disk_usage):
    """Why a new recording must not start (the disk is nearly full), or None when it may."""
    free = disk_usage(_existing(data_dir)).free
    if free < reserve_mb * MB:
        return (f"recording stopped: only {free // MB} MB free on the data disk; "
                f"the last {reserve_mb} MB are kept for the call journal")
    return None


def recording_allowed(data_dir, reserve_mb=RECORDING_RESERVE_MB, disk_usage=shutil.disk_usage):
    """Whether a new recording may start: False once free space is down to the journal's reserve."""
    return recording_refusal(data_dir, reserve_mb, disk_usage) is None


def purge_for_space(data_dir, min_free_mb, disk_usage=shutil.disk_usage):
    """Delete the oldest unpinned recordings until ``min_free_mb`` is free; return what went."""
    journal_path = os.path.join(data_dir, journal_module.JOURNAL_FILE)
    pinned = frozenset()
    if os.path.exists(journal_path):
        conn = journal_module.connect(journal_path)
        try:
            pinned = recordings.load_pinned(conn)
        finally:
            conn.close()
    return recordings.enforce_retention(data_dir, min_free_mb=min_free_mb, pinned=pinned, disk_usage=disk_usage)


def _existing(path):
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


# --- the Pi's firmware ---------------------------------------------------------------

def cpu_temperature(thermal_root=THERMAL_ROOT):
    """The CPU temperature in °C, or None where the system does not report one."""
    zones = sorted(glob.glob(os.path.join(thermal_root, "thermal_zone*")))
    # The Pi names its zone cpu-thermal; elsewhere the first zone is the best guess.
    zones.sort(key=lambda zone: _read(os.path.join(zone, "type")) not in ("cpu-thermal", "x86_pkg_temp"))
    for zone in zones:
        text = _read(os.path.join(zone, "temp"))
        try:
            return round(int(text) / 1000.0, 1)
        except (TypeError, ValueError):
            continue
    return None


def throttling(path=THROTTLED_PATH, vcgencmd=VCGENCMD):
    """The firmware's throttling flags (under-voltage and the like), or None off a Pi."""
    text = _read(path)
    if text is None and vcgencmd and shutil.which(vcgencmd):
        try:
            done = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5)
            text = done.stdout.strip().partition("=")[2] if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            text = None
    if not text:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    flags = {name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS.items()}
    flags["raw"] = f"0x{value:x}"
    return flags


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


# --- problems ------------------------------------------------------------------------

def problem(problem_id, level, message):
    """One problem: an id that stays the same while it lasts, warning or fault, a sentence."""
    return {"id": problem_id, "level": level, "message": message}


def reading_problems(readings, settings, min_free_mb):
    """Problems in the box's own readings: disk, temperature, power supply."""
    found = []
    disk = readings.get("disk")
    if disk:
        free_mb = disk["free_bytes"] // MB
        if not readings.get("recording_allowed", True):
            found.append(problem("disk.full", "fault", f"Only {free_mb} MB free on the data disk: recording "
                                 f"has stopped so that the call journal can still be written."))
        elif free_mb < max(min_free_mb, settings["disk_warning_mb"]):
            found.append(problem("disk.low", "warning", f"Only {free_mb} MB free on the data disk; the oldest "
                                 f"recordings are deleted to keep {min_free_mb} MB free."))
    temperature = readings.get("cpu_temperature")
    if temperature is not None and temperature >= settings["temperature_warning"]:
        found.append(problem("cpu.hot", "warning", f"The CPU is at {temperature:.0f} °C: give the box air."))
    flags = readings.get("throttling") or {}
    if flags.get("under_voltage"):
        found.append(problem("power.under_voltage", "fault", "Under-voltage now: the power supply is too weak; "
                             "USB modems drop off the bus. Use the official supply and a powered hub."))
    elif flags.get("under_voltage_occurred"):
        found.append(problem("power.under_voltage_occurred", "warning",
                             "Under-voltage happened since boot: check the power supply."))
    if flags.get("throttled") and not flags.get("under_voltage"):
        found.append(problem("cpu.throttled", "warning", "The CPU is being throttled (heat or power)."))
    return found


def line_problems(lines, settings):
    """Problems of the lines: down, not registered, weak signal (from the engine's line states)."""
    found = []
    for line in lines:
        line_id, state = line["id"], line.get("state")
        if state == "down":
            reason = line.get("error") or "the modem does not answer"
            found.append(problem(f"line.{line_id}.down", "fault", f"Line {line_id} is down: {reason}."))
            continue
        if state == "disabled":  # a SIP line on a box without pjsua2
            found.append(problem(f"line.{line_id}.disabled", "warning", f"Line {line_id}: {line.get('error')}."))
            continue
        if state != "up":
            continue
        registration = line.get("registration")
        # A SIP line's registration to its provider puts it down when refused; a GSM line's is read here.
        if registration is not None and registration not in REGISTERED and line.get("family") != "sip":
            found.append(problem(f"line.{line_id}.registration", "fault",
                                 f"Line {line_id} is not registered on the network ({registration})."))
        signal = line.get("signal_dbm")
        if signal is not None and signal < settings["signal_warning_dbm"]:
            found.append(problem(f"line.{line_id}.signal", "warning",
                                 f"Line {line_id} has a weak signal ({signal} dBm): move the antenna."))
    return found


class HealthMonitor:
    """Measures disk, temperature and power on its own thread; purges recordings before the disk fills."""

    def __init__(self, data_dir, settings, min_free_mb=lambda: 0, on_purged=lambda deleted: None,
                 disk_usage=shutil.disk_usage, thermal_root=THERMAL_ROOT, throttled_path=THROTTLED_PATH,
                 vcgencmd=VCGENCMD, reserve_mb=RECORDING_RESERVE_MB):
        self.data_dir = data_dir
        self.reserve_mb = reserve_mb
        self.settings = dict(DEFAULTS, **(settings or {}))
        self._min_free_mb = min_free_mb  # a callable: the setting may change on reload
        self._on_purged = on_purged
        self._disk_usage = disk_usage
        self._thermal_root = thermal_root
        self._throttled_path = throttled_path
        self._vcgencmd = vcgencmd
        self._lock = threading.Lock()
        self._readings = {}
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        """Measure now, then every ``check_seconds`` on a thread."""
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()
        return self

    def readings(self):
        """The latest readings (a copy)."""
        with self._lock:
            return dict(self._readings)

    def check(self):
        """Measure everything once; purge recordings when the disk is below its minimum."""
        min_free = self._min_free_mb() or 0
        disk = disk_status(self.data_dir, self._disk_usage)
        purged = []
        if min_free and disk["free_bytes"] < min_free * MB:
            purged = purge_for_space(self.data_dir, min_free, self._disk_usage)
            if purged:
                log.warning("disk below %d MB free: deleted %d oldest recording(s)", min_free, len(purged))
                self._on_purged(purged)
                disk = disk_status(self.data_dir, self._disk_usage)
        readings = {
            "disk": disk,
            "recording_allowed": recording_allowed(self.data_dir, self.reserve_mb, self._disk_usage),
            "cpu_temperature": cpu_temperature(self._thermal_root),
            "throttling": throttling(self._throttled_path, self._vcgencmd),
            "checked_at": time.time(),
            "purged": len(purged),
        }
        with self._lock:
            self._readings = readings
        return readings

    def close(self):
        """Stop the thread; safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a failed reading is logged; the next round tries again
                log.exception("health check failed")
            self._stop.wait(self.settings["check_seconds"])
