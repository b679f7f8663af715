"""systemd/install.sh into a temporary root; the units under systemd-analyze verify; the udev rules.

The script runs for real: a virtual environment is made under the root and the project is
installed into it (``--offline``: without its dependencies, which this test does not
run). ``--root`` keeps it off this machine's packages, users and services.
"""
import configparser
import os
import re
import shutil
import stat
import subprocess

import pytest

from appliance.config import ConfigStore
from firmware.detect import FAMILIES

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "README.md", "appliance", "firmware", "web_ui", "hardware", "systemd", "docs")
UNITS = ("hotline-engine.service", "hotline-web.service", "hotline-web-reload.path", "hotline-web-reload.service")
ENABLED = ("hotline-engine.service", "hotline-web.service", "hotline-web-reload.path")
RULES = os.path.join(ROOT_DIR, "hardware", "99-hotline-modems.rules")


def snapshot_source(dest):
    """A copy of the project, so that edits others make meanwhile cannot change the second run."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    os.makedirs(dest, exist_ok=True)
    for name in SOURCES:
        source = os.path.join(ROOT_DIR, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(dest, name), ignore=ignore)
        else:
            shutil.copy2(source, os.path.join(dest, name))
    return dest


def install(source, root, *options):
    done = subprocess.run(["bash", os.path.join(source, "systemd", "install.sh"), "--root", str(root), "--offline",
                           *options], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def tree(root):
    """Every path under ``root`` with its type, mode, size and modification time."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            found[os.path.relpath(path, root)] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                                  info.st_size, info.st_mtime_ns)
    return found


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    source = snapshot_source(str(tmp_path_factory.mktemp("source")))
    root = tmp_path_factory.mktemp("root")
    first = install(source, root)
    return source, root, first


def test_install_lays_down_every_file(installed):
    _, root, output = installed
    assert "files only" in output and "changed:" in output
    assert "http://" in output and "/setup" in output  # the first-run page
    for unit in UNITS:
        path = root / "etc/systemd/system" / unit
        assert path.is_file() and mode(path) == 0o644
        assert path.read_bytes() == open(os.path.join(ROOT_DIR, "systemd", unit), "rb").read()
    for unit in ENABLED:  # enabled as systemctl enable would: a link in the target's wants
        link = root / "etc/systemd/system/multi-user.target.wants" / unit
        assert os.readlink(link) == f"/etc/systemd/system/{unit}"
    rules = root / "etc/udev/rules.d/99-hotline-modems.rules"
    assert mode(rules) == 0o644 and rules.read_bytes() == open(RULES, "rb").read()
    assert mode(root / "etc/systemd/journald.conf.d/hotline.conf") == 0o644
    hotline = root / "opt/hotline/venv/bin/hotline"
    assert os.access(hotline, os.X_OK)
    assert (root / "opt/hotline/doc/install.md").is_file() and (root / "opt/hotline/doc/hardware/pins.md").is_file()
    data = root / "var/lib/hotline"
    assert mode(data) == 0o750
    assert mode(data / "config.json") == 0o640


def test_the_installed_environment_holds_this_project(installed):
    _, root, _ = installed
    python = root / "opt/hotline/venv/bin/python"
    # Modules without third-party imports load even though --offline left the dependencies out.
    code = ("import appliance.watchdog, appliance.clock, firmware.panel, importlib.util, os; "
            "web = os.path.dirname(importlib.util.find_spec('web_ui').origin); "
            "print(os.path.exists(os.path.join(web, 'templates', 'setup.html')))")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


def test_a_new_box_starts_empty_not_in_demo_mode(installed):
    _, root, _ = installed
    store = ConfigStore(str(root / "var/lib/hotline"))
    config = store.read()
    assert store.problem is None
    assert config["lines"] == [] and config["virtual"] == {"modems": [], "phones": []}
    assert config["panel"]["enabled"] is False  # no front panel until one is configured


