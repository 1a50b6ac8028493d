"""EBML encoding (RFC 8794): element IDs, data sizes and the element types a Matroska writer needs.

Pure functions over bytes, no I/O. Only encoding: reading is left to FFmpeg (and to the tests).

- A variable-size integer (VINT, §4) is VINT_WIDTH zero bits, a VINT_MARKER one bit, then VINT_DATA;
  an L-octet VINT holds 7*L data bits.
- Element IDs (§5) are VINTs written with their marker, so an ID is given here as the number its
  octets spell (EBML's header ID is 0x1A45DFA3). Its VINT_DATA is never all zeros nor all ones, and it
  uses the shortest VINT that can hold it.
- Element data sizes (§6) are VINTs without the marker. A VINT_DATA of all ones means "unknown size"
  (§6.2), so the largest known size an L-octet VINT holds is 2^(7*L) - 2.
"""

from __future__ import annotations

import struct

MAX_VINT_LENGTH = 8
MAX_SIZE = (1 << 56) - 2
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
"""The 8-octet 'unknown' data size (§6.2): a master element whose end is not known when written."""

_DOUBLE = struct.Struct(">d")


def encode_size(size: int, length: int = 0) -> bytes:
    """The data size `size` as a VINT of `length` octets, or of the fewest octets when 0."""
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"EBML data size {size} is out of range 0..2^56-2")
    if length == 0:
        length = size_length(size)
    elif not 1 <= length <= MAX_VINT_LENGTH or size > (1 << (7 * length)) - 2:
        raise ValueError(f"EBML data size {size} does not fit a {length}-octet VINT")
    return ((1 << (7 * length)) | size).to_bytes(length, "big")


def size_length(size: int) -> int:
    """How many octets the shortest VINT of data size `size` takes (all-ones data is reserved)."""
    length = 1
    while size > (1 << (7 * length)) - 2:
        length += 1
    return length


def encode_id(element_id: int) -> bytes:
    """The octets of an element ID given with its marker (0x1A45DFA3 -> 1A 45 DF A3); raises for a
    number that is not a valid, shortest-form ID (§5)."""
    if element_id <= 0:
        raise ValueError(f"EBML element ID {element_id:#x} is not positive")
    length = (element_id.bit_length() + 7) // 8
    if length > 4:  # EBMLMaxIDLength is 4 in Matroska (RFC 9559 §4.2)
        raise ValueError(f"EBML element ID {element_id:#x} is longer than 4 octets")
    marker = 1 << (7 * length)
    if element_id >> (8 * length - length) != 1:
        raise ValueError(f"EBML element ID {element_id:#x} has no VINT_MARKER in its first octet")
    data = element_id ^ marker
    if data == 0 or data == marker - 1:
        raise ValueError(f"EBML element ID {element_id:#x} has VINT_DATA of all zeros or all ones")
    if length > 1 and data < (1 << (7 * (length - 1))) - 1:
        raise ValueError(f"EBML element ID {element_id:#x} is not in its shortest form")
    return element_id.to_bytes(length, "big")


def element(element_id: int, data: bytes) -> bytes:
    """One element: ID, data size, data."""
    return encode_id(element_id) + encode_size(len(data)) + data


def master(element_id: int, *children: bytes) -> bytes:
    """A master element of known size holding already encoded `children`."""
    return element(element_id, b"".join(children))


def uint(element_id: int, value: int) -> bytes:
    """An unsigned integer element (§7.2) in the fewest octets, at least one."""
    if value < 0:
        raise ValueError(f"EBML unsigned integer {value} is negative")
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def float64(element_id: int, value: float) -> bytes:
    """A float element (§7.3) as an 8-octet IEEE 754 double."""
    return element(element_id, _DOUBLE.pack(value))


def string(element_id: int, value: str) -> bytes:
    """A String element (§7.4): printable ASCII."""
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"EBML String {value!r} is not printable ASCII")
    return element(element_id, value.encode("ascii"))


def utf8(element_id: int, value: str) -> bytes:
    """A UTF-8 element (§7.5)."""
    return element(element_id, value.encode("utf-8"))
