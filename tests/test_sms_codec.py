"""The SMS and USSD codec: GSM 7-bit, UCS2, PDUs and concatenation."""
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware import pdu

GSM7_TEXT = st.text(alphabet=pdu.GSM7_BASIC.replace("\x1b", "") + "€[]{}^\\|~", max_size=500)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


def deliver_round_trip(text):
    """Encode as the network would deliver it, then decode and reassemble as the box does."""
    parts = pdu.encode_deliver("+359888123456", text, reference=7)
    joiner = pdu.Reassembler()
    results = [joiner.add(pdu.decode_deliver(part)) for part in parts]
    return results[-1], len(parts)


def test_the_classic_hellohello_submit():
    # The "hellohello" SMS-SUBMIT from TS 23.040 tutorials (e.g. dreamfabric's "SMS and
    # the PDU format"): 7 septets-to-octets packing of "hellohello" is E8329BFD4697D9EC37.
    assert pdu.pack_septets(pdu.gsm7_encode("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    [(hex_pdu, length)] = pdu.encode_submit("+46708251358", "hellohello")
    assert hex_pdu.startswith("0011000B916407281553F80000AA0A")
    assert length == len(hex_pdu) // 2 - 1


def test_a_deliver_with_timestamp_and_zone():
    # The tutorial's SMS-DELIVER (SMSC +27381000015, sender 27838890001 with type 0xC8,
    # "hellohello"), its timestamp changed here to 99-03-03 14:03:12 +01:00 (zone 4 quarters).
    hex_pdu = "07917283010010F5040BC87238880900F10000993030413021400AE8329BFD4697D9EC37"
    message = pdu.decode_deliver(hex_pdu)
    assert message["text"] == "hellohello" and message["sender"] == "27838890001"
    assert message["timestamp"] == datetime.datetime(2099, 3, 3, 14, 3, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert message["concat"] is None


def test_extension_characters_take_two_septets():
    assert pdu.gsm7_encode("€") == [0x1B, 0x65]
    assert pdu.gsm7_decode(pdu.gsm7_encode("[x]{y}")) == "[x]{y}"
    assert pdu.gsm7_encode("Привет") is None


def test_cyrillic_in_three_parts_out_of_order():
    text = "Ж" * 140
    parts = pdu.encode_deliver("+359888123456", text, reference=9)
    assert len(parts) == 3
    joiner = pdu.Reassembler()
    decoded = [pdu.decode_deliver(part) for part in parts]
    assert joiner.add(decoded[2]) is None and joiner.add(decoded[0]) is None
    assert joiner.pending() == 1
    assert joiner.add(decoded[1]) == text and joiner.pending() == 0


def test_submit_splits_without_breaking_an_escape_or_a_surrogate_pair():
    escaped = "a" * 152 + "€" + "b" * 10
    parts = pdu.encode_submit("+359888123456", escaped)
    assert "".join(pdu.decode_submit(p)[1] for p, _ in parts) == escaped
    emoji = "x" * 66 + "😀" + "y" * 10
    assert "".join(pdu.decode_submit(p)[1] for p, _ in pdu.encode_submit("+359888123456", emoji)) == emoji


def test_too_long_and_bad_numbers_are_refused():
    with pytest.raises(pdu.PduError, match="parts"):
        pdu.encode_submit("+359888123456", "Ж" * 1000, max_parts=3)
    with pytest.raises(pdu.PduError, match="phone number"):
        pdu.encode_submit("call me", "hi")


@pytest.mark.parametrize("bad", ["zz", "00", "0004", "07917283010010F504"])
def test_malformed_pdus_raise_pdu_error(bad):
    with pytest.raises(pdu.PduError):
        pdu.decode_deliver(bad)


def test_alphanumeric_sender():
    septets = pdu.gsm7_encode("Vivacom")
    packed = pdu.pack_septets(septets).hex().upper()
    hex_pdu = f"0004{len(septets) * 7 // 4 + (1 if len(septets) * 7 % 4 else 0):02X}D0{packed}0000" \
              "6211302154000002C834"
    assert pdu.decode_deliver(hex_pdu)["sender"] == "Vivacom"


@pytest.mark.parametrize("payload, dcs, packed, text", [
    (pdu.ucs2_hex_encode("Баланс: 12.50 лв."), 72, False, "Баланс: 12.50 лв."),
    (pdu.ucs2_hex_encode("Баланс: 12.50 грн."), 72, True, "Баланс: 12.50 грн."),
    (pdu.pack_septets(pdu.gsm7_encode("Balance: 5.20 BGN")).hex().upper(), 15, True, "Balance: 5.20 BGN"),
    ("Balance: 5.20 BGN", 15, False, "Balance: 5.20 BGN"),
    ("not hex at all", 72, False, "not hex at all"),
])
def test_ussd_replies(payload, dcs, packed, text):
    assert pdu.decode_ussd(payload, dcs, packed=packed) == text


def test_ussd_request_packed_for_huawei():
    assert pdu.decode_ussd(pdu.encode_ussd_request("*100#", packed=True), 15, packed=True) == "*100#"
    assert pdu.encode_ussd_request("*100#") == "*100#"


@given(GSM7_TEXT)
def test_gsm7_text_survives_delivery(text):
    assert deliver_round_trip(text)[0] == text


@given(ANY_TEXT)
def test_any_text_survives_submit_and_delivery(text):
    parts = pdu.encode_submit("+359888123456", text, reference=3, max_parts=20)
    assert "".join(pdu.decode_submit(p)[1] for p, _ in parts) == text
    assert deliver_round_trip(text)[0] == text


@given(st.lists(st.integers(0, 127), max_size=200), st.integers(0, 6))
def test_septets_pack_and_unpack(septets, fill):
    assert pdu.unpack_septets(pdu.pack_septets(septets, fill), len(septets), fill) == septets


@given(st.binary(max_size=60))
def test_garbage_pdus_raise_only_pdu_error(data):
    for decode in (pdu.decode_deliver, pdu.decode_submit):
        try:
            decode(data.hex())
        except pdu.PduError:
            pass
