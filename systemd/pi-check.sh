#!/bin/bash
# The box on its real platform: the real systemd/install.sh inside a Debian bookworm root
# of the Raspberry Pi's architecture (arm64; armhf for older Pis), run through qemu-user
# and binfmt_misc, then the engine and the web UI started as the installed units say, a
# virtual call answered and journaled, and the box's resource figures. `make pi-check`.
#
#   sudo systemd/pi-check.sh                     arm64, the root cached in build/pi-check
#   sudo systemd/pi-check.sh --arch armhf        the 32-bit root of a Pi 2/3 image
#   sudo systemd/pi-check.sh --fresh             throw the cached root away first
#   systemd/pi-check.sh --can-run                say whether this host can, and exit
#
# The first run builds the root with debootstrap from the Debian archive this machine
# uses (tens of minutes under emulation); later runs reuse it, so install.sh runs as an
# upgrade and the whole check takes minutes. Nothing outside the build directory changes,
# except the binfmt_misc registration of the qemu interpreter (the kernel's, not a file).
set -Eeuo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARCH=arm64
FRESH=0
CAN_RUN=0
SUITE=bookworm
BUILD=${PI_CHECK_DIR:-$SRC/build/pi-check}
PORT=${PI_CHECK_PORT:-18080}
# What the root has before install.sh runs: Raspberry Pi OS Lite has systemd, udev and
# certificates; install.sh adds the rest, as on a real Pi.
INCLUDE=systemd,systemd-sysv,udev,ca-certificates,procps,iproute2,util-linux

while [[ $# -gt 0 ]]; do
    case $1 in
        --arch) ARCH=${2:?--arch needs arm64 or armhf}; shift ;;
        --arch=*) ARCH=${1#--arch=} ;;
        --fresh) FRESH=1 ;;
        --can-run) CAN_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "pi-check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case $ARCH in
    arm64) QEMU=aarch64 ;;
    armhf) QEMU=arm ;;
    *) echo "pi-check.sh: --arch must be arm64 or armhf, not $ARCH" >&2; exit 2 ;;
esac
ROOTFS=$BUILD/$ARCH/root
REPORT=$BUILD/$ARCH/report.txt
MOUNTS=()
PIDS=()

say() { printf '[pi-check %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }
figure() { printf '%s\n' "$*" | tee -a "$REPORT"; }

# --- what the host must allow ------------------------------------------------------------

# why_not: empty when this host can run the check, else the reason.
why_not() {
    [[ $(id -u) == 0 ]] || { echo "needs root (chroot, mounts, binfmt_misc)"; return; }
    command -v debootstrap >/dev/null || { echo "debootstrap is not installed"; return; }
    [[ -x /usr/bin/qemu-$QEMU-static ]] || { echo "qemu-user-static is not installed"; return; }
    binfmt_mounted || { echo "binfmt_misc cannot be mounted on this host"; return; }
    [[ -w /proc/sys/fs/binfmt_misc/register || -e /proc/sys/fs/binfmt_misc/qemu-$QEMU ]] \
        || { echo "binfmt_misc is read-only here"; return; }
}

binfmt_mounted() {
    [[ -e /proc/sys/fs/binfmt_misc/register ]] && return 0
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null
}

# The F flag makes the kernel open the interpreter now, so it runs inside the chroot too.
register_binfmt() {
    local entry=/proc/sys/fs/binfmt_misc/qemu-$QEMU
    if [[ -e $entry ]] && grep -q '^enabled' "$entry" && grep -q 'flags:.*F' "$entry"; then
        return 0
    fi
    [[ -e $entry ]] && echo -1 >"$entry"
    cat "/usr/lib/binfmt.d/qemu-$QEMU.conf" >/proc/sys/fs/binfmt_misc/register
    say "registered qemu-$QEMU with binfmt_misc"
}

# The Debian archive this machine's apt uses (deb822 or one-line sources), else Debian's CDN.
host_mirror() {
    local uri
    uri=$(sed -n 's/^URIs: *\(\S*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [[ -n $uri ]] || uri=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\(\S*\/debian\)\/\{0,1\} .*/\2/p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
    echo "${uri:-http://deb.debian.org/debian}"
}

# --- the root ------------------------------------------------------------------------------

make_root() {
    if [[ $FRESH == 1 ]]; then
        unmount_all
        # A bind mount of the host's /dev left by a killed run must never be deleted through.
        grep -q " $ROOTFS/" /proc/mounts && die "something is still mounted under $ROOTFS: unmount it first"
        rm -rf "$ROOTFS"
    fi
    if [[ -f $ROOTFS/.pi-check-root ]]; then
        say "reusing the $ARCH root in $ROOTFS (--fresh makes a new one)"
        return 0
    fi
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"
    local mirror started=$SECONDS
    mirror=$(host_mirror)
    say "debootstrap --arch=$ARCH $SUITE from $mirror (the first run takes a while)"
    debootstrap --arch="$ARCH" --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$mirror" \
        >"$BUILD/$ARCH/debootstrap.log" 2>&1 || die "debootstrap failed: see $BUILD/$ARCH/debootstrap.log"
    # Raspberry Pi OS has these two archives; the security one matters for a box on a network.
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$SUITE" "$mirror" "$SUITE" \
        >"$ROOTFS/etc/apt/sources.list"
    echo "$(( SECONDS - started ))" >"$ROOTFS/.pi-check-root"
    say "root made in $(( SECONDS - started )) s"
}

mount_root() {
    local target
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    for target in proc sys dev dev/pts; do
        if ! mountpoint -q "$ROOTFS/$target"; then
            case $target in
                proc) mount -t proc proc "$ROOTFS/proc" ;;
                sys) mount -t sysfs sysfs "$ROOTFS/sys" ;;
                dev) mount --bind /dev "$ROOTFS/dev" ;;
                dev/pts) mount --bind /dev/pts "$ROOTFS/dev/pts" ;;
            esac
            MOUNTS+=("$ROOTFS/$target")
        fi
    done
    mkdir -p "$ROOTFS/run"
}

