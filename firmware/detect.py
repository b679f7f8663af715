"""Which family is the modem on a port: by AT+CGMM / ATI, or by its USB ids."""
import glob
import logging
import os

from .at import ATChannel
from .errors import ATCommandError, FirmwareError
from .huawei import HuaweiLine, voice_state
from .quectel import QuectelLine
from .simcom import Sim800Line, Sim7600Line
from .voicemodem import VoiceModemLine, choose_format, parse_formats

log = logging.getLogger(__name__)

FAMILIES = {line.family: line for line in (Sim800Line, Sim7600Line, HuaweiLine, QuectelLine, VoiceModemLine)}


def family_for_model(text):
    """The line class whose model names appear in ``text`` (AT+CGMM or ATI output), or None."""
    upper = text.upper()
    for line_class in FAMILIES.values():
        if any(model in upper for model in line_class.models):
            return line_class
    return None


def family_for_usb(vendor, product):
    """The line class for a USB vendor/product id pair, or None."""
    for line_class in FAMILIES.values():
        if (vendor, product) in line_class.usb_ids:
            return line_class
    return None


def usb_ids(port):
    """(vendor, product) of the USB device behind a tty, read from sysfs, or None."""
    tty = os.path.basename(os.path.realpath(port))
    interface = os.path.realpath(f"/sys/class/tty/{tty}/device")
    for directory in (os.path.dirname(interface), os.path.dirname(os.path.dirname(interface))):
        try:
            with open(os.path.join(directory, "idVendor")) as vendor, open(os.path.join(directory, "idProduct")) as product:
                return int(vendor.read(), 16), int(product.read(), 16)
        except (OSError, ValueError):
            continue
    return None


def _family_by_usb_ids(port):
    """The family by USB ids, for a modem whose AT+CGMM names no model we know."""
    ids = usb_ids(port)
    line_class = family_for_usb(*ids) if ids else None
    return line_class.family if line_class else None


def probe(port, timeout=3.0):
    """Identify the modem on ``port``: family, model, firmware, IMEI, SIM, network."""
    channel = ATChannel(port, lambda line: None, name=f"probe {port}")
    try:
        return _identify(channel, timeout)
    finally:
        channel.close()


def _identify(channel, timeout):
    channel.command("AT", timeout=min(timeout, 1.0))  # a port that is not an AT port stops here
    ask = _asker(channel, timeout)
    ask("ATE0")
    model = " ".join(ask("AT+CGMM")) or " ".join(ask("ATI"))
    family = family_for_model(model) or family_for_model(" ".join(ask("ATI")))
    if family is None or family is VoiceModemLine:
        voice = _voice_modem(channel, ask)
        if voice is not None:
            return voice
    rssi = _number_after(ask("AT+CSQ", "+CSQ:"), "+CSQ:")
    found = _gsm_identity(channel, ask, family, model, rssi)
    if family is HuaweiLine:
        # Firmware with voice locked answers ^CVOICE:1 or ERROR: say so before a call fails.
        found["voice"] = voice_state(ask("AT^CVOICE?", "^CVOICE:"))
    return found


def _gsm_identity(channel, ask, family, model, rssi):
    """The probe's answer for a GSM modem."""
    return {
        "port": channel.name.split(" ", 1)[1],
        "family": family.family if family else None,
        "manufacturer": " ".join(ask("AT+CGMI")),
        "model": model,
        "firmware": " ".join(ask("AT+CGMR")).replace("+CGMR:", "").strip(),
        "imei": " ".join(ask("AT+CGSN")),
        "iccid": _iccid(ask),
        "sim": " ".join(ask("AT+CPIN?", "+CPIN:")).replace("+CPIN:", "").strip() or "unknown",
        "operator": _quoted(ask("AT+COPS?", "+COPS:")),
        "signal_dbm": None if rssi in (None, 99) else -113 + 2 * rssi,
        "registration": _registration(ask("AT+CREG?", "+CREG:")),
    }


