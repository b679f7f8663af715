#!/bin/bash
# Installs, upgrades or uninstalls the hot-line appliance on Raspberry Pi OS (Debian
# bookworm or later). Run it as root from a copy of the project:
#
#   sudo systemd/install.sh              install, or upgrade to this copy (same thing)
#   sudo systemd/install.sh --upgrade    also upgrade the Python dependencies
#   sudo systemd/install.sh --uninstall  remove it; the data directory stays
#   sudo systemd/install.sh --uninstall --purge   ... and the data and the user too
#   systemd/install.sh --root DIR        lay every file down under DIR only (tests, images)
#
# A second run changes nothing and says so. docs/install.md walks through a whole box.
set -euo pipefail

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --root DIR    install into DIR instead of /; implies --no-system
  --no-system   lay down the files only: no apt-get, useradd, chown, systemctl or udevadm
  --offline     install the project without its Python dependencies and without the
                network (for --root trees whose environment is only inspected)
  --upgrade     upgrade the Python dependencies as well
  --uninstall   stop, disable and remove the box; keeps /var/lib/hotline
  --purge       with --uninstall: remove /var/lib/hotline and the hotline user as well
  -h, --help    this text
EOF
}

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=/
SYSTEM=1
OFFLINE=0
UPGRADE=0
ACTION=install
PURGE=0
if [[ -x /usr/bin/python3 ]]; then DEFAULT_PYTHON=/usr/bin/python3; else DEFAULT_PYTHON=python3; fi
PYTHON=${PYTHON:-$DEFAULT_PYTHON}

while [[ $# -gt 0 ]]; do
    case $1 in
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        --root=*) ROOT=${1#--root=} ;;
        --no-system) SYSTEM=0 ;;
        --offline) OFFLINE=1 ;;
        --upgrade) UPGRADE=1 ;;
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(realpath -m "$ROOT")
R=${ROOT%/}  # prefix for every path; empty for the real root
if [[ -n $R ]]; then
    SYSTEM=0  # a tree elsewhere is not this machine: its packages, users and services stay untouched
    mkdir -p "$ROOT"
fi

USER_NAME=hotline
SERVICE_GROUPS=(dialout gpio audio)
OPT=/opt/hotline
VENV=$OPT/venv
DOC=$OPT/doc
DATA=/var/lib/hotline
UNIT_DIR=/etc/systemd/system
WANTS=$UNIT_DIR/multi-user.target.wants
RULES=/etc/udev/rules.d/99-hotline-modems.rules
JOURNALD=/etc/systemd/journald.conf.d/hotline.conf
UNITS=(hotline-engine.service hotline-web.service hotline-web-reload.path hotline-web-reload.service)
ENABLED=(hotline-engine.service hotline-web.service hotline-web-reload.path)
PORT=8080
# Run time: speech, audio conversion, Huawei dongles' mode switch, a clock saved across reboots.
PACKAGES=(python3 python3-venv ffmpeg espeak-ng usb-modeswitch usb-modeswitch-data fake-hwclock)
SOURCES=(setup.py README.md appliance firmware web_ui hardware)

# systemd installed but not running as PID 1: a chroot, or an SD card image being built
# (systemd/pi-check.sh runs it so). Files, packages and users are made as usual; the
# units and rules take effect at the first boot.
BOOTED=0
if [[ -d /run/systemd/system ]]; then BOOTED=1; fi

CHANGES=0
CODE_CHANGED=0
UNITS_CHANGED=0
RULES_CHANGED=0

say() { printf '%s\n' "$*"; }
changed() { CHANGES=$((CHANGES + 1)); say "  changed: $*"; }
die() { say "install.sh: $*" >&2; exit 1; }

# --- helpers that change something only when it differs ------------------------------

# install_file SOURCE PATH MODE: copy SOURCE to PATH (under the root) unless it is there already.
install_file() {
    local source=$1 dest=$R$2 mode=$3
    if [[ -f $dest ]] && cmp -s "$source" "$dest"; then
        if [[ $(stat -c %a "$dest") != "${mode#0}" ]]; then
            chmod "$mode" "$dest"
            changed "mode $mode on $2"
            return 0
        fi
        return 1
    fi
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$source" "$dest.new"
    mv -f "$dest.new" "$dest"
    changed "$2"
}

# ensure_dir PATH MODE [OWNER]: a directory with this mode (and owner, on a real system).
ensure_dir() {
    local dest=$R$1 mode=$2 owner=${3:-}
    if [[ ! -d $dest ]]; then
        mkdir -p "$dest"
        chmod "$mode" "$dest"
        changed "$1/"
    elif [[ $(stat -c %a "$dest") != "${mode#0}" ]]; then
        chmod "$mode" "$dest"
        changed "mode $mode on $1/"
    fi
    if [[ -n $owner && $SYSTEM == 1 && $(stat -c %U:%G "$dest") != "$owner" ]]; then
        chown "$owner" "$dest"
        changed "owner $owner of $1/"
    fi
}