# A Pi on this machine's network trusts what this machine trusts: certificate authorities
# added locally (a company proxy's, say) go into the root too, or pip cannot reach PyPI.
trust_host_authorities() {
    local added=0 cert
    for cert in /usr/local/share/ca-certificates/*.crt; do
        [[ -f $cert ]] || continue
        cmp -s "$cert" "$ROOTFS/usr/local/share/ca-certificates/$(basename "$cert")" && continue
        install -D -m 0644 "$cert" "$ROOTFS/usr/local/share/ca-certificates/$(basename "$cert")"
        added=1
    done
    if [[ $added == 1 ]]; then
        in_root update-ca-certificates >/dev/null
        say "this machine's local certificate authorities added to the root"
    fi
}

# qemu-user runs a 32-bit guest as a 64-bit process: ext4 then hands out 64-bit directory
# offsets that the guest's readdir() cannot hold (EOVERFLOW), so espeak-ng finds no voice
# ("the specified voice does not exist"). A real 32-bit Pi has no such problem. For armhf
# the voices are read from a tmpfs copy, whose offsets are small, and the report says so.
emulation_workarounds() {
    [[ $ARCH == armhf ]] || return 0
    local data tmp=$BUILD/$ARCH/tmpfs
    data=$(in_root /usr/bin/python3 -c 'import glob; print(glob.glob("/usr/lib/*/espeak-ng-data")[0])')
    mountpoint -q "$ROOTFS$data" && return 0
    mkdir -p "$tmp"
    mount -t tmpfs -o size=64m tmpfs "$tmp"
    MOUNTS+=("$tmp")
    cp -a "$ROOTFS$data/." "$tmp/"
    mount --bind "$tmp" "$ROOTFS$data"
    MOUNTS+=("$ROOTFS$data")
    figure "qemu-arm on a 64-bit host: a 32-bit readdir() fails on ext4 (EOVERFLOW), so espeak-ng's voices are read from tmpfs here; not needed on a Pi"
}

unmount_all() {
    local i
    for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do
        umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    MOUNTS=()
}

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

# Processes a killed earlier run left in the root would answer in this run's place.
stop_leftovers() {
    local proc pid
    for proc in /proc/[0-9]*; do
        [[ $(readlink "$proc/root" 2>/dev/null) == "$ROOTFS" ]] || continue
        pid=${proc#/proc/}
        kill "$pid" 2>/dev/null && say "stopped pid $pid left running in the root by an earlier run"
    done
    sleep 1
}

# all_alive: every process this run started is still running (else its log says why).
all_alive() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "pid $pid exited early: see the logs in $BUILD/$ARCH"
    done
}

