"""Read the streams an SDP description (RFC 8866) announces into StreamSpecs.

This is the SDP that `ffmpeg -f rtp`, GStreamer or a mediasoup PlainTransport recipe hands a
recorder: one m= line per RTP stream, the payload type's codec in a=rtpmap, optional a=rtcp,
a=rtcp-mux, a=ssrc, a=mid and H.264 sprop-parameter-sets. Errors name the line and the problem.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field

from recorder.errors import SdpError, UnsupportedCodecError
from recorder.models import Codec, StreamSpec
from recorder.names import SAFE_MID

SUPPORTED = ", ".join(c.value if c is not Codec.OPUS else "opus" for c in Codec)
# Payload formats that ride along with a codec and are not streams of their own.
COMPANIONS = {"RTX", "RED", "ULPFEC", "FLEXFEC", "TELEPHONE-EVENT", "CN"}


@dataclass
class _Media:
    line: int
    index: int
    kind: str
    port: int
    formats: list[int]
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    rtcp_port: int | None = None
    rtcp_mux: bool = False
    ssrc: int | None = None
    mid: str | None = None
    address: str | None = None


def parse_sdp(text: str) -> list[StreamSpec]:
    """The recordable streams of an SDP description. Raises SdpError / UnsupportedCodecError."""
    session_address: str | None = None
    media: list[_Media] = []
    saw_version = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"SDP line {number}: expected '<type>=<value>', got {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "v":
            saw_version = True
        elif kind == "m":
            media.append(_parse_m_line(number, len(media), value))
        elif kind == "c":
            address = _parse_c_line(number, value)
            if media:
                media[-1].address = address
            else:
                session_address = address
        elif kind == "a" and media:
            _parse_attribute(number, value, media[-1])
    if not saw_version:
        raise SdpError("not an SDP description: no 'v=' line")
    if not media:
        raise SdpError("SDP describes no media: no 'm=' line")
    specs = [_to_spec(m, session_address) for m in media if m.port != 0 and m.kind in ("audio", "video")]
    if not specs:
        raise SdpError("SDP has no active audio or video stream")
    return specs


def _parse_m_line(number: int, index: int, value: str) -> _Media:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"SDP line {number}: m= line needs '<media> <port> <proto> <fmt> ...'")
    kind, port_text, proto = parts[0], parts[1].split("/")[0], parts[2]
    if "RTP/" not in proto:
        raise SdpError(f"SDP line {number}: transport {proto!r} is not RTP")
    try:
        port = int(port_text)
        formats = [int(f) for f in parts[3:]]
    except ValueError:
        raise SdpError(f"SDP line {number}: port and payload types must be numbers") from None
    if not 0 <= port <= 65535 or any(not 0 <= f <= 127 for f in formats):
        raise SdpError(f"SDP line {number}: port or payload type out of range")
    return _Media(number, index, kind, port, formats)


def _parse_c_line(number: int, value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"SDP line {number}: c= line must be 'IN IP4|IP6 <address>'")
    return parts[2].split("/")[0]


def _parse_attribute(number: int, value: str, m: _Media) -> None:
    name, _, rest = value.partition(":")
    try:
        if name == "rtpmap":
            pt_text, _, encoding = rest.partition(" ")
            enc = encoding.strip().split("/")
            channels = int(enc[2]) if len(enc) > 2 else 1
            m.rtpmap[int(pt_text)] = (enc[0], int(enc[1]), channels)
        elif name == "fmtp":
            pt_text, _, params = rest.partition(" ")
            m.fmtp[int(pt_text)] = params
        elif name == "rtcp":
            m.rtcp_port = int(rest.split()[0])
        elif name == "rtcp-mux":
            m.rtcp_mux = True
        elif name == "ssrc" and m.ssrc is None:
            m.ssrc = int(rest.split()[0])
        elif name == "mid":
            m.mid = rest.strip()
    except (ValueError, IndexError):
        raise SdpError(f"SDP line {number}: malformed a={name} attribute: {value[:60]!r}") from None


def _to_spec(m: _Media, session_address: str | None) -> StreamSpec:
    if m.mid is not None and SAFE_MID.fullmatch(m.mid) is None:
        raise SdpError(
            f"SDP line {m.line}: the section's a=mid {m.mid[:40]!r} must be 1-32 letters, digits, '_' or '-'"
        )
    chosen: tuple[int, Codec, int, int] | None = None
    unsupported: list[str] = []
    for pt in m.formats:
        if pt not in m.rtpmap:
            unsupported.append(f"static payload type {pt}" if pt < 96 else f"payload type {pt} (no a=rtpmap)")
            continue
        encoding, clock, channels = m.rtpmap[pt]
        upper = encoding.upper()
        if upper in COMPANIONS:
            continue
        try:
            codec = Codec(upper)
        except ValueError:
            unsupported.append(f"{encoding}/{clock}")
            continue
        chosen = (pt, codec, clock, channels)
        break
    if chosen is None:
        found = ", ".join(unsupported) or "no codec"
        raise UnsupportedCodecError(
            f"SDP line {m.line}: unsupported codec for {m.kind} stream: {found} (supported: {SUPPORTED})"
        )
    pt, codec, clock, channels = chosen
    if codec is Codec.OPUS and channels not in (1, 2):
        raise UnsupportedCodecError(
            f"SDP line {m.line}: opus with {channels} channels is not supported (1 or 2; RFC 7587 uses /2)"
        )
    if codec.kind.value != m.kind:
        raise UnsupportedCodecError(f"SDP line {m.line}: {codec.value} announced in an m={m.kind} line")
    address = m.address or session_address or "0.0.0.0"
    return StreamSpec(
        name=f"{m.kind}-{m.mid if m.mid is not None else m.index}",
        codec=codec,
        payload_type=pt,
        clock_rate=clock,
        channels=channels,
        port=m.port,
        rtcp_port=m.port if m.rtcp_mux else (m.rtcp_port if m.rtcp_port is not None else m.port + 1),
        ssrc=m.ssrc,
        address=_bind_address(address),
        sprop_parameter_sets=_sprop(m, pt) if codec is Codec.H264 else (),
    )


def _bind_address(address: str) -> str:
    """Bind where the sender sends when that is this host's loopback; otherwise every interface."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "0.0.0.0"
    if ip.is_loopback:
        return str(ip)
    return "::" if ip.version == 6 else "0.0.0.0"


def _sprop(m: _Media, pt: int) -> tuple[bytes, ...]:
    for param in m.fmtp.get(pt, "").split(";"):
        key, _, value = param.strip().partition("=")
        if key == "sprop-parameter-sets" and value:
            try:
                return tuple(base64.b64decode(v, validate=True) for v in value.split(",") if v)
            except (binascii.Error, ValueError):
                raise SdpError(f"SDP line {m.line}: sprop-parameter-sets is not valid base64") from None
    return ()