# ensure_link TARGET PATH: a symbolic link PATH -> TARGET (as systemctl enable makes them).
ensure_link() {
    local target=$1 link=$R$2
    if [[ -L $link && $(readlink "$link") == "$target" ]]; then
        return 1
    fi
    mkdir -p "$(dirname "$link")"
    ln -sfn "$target" "$link"
    changed "$2 -> $target"
}

# remove PATH: remove a file, link or tree under the root if it is there.
remove() {
    local dest=$R$1
    if [[ -e $dest || -L $dest ]]; then
        rm -rf "$dest"
        changed "removed $1"
    fi
}

source_hash() {
    (cd "$SRC" && find "${SOURCES[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

project_version() {
    sed -n 's/^ *version="\([^"]*\)".*/\1/p' "$SRC/setup.py" | head -n1
}

# --- install steps -----------------------------------------------------------------------

# os_release KEY: one value of /etc/os-release, read without sourcing it.
os_release() {
    sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" /etc/os-release 2>/dev/null | head -n1
}

preflight() {
    [[ -f $SRC/setup.py && -f $SRC/hardware/99-hotline-modems.rules ]] || die "run me from the project: $SRC has no setup.py"
    if [[ $SYSTEM == 0 ]]; then return 0; fi
    [[ $(id -u) == 0 ]] || die "run me as root (sudo $0), or with --root DIR to lay the files down elsewhere"
    command -v systemctl >/dev/null || die "systemd is needed (Raspberry Pi OS or Debian bookworm or later)"
    local id like version
    id=$(os_release ID) like=$(os_release ID_LIKE) version=$(os_release VERSION_ID)
    [[ $id == debian || $id == raspbian || $like == *debian* ]] || die "this is not Debian or Raspberry Pi OS ($id)"
    if [[ $id == debian || $id == raspbian ]] && [[ ${version%%.*} =~ ^[0-9]+$ ]] && (( ${version%%.*} < 12 )); then
        die "Debian $version is too old: Raspberry Pi OS bookworm (12) or later is needed"
    fi
}

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

install_packages() {
    [[ $SYSTEM == 1 ]] || return 0
    local missing=() package
    for package in "${PACKAGES[@]}" $(debian_wheels); do
        installed "$package" || missing+=("$package")
    done
    # gpiozero's pin driver, from Raspberry Pi OS's archive; plain Debian has no such package (and no pins).
    local lgpio=0
    if ! installed python3-lgpio && apt-cache show python3-lgpio >/dev/null 2>&1; then
        missing+=(python3-lgpio)
        lgpio=1
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt-get update -q
        if [[ $lgpio == 0 ]] && ! installed python3-lgpio && apt-cache show python3-lgpio >/dev/null 2>&1; then
            missing+=(python3-lgpio)
        fi
        say "Installing Debian packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
        changed "Debian packages ${missing[*]}"
    fi
}

create_user() {
    [[ $SYSTEM == 1 ]] || return 0
    local group
    # Raspberry Pi OS has a gpio group owning /dev/gpiochip*; elsewhere the udev rules make one useful.
    getent group gpio >/dev/null || { groupadd --system gpio; changed "group gpio"; }
    if ! getent passwd "$USER_NAME" >/dev/null; then
        useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
            --comment "hot-line appliance" "$USER_NAME"
        changed "user $USER_NAME"
    fi
    for group in "${SERVICE_GROUPS[@]}"; do
        if [[ " $(id -nG "$USER_NAME" 2>/dev/null) " != *" $group "* ]]; then
            usermod -a -G "$group" "$USER_NAME"
            changed "user $USER_NAME in group $group"
        fi
    done
}

install_python() {
    ensure_dir "$OPT" 0755
    local python_version
    python_version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    # A venv is tied to its interpreter: after a Python upgrade (a new Debian), make it again.
    if [[ -x $R$VENV/bin/python ]] && [[ $("$R$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) != "$python_version" ]]; then
        rm -rf "${R:?}$VENV"
        changed "removed $VENV made with another Python"
    fi
    if [[ ! -x $R$VENV/bin/python ]]; then
        "$PYTHON" -m venv "$R$VENV"
        changed "$VENV (Python $python_version)"
    fi
    local stamp=$R$VENV/.hotline-source hash
    hash=$(source_hash)
    if [[ $UPGRADE == 0 && -f $stamp && $(cat "$stamp") == "$hash" ]]; then
        link_lgpio
        return 0
    fi
    local stage
    stage=$(mktemp -d)
    # Built from a copy, so the checkout gets no build/ or egg-info of root's.
    (cd "$SRC" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - "${SOURCES[@]}") | tar -xf - -C "$stage"
    local pip=("$R$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    if [[ $OFFLINE == 1 ]]; then
        pip+=(--no-deps --no-index --no-build-isolation)
    else
        pip+=(--use-pep517)  # an isolated build with a current setuptools, not setup.py install
        if [[ $UPGRADE == 1 ]]; then
            "$R$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
            pip+=(--upgrade --upgrade-strategy eager)
        fi
    fi
    say "Installing hot-line $(project_version) into $VENV"
    link_debian_wheels
    if ! "${pip[@]}" "$stage"; then
        rm -rf "$stage"
        die "pip could not install the project (see above)"
    fi
    rm -rf "$stage"
    printf '%s\n' "$hash" >"$stamp"
    CODE_CHANGED=1
    changed "hot-line $(project_version) in $VENV"
    link_lgpio
}

# Debian's lgpio (the Pi's GPIO driver for gpiozero) is a C module built for this Python;
# linking just it into the venv keeps every other system package out.
# PyPI has no numpy wheel for 32-bit ARM (armhf: Pi 2 and older Pi 3 images). Raspberry Pi
# OS fetches one from piwheels, a plain Debian cannot, and building numpy needs a compiler
# and about an hour on such a Pi: there Debian's python3-numpy is linked into the venv
# before pip runs, so pip finds numpy installed (setup.py asks for >= 1.24, bookworm has 1.24).
debian_wheels() {
    if [[ $(dpkg --print-architecture 2>/dev/null) == armhf ]]; then echo python3-numpy; fi
}

link_debian_wheels() {
    [[ -n $(debian_wheels) ]] || return 0
    local site file
    site=$("$R$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    for file in /usr/lib/python3/dist-packages/numpy /usr/lib/python3/dist-packages/numpy-*.egg-info \
                /usr/lib/python3/dist-packages/numpy-*.dist-info; do
        [[ -e $file && ! -L $site/$(basename "$file") ]] || continue
        ln -sfn "$file" "$site/$(basename "$file")"
        changed "Debian's $(basename "$file") linked into $VENV"
    done
}

link_lgpio() {
    local site file
    site=$("$R$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    for file in /usr/lib/python3/dist-packages/lgpio.py /usr/lib/python3/dist-packages/_lgpio*.so; do
        [[ -e $file ]] || continue
        if [[ ! -L $site/$(basename "$file") ]]; then
            ln -sfn "$file" "$site/$(basename "$file")"
            changed "$(basename "$file") linked into $VENV"
        fi
    done
}

install_data_dir() {
    ensure_dir "$DATA" 0750 "$USER_NAME:$USER_NAME"
    if [[ -e $R$DATA/config.json || -e $R$DATA/config.last-good.json ]]; then
        return 0  # an upgrade never touches the box's configuration
    fi
    # A real box starts empty, with no demo modems: its lines are added on the web page.
    # The file is TinyDB's layout (one table per section, documents by number).
    local zone=UTC file
    if [[ -L $R/etc/localtime ]]; then
        zone=$(readlink "$R/etc/localtime" | sed -n 's#.*/zoneinfo/##p')
    fi
    for file in config.json config.last-good.json; do
        "$PYTHON" - "$R$DATA/$file" "${zone:-UTC}" <<'PY'
import json, sys, zoneinfo
path, zone = sys.argv[1], sys.argv[2]
try:
    zoneinfo.ZoneInfo(zone)
except Exception:
    zone = "UTC"
settings = {"box_name": "Hot-line", "language": "en", "timezone": zone, "max_call_seconds": 3600}
with open(path, "w", encoding="utf-8") as handle:
    json.dump({"settings": {"1": settings}}, handle, indent=1, sort_keys=True)
PY
        chmod 0640 "$R$DATA/$file"
        if [[ $SYSTEM == 1 ]]; then chown "$USER_NAME:$USER_NAME" "$R$DATA/$file"; fi
    done
    changed "$DATA/config.json (an empty box: add its lines on the web page)"
}

install_docs() {
    local file
    install_file "$SRC/docs/install.md" "$DOC/install.md" 0644 || true
    for file in "$SRC"/hardware/*.md "$SRC"/hardware/*.svg; do
        install_file "$file" "$DOC/hardware/$(basename "$file")" 0644 || true
    done
}

install_rules() {
    if install_file "$SRC/hardware/99-hotline-modems.rules" "$RULES" 0644; then RULES_CHANGED=1; fi
    if install_file "$SRC/systemd/journald-hotline.conf" "$JOURNALD" 0644 && [[ $SYSTEM == 1 && $BOOTED == 1 ]]; then
        systemctl restart systemd-journald.service
    fi
    if [[ $RULES_CHANGED == 1 && $SYSTEM == 1 && $BOOTED == 0 ]]; then
        say "  udev is not running here: the rules apply at the next boot"
    elif [[ $RULES_CHANGED == 1 && $SYSTEM == 1 ]]; then
        udevadm control --reload-rules
        udevadm trigger --action=add --subsystem-match=tty --subsystem-match=usb --subsystem-match=sound \
            --subsystem-match=gpio
    fi
}

install_units() {
    local unit
    for unit in "${UNITS[@]}"; do
        if install_file "$SRC/systemd/$unit" "$UNIT_DIR/$unit" 0644; then UNITS_CHANGED=1; fi
    done
    for unit in "${ENABLED[@]}"; do
        ensure_link "$UNIT_DIR/$unit" "$WANTS/$unit" || true
    done
    [[ $SYSTEM == 1 ]] || return 0
    # ModemManager probes every new serial port with AT commands of its own: it must keep
    # off the modems (the udev rules tell it too, this makes sure).
    if systemctl is-enabled --quiet ModemManager.service 2>/dev/null; then
        if [[ $BOOTED == 1 ]]; then systemctl disable --now ModemManager.service
        else systemctl disable ModemManager.service; fi
        changed "ModemManager disabled (it would probe the modems' AT ports)"
    fi
    if [[ $BOOTED == 0 ]]; then
        say "  systemd is not running here (a chroot or an image): the units start at the next boot"
        return 0
    fi
    if [[ $UNITS_CHANGED == 1 ]]; then systemctl daemon-reload; fi
    if [[ $CODE_CHANGED == 1 || $UNITS_CHANGED == 1 ]]; then
        systemctl restart "${ENABLED[@]}"
        changed "restarted ${ENABLED[*]}"
    else
        for unit in "${ENABLED[@]}"; do
            if ! systemctl is-active --quiet "$unit"; then
                systemctl start "$unit"
                changed "started $unit"
            fi
        done
    fi
}

print_url() {
    local address=""
    if [[ $SYSTEM == 1 ]]; then
        address=$(hostname -I 2>/dev/null | awk '{print $1}')
    fi
    address=${address:-$(hostname).local}
    say ""
    if [[ ! -e $R$DATA/journal.sqlite3 ]]; then
        say "First run: open http://$address:$PORT/setup and create the admin account (there is no default password)."
    else
        say "The web page: http://$address:$PORT/"
    fi
}

do_install() {
    preflight
    local how=""
    if [[ $SYSTEM == 0 ]]; then how=" (files only: no packages, users or services)"; fi
    say "Installing the hot-line appliance into $ROOT$how"
    install_packages
    create_user
    install_python
    install_data_dir
    install_docs
    install_rules
    install_units
    if [[ $CHANGES == 0 ]]; then
        say "Nothing changed: hot-line $(project_version) is installed and up to date."
    else
        say "Done: $CHANGES change(s)."
    fi
    print_url
}

do_uninstall() {
    preflight
    say "Removing the hot-line appliance from ${ROOT}"
    local unit
    if [[ $SYSTEM == 1 ]]; then
        for unit in "${ENABLED[@]}"; do
            if systemctl is-active --quiet "$unit" || systemctl is-enabled --quiet "$unit" 2>/dev/null; then
                if [[ $BOOTED == 1 ]]; then systemctl disable --now "$unit"; else systemctl disable "$unit"; fi
                changed "stopped and disabled $unit"
            fi
        done
    fi
    for unit in "${ENABLED[@]}"; do remove "$WANTS/$unit"; done
    for unit in "${UNITS[@]}"; do remove "$UNIT_DIR/$unit"; done
    remove "$RULES"
    remove "$JOURNALD"
    remove "$OPT"
    if [[ $SYSTEM == 1 && $BOOTED == 1 ]]; then
        systemctl daemon-reload
        udevadm control --reload-rules || true
    fi
    if [[ $PURGE == 1 ]]; then
        remove "$DATA"
        if [[ $SYSTEM == 1 ]] && getent passwd "$USER_NAME" >/dev/null; then
            userdel "$USER_NAME"
            changed "removed user $USER_NAME"
        fi
    elif [[ -d $R$DATA ]]; then
        say "Kept $DATA (configuration, call journal, recordings); --uninstall --purge removes it."
    fi
    if [[ $CHANGES == 0 ]]; then
        say "Nothing to remove: the hot-line appliance is not installed."
    else
        say "Done: $CHANGES change(s)."
    fi
}

if [[ $ACTION == uninstall ]]; then
    do_uninstall
else
    [[ $PURGE == 0 ]] || die "--purge goes with --uninstall"
    do_install
fi
