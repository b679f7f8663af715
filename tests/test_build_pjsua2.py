"""systemd/build-pjsua2.sh: its options, its dry run, and its real run on a stand-in source.

Nothing here downloads or compiles pjproject. The dry run prints the steps; the one real run
builds a tiny stand-in "pjproject" tarball (its configure and Makefiles only record how they
were called), so the script's own steps (unpack, config_site.h, configure, make, the SWIG
directory's make with the venv's Python) run for real without a network or a compiler.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile

import pytest

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT_DIR, "systemd", "build-pjsua2.sh")
DEFAULT_WORK = "/var/tmp/pjsua2-build"
# The script stops early when the venv's Python has no headers to compile the module against.
HAS_HEADERS = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
needs_headers = pytest.mark.skipif(not HAS_HEADERS, reason="this Python has no development headers (Python.h)")


def build(*options, env=None, timeout=60):
    return subprocess.run(["bash", SCRIPT, *options], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


def tree(root):
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_script_is_shellcheck_clean():
    done = subprocess.run(["shellcheck", SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_help_lists_the_options():
    done = build("--help")
    assert done.returncode == 0, done.stderr
    for option in ("--venv DIR", "--version X.Y.Z", "--sha256", "--work DIR", "--prefix", "--jobs N",
                   "--dry-run", "--force", "--help"):
        assert option in done.stdout, option
    assert "2.15.1" in done.stdout and "/var/tmp/pjsua2-build" in done.stdout


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    venv = tmp_path / "venv"  # no Python in it: a dry run says a real run would stop there
    work = tmp_path / "work"
    default_existed = os.path.exists(DEFAULT_WORK)
    done = build("--dry-run", "--venv", str(venv), "--work", str(work), "--jobs", "3")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "https://github.com/pjsip/pjproject/archive/refs/tags/2.15.1.tar.gz" in out
    assert "NOT verified" in out  # no --sha256
    assert "tar -xzf" in out
    assert "config_site.h" in out and "#define PJMEDIA_HAS_VIDEO 0" in out and "#define PJ_HAS_IPV6 1" in out
    assert "./configure" in out and "-fPIC" in out and "--disable-video" in out
    assert "make dep" in out and "make -j3" in out
    assert f"make PYTHON_EXE={venv}/bin/python" in out  # the SWIG module against the venv's Python
    assert f"{venv}/bin/python -m pip install --no-build-isolation --no-deps ." in out
    assert "import pjsua2" in out
    assert "nothing was run or changed" in out
    # Order: download, configure, build, module, install, check.
    positions = [out.index(text) for text in ("refs/tags/2.15.1.tar.gz", "./configure", "make dep", "make PYTHON_EXE",
                                               "pip install --no-build-isolation", "import pjsua2; ")]
    assert positions == sorted(positions)
    assert not venv.exists() and not work.exists()
    assert os.listdir(tmp_path) == []
    assert os.path.exists(DEFAULT_WORK) == default_existed


def test_dry_run_with_another_version_and_a_checksum(tmp_path):
    digest = "ab" * 32
    done = build("--version", "2.14.1", "--dry-run", "--venv", str(tmp_path / "venv"), "--sha256",
                 digest.upper(), "--prefix", str(tmp_path / "build"))
    assert done.returncode == 0, done.stderr
    assert "https://github.com/pjsip/pjproject/archive/refs/tags/2.14.1.tar.gz" in done.stdout
    assert "2.15.1" not in done.stdout
    assert f"{tmp_path}/build/pjproject-2.14.1" in done.stdout  # --prefix names the build directory
    assert "verified against --sha256" in done.stdout and "NOT verified" not in done.stdout
    assert os.listdir(tmp_path) == []


def test_a_venv_that_already_has_pjsua2_is_left_alone(tmp_path):
    venv = tmp_path / "venv"
    site = tmp_path / "site"
    (venv / "bin").mkdir(parents=True)
    site.mkdir()
    (site / "pjsua2.py").write_text("")
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    done = build("--venv", str(venv), "--work", str(tmp_path / "work"))
    assert done.returncode == 0, done.stderr
    assert "already imports pjsua2: nothing to do" in done.stdout
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("options, message", [
    (["--frobnicate"], "unknown option --frobnicate"),
    (["--venv"], "--venv needs a value"),
    (["--version", "latest"], "--version latest is not a pjproject release"),
    (["--jobs", "0"], "--jobs needs a positive whole number"),
    (["--sha256", "1234"], "--sha256 needs 64 hexadecimal digits"),
    (["--tarball", "/nonexistent/pjproject.tar.gz"], "no such file"),
])
def test_bad_options_are_refused(tmp_path, options, message):
    done = build(*options, "--venv", str(tmp_path / "venv"), "--work", str(tmp_path / "work"))
    assert done.returncode != 0
    assert message in done.stderr
    assert os.listdir(tmp_path) == []


def test_a_missing_venv_is_named(tmp_path):
    done = build("--venv", str(tmp_path / "nowhere"), "--work", str(tmp_path / "work"))
    assert done.returncode == 1
    assert f"no virtual environment at {tmp_path}/nowhere" in done.stderr and "make setup" in done.stderr
    assert not (tmp_path / "work").exists()


# --- a real run on a stand-in source ----------------------------------------------------


STANDIN_MODULE = '''\
class _Version:
    full = "2.15.1-standin"


class Endpoint:
    def libCreate(self):
        print("a log line, as pjlib prints")

    def libVersion(self):
        return _Version()

    def libDestroy(self):
        pass
'''


def standin_tarball(path, version="2.15.1"):
    """A pjproject-VERSION tarball whose build steps record their calls in calls.log beside it."""
    top = path.parent / f"standin-{version}"
    swig = top / "pjsip-apps/src/swig/python"
    swig.mkdir(parents=True)
    (top / "pjlib/include/pj").mkdir(parents=True)
    (top / "version.mak").write_text("export PJ_VERSION_MAJOR := 2\n")
    configure = top / "configure"
    configure.write_text('#!/bin/sh\necho "configure $* CFLAGS=$CFLAGS" >> ../calls.log\necho "# made" > build.mak\n')
    configure.chmod(0o755)
    (top / "Makefile").write_text(
        "dep:\n\techo dep >> ../calls.log\n"
        "lib:\n\ttest -f pjlib/include/pj/config_site.h\n\techo lib >> ../calls.log\n")
    (swig / "Makefile").write_text(
        "all:\n\techo \"swig PYTHON_EXE=$(PYTHON_EXE) python=$$(command -v python)\" >> ../../../../../calls.log\n"
        "\tcp module.in pjsua2.py\n")
    (swig / "module.in").write_text(STANDIN_MODULE)
    with tarfile.open(path, "w:gz") as archive:
        archive.add(top, arcname=f"pjproject-{version}")
    shutil.rmtree(top)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stub_venv(venv, site):
    """A venv whose python is this one without its site-packages (-S: no pjsua2 of this machine's) and
    with a private site directory instead; its pip "installs" by copying the built module there."""
    (venv / "bin").mkdir(parents=True)
    site.mkdir()
    python = venv / "bin" / "python"
    python.write_text(f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = pip ]; then  # pip install ... . : copy the built module into site
    echo "pip $*" >> "{venv}/pip.log"
    case "$*" in *setuptools*) exit 0 ;; esac
    exec cp pjsua2.py "{site}/"
fi
PYTHONPATH={site} exec {sys.executable} -S "$@"
""")
    python.chmod(0o755)
    return python


