"""Modems plugged in but not yet lines: probe the ports of settings.modem_ports that no line owns.

The onboarding page lists them (model, SIM, signal) so that a technician binds one to a
line by its IMEI with one click. A port that a running line holds open is locked
(exclusive), so the probe skips it at once; ports a configured line names are not even
tried, and modems whose IMEI a line already carries are left out.
"""
import glob
import logging
import os

from firmware import detect
from firmware.errors import FirmwareError

from .config import DEFAULT_MODEM_PORTS
from .lines import SCAN_LOCK, resolve_port

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0  # per port: a tty that is not an AT port answers nothing
# What the page needs of a probe; the rest (firmware, voice formats) stays on the line's page.
FIELDS = ("port", "family", "manufacturer", "model", "imei", "iccid", "sim", "operator", "signal_dbm",
          "registration")


def candidate_ports(patterns, data_dir):
    """The ports matching ``patterns`` (relative ones inside the data directory), each device once."""
    seen, ports = set(), []
    for pattern in patterns:
        for port in sorted(glob.glob(resolve_port(pattern, data_dir))):
            real = os.path.realpath(port)
            if real not in seen:
                seen.add(real)
                ports.append(port)
    return ports


def owned_ports(lines, data_dir):
    """Real paths of the ports the configured lines name (their AT and audio ports)."""
    owned = set()
    for line in lines:
        for key in ("port", "audio_port"):
            if line.get(key) and "://" not in line[key]:
                owned.add(os.path.realpath(resolve_port(line[key], data_dir)))
    return owned


def unbound_modems(config, data_dir, known_imeis=(), probe=detect.probe):
    """The modems on free ports that no line is bound to: a list of probe results, one per IMEI."""
    patterns = config["settings"].get("modem_ports") or list(DEFAULT_MODEM_PORTS)
    owned = owned_ports(config["lines"], data_dir)
    known = {imei for imei in known_imeis if imei} | {line["imei"] for line in config["lines"] if line.get("imei")}
    found, imeis = [], set()
    for port in candidate_ports(patterns, data_dir):
        if os.path.realpath(port) in owned:
            continue
        # One scan at a time with the line runners: a runner looking for its modem by IMEI
        # must not find the port busy because we are probing it.
        with SCAN_LOCK:
            try:
                result = probe(port, timeout=PROBE_TIMEOUT)
            except FirmwareError as err:
                log.debug("discovery: skipped %s: %s", port, err)
                continue
        imei = result.get("imei") or ""
        if imei in known or (imei and imei in imeis):
            continue  # a line has it, or it is a second AT port of a modem already listed
        imeis.add(imei)
        found.append(_shown(result, port, data_dir))
    return found


def _shown(result, port, data_dir):
    """The probe result as the page shows it; a port in the data directory relative to it."""
    shown = {key: result.get(key) for key in FIELDS}
    inside = os.path.relpath(port, data_dir)
    shown["port"] = inside if not inside.startswith("..") else port
    return shown


def handle(engine, request):
    """The control request ``modems``: {"modems": [...]} for the modems no line uses yet."""
    lines = engine.in_loop(engine.status)["lines"]
    modems = unbound_modems(engine.config, engine.data_dir, known_imeis=[line.get("imei") for line in lines])
    return {"modems": modems}