def _voice_modem(channel, ask):
    """A V.253 voice modem: +FCLASS=? lists 8, +VSM=? its sample formats (in voice mode only)."""
    classes = " ".join(ask("AT+FCLASS=?")).replace("+FCLASS:", "").strip()
    if "8" not in [part.strip() for part in classes.strip("()").split(",")]:
        return None
    ask("AT+FCLASS=8")
    formats = parse_formats(ask("AT+VSM=?"))
    ask("AT+FCLASS=0")  # a probe leaves the modem as it found it (data mode)
    chosen = choose_format(formats)
    model = " ".join(ask("ATI3")) or " ".join(ask("ATI"))
    return {
        "port": channel.name.split(" ", 1)[1],
        "family": VoiceModemLine.family,
        "manufacturer": " ".join(ask("AT+GMI")),
        "model": model,
        "firmware": " ".join(ask("AT+GMR")),
        "imei": "", "iccid": "", "sim": "none (analog line)", "operator": "", "signal_dbm": None,
        "registration": "analog line",
        "classes": classes,
        "voice_formats": [f.describe() for f in formats],
        "voice_format": chosen.describe() if chosen else None,
    }


def _asker(channel, timeout):
    def ask(command, prefix=None):
        try:
            return channel.command(command, timeout=timeout, prefix=prefix)
        except ATCommandError as err:
            log.debug("probe: %s", err)
            return []
    return ask


ICCID_COMMANDS = (("AT+CCID", "+CCID:"), ("AT+CICCID", "+ICCID:"), ("AT+QCCID", "+QCCID:"), ("AT^ICCID?", "^ICCID:"))


def _iccid(ask):
    """The SIM's ICCID through whichever of the families' commands the modem knows."""
    for command, prefix in ICCID_COMMANDS:
        for line in ask(command, prefix):
            value = line.split(":", 1)[-1].strip().strip('"')
            if value.isdigit():
                return value
    return ""


def _number_after(lines, prefix):
    for line in lines:
        if line.startswith(prefix):
            head = line[len(prefix):].split(",")[0].strip()
            return int(head) if head.isdigit() else None
    return None


def _quoted(lines):
    for line in lines:
        if '"' in line:
            return line.split('"')[1]
    return ""


def _registration(lines):
    from .gsm import _creg

    return _creg(lines)


def find_modem(candidates, *, imei=None, iccid=None):
    """(port, probe result) of the modem with this IMEI or SIM ICCID among ``candidates``, or None.

    Ports another line holds open (exclusive locks) and ports that do not speak AT are
    skipped quickly, so a line can be bound to its modem however the ttys were numbered.
    """
    for port in candidates:
        try:
            found = probe(port, timeout=2.0)
        except FirmwareError as err:
            log.debug("find_modem: skipped %s: %s", port, err)
            continue
        if (imei and found["imei"] == imei) or (iccid and found["iccid"] == iccid):
            return port, found
    return None


def audio_port_beside(at_port, family):
    """The audio port that belongs with an AT port: the same USB device's voice interface
    (SIM7600: 4, Huawei and Quectel: 1), or ``X-audio`` beside an emulated ``X-at``."""
    if at_port.endswith("-at"):
        return at_port[:-3] + "-audio"
    interface = FAMILIES[family].audio_interface
    tty = os.path.basename(os.path.realpath(at_port))
    device = os.path.realpath(f"/sys/class/tty/{tty}/device")
    usb_device, name = os.path.dirname(device), os.path.basename(device)
    sibling = os.path.join(usb_device, f"{name.rsplit('.', 1)[0]}.{interface}")
    ttys = sorted(glob.glob(os.path.join(sibling, "tty*"))) + sorted(glob.glob(os.path.join(sibling, "tty", "tty*")))
    if interface is None or not ttys:
        raise FirmwareError(f"{at_port}: no audio interface found beside it; set the line's audio_port")
    return "/dev/" + os.path.basename(ttys[0])


def open_line(port, on_event, *, family="auto", audio_port=None, name="gsm", pin=None, sms_mode="pdu", rings=2):
    """Open a line of ``family`` on ``port``; with "auto", identify the modem first.

    ``rings`` is how many rings an analog line lets pass before it answers.
    """
    if family == "auto":
        found = probe(port)["family"] or _family_by_usb_ids(port)
        if found is None:
            raise FirmwareError(f"{port}: not a supported GSM or voice modem")
        family = found
    if family == VoiceModemLine.family:
        return VoiceModemLine(port, on_event, name=name, rings=rings)
    return FAMILIES[family](port, on_event, audio_port=audio_port, name=name, pin=pin, sms_mode=sms_mode)
