"""The box on its real platform: systemd/pi-check.sh in an arm64 Debian root under qemu-user.

The check itself runs the real install.sh inside the root and a call through the installed
box; it needs root, debootstrap, qemu-user-static and binfmt_misc, and its first run builds
the root (minutes of downloads and emulation). This test runs it where the host allows it
and the root is already built (`make pi-check` builds it); anywhere else it is skipped and
says why. The script's own logic (what the host needs, reading the units) is checked always.
"""
import os
import shutil
import subprocess

import pytest

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(SOURCE, "systemd", "pi-check.sh")
CACHE = os.environ.get("PI_CHECK_DIR", os.path.join(SOURCE, "build", "pi-check"))


def can_run():
    """(True, "") when this host can run the check, else (False, why)."""
    done = subprocess.run(["bash", SCRIPT, "--can-run"], capture_output=True, text=True)
    return done.returncode == 0, done.stdout.strip()


def test_the_script_passes_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make test installs it)")
    subprocess.run(["shellcheck", SCRIPT], check=True)


def test_a_wrong_architecture_is_refused_with_the_choices():
    done = subprocess.run(["bash", SCRIPT, "--arch", "mips"], capture_output=True, text=True)
    assert done.returncode == 2 and "arm64 or armhf" in done.stderr


def test_the_host_says_whether_it_can_run_the_check():
    ok, answer = can_run()
    assert answer == "yes" if ok else answer.startswith("no: ")


def test_the_box_installs_and_takes_a_call_in_the_arm64_root():
    ok, answer = can_run()
    if not ok:
        pytest.skip(f"this host cannot run pi-check: {answer}")
    if not os.path.isfile(os.path.join(CACHE, "arm64", "root", ".pi-check-root")):
        pytest.skip(f"no arm64 root built in {CACHE} yet: `make pi-check` builds it (its first run takes a while)")
    done = subprocess.run(["bash", SCRIPT, "--arch", "arm64"], capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, PI_CHECK_DIR=CACHE))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(os.path.join(CACHE, "arm64", "report.txt")) as handle:
        report = handle.read()
    assert "aarch64 under qemu-aarch64" in report and "one 3 s call" in report
    assert "pjsua2:" in report and "build-pjsua2.sh on arm64: every package installs" in report
