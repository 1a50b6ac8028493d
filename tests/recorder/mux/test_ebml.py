"""EBML encoding against the examples and rules of RFC 8794 (§4 VINTs, §5 Element IDs, §6 data sizes,
§7 element types)."""

from __future__ import annotations

import struct

import pytest

from recorder.mux import ebml

# RFC 8794 §4.4, Table 4: the integer 2 rendered at VINT lengths 1 to 4 (all of them valid sizes).
RFC_TABLE_4 = [
    (1, bytes([0b1000_0010])),
    (2, bytes([0b0100_0000, 0b0000_0010])),
    (3, bytes([0b0010_0000, 0, 0b0000_0010])),
    (4, bytes([0b0001_0000, 0, 0, 0b0000_0010])),
]


@pytest.mark.parametrize(("length", "encoded"), RFC_TABLE_4)
def test_rfc_8794_table_4_the_same_value_at_every_length(length: int, encoded: bytes) -> None:
    assert ebml.encode_size(2, length) == encoded


# Shortest data sizes at the edges of each length. An all-ones VINT_DATA means "unknown size" (§6.2,
# Table 6), so the largest size an L-octet VINT holds is 2^(7L) - 2 (Table 7) and 2^(7L) - 1 needs the
# next length.
SIZES = [
    (0, "80"),
    (1, "81"),
    (126, "fe"),
    (127, "407f"),  # 0xff would be the 1-octet unknown size
    (128, "4080"),
    (0x3FFE, "7ffe"),
    (0x3FFF, "203fff"),
    (0x1FFFFE, "3ffffe"),
    (0x1FFFFF, "101fffff"),
    (0x0FFFFFFE, "1ffffffe"),
    (0x0FFFFFFF, "080fffffff"),
    ((1 << 35) - 2, "0ffffffffe"),
    ((1 << 35) - 1, "0407ffffffff"),
    ((1 << 56) - 2, "01fffffffffffffe"),
]


@pytest.mark.parametrize(("size", "hex_octets"), SIZES)
def test_data_sizes_use_the_shortest_vint_that_is_not_all_ones(size: int, hex_octets: str) -> None:
    assert ebml.encode_size(size).hex() == hex_octets
    assert ebml.size_length(size) == len(hex_octets) // 2


def test_unknown_size_is_eight_octets_of_all_ones_data() -> None:
    assert bytes.fromhex("01ffffffffffffff") == ebml.UNKNOWN_SIZE


@pytest.mark.parametrize(("size", "length"), [(-1, 0), ((1 << 56) - 1, 0), (127, 1), (0x3FFF, 2), (1, 9)])
def test_sizes_that_cannot_be_encoded_are_refused(size: int, length: int) -> None:
    with pytest.raises(ValueError):
        ebml.encode_size(size, length)


# RFC 8794 §5, Table 8: valid and invalid Element IDs; then IDs from Matroska (RFC 9559 §5.1).
VALID_IDS = [
    (0x81, "81"),
    (0xBF, "bf"),
    (0x407F, "407f"),  # 0x7f would not fit one octet: 0xff is all ones
    (0xA3, "a3"),  # SimpleBlock
    (0x4286, "4286"),  # EBMLVersion
    (0x2AD7B1, "2ad7b1"),  # TimestampScale
    (0x1A45DFA3, "1a45dfa3"),  # EBML
    (0x18538067, "18538067"),  # Segment
    (0x1F43B675, "1f43b675"),  # Cluster
]
INVALID_IDS = [
    0x80,  # VINT_DATA all zeros
    0x4000,  # VINT_DATA all zeros
    0xFF,  # VINT_DATA all ones
    0x4001,  # a shorter encoding exists (0x81)
    0x403F,  # a shorter encoding exists (0xbf)
    0x7F,  # no VINT_MARKER in its only octet
    0x1A45,  # first octet 0x1a says four octets, not two
    0x0100000001,  # longer than EBMLMaxIDLength 4
    0,
]


@pytest.mark.parametrize(("element_id", "hex_octets"), VALID_IDS)
def test_valid_element_ids(element_id: int, hex_octets: str) -> None:
    assert ebml.encode_id(element_id).hex() == hex_octets


@pytest.mark.parametrize("element_id", INVALID_IDS)
def test_invalid_element_ids_are_refused(element_id: int) -> None:
    with pytest.raises(ValueError):
        ebml.encode_id(element_id)


def test_element_types() -> None:
    # Unsigned integers in the fewest octets, at least one (§7.2).
    assert ebml.uint(0xD7, 0).hex() == "d78100"
    assert ebml.uint(0xD7, 1).hex() == "d78101"
    assert ebml.uint(0x2AD7B1, 1_000_000).hex() == "2ad7b183" + "0f4240"
    assert ebml.uint(0xE7, 0x1_0000).hex() == "e783010000"
    # Floats as 8-octet doubles (§7.3).
    assert ebml.float64(0xB5, 48000.0) == b"\xb5\x88" + struct.pack(">d", 48000.0)
    # Strings (§7.4) and UTF-8 (§7.5).
    assert ebml.string(0x4282, "webm") == b"\x42\x82\x84webm"
    assert ebml.utf8(0x4D80, "é") == b"\x4d\x80\x82" + "é".encode()
    with pytest.raises(ValueError):
        ebml.string(0x4282, "wébm")
    with pytest.raises(ValueError):
        ebml.uint(0xD7, -1)
    # A master element holds its children; its size is theirs summed.
    child = ebml.uint(0xD7, 1)
    assert ebml.master(0xAE, child, child) == b"\xae\x86" + child + child
    big = ebml.element(0xA3, b"x" * 200)
    assert big[:3] == b"\xa3\x40\xc8" and len(big) == 203
