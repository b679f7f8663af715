"""Write tests/transcripts/*.txt: a session of the real driver with each emulated family,
recorded through ``firmware.transcript`` as ``hotline modem record`` does it.

Run ``.venv/bin/python -m tests.make_transcripts`` after changing an emulator or a driver's
command sequence; tests/test_transcripts.py replays every file through the driver. Each file
names its source; a technician's recording from the field goes in the same folder by hand.
"""
import json
import os
import sys

from firmware.detect import FAMILIES
from firmware.transcript import Tap, TranscriptWriter
from hardware.virtual.families import EMULATORS
from hardware.virtual.network import VirtualNetwork
from hardware.virtual.phones import VirtualCaller

from .test_modem_quirks import M35_USSD
from .test_transcripts import CALLER, FULL_SESSION, MODEM_NUMBER, Events, run_session

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transcripts")
EMULATED = "the {family} emulator (hardware/virtual/families.py)"
# (file, family, emulator options, attributes to set, session, source note)
SPECS = [
    ("sim800.txt", "sim800", {}, {}, FULL_SESSION, EMULATED),
    ("sim7600-crcrlf.txt", "sim7600", {}, {"framing": "crcrlf"}, FULL_SESSION,
     EMULATED + "; lines end <CR><CR><LF> as in ModemManager's simtech test fixtures"),
    ("e1550-urcs-inside-answers.txt", "e1550", {}, {"framing": "bare", "noise": True}, FULL_SESSION,
     EMULATED + "; ^RSSI/^HCSQ/^MODE/^BOOT/+CREG inside answers (chan_dongle #143, python-gsmmodem #40), "
     "lines without a leading CRLF (chan_dongle at_read.c)"),
    ("e1550-voice-locked.txt", "e1550", {"voice": "locked"}, {}, ["info", "ussd *100#"],
     EMULATED + "; firmware with voice locked answers ^CVOICE:1 (chan_dongle at_response_cvoice)"),
    ("ec25.txt", "ec25", {}, {}, FULL_SESSION, EMULATED),
    ("ec25-dsci.txt", "ec25", {"dsci": True}, {}, FULL_SESSION,
     EMULATED + "; firmware without \"ccinfo\" that reports calls as ^DSCI (chan_quectel at_response_dsci)"),
    ("quectel-m35-ussd-gammu358.txt", "ec25", {}, {"ussd_reply_line": lambda text: M35_USSD}, ["info", "ussd *100#"],
     "the +CUSD reply is byte for byte gammu's tests/at-ussd/Uissue358-Quectel_M35.dump (gammu issue 358: "
     "UCS2 hex under DCS 15); the rest of the session is " + EMULATED),
]


def record(name, family, options, attributes, session, note):
    """Record one session of the real driver with an emulated ``family`` into HERE/name."""
    network = VirtualNetwork()
    modem = EMULATORS[family](network, MODEM_NUMBER, **options)
    for key, value in attributes.items():
        setattr(modem, key, value)
    writer = TranscriptWriter(os.path.join(HERE, name), port=f"emulated {family}",
                              note=f"source: {note.format(family=family)}")
    tap = Tap(modem.at.path, writer)
    events = Events()
    line = FAMILIES[family](tap.path, events, name="record")
    try:
        facts = run_session(line, session, events, ring=lambda: VirtualCaller(network, CALLER).dial(MODEM_NUMBER))
    finally:
        line.close()
        tap.close()
        modem.close()
    masked = {key: writer.mask(value) if isinstance(value, str) else value for key, value in facts.items()}
    writer.comment(f"family: {family}")
    writer.comment(f"session: {', '.join(session)}")
    writer.comment(f"expect: {json.dumps(masked, ensure_ascii=False)}")
    writer.close()


def main():
    """Record every spec (or the files named on the command line)."""
    wanted = set(sys.argv[1:])
    for spec in SPECS:
        if not wanted or spec[0] in wanted:
            record(*spec)
            print("wrote", os.path.join(HERE, spec[0]))


if __name__ == "__main__":
    main()
