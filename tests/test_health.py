"""Health: a nearly full disk (a real small tmpfs where this machine lets us mount one, else a
simulated one), the Pi's temperature and under-voltage readings, the lines, and the running box."""
import collections
import os
import shutil
import subprocess
import threading
import time

import pytest

from appliance import appliance_services
from appliance import journal as journal_module
from appliance.config import ConfigStore
from appliance.engine import Engine
from appliance.health import (DEFAULTS, MB, HealthMonitor, cpu_temperature, line_problems, reading_problems,
                              recording_allowed, recording_refusal, throttling)
from hardware.virtual.world import VirtualWorld

from .conftest import Box, greeting_config, wait_for

DISK_MB = 16
RESERVE_MB = 4  # recording stops below this
MIN_FREE_MB = 8  # retention keeps this much free


class SimulatedDisk:
    """A disk of ``total`` bytes whose use is what the files under ``root`` take."""

    def __init__(self, root, total):
        self.root, self.total = root, total

    def __call__(self, path):
        used = sum(os.path.getsize(os.path.join(folder, name))
                   for folder, _, names in os.walk(self.root) for name in names)
        usage = collections.namedtuple("usage", "total used free")
        return usage(self.total, used, max(0, self.total - used))


@pytest.fixture(params=["tmpfs", "simulated"])
def small_disk(request, tmp_path):
    """(data directory, disk_usage): a real 16 MB tmpfs (where mount works here) or a simulated 16 MB disk."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = False
    if request.param == "tmpfs":
        mounted = os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount_point)],
            capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    data_dir = mount_point / "data"
    data_dir.mkdir()
    try:
        yield str(data_dir), shutil.disk_usage if mounted else SimulatedDisk(str(mount_point), DISK_MB * MB)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def write_recording(data_dir, day, number, megabytes=1):
    folder = os.path.join(data_dir, "recordings", "2026", "03", f"{day:02d}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"call-{number}.ogg")
    with open(path, "wb") as handle:
        handle.write(os.urandom(int(megabytes * MB)))
    return os.path.relpath(path, data_dir)


def pin(data_dir, *recordings):
    conn = journal_module.connect(os.path.join(data_dir, journal_module.JOURNAL_FILE))
    try:
        with journal_module.Transaction(conn):
            conn.executemany("INSERT INTO pinned_recordings (recording, pinned_at) VALUES (?, ?)",
                             [(path, journal_module.now()) for path in recordings])
    finally:
        conn.close()


def monitor(data_dir, disk_usage, **options):
    return HealthMonitor(data_dir, {}, min_free_mb=lambda: MIN_FREE_MB, disk_usage=disk_usage,
                         reserve_mb=RESERVE_MB, **options)


def test_retention_purges_the_oldest_recordings_before_the_disk_fills(small_disk):
    data_dir, disk_usage = small_disk
    pin(data_dir)  # an empty journal first: SQLite's own pages count too
    oldest = write_recording(data_dir, 1, 1)
    pin(data_dir, oldest)  # a caller card keeps this one
    made = [write_recording(data_dir, day, day) for day in range(2, 11)]
    assert disk_usage(data_dir).free < MIN_FREE_MB * MB
    purged = []
    health = monitor(data_dir, disk_usage, on_purged=purged.extend)
    readings = health.check()
    assert readings["disk"]["free_bytes"] >= MIN_FREE_MB * MB
    assert purged and purged == made[:len(purged)]  # the oldest first
    assert os.path.exists(os.path.join(data_dir, oldest))  # never a pinned one
    assert readings["recording_allowed"] and readings["purged"] == len(purged)
    assert "disk.full" not in {p["id"] for p in reading_problems(readings, DEFAULTS, MIN_FREE_MB)}


def test_recording_stops_before_the_journal_disk_is_full_and_says_so(small_disk):
    data_dir, disk_usage = small_disk
    pin(data_dir)
    kept = [write_recording(data_dir, day, day) for day in range(1, 12)]
    pin(data_dir, *kept)  # nothing may be deleted
    with open(os.path.join(data_dir, "other.bin"), "wb") as handle:  # something else fills the disk
        handle.write(os.urandom(int(2.5 * MB)))
    assert disk_usage(data_dir).free < RESERVE_MB * MB
    readings = monitor(data_dir, disk_usage).check()
    assert readings["purged"] == 0 and not readings["recording_allowed"]
    assert not recording_allowed(data_dir, RESERVE_MB, disk_usage)
    assert "recording stopped" in recording_refusal(data_dir, RESERVE_MB, disk_usage)
    found = {p["id"]: p for p in reading_problems(readings, DEFAULTS, MIN_FREE_MB)}
    assert found["disk.full"]["level"] == "fault" and "recording has stopped" in found["disk.full"]["message"]
    # What the reserve is for: the call journal still takes its writes.
    journal = journal_module.Journal.open(os.path.join(data_dir, journal_module.JOURNAL_FILE))
    try:
        call_id = journal.start_call("gsm1", "in", caller="+359888123456")
        journal.add_event(call_id, "recording_refused", reason=recording_refusal(data_dir, RESERVE_MB, disk_usage))
        journal.end_call(call_id, "answered", "caller")
        assert journal.get_call(call_id)["outcome"] == "answered"
    finally:
        journal.close()


def test_recording_is_allowed_on_a_roomy_disk(tmp_path):
    assert recording_allowed(str(tmp_path)) == (shutil.disk_usage(tmp_path).free >= 64 * MB)


def test_monitor_thread_measures_and_stops(small_disk):
    data_dir, disk_usage = small_disk
    health = monitor(data_dir, disk_usage).start()
    wait_for(lambda: health.readings().get("disk"))
    health.close()
    health.close()  # safe twice


def test_cpu_temperature_from_the_thermal_zones(tmp_path):
    for name, kind, millidegrees in (("thermal_zone0", "gpu-thermal", "41000"),
                                     ("thermal_zone1", "cpu-thermal", "48312")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "temp").write_text(millidegrees + "\n")
    assert cpu_temperature(str(tmp_path)) == 48.3  # the CPU's zone, wherever it is listed
    assert cpu_temperature(str(tmp_path / "none")) is None
    hot = reading_problems({"cpu_temperature": 81.0}, DEFAULTS, 200)
    assert [p["id"] for p in hot] == ["cpu.hot"]


def test_under_voltage_from_the_firmware(tmp_path):
    path = tmp_path / "get_throttled"
    path.write_text("50005\n")  # under-voltage now and since boot, throttled now and since boot
    flags = throttling(str(path), vcgencmd=None)
    assert flags["under_voltage"] and flags["under_voltage_occurred"] and flags["throttled"]
    assert not flags["frequency_capped"] and flags["raw"] == "0x50005"
    found = reading_problems({"throttling": flags}, DEFAULTS, 200)
    assert [(p["id"], p["level"]) for p in found] == [("power.under_voltage", "fault")]
    path.write_text("0x50000\n")  # it happened, it is over
    found = reading_problems({"throttling": throttling(str(path), vcgencmd=None)}, DEFAULTS, 200)
    assert [(p["id"], p["level"]) for p in found] == [("power.under_voltage_occurred", "warning")]
    assert throttling(str(tmp_path / "missing"), vcgencmd=None) is None  # not a Pi


def test_line_problems():
    lines = [{"id": "gsm1", "state": "up", "registration": "home", "signal_dbm": -71},
             {"id": "gsm2", "state": "up", "registration": "searching", "signal_dbm": -71},
             {"id": "gsm3", "state": "up", "registration": "roaming", "signal_dbm": -111},
             {"id": "gsm4", "state": "down", "error": "no modem with IMEI 861234567890123"},
             {"id": "gsm5", "state": "starting"}]
    found = {p["id"]: p for p in line_problems(lines, DEFAULTS)}
    assert set(found) == {"line.gsm2.registration", "line.gsm3.signal", "line.gsm4.down"}
    assert found["line.gsm4.down"]["level"] == "fault" and "IMEI" in found["line.gsm4.down"]["message"]
    assert found["line.gsm3.signal"]["level"] == "warning"


def test_running_box_reports_health_without_a_panel(tmp_path):
    box = Box(tmp_path)
    box.configure(greeting_config())
    box.start("twin", "engine")
    try:
        health = wait_for(lambda: (box.status() or {}).get("health"))
        assert health["panel"] is None  # no panel configured: the box runs the same
        assert health["disk"]["free_bytes"] > 0 and "recording_allowed" in health
        assert health["watchdog"]["enabled"] is False  # not under systemd
        wait_for(lambda: box.status()["health"]["status"] == "ready", timeout=20)
        box.kill("twin")  # both modems vanish
        down = wait_for(lambda: {p["id"] for p in box.status()["health"]["problems"]} >=
                        {"line.gsm1.down", "line.gsm2.down"} and box.status()["health"], timeout=30)
        assert down["status"] == "fault"
    finally:
        box.stop()


def test_a_lasting_problem_is_notified_once(tmp_path, monkeypatch):
    monkeypatch.setattr(appliance_services, "NOTIFY_AFTER_SECONDS", 0.0)
    config = greeting_config()
    config["notifications"] = {"sms_to": ["+359888000111"], "webhooks": ["http://127.0.0.1:9/hook"],
                               "webhook_secret": "a long random phrase"}
    ConfigStore(str(tmp_path)).save(config)
    world = VirtualWorld(config["virtual"], str(tmp_path))
    engine = Engine(str(tmp_path))
    engine.start()
    loop = threading.Thread(target=engine.run)
    loop.start()
    try:
        wait_for(lambda: all(engine.lines.get(i, {}).get("state") == "up" for i in ("gsm1", "gsm2")), timeout=30)
        world.close()  # the modems vanish: the lines go down
        wait_for(lambda: _outbox(engine, "sms"), timeout=30)
        time.sleep(6)  # another round of problems: no second message for the same problem
        sms = _outbox(engine, "sms")
        assert len(sms) == len({item["payload"]["text"] for item in sms}) == 2  # one per line
        assert all("is down" in item["payload"]["text"] and item["target"] == "+359888000111" for item in sms)
        assert {item["event"] for item in _outbox(engine, "webhook")} == {"health.problem"}
    finally:
        engine.stop()
        loop.join(timeout=10)


def _outbox(engine, channel):
    return [item for item in engine.dispatcher.outbox.recent(100)
            if item["channel"] == channel and item["event"] == "health.problem"]