cleanup() {
    stop_all
    unmount_all
}

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"; }

# The checkout as git has it (no venv, no node_modules, no build output), where a technician
# would unpack it on the Pi.
copy_checkout() {
    rm -rf "$ROOTFS/home/pi/hotline"
    mkdir -p "$ROOTFS/home/pi/hotline"
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) \
        | tar -xf - -C "$ROOTFS/home/pi/hotline"
}

run_install() {
    local started=$SECONDS
    say "systemd/install.sh inside the $ARCH root (no --root, no stubs)"
    in_root bash /home/pi/hotline/systemd/install.sh 2>&1 | tee "$BUILD/$ARCH/install.log"
    [[ ${PIPESTATUS[0]} == 0 ]] || die "install.sh failed: see $BUILD/$ARCH/install.log"
    INSTALL_SECONDS=$(( SECONDS - started ))
}

# --- the installed units, run as they say ----------------------------------------------------

# unit_value UNIT KEY: KEY= of an installed unit (the last one wins, as in systemd).
unit_value() { sed -n "s/^$2=//p" "$ROOTFS/etc/systemd/system/$1" | tail -n1; }

# as_hotline COMMAND...: run a command in the root as the units' user, with their groups.
as_hotline() { in_root setpriv --reuid=hotline --regid=hotline --init-groups "$@"; }

