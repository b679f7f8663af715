#!/bin/bash
# Builds pjproject (the SIP stack) from source and installs its pjsua2 Python module into
# the box's virtual environment. For a Raspberry Pi (aarch64 or armv7, Raspberry Pi OS
# bookworm): on x86_64 the pjsua2-python wheel from PyPI does this job, on ARM there is none.
#
#   systemd/build-pjsua2.sh                          into this copy's .venv (after make setup)
#   sudo systemd/build-pjsua2.sh --venv /opt/hotline/venv   into an installed box
#   systemd/build-pjsua2.sh --dry-run                print every step, run nothing
#
# pjproject is built as static libraries with -fPIC and linked into the module itself, so
# nothing is installed outside the virtual environment: no /usr/local, no ldconfig. The box
# uses pjsua2's null sound device (its own media clock moves the audio), so it is built
# without sound and video, like the x86_64 wheel. A second run reuses the build directory.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    echo
    cat <<'EOF'
Options:
  --venv DIR       the virtual environment to install into (default: this copy's .venv)
  --version X.Y.Z  the pjproject release to build (default: 2.15.1)
  --sha256 HEX     the tarball's expected SHA-256; without it the download is not verified
  --tarball FILE   build from this pjproject-X.Y.Z tarball instead of downloading one
  --work DIR       the build directory (default: /var/tmp/pjsua2-build); --prefix is the same
  --jobs N         parallel make jobs (default: the number of processors)
  --force          build and install even when the venv can already import pjsua2
  --no-apt         install no Debian packages: name the missing ones and go on
  --clean          remove the build directory after a successful install
  --dry-run        print every step and command, run nothing, change nothing
  -h, --help       this text
EOF
}

DIED=0
die() { echo "build-pjsua2.sh: $*" >&2; DIED=1; exit 1; }

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$SRC/.venv
VERSION=2.15.1
SHA256=
TARBALL=
WORK=/var/tmp/pjsua2-build
JOBS=
FORCE=0
APT=1
CLEAN=0
DRY_RUN=0

need_value() {  # option, remaining argument count, value
    [[ $2 -ge 2 && -n $3 && $3 != -* ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --venv|--version|--sha256|--tarball|--work|--prefix|--jobs)
            need_value "$1" "$#" "${2-}"
            case $1 in
                --venv) VENV=$2 ;;
                --version) VERSION=$2 ;;
                --sha256) SHA256=$2 ;;
                --tarball) TARBALL=$2 ;;
                --work|--prefix) WORK=$2 ;;
                --jobs) JOBS=$2 ;;
            esac
            shift ;;
        --venv=*) VENV=${1#*=} ;;
        --version=*) VERSION=${1#*=} ;;
        --sha256=*) SHA256=${1#*=} ;;
        --tarball=*) TARBALL=${1#*=} ;;
        --work=*|--prefix=*) WORK=${1#*=} ;;
        --jobs=*) JOBS=${1#*=} ;;
        --force) FORCE=1 ;;
        --clean) CLEAN=1 ;;
        --no-apt) APT=0 ;;
        --dry-run|-n) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

