"""SMS and USSD encodings: GSM 7-bit, UCS2, PDUs, concatenation.

3GPP TS 23.038 (alphabets, data coding schemes), TS 23.040 (SMS-SUBMIT and SMS-DELIVER,
the concatenation information elements 0x00 and 0x08, TP-SCTS) and TS 27.005 (the
length AT+CMGS wants: the TPDU without the SMSC part). Pure functions, no I/O.
"""
import datetime
import time

from .errors import FirmwareError

# TS 23.038 6.2.1: the default alphabet, and its extension table behind ESC (0x1B).
GSM7_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
              "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
                  0x3E: "]", 0x40: "|", 0x65: "€"}
ESC = 0x1B
_BASIC_INDEX = {char: index for index, char in enumerate(GSM7_BASIC) if index != ESC}
_EXTENSION_INDEX = {char: code for code, char in GSM7_EXTENSION.items()}

DCS_GSM7, DCS_8BIT, DCS_UCS2 = 0x00, 0x04, 0x08
SINGLE_GSM7, PART_GSM7 = 160, 153  # septets
SINGLE_UCS2, PART_UCS2 = 70, 67  # UTF-16 code units
MAX_PARTS = 10
# High bytes of UCS2 units that real USSD text uses: Latin-1, Latin Extended-A, Greek,
# Cyrillic, Hebrew, Arabic, Thai, general punctuation (the euro sign lives there).
UCS2_TEXT_PAGES = frozenset({0x00, 0x01, 0x03, 0x04, 0x05, 0x06, 0x0E, 0x20})
SMSC_FOR_DELIVER = "+359888000000"  # the emulated network's service centre


class PduError(FirmwareError, ValueError):
    """A PDU, number or message cannot be encoded or decoded; the message says why."""


# --- GSM 7-bit ----------------------------------------------------------------------


def gsm7_encode(text):
    """Septets for ``text`` (extension characters as ESC pairs), or None if it needs UCS2."""
    septets = []
    for char in text:
        if char in _BASIC_INDEX:
            septets.append(_BASIC_INDEX[char])
        elif char in _EXTENSION_INDEX:
            septets += [ESC, _EXTENSION_INDEX[char]]
        else:
            return None
    return septets


def gsm7_decode(septets):
    """Text from septets; an unknown extension code reads as a space, as TS 23.038 says."""
    chars, escaped = [], False
    for septet in septets:
        if escaped:
            chars.append(GSM7_EXTENSION.get(septet, " "))
            escaped = False
        elif septet == ESC:
            escaped = True
        else:
            chars.append(GSM7_BASIC[septet & 0x7F])
    return "".join(chars)