def test_a_second_run_changes_nothing_and_says_so(installed):
    source, root, _ = installed
    before = tree(root)
    output = install(source, root)
    assert "Nothing changed" in output and "  changed:" not in output
    assert tree(root) == before


def test_upgrade_installs_the_new_code_and_keeps_the_configuration(installed, tmp_path):
    source, root, _ = installed
    config_before = (root / "var/lib/hotline/config.json").read_bytes()
    upgraded = snapshot_source(str(tmp_path / "v2"))
    with open(os.path.join(upgraded, "appliance", "watchdog.py"), "a", encoding="utf-8") as handle:
        handle.write("\nUPGRADE_MARKER = 2\n")
    with open(os.path.join(upgraded, "systemd", "hotline-web.service"), "a", encoding="utf-8") as handle:
        handle.write("# a changed unit\n")
    output = install(upgraded, root)
    assert "changed: hot-line" in output and "changed: /etc/systemd/system/hotline-web.service" in output
    assert "changed: /etc/systemd/system/hotline-engine.service" not in output
    site = subprocess.run([str(root / "opt/hotline/venv/bin/python"), "-c",
                           "import appliance.watchdog as w; print(w.UPGRADE_MARKER)"],
                          capture_output=True, text=True, cwd="/")
    assert site.stdout.strip() == "2", site.stderr
    assert (root / "var/lib/hotline/config.json").read_bytes() == config_before
    assert "Nothing changed" in install(upgraded, root)
    install(source, root)  # back to the module's version for the tests after this one


def test_uninstall_keeps_the_data_unless_purged(tmp_path):
    source = snapshot_source(str(tmp_path / "source"))
    root = tmp_path / "root"
    install(source, root)
    (root / "var/lib/hotline/journal.sqlite3").write_bytes(b"the call journal")
    output = install(source, root, "--uninstall")
    assert "removed /opt/hotline" in output and "Kept /var/lib/hotline" in output
    for unit in UNITS:
        assert not (root / "etc/systemd/system" / unit).exists()
    assert not os.path.lexists(root / "etc/systemd/system/multi-user.target.wants/hotline-engine.service")
    assert not (root / "etc/udev/rules.d/99-hotline-modems.rules").exists()
    assert (root / "var/lib/hotline/journal.sqlite3").read_bytes() == b"the call journal"
    assert "Nothing to remove" in install(source, root, "--uninstall")
    output = install(source, root, "--uninstall", "--purge")
    assert "removed /var/lib/hotline" in output and not (root / "var/lib/hotline").exists()


