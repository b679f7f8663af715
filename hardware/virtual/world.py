"""The virtual twin of the world around a box: modems, phones and the network between.

It builds the emulated modems and phones that a configuration's ``virtual`` section
describes, links their pseudo-terminals under ``dev/`` in the data directory (what udev
does for real modems) and takes requests on ``twin.sock``: place a call as a caller
would, list what is attached.
"""
import contextlib
import logging
import os
import time
import wave

from pydub.exceptions import CouldntDecodeError

from firmware.frames import FRAME_SECONDS

from .network import NetworkError, VirtualNetwork
from .families import ALL_EMULATORS, EMULATORS
from .phones import VirtualCaller, VirtualPhone, wav_frames

log = logging.getLogger(__name__)

SOCKET_NAME = "twin.sock"


class TwinError(Exception):
    """A request to the virtual twin cannot be carried out."""


class VirtualWorld:
    """Emulated modems and phones on one virtual network, described by a config section."""

    def __init__(self, virtual_config, data_dir):
        self.data_dir = data_dir
        self.network = VirtualNetwork()
        self.modems = {}
        self.phones = []
        self._links = []
        try:
            for item in virtual_config.get("modems", []):
                self._add_modem(item)
            for item in virtual_config.get("phones", []):
                self.phones.append(_phone(self.network, item))
        except Exception:
            self.close()
            raise

    def _add_modem(self, item):
        options = {"voice": item["voice"]} if item.get("voice", "ok") != "ok" else {}  # e1550 only (config checks)
        if item["model"] in EMULATORS:  # a GSM modem has a SIM; an analog voice modem has none
            options["iccid"] = _iccid(len(self.modems))
        modem = ALL_EMULATORS[item["model"]](self.network, item["number"], **options,
                                             imei=item.get("imei") or _imei(len(self.modems)),
                                             pin=item.get("pin"))
        self.modems[item["line"]] = modem
        self._link(modem.at.path, f"{item['line']}-at")
        if modem.audio is not None:  # a voice modem streams its audio on its one port
            self._link(modem.audio.path, f"{item['line']}-audio")

    def _link(self, target, name):
        directory = os.path.join(self.data_dir, "dev")
        os.makedirs(directory, exist_ok=True)
        link = os.path.join(directory, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(target, link)
        self._links.append(link)

    def describe(self):
        """What is attached: modems by line with their ports, phones by number."""
        return {
            "modems": [{"line": line, "model": modem.model, "number": modem.number,
                        "at_port": modem.at.path, "audio_port": modem.audio.path if modem.audio else None,
                        **({"off_hook": modem.off_hook} if hasattr(modem, "off_hook") else {})}
                       for line, modem in self.modems.items()],
            "phones": [phone.describe() for phone in self.phones],
        }

    def power_cycle(self, line, imei=None):
        """Work the power switch of the modem with ``imei``, or else the one meant for ``line``."""
        modem = next((m for m in self.modems.values() if m.imei == imei), None) if imei else self._modem(line)
        if modem is None:
            raise TwinError(f"no virtual modem with IMEI {imei}")
        modem.power_cycle()
        return {"line": line, "imei": modem.imei, "power_cycled": True}

    def send_sms(self, sender, line, text):
        """Someone at ``sender`` texts the modem of ``line`` (an operator's PAUSE, say)."""
        self.network.send_sms(sender, self._modem(line).number, text)
        return {"from": sender, "line": line, "sent": True}

    def sms_log(self, recipient=None):
        """Every SMS the network carried (to ``recipient`` only, if given), oldest first."""
        return [{"from": sender, "to": to, "text": text} for sender, to, text in self.network.sms_log
                if recipient is None or to == recipient]

    def hang(self, line):
        """Make the modem behind ``line`` stop answering (until power-cycled)."""
        self._modem(line).hang()
        return {"line": line, "hung": True}

    def _modem(self, line):
        modem = self.modems.get(line)
        if modem is None:
            raise TwinError(f"no virtual modem for line {line!r} (have: {', '.join(self.modems) or 'none'})")
        return modem

    def place_call(self, line, caller, digits="", hold=3.0, answer_timeout=15.0, tone=None, audio=None, inband=False):
        """Ring the modem of ``line`` from ``caller``, speak ``audio``, press ``digits``, stay ``hold`` s, hang up."""
        modem = self._modem(line)
        speech = _speech(audio)
        person = VirtualCaller(self.network, caller, send_tone=tone)
        try:
            person.dial(modem.number)
        except NetworkError as err:
            raise TwinError(str(err)) from err
        answered = person.answered.wait(answer_timeout)
        started = time.monotonic()
        if answered:
            person.say(speech)
            person.ended.wait(0.5)
            person.press(digits, inband=inband)
            person.ended.wait(max(0.0, hold - (time.monotonic() - started)))
        hung_up_by = "box" if person.ended.is_set() else "caller"
        person.hang_up()
        return {
            "line": line, "from": caller, "to": modem.number, "answered": answered,
            "ended_by": hung_up_by, "seconds": round(time.monotonic() - started, 2),
            "heard_seconds": person.heard_seconds(), "digits": digits, "inband": bool(inband),
            "audio_seconds": round(len(speech) * FRAME_SECONDS, 2),
        }

    def close(self):
        """Hang up, take every device off the network, remove the links; safe twice."""
        for phone in self.phones:
            phone.close()
        for modem in self.modems.values():
            modem.close()
        for link in self._links:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        self.phones, self.modems, self._links = [], {}, []


def _phone(network, item):
    """A virtual phone as the configuration describes it (config.py fills the defaults)."""
    return VirtualPhone(network, item["number"], answer_after=item.get("answer_after", 1.0),
                        behaviour=item.get("behaviour", "answer"), accept_key=item.get("accept_key", "1"),
                        accept_after=item.get("accept_after", 1.0))


def _speech(audio):
    """The frames of the WAV file a caller speaks; the path must be absolute (the twin's cwd is its own)."""
    if not audio:
        return []
    if not os.path.isabs(audio):
        raise TwinError(f"the audio file must be given by its absolute path, not {audio!r}")
    try:
        return wav_frames(audio)
    except (OSError, EOFError, wave.Error, CouldntDecodeError) as err:
        raise TwinError(f"cannot read the audio file {audio}: {err}") from err


def _imei(index):
    """A distinct, Luhn-valid test IMEI for each emulated modem."""
    return _with_luhn(f"86123456789{index:03d}")


def _iccid(index):
    """A distinct, Luhn-valid test ICCID (19 digits, 89 359: telecom, Bulgaria) for each emulated SIM."""
    return _with_luhn(f"89359019900123{index:04d}")


def _with_luhn(body):
    digits = [int(d) for d in reversed(body)]  # Luhn doubles every second digit from the check digit's left
    total = sum(sum(divmod(d * 2, 10)) if i % 2 == 0 else d for i, d in enumerate(digits))
    return body + str((10 - total % 10) % 10)