@needs_headers
@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
def test_a_real_run_on_a_standin_source(tmp_path):
    tarball = tmp_path / "pjproject-2.15.1.tar.gz"
    digest = standin_tarball(tarball)
    venv = tmp_path / "venv"
    python = stub_venv(venv, tmp_path / "site")
    work = tmp_path / "work"
    tools = tmp_path / "tools"  # the compilers need not be here: nothing is compiled
    tools.mkdir()
    for tool in ("gcc", "g++", "swig"):
        (tools / tool).write_text("#!/bin/sh\nexit 0\n")
        (tools / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}")
    done = build("--venv", str(venv), "--work", str(work), "--tarball", str(tarball), "--sha256", digest,
                 "--no-apt", "--jobs", "2", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SHA-256 verified" in done.stdout
    assert "pjsua2 2.15.1-standin imports" in done.stdout
    source = work / "pjproject-2.15.1"
    config_site = (source / "pjlib/include/pj/config_site.h").read_text()
    assert "#define PJMEDIA_HAS_VIDEO 0" in config_site and "#define PJ_HAS_IPV6 1" in config_site
    calls = (work / "calls.log").read_text().splitlines()
    assert calls[0].startswith("configure --disable-shared --disable-video") and calls[0].endswith("CFLAGS=-fPIC -O2")
    assert calls[1:3] == ["dep", "lib"]
    assert calls[3] == f"swig PYTHON_EXE={python} python={python}"  # the venv's Python, also as plain python
    assert "install --no-build-isolation --no-deps ." in (venv / "pip.log").read_text()
    assert not list(work.glob("*.part")) and not list(work.glob("*.unpack"))

    # A second run has nothing to do; --force reuses the unpacked and configured source.
    again = build("--venv", str(venv), "--work", str(work), "--tarball", str(tarball), "--no-apt", env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    forced = build("--venv", str(venv), "--work", str(work), "--tarball", str(tarball), "--no-apt", "--force",
                   "--clean", env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "already unpacked" in forced.stdout and "already configured" in forced.stdout
    assert "NOT verified" in forced.stdout and digest in forced.stdout  # the hash, to pin with --sha256
    assert not work.exists()  # --clean


@needs_headers
def test_a_tarball_with_the_wrong_checksum_is_refused(tmp_path):
    tarball = tmp_path / "pjproject-2.15.1.tar.gz"
    standin_tarball(tarball)
    venv = tmp_path / "venv"
    stub_venv(venv, tmp_path / "site")
    work = tmp_path / "work"
    done = build("--venv", str(venv), "--work", str(work), "--tarball", str(tarball), "--sha256", "0" * 64,
                 "--no-apt")
    assert done.returncode == 1
    assert "has SHA-256" in done.stderr and "not the expected " + "0" * 64 in done.stderr
    assert tarball.exists()  # the user's own file stays
    assert tree(work) == set()  # nothing unpacked