# start_unit UNIT DATA_DIR LOG: the unit's ExecStart as its User with its Environment and
# RuntimeDirectory; only the data directory and the web port are put in (pid in LAST_PID).
start_unit() {
    local unit=$1 data=$2 log=$3 command user environment runtime
    command=$(unit_value "$unit" ExecStart)
    user=$(unit_value "$unit" User)
    environment=$(unit_value "$unit" Environment)
    runtime=$(unit_value "$unit" RuntimeDirectory)
    [[ -n $command && $user == hotline ]] || die "$unit: no ExecStart, or not run as hotline"
    command=${command//--data \/var\/lib\/hotline/--data $data}
    command=${command//--port 8080/--port $PORT}
    if [[ -n $runtime ]]; then
        install -d -m 0750 "$ROOTFS/run/$runtime"
        in_root chown hotline:hotline "/run/$runtime"
    fi
    say "  $unit: $command"
    # shellcheck disable=SC2086  # ExecStart and Environment are word lists, as systemd splits them
    spawn "$log" env $environment $command
}

hotline_cli() { as_hotline /opt/hotline/venv/bin/hotline "$@"; }

# spawn LOG COMMAND...: start COMMAND in the root as hotline, in the background. chroot is
# started directly (not through a function's subshell), so the pid in LAST_PID is the
# program's own once chroot, env and setpriv have exec'd into it: its /proc is the program's.
spawn() {
    local log=$1
    shift
    chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root \
        setpriv --reuid=hotline --regid=hotline --init-groups "$@" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$(( SECONDS + seconds ))
    until "$@" >/dev/null 2>&1; do
        (( SECONDS < deadline )) || die "$what: not within $seconds s"
        sleep 2
    done
}

web_answers() {
    # The first visit of a box nobody set up goes to the first-run page.
    curl -fsS -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$PORT/" | grep >/dev/null '/setup$' \
        && curl -fsS "http://127.0.0.1:$PORT/setup" | grep >/dev/null 'name="confirm"'
}

engine_answers() { hotline_cli status --data "$1"; }

lines_up() {
    hotline_cli status --data "$1" | /usr/bin/python3 -c '
import json, sys
lines = json.load(sys.stdin)["lines"]
sys.exit(0 if lines and all(line["state"] in ("up", "disabled") for line in lines) else 1)'
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
written() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io"; }

# files_since MARKER DIR: "count bytes" of the files under DIR changed after MARKER.
files_since() {
    find "$2" -type f -newer "$1" -printf '%s\n' | awk '{n++; b+=$1} END {printf "%d %d\n", n, b}'
}

check_installed_box() {
    say "the installed box, as its units start it (an empty box: no lines yet)"
    start_unit hotline-engine.service /var/lib/hotline "$BUILD/$ARCH/engine-installed.log"
    start_unit hotline-web.service /var/lib/hotline "$BUILD/$ARCH/web-installed.log"
    wait_for 300 "the installed engine answering" engine_answers /var/lib/hotline
    wait_for 120 "the web page answering with the first-run setup" web_answers
    all_alive
    hotline_cli status --data /var/lib/hotline >"$BUILD/$ARCH/status-installed.json"
    say "  engine and web UI up; the first visit goes to /setup"
    stop_all
}

check_demo_box() {
    local data=/var/lib/hotline-demo engine web before marker call
    say "the demo box: twin, engine and web UI as the units start them, on $data"
    rm -rf "${ROOTFS:?}$data"
    install -d -m 0750 "$ROOTFS$data"
    in_root chown hotline:hotline "$data"
    spawn "$BUILD/$ARCH/twin.log" /opt/hotline/venv/bin/hotline twin --data "$data"
    start_unit hotline-engine.service "$data" "$BUILD/$ARCH/engine.log"
    engine=$LAST_PID
    start_unit hotline-web.service "$data" "$BUILD/$ARCH/web.log"
    web=$LAST_PID
    wait_for 600 "the demo lines up" lines_up "$data"
    wait_for 120 "the web page answering with the first-run setup" web_answers
    all_alive
    hotline_cli status --data "$data" | tee "$BUILD/$ARCH/status.json" | /usr/bin/python3 -c '
import json, sys
for line in json.load(sys.stdin)["lines"]:
    print("  line %s: %s %s %s" % (line["id"], line["state"], line.get("model") or "", line.get("error") or ""))'
    figure "engine RSS idle (under qemu-user: includes the emulator): $(rss_mib "$engine") MiB; web RSS: $(rss_mib "$web") MiB"
    marker=$(mktemp)
    before=$(( $(written "$engine") + $(written "$web") ))
    call=$(hotline_cli call --line gsm1 --from +359888000123 --hold 3 --json --data "$data" 2>&1) \
        || die "the virtual call failed: $call"
    echo "$call" | grep >/dev/null '"answered": true' || die "the virtual call was not answered: $call"
    sleep 5  # the call's journal row and the recording's compression
    hotline_cli calls --data "$data" | tee "$BUILD/$ARCH/calls.txt" | grep >/dev/null '+359888000123' \
        || die "the call is not in the journal"
    read -r count bytes < <(files_since "$marker" "$ROOTFS$data")
    figure "one 3 s call: $count file(s), $bytes bytes changed in the data directory ($(find "$ROOTFS$data" -type f -newer "$marker" -printf '%P %s B, ')); engine+web wrote $(( $(written "$engine") + $(written "$web") - before )) bytes to storage"
    say "  idle for a minute: what reaches the SD card"
    touch "$marker"
    before=$(( $(written "$engine") + $(written "$web") ))
    sleep 60
    read -r count bytes < <(files_since "$marker" "$ROOTFS$data")
    figure "idle minute: $count file(s) changed ($(find "$ROOTFS$data" -type f -newer "$marker" -printf '%P ' | head -c 300)), engine+web wrote $(( $(written "$engine") + $(written "$web") - before )) bytes to storage"
    figure "engine RSS after the call: $(rss_mib "$engine") MiB; web RSS: $(rss_mib "$web") MiB"
    rm -f "$marker"
    stop_all
}

# --- what does not exist for this architecture ------------------------------------------------

report_wheels() {
    figure "Python packages in the venv and how they came (manylinux wheel, Debian package, or built here):"
    in_root /opt/hotline/venv/bin/python - <<'PY' | tee -a "$REPORT"
import importlib.metadata as md
import os
for dist in sorted(md.distributions(), key=lambda d: d.metadata["Name"].lower()):
    if os.path.realpath(str(getattr(dist, "_path", ""))).startswith("/usr/lib/python3/dist-packages/"):
        print(f"  {dist.metadata['Name']} {dist.version}: Debian's package, linked into the venv (no wheel on PyPI)")
        continue
    wheel = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    binary = [tag for tag in tags if not tag.endswith("-none-any")]
    if binary:
        how = "built here from source" if any("-linux_" in tag for tag in binary) else "wheel " + binary[0]
        print(f"  {dist.metadata['Name']} {dist.version}: {how}")
PY
    if in_root /opt/hotline/venv/bin/python -c 'import pjsua2' 2>/dev/null; then
        figure "  pjsua2: installed"
    else
        figure "  pjsua2: no wheel for $(in_root uname -m) (pjsua2-python is x86_64 only): SIP lines are disabled and say so; systemd/build-pjsua2.sh builds it"
    fi
    if in_root dpkg-query -W python3-lgpio >/dev/null 2>&1; then
        figure "  python3-lgpio: installed"
    else
        figure "  python3-lgpio: not in Debian (Raspberry Pi OS's archive only): install.sh skips it; the panel and GPIO power keys need a real Pi"
    fi
}

# build-pjsua2.sh's Debian packages install for this architecture, and its compiler flags
# build a position-independent shared object against each library it names.
check_pjsua2_build_inputs() {
    local packages flags
    packages=$(sed -n 's/^PACKAGES=(\(.*\))$/\1/p' "$SRC/systemd/build-pjsua2.sh")
    flags=$(sed -n 's/^BUILD_CFLAGS="\(.*\)"$/\1/p' "$SRC/systemd/build-pjsua2.sh")
    [[ -n $packages && -n $flags ]] || die "cannot read PACKAGES and BUILD_CFLAGS from build-pjsua2.sh"
    say "build-pjsua2.sh's packages in the $ARCH root: $packages"
    # shellcheck disable=SC2086
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages \
        >"$BUILD/$ARCH/pjsua2-packages.log" 2>&1 || die "build-pjsua2.sh's packages do not install: see $BUILD/$ARCH/pjsua2-packages.log"
    mkdir -p "$ROOTFS/tmp/pjsua2-flags"
    cat >"$ROOTFS/tmp/pjsua2-flags/probe.cpp" <<'CPP'
#include <Python.h>
#include <openssl/ssl.h>
#include <opus/opus.h>
#include <uuid/uuid.h>
#define PJSUA_MAX_CALLS 32
extern "C" int probe(void) {
    uuid_t id;
    uuid_generate(id);
    return OPENSSL_init_ssl(0, nullptr) + opus_encoder_get_size(1) + PJSUA_MAX_CALLS + Py_IsInitialized();
}
CPP
    # shellcheck disable=SC2086
    in_root bash -c "cd /tmp/pjsua2-flags && g++ $flags -shared \$(python3-config --includes) probe.cpp \
        -o probe.so -lssl -lcrypto -lopus -luuid && swig -version | grep -m1 Version && pkg-config --modversion opus" \
        >"$BUILD/$ARCH/pjsua2-flags.log" 2>&1 || die "the $ARCH compiler refused build-pjsua2.sh's flags: see $BUILD/$ARCH/pjsua2-flags.log"
    figure "build-pjsua2.sh on $ARCH: every package installs ($packages); g++ $flags -shared builds against Python, OpenSSL, Opus and uuid ($(tr '\n' ' ' <"$BUILD/$ARCH/pjsua2-flags.log"))"
}

main() {
    local reason
    reason=$(why_not)
    if [[ $CAN_RUN == 1 ]]; then
        [[ -z $reason ]] && { echo "yes"; exit 0; }
        echo "no: $reason"
        exit 1
    fi
    [[ -z $reason ]] || die "this host cannot run the check: $reason"
    mkdir -p "$BUILD/$ARCH"
    : >"$REPORT"
    trap cleanup EXIT
    trap 'say "FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR
    register_binfmt
    make_root
    mount_root
    stop_leftovers
    trust_host_authorities
    figure "pi-check $ARCH ($(in_root uname -m) under qemu-$QEMU), Debian $(cat "$ROOTFS/etc/debian_version"), root made in $(cat "$ROOTFS/.pi-check-root") s"
    copy_checkout
    run_install
    figure "install.sh inside the root: $INSTALL_SECONDS s"
    emulation_workarounds
    check_installed_box
    check_demo_box
    report_wheels
    check_pjsua2_build_inputs
    say "passed; the figures are in $REPORT"
}

main