[[ $VERSION =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die "--version $VERSION is not a pjproject release number such as 2.15.1"
if [[ -n $SHA256 ]]; then
    SHA256=${SHA256,,}
    [[ $SHA256 =~ ^[0-9a-f]{64}$ ]] || die "--sha256 needs 64 hexadecimal digits, not '$SHA256'"
fi
if [[ -z $JOBS ]]; then
    JOBS=$(nproc 2>/dev/null || echo 1)
fi
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "--jobs needs a positive whole number, not '$JOBS'"
[[ -z $TARBALL || -f $TARBALL || $DRY_RUN == 1 ]] || die "--tarball $TARBALL: no such file"

VENV=$(realpath -m "$VENV")
WORK=$(realpath -m "$WORK")
[[ -z $TARBALL ]] || TARBALL=$(realpath -m "$TARBALL")
PYTHON=$VENV/bin/python
URL=https://github.com/pjsip/pjproject/archive/refs/tags/$VERSION.tar.gz
ARCHIVE=${TARBALL:-$WORK/pjproject-$VERSION.tar.gz}
PJ=$WORK/pjproject-$VERSION
SWIG_DIR=$PJ/pjsip-apps/src/swig/python
# -fPIC: the static libraries end up inside a shared object, the Python module.
BUILD_CFLAGS="-fPIC -O2"
CONFIGURE=(./configure --disable-shared --disable-video --disable-sound --disable-libwebrtc
           --disable-libyuv --disable-v4l2 --disable-sdl --disable-ffmpeg --disable-openh264
           --disable-vpx)
# Compilers, pjsua2's SWIG binding, the venv Python's headers, TLS (SIP over TLS, SRTP keys),
# the Opus codec, UUIDs for pjlib's GUIDs.
PACKAGES=(build-essential pkg-config swig python3-dev libssl-dev libopus-dev uuid-dev)

STEP=0
STEP_NAME=
step() { STEP=$((STEP + 1)); STEP_NAME=$*; echo; echo "== $STEP. $*"; }
failed() {  # a command that set -e stopped at: say where, and that a new run goes on from there
    local status=$?
    if [[ $status -ne 0 && $DIED == 0 && $STEP -gt 0 ]]; then
        echo "build-pjsua2.sh: step $STEP ($STEP_NAME) failed with status $status; see the output above." >&2
        echo "build-pjsua2.sh: $WORK is kept: run this again to go on from where it stopped." >&2
    fi
}
trap failed EXIT
note() { echo "   $*"; }
show() {  # a command as it can be pasted into a shell
    local quoted
    printf -v quoted ' %q' "$@"
    echo "   \$${quoted}"
}
run() {  # show a command, then run it unless this is a dry run
    show "$@"
    [[ $DRY_RUN == 1 ]] || "$@"
}
run_in() {  # run in a directory (a subshell, so the caller's directory stays)
    local dir=$1
    shift
    echo "   (in $dir)"
    show "$@"
    [[ $DRY_RUN == 1 ]] || (cd "$dir" && "$@")
}
run_with_venv() {  # run_in, with the venv's bin first on PATH
    local dir=$1
    shift
    echo "   (in $dir, with $VENV/bin first on PATH)"
    show "$@"
    [[ $DRY_RUN == 1 ]] || (cd "$dir" && PATH="$VENV/bin:$PATH" "$@")
}

if [[ $DRY_RUN == 1 ]]; then
    echo "build-pjsua2.sh: dry run: the steps below are printed, nothing is run or changed."
fi
echo "pjproject $VERSION -> pjsua2 in $VENV (build directory $WORK, $JOBS jobs)"

# --- 1. is there anything to do ---------------------------------------------------------
step "Check the virtual environment"
if [[ ! -x $PYTHON ]]; then
    if [[ $DRY_RUN == 1 ]]; then
        note "no Python at $PYTHON: a real run stops here (make setup or systemd/install.sh makes one)"
    else
        die "no virtual environment at $VENV (no $PYTHON): run 'make setup' (a development copy) or systemd/install.sh (a box) first, or pass --venv DIR"
    fi
elif (cd / && "$PYTHON" -c 'import pjsua2' >/dev/null 2>&1); then
    if [[ $FORCE == 0 ]]; then
        note "$PYTHON already imports pjsua2: nothing to do (--force builds it again)"
        exit 0
    fi
    note "$PYTHON already imports pjsua2; --force: building it again"
else
    note "$PYTHON cannot import pjsua2 yet: building it"
fi
if [[ -x $PYTHON && $DRY_RUN == 0 && ! -w $VENV ]]; then
    die "cannot write to $VENV: run this as its owner (sudo for /opt/hotline/venv)"
fi

# --- 2. build packages ------------------------------------------------------------------
step "Install the build packages (Debian)"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if ! command -v dpkg-query >/dev/null; then
    message="dpkg-query not found: this script needs Debian or Raspberry Pi OS (apt-get)"
    if [[ $DRY_RUN == 1 ]]; then note "$message"; installed() { false; }; else die "$message"; fi
fi
wanted=("${PACKAGES[@]}")
if ! command -v curl >/dev/null && ! command -v wget >/dev/null && [[ -z $TARBALL ]]; then
    wanted+=(curl)
fi
missing=()
for package in "${wanted[@]}"; do
    installed "$package" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    note "all installed: ${wanted[*]}"
elif [[ $APT == 0 ]]; then
    note "missing: ${missing[*]}; --no-apt: not installing them (the build stops if it needs one)"
else
    note "missing: ${missing[*]}"
    SUDO=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null || [[ $DRY_RUN == 1 ]] || die "apt-get needs root and sudo is not installed: install ${missing[*]} as root, or run this as root"
        SUDO=(sudo)
    fi
    run "${SUDO[@]}" apt-get update -q
    run "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
# The module is compiled against the venv's own Python, so its headers must be there.
if [[ -x $PYTHON ]]; then
    include=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [[ ! -f $include/Python.h ]]; then
        message="Python.h not found in $include: the venv's Python $pyver has no development headers (Debian: python$pyver-dev)"
        if [[ $DRY_RUN == 1 ]]; then note "$message"; else die "$message"; fi
    fi
fi

# The SWIG wrapper is one very large C++ file: its compiler can need more than 1 GB.
memory_kb=$(awk '/^(MemTotal|SwapTotal):/ { sum += $2 } END { print sum + 0 }' /proc/meminfo 2>/dev/null || echo 0)
if [[ $memory_kb -gt 0 && $memory_kb -lt 1800000 ]]; then
    note "warning: $((memory_kb / 1024)) MB of memory and swap; if the compiler is killed, add swap (dphys-swapfile) and run this again"
fi

# --- 3. the source ----------------------------------------------------------------------
step "Get the pjproject $VERSION source"
run mkdir -p "$WORK"
download_failed() {
    rm -f "$ARCHIVE.part"
    die "could not download $URL: is $VERSION a pjproject release, and is the network up? (--tarball FILE builds from a copy)"
}
if [[ -n $TARBALL ]]; then
    note "using $TARBALL"
elif [[ -f $ARCHIVE ]]; then
    note "already downloaded: $ARCHIVE"
else
    if command -v wget >/dev/null && ! command -v curl >/dev/null; then
        run wget -nv -O "$ARCHIVE.part" "$URL" || download_failed
    else  # curl, or the curl that step 2 installs
        run curl -fsSL --retry 3 --connect-timeout 30 -o "$ARCHIVE.part" "$URL" || download_failed
    fi
    run mv "$ARCHIVE.part" "$ARCHIVE"
fi
if [[ -n $SHA256 ]]; then
    show sha256sum "$ARCHIVE"
    if [[ $DRY_RUN == 0 ]]; then
        actual=$(sha256sum "$ARCHIVE" | cut -d' ' -f1)
        if [[ $actual != "$SHA256" ]]; then
            [[ -n $TARBALL ]] || rm -f "$ARCHIVE"  # a bad download is not kept for the next run
            die "$ARCHIVE has SHA-256 $actual, not the expected $SHA256"
        fi
    fi
    if [[ $DRY_RUN == 1 ]]; then note "to be verified against --sha256"; else note "SHA-256 verified against --sha256"; fi
else
    if [[ $DRY_RUN == 0 ]]; then
        note "NOT verified: no --sha256 given (this tarball's SHA-256 is $(sha256sum "$ARCHIVE" | cut -d' ' -f1))"
    else
        note "NOT verified: no --sha256 given"
    fi
fi
if [[ -f $PJ/version.mak ]]; then
    note "already unpacked: $PJ"
else
    run rm -rf "$PJ.unpack"
    run mkdir -p "$PJ.unpack"
    run tar -xzf "$ARCHIVE" -C "$PJ.unpack" --strip-components=1
    run mv "$PJ.unpack" "$PJ"
fi

# --- 4. configure and build pjproject ---------------------------------------------------
step "Configure pjproject (static libraries, no sound or video devices)"
if [[ $DRY_RUN == 0 ]]; then
    for tool in make gcc g++ swig; do
        command -v "$tool" >/dev/null || die "$tool not found: install the Debian packages ${PACKAGES[*]} (or run without --no-apt)"
    done
fi
CONFIG_SITE=$PJ/pjlib/include/pj/config_site.h
config_site() {
    cat <<'EOF'
/* Written by the hot-line box's systemd/build-pjsua2.sh. */
#define PJ_HAS_IPV6 1
/* Audio only: the box's engine moves every frame itself, through pjsua2's null sound device. */
#define PJMEDIA_HAS_VIDEO 0
#define PJMEDIA_CONF_USE_SWITCH_BOARD 0
/* SIP trunk calls and SIP operators at once: pjsua's compiled-in default is only 4 calls. */
#define PJSUA_MAX_CALLS 32
EOF
}
note "$CONFIG_SITE:"
config_site | sed 's/^/     | /'
if [[ $DRY_RUN == 0 ]]; then
    # Written only when it changes: a new timestamp would make make rebuild everything.
    if ! config_site | cmp -s - "$CONFIG_SITE"; then
        config_site >"$CONFIG_SITE"
    fi
fi
STAMP=$PJ/.build-pjsua2-configured
configure_line="CFLAGS=$BUILD_CFLAGS CXXFLAGS=$BUILD_CFLAGS ${CONFIGURE[*]}"
if [[ -f $STAMP && $(cat "$STAMP") == "$configure_line" && -f $PJ/build.mak ]]; then
    note "already configured: $configure_line"
else
    run_in "$PJ" env CFLAGS="$BUILD_CFLAGS" CXXFLAGS="$BUILD_CFLAGS" "${CONFIGURE[@]}"
    [[ $DRY_RUN == 1 ]] || echo "$configure_line" >"$STAMP"
fi

step "Build pjproject"
note "this is the long step: tens of minutes on a Raspberry Pi 4 (a rough guess, not a measurement)"
target=lib  # the libraries only: pjsua2 needs no sample applications
if [[ -f $PJ/Makefile ]] && ! grep -q '^lib:' "$PJ/Makefile"; then
    target=all  # an older release without that target
fi
run_in "$PJ" make dep
run_in "$PJ" make -j"$JOBS" "$target"

# --- 5. the Python module ---------------------------------------------------------------
step "Build the pjsua2 Python module (SWIG) with $PYTHON"
# pjsua2's setup.py imports distutils (setuptools provides it from Python 3.12 on); pip
# needs wheel to build a setup.py project without build isolation.
if [[ -x $PYTHON ]] && "$PYTHON" -c 'import setuptools, wheel' >/dev/null 2>&1; then
    note "setuptools and wheel are in the venv"
else
    run "$PYTHON" -m pip install -q setuptools wheel
fi
# setup.py runs 'make -f helper.mak' and 'python'; the venv's bin first makes both find
# the venv's interpreter, PYTHON_EXE does the same for the Makefile of 2.13 and later.
run_with_venv "$SWIG_DIR" make PYTHON_EXE="$PYTHON"

step "Install pjsua2 into $VENV"
run_with_venv "$SWIG_DIR" "$PYTHON" -m pip install --no-build-isolation --no-deps .

step "Check: import pjsua2 with $PYTHON"
CHECK='import pjsua2
ep = pjsua2.Endpoint()
ep.libCreate()
version = ep.libVersion().full
ep.libDestroy()
print("pjsua2 " + version + " imports")'
echo "   \$ (cd / && $PYTHON -c 'import pjsua2; ...; print(ep.libVersion().full)')"
if [[ $DRY_RUN == 0 ]]; then
    # From /, so that the build directory's own pjsua2.py cannot stand in for the installed one.
    output=$(cd / && "$PYTHON" -c "$CHECK" 2>&1) || die "the installed module does not load: $output"
    note "$(tail -n 1 <<<"$output")"
fi

if [[ $CLEAN == 1 ]]; then
    step "Remove the build directory"
    run rm -rf "$WORK"
fi

echo
if [[ $DRY_RUN == 1 ]]; then
    echo "Dry run: nothing was run or changed."
else
    echo "Done: pjsua2 is in $VENV. On an installed box, 'systemctl restart hotline-engine' enables its SIP lines."
fi