def pack_septets(septets, fill_bits=0):
    """Pack 7-bit values into octets, after ``fill_bits`` zero bits (to align after a UDH)."""
    value = 0
    for index, septet in enumerate(septets):
        value |= (septet & 0x7F) << (fill_bits + 7 * index)
    total_bits = fill_bits + 7 * len(septets)
    return value.to_bytes((total_bits + 7) // 8, "little")


def unpack_septets(data, count, fill_bits=0):
    """``count`` 7-bit values from packed octets, skipping ``fill_bits`` first."""
    value = int.from_bytes(data, "little") >> fill_bits
    return [(value >> (7 * index)) & 0x7F for index in range(count)]


# --- UCS2 ---------------------------------------------------------------------------


def ucs2_hex_encode(text):
    """Text as UCS2 (UTF-16BE) hex, as AT+CSCS="UCS2" and USSD DCS 72 carry it."""
    return text.encode("utf-16-be").hex().upper()


def ucs2_hex_decode(hex_text):
    """UCS2 hex back to text; raises PduError for hex that is not UCS2."""
    try:
        return bytes.fromhex(hex_text).decode("utf-16-be")
    except (ValueError, UnicodeDecodeError) as err:
        raise PduError(f"not UCS2 hex: {hex_text[:20]!r}") from err


# --- addresses and timestamps ---------------------------------------------------------


def _encode_address(number):
    """TP-DA/TP-OA: digit count, type of number, swapped BCD digits."""
    digits = number[1:] if number.startswith("+") else number
    if not digits.isdigit() or not 1 <= len(digits) <= 20:
        raise PduError(f"not a phone number: {number!r}")
    padded = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    return f"{len(digits):02X}{0x91 if number.startswith('+') else 0x81:02X}{swapped}"


def _decode_address(data, offset):
    """(address, next offset) from TP-OA/TP-DA at ``offset``; alphanumeric senders too."""
    length, ton = data[offset], data[offset + 1]
    octets = (length + 1) // 2
    raw = data[offset + 2:offset + 2 + octets]
    if len(raw) < octets:
        raise PduError("address runs past the end of the PDU")
    if (ton >> 4) & 0x07 == 5:  # alphanumeric, GSM 7-bit packed
        return gsm7_decode(unpack_septets(raw, length * 4 // 7)), offset + 2 + octets
    digits = "".join(f"{byte & 0x0F:X}{byte >> 4:X}" for byte in raw)[:length]
    return ("+" if (ton >> 4) & 0x07 == 1 else "") + digits, offset + 2 + octets


def _decode_timestamp(raw):
    """TP-SCTS: seven swapped semi-octet fields, the zone in quarter hours with a sign bit."""
    fields = [(byte & 0x0F) * 10 + (byte >> 4) for byte in raw[:6]]
    quarters = (raw[6] & 0x07) * 10 + (raw[6] >> 4)
    zone = datetime.timezone(datetime.timedelta(minutes=15 * (-quarters if raw[6] & 0x08 else quarters)))
    try:
        return datetime.datetime(2000 + fields[0], *fields[1:6], tzinfo=zone)
    except ValueError as err:
        raise PduError(f"bad timestamp: {err}") from err


def _encode_timestamp(moment):
    quarters = int(moment.utcoffset().total_seconds() // 900)
    values = [moment.year % 100, moment.month, moment.day, moment.hour, moment.minute, moment.second]
    octets = [((value % 10) << 4) | (value // 10) for value in values]
    zone = ((abs(quarters) % 10) << 4) | (abs(quarters) // 10) | (0x08 if quarters < 0 else 0)
    return bytes(octets + [zone]).hex().upper()


# --- splitting long messages -------------------------------------------------------------


def _parts(text):
    """(dcs, [part payloads as septets or UTF-16 units]) for ``text``."""
    septets = gsm7_encode(text)
    if septets is not None:
        if len(septets) <= SINGLE_GSM7:
            return DCS_GSM7, [septets]
        return DCS_GSM7, _split(septets, PART_GSM7, lambda chunk: chunk[-1] == ESC)
    units = [text.encode("utf-16-be")[i:i + 2] for i in range(0, len(text.encode("utf-16-be")), 2)]
    if len(units) <= SINGLE_UCS2:
        return DCS_UCS2, [units]
    return DCS_UCS2, _split(units, PART_UCS2, lambda chunk: 0xD8 <= chunk[-1][0] <= 0xDB)


def _split(items, size, splits_a_pair):
    """Cut ``items`` into chunks of at most ``size``, never leaving a pair's first half last."""
    chunks, start = [], 0
    while start < len(items):
        end = min(start + size, len(items))
        if end < len(items) and splits_a_pair(items[start:end]):
            end -= 1
        chunks.append(items[start:end])
        start = end
    return chunks


# --- SMS-SUBMIT (what the box sends) -------------------------------------------------------


def encode_submit(number, text, *, reference=0, max_parts=MAX_PARTS):
    """SMS-SUBMIT PDUs (hex, with the "00" SMSC prefix) and their AT+CMGS lengths."""
    address = _encode_address(number)
    dcs, parts = _parts(text)
    if len(parts) > max_parts:
        raise PduError(f"the message needs {len(parts)} parts; at most {max_parts} are sent")
    pdus = []
    for index, part in enumerate(parts, start=1):
        header = bytes([5, 0, 3, reference % 256, len(parts), index]) if len(parts) > 1 else b""
        first = 0x11 | (0x40 if header else 0)  # SMS-SUBMIT, relative validity, UDHI
        user_data_length, user_data = _user_data(dcs, part, header)
        tpdu = f"{first:02X}00{address}00{dcs:02X}AA{user_data_length:02X}{user_data}"
        pdus.append(("00" + tpdu, len(tpdu) // 2))
    return pdus


def _user_data(dcs, part, header):
    """(TP-UDL, TP-UD hex) for one part, with its user data header."""
    if dcs == DCS_GSM7:
        header_bits = len(header) * 8
        fill = (7 - header_bits % 7) % 7
        packed = pack_septets(part, fill)
        septets = (header_bits + fill) // 7 + len(part)
        return septets, (header + packed).hex().upper()
    payload = header + b"".join(part)
    return len(payload), payload.hex().upper()


def decode_submit(hex_pdu):
    """(number, text, concat) from an SMS-SUBMIT PDU with SMSC prefix (the network's view)."""
    data = _bytes(hex_pdu)
    try:
        offset = 1 + data[0]
        first = data[offset]
        if first & 0x03 != 0x01:
            raise PduError("not an SMS-SUBMIT")
        number, offset = _decode_address(data, offset + 2)
        dcs = data[offset + 1]
        validity = {0: 0, 2: 1, 1: 7, 3: 7}[(first >> 3) & 0x03]
        text, concat = _decode_user_data(data, offset + 2 + validity, dcs, bool(first & 0x40))
    except IndexError as err:
        raise PduError("the PDU ends too early") from err
    return number, text, concat


# --- SMS-DELIVER (what the box receives) ---------------------------------------------------


def decode_deliver(hex_pdu):
    """Sender, timestamp, text and concatenation (reference, total, index) of an SMS-DELIVER."""
    data = _bytes(hex_pdu)
    try:
        offset = 1 + data[0]
        first = data[offset]
        if first & 0x03 != 0x00:
            raise PduError("not an SMS-DELIVER")
        sender, offset = _decode_address(data, offset + 1)
        dcs = data[offset + 1]
        timestamp = _decode_timestamp(data[offset + 2:offset + 9])
        text, concat = _decode_user_data(data, offset + 9, dcs, bool(first & 0x40))
    except IndexError as err:
        raise PduError("the PDU ends too early") from err
    return {"sender": sender, "timestamp": timestamp, "text": text, "concat": concat}


def encode_deliver(sender, text, *, reference=0, moment=None):
    """SMS-DELIVER PDUs (hex, with an SMSC) for ``text`` from ``sender`` (the network side)."""
    moment = moment or datetime.datetime.now().astimezone()
    smsc = _encode_address(SMSC_FOR_DELIVER)[2:]
    dcs, parts = _parts(text)
    pdus = []
    for index, part in enumerate(parts, start=1):
        header = bytes([5, 0, 3, reference % 256, len(parts), index]) if len(parts) > 1 else b""
        first = 0x04 | (0x40 if header else 0)  # SMS-DELIVER, no more messages, UDHI
        user_data_length, user_data = _user_data(dcs, part, header)
        pdus.append(f"{len(smsc) // 2:02X}{smsc}{first:02X}{_encode_address(sender)}00{dcs:02X}"
                    f"{_encode_timestamp(moment)}{user_data_length:02X}{user_data}")
    return pdus


def _decode_user_data(data, offset, dcs, has_header):
    """(text, concat) from TP-UDL at ``offset``."""
    length = data[offset]
    body = data[offset + 1:]
    header = body[1:1 + body[0]] if has_header and body else b""
    concat = _concat(header)
    alphabet = _alphabet(dcs)
    if alphabet == DCS_GSM7:
        header_septets = ((len(header) + 1) * 8 + 6) // 7 if has_header else 0
        septets = unpack_septets(body, length)
        return gsm7_decode(septets[header_septets:]), concat
    start = 1 + len(header) if has_header else 0
    payload = body[start:length]
    if alphabet == DCS_UCS2:
        return payload.decode("utf-16-be", errors="replace"), concat
    return payload.decode("latin-1"), concat


def _alphabet(dcs):
    """The alphabet an SMS data coding scheme names (TS 23.038 clause 4)."""
    if dcs & 0xC0 == 0x00:
        return dcs & 0x0C
    if dcs & 0xF0 == 0xE0:
        return DCS_UCS2
    if dcs & 0xF0 == 0xF0:
        return DCS_8BIT if dcs & 0x04 else DCS_GSM7
    return DCS_GSM7


def _concat(header):
    """(reference, total, index) from the concatenation element of a UDH, or None."""
    offset = 0
    while offset + 1 < len(header):
        element, size = header[offset], header[offset + 1]
        value = header[offset + 2:offset + 2 + size]
        if element == 0x00 and size == 3:
            return value[0], value[1], value[2]
        if element == 0x08 and size == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        offset += 2 + size
    return None


def _bytes(hex_pdu):
    try:
        data = bytes.fromhex(hex_pdu.strip())
    except ValueError as err:
        raise PduError(f"not hex: {hex_pdu[:20]!r}") from err
    if len(data) < 2:
        raise PduError("the PDU is empty")
    return data


class Reassembler:
    """Joins the parts of concatenated messages that arrive one by one, in any order."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._partial = {}  # (sender, reference, total) -> (first seen, {index: text})

    def add(self, message):
        """The whole text once every part of ``message``'s set arrived, else None."""
        if message["concat"] is None:
            return message["text"]
        reference, total, index = message["concat"]
        key = (message["sender"], reference, total)
        seen, parts = self._partial.setdefault(key, (self._clock(), {}))
        parts[index] = message["text"]
        if len(parts) < total:
            return None
        del self._partial[key]
        return "".join(parts[i] for i in sorted(parts))

    def pending(self):
        """How many messages wait for parts."""
        return len(self._partial)

    def drop_older_than(self, seconds):
        """Forget messages whose first part came more than ``seconds`` ago; return how many."""
        cutoff = self._clock() - seconds
        stale = [key for key, (seen, _) in self._partial.items() if seen < cutoff]
        for key in stale:
            del self._partial[key]
        return len(stale)


# --- USSD --------------------------------------------------------------------------------


def decode_ussd(payload, dcs, packed=None):
    """The text of a +CUSD reply: plain, GSM7-packed hex (``packed``; None guesses) or UCS2 hex."""
    payload = payload.strip().strip('"')
    alphabet = _cbs_alphabet(dcs)
    if alphabet == DCS_UCS2 or looks_ucs2_hex(payload):
        # The DCS can lie: a Quectel M35 sends UCS2 hex with DCS 15 (gammu issue 358, its
        # test dump Uissue358-Quectel_M35.dump), a Huawei E1550 in AT+CSCS="UCS2" mode
        # always says 15 (gmodem's gmodem_device.c); like gammu, the content decides.
        try:
            return ucs2_hex_decode(payload)
        except PduError:
            return payload
    if packed is False or not _looks_hex(payload):
        return payload
    data = bytes.fromhex(payload)
    septets = unpack_septets(data, len(data) * 8 // 7)
    if len(data) * 8 % 7 == 0 and septets and septets[-1] in (0x00, 0x0D):
        septets = septets[:-1]  # 7 spare bits were padding (TS 23.038 6.1.2.3.1)
    text = gsm7_decode(septets)
    return text if packed or text.isprintable() else payload


def encode_ussd_request(code, packed=False):
    """A USSD code for AT+CUSD: as is, or GSM7-packed hex (Huawei dongles want that)."""
    if not packed:
        return code
    septets = gsm7_encode(code)
    if septets is None:
        raise PduError(f"USSD code {code!r} is not GSM 7-bit")
    return pack_septets(septets).hex().upper()


def _cbs_alphabet(dcs):
    """The alphabet of a cell-broadcast/USSD data coding scheme (TS 23.038 clause 5)."""
    group = dcs >> 4
    if dcs == 0x11:
        return DCS_UCS2
    if group in (0x4, 0x5, 0x6, 0x7, 0x9):
        return dcs & 0x0C
    if group == 0xF:
        return DCS_8BIT if dcs & 0x04 else DCS_GSM7
    return DCS_GSM7


def looks_ucs2_hex(text):
    """Whether ``text`` is UCS2 hex of plausible text whatever the DCS says.

    Hex of a length that is a multiple of 4 (two units at least) whose 16-bit units are
    printable and sit in one alphabet's page (Latin, plus at most one of Latin Extended,
    Greek, Cyrillic, Hebrew, Arabic, Thai; general punctuation too): GSM 7-bit packed hex
    and plain digits almost never pass, since their "units" scatter over many pages.
    """
    if len(text) < 8 or len(text) % 4 or not _looks_hex(text):
        return False
    units = [int(text[i:i + 4], 16) for i in range(0, len(text), 4)]
    pages = {unit >> 8 for unit in units}
    if not pages <= UCS2_TEXT_PAGES or len(pages - {0x00, 0x20}) > 1:
        return False
    decoded = "".join(chr(unit) for unit in units)
    return decoded.replace("\n", "").replace("\r", "").isprintable()


def _looks_hex(text):
    return len(text) >= 2 and len(text) % 2 == 0 and all(c in "0123456789ABCDEFabcdef" for c in text)