def test_bad_options_are_refused(tmp_path):
    script = os.path.join(ROOT_DIR, "systemd", "install.sh")
    done = subprocess.run(["bash", script, "--root", str(tmp_path), "--frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown option" in done.stderr
    done = subprocess.run(["bash", script, "--root", str(tmp_path), "--purge"], capture_output=True, text=True)
    assert done.returncode == 1 and "--purge goes with --uninstall" in done.stderr
    assert not os.listdir(tmp_path)
    help_text = subprocess.run(["bash", script, "--help"], capture_output=True, text=True).stdout
    assert "--root DIR" in help_text and "--uninstall" in help_text


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_install_script_is_shellcheck_clean():
    done = subprocess.run(["shellcheck", os.path.join(ROOT_DIR, "systemd", "install.sh")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


# --- the units -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verify_root(installed, tmp_path_factory):
    """The installed root plus systemd's own units, so verify resolves targets and programs in it."""
    source, _, _ = installed
    root = tmp_path_factory.mktemp("verify-root")
    install(source, root)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which("systemctl"), root / "usr/bin/systemctl")  # hotline-web-reload.service runs it
    return root


@pytest.mark.skipif(not shutil.which("systemd-analyze") or not shutil.which("systemctl"),
                    reason="systemd-analyze is not installed (Debian package systemd)")
@pytest.mark.parametrize("unit", UNITS)
def test_units_pass_systemd_analyze_verify(verify_root, unit):
    done = subprocess.run(["systemd-analyze", "verify", f"--root={verify_root}", unit],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys and bad values are only warnings


def unit(name):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(ROOT_DIR, "systemd", name))
    return parser


def test_engine_unit_is_a_hardened_notify_service_with_a_watchdog():
    service = unit("hotline-engine.service")["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "always"
    assert int(service["WatchdogSec"]) >= 15
    assert service["User"] == service["Group"] == "hotline"
    assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"] == "/var/lib/hotline"
    assert set(service["SupplementaryGroups"].split()) == {"dialout", "gpio", "audio"}
    assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"] == "CAP_SYS_TIME"
    assert service["Environment"] == "TMPDIR=/run/hotline"  # temporary audio in RAM
    assert service["NoNewPrivileges"] == "yes"
    web = unit("hotline-web.service")["Service"]
    assert web["Restart"] == "always" and web["CapabilityBoundingSet"] == "" and web["PrivateDevices"] == "yes"
    assert "SupplementaryGroups" not in web


# --- the udev rules ----------------------------------------------------------------------


def rule_lines():
    with open(RULES, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def test_rules_name_each_modems_at_and_audio_ports_by_interface():
    named = {}
    for line in rule_lines():
        match = re.search(r'ATTRS\{idVendor\}=="(\w+)", ATTRS\{idProduct\}=="([\w|]+)", '
                          r'ENV\{ID_USB_INTERFACE_NUM\}=="(\d\d)", SYMLINK\+="hotline/(\w+)-%b-(at|audio)"', line)
        if match:
            vendor, products, interface, model, port = match.groups()
            for product in products.split("|"):
                named[(int(vendor, 16), int(product, 16), port)] = (int(interface), model)
    # Every family the drivers know by USB id has its AT port named, and its audio port on
    # the interface the driver looks for beside it (firmware/detect.py audio_port_beside).
    for family in FAMILIES.values():
        for vendor, product in family.usb_ids:
            if (vendor, product) == (0x1E0E, 0x9011):
                continue  # RNDIS layout: switched to 9001 first (hardware/modems.md)
            assert (vendor, product, "at") in named, (family.family, hex(vendor), hex(product))
            if family.audio_interface is not None:
                assert named[(vendor, product, "audio")][0] == family.audio_interface, family.family
    text = open(RULES, encoding="utf-8").read()
    for vendor, product in (ids for family in FAMILIES.values() for ids in family.usb_ids):
        assert re.search(rf'idVendor\}}=="{vendor:04x}", ATTRS?\{{idProduct\}}=="[\w|]*{product:04x}', text)
    assert text.count('ENV{ID_MM_DEVICE_IGNORE}="1"') >= 10  # ModemManager keeps off every modem port


def test_udev_accepts_the_rules(tmp_path):
    if os.geteuid() != 0 or not shutil.which("udevadm") or not shutil.which("unshare"):
        pytest.skip("needs root, udevadm and unshare")
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir)
    device = next((f"/sys/class/tty/{name}" for name in ("ttyS0", "tty0", "console")
                   if os.path.exists(f"/sys/class/tty/{name}")), None)
    if device is None:
        pytest.skip("no tty device in /sys to run the rules against")
    # udevadm test reads /etc/udev/rules.d: a private mount namespace shows it our file alone.
    done = subprocess.run(["unshare", "--mount", "sh", "-c",
                           f"mount --bind {rules_dir} /etc/udev/rules.d && udevadm test {device}"],
                          capture_output=True, text=True, timeout=60)
    if "Reading rules file: /etc/udev/rules.d/99-hotline-modems.rules" not in done.stdout + done.stderr:
        pytest.skip(f"udevadm test did not run here: {done.stderr.strip()[:200]}")
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "99-hotline-modems.rules:" in line and "Unknown group 'gpio'" not in line]
    assert complaints == []  # the gpio group exists on Raspberry Pi OS (install.sh makes it elsewhere)
