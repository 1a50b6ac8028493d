"""Read a mediasoup Consumer's `rtpParameters` into the stream description `record-rtp` gets from an SDP.

mediasoup has no SDP on a PlainTransport: what a Consumer sends is described by its `rtpParameters`
(mediasoup's `RtpParameters` type): the codecs with their payload types (the media codec first, then
companions such as RTX with `apt`), the encodings with their SSRCs (and the RTX SSRC), the header
extensions and RTCP settings. `describe` validates such a body (it comes from the network: every field
bounded, unknown fields refused) and returns a `ConsumerStream`; `to_stream_spec` turns that into the
same `StreamSpec` `recorder.sdp.parse_sdp` makes for an equivalent SDP. Pure: no I/O.

Simulcast and SVC consumers send one chosen layer on one SSRC (the first encoding's): that layer is what
is recorded. RTX (RFC 4588) is read and checked (its `apt` must name the media codec) and kept as the
retransmission payload type and SSRC; the recorder never asks for retransmissions (it sends no NACK), so
a mediasoup consumer sends none, and packets it repaired on the producer side arrive as the originals.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from recorder.errors import SdpError, UnsupportedCodecError
from recorder.models import Codec, MediaKind, StreamSpec

MIME_CODECS = {
    "video/vp8": Codec.VP8,
    "video/vp9": Codec.VP9,
    "video/h264": Codec.H264,
    "audio/opus": Codec.OPUS,
}
COMPANIONS = {"rtx", "red", "ulpfec", "flexfec", "flexfec-03", "telephone-event", "cn"}
"""Payload formats that ride along with a media codec and are not streams of their own."""
SUPPORTED = ", ".join(MIME_CODECS)

MimeType = Annotated[str, StringConstraints(pattern=r"^(audio|video)/[A-Za-z0-9._+-]{1,32}$")]
ParamValue = Annotated[str, StringConstraints(max_length=256)] | int | float
Uri = Annotated[str, StringConstraints(max_length=256)]
Token = Annotated[str, StringConstraints(max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Lenient(BaseModel):
    """mediasoup adds fields across 3.x versions (e.g. `dtx`, `maxBitrate`): ignored, but bounded above."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class RtcpFeedback(_Lenient):
    type: Token
    parameter: Token | None = None


class RtpCodecParameters(_Lenient):
    mimeType: MimeType  # mediasoup's field names, as they arrive
    payloadType: int = Field(ge=0, le=127)
    clockRate: int = Field(gt=0, le=1_000_000)
    channels: int | None = Field(default=None, ge=1, le=8)
    parameters: dict[Token, ParamValue] = Field(default_factory=dict, max_length=32)
    rtcpFeedback: list[RtcpFeedback] = Field(default_factory=list, max_length=32)


class RtxEncoding(_Lenient):
    ssrc: int = Field(ge=0, le=0xFFFFFFFF)


class RtpEncodingParameters(_Lenient):
    ssrc: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    rid: Token | None = None
    codecPayloadType: int | None = Field(default=None, ge=0, le=127)
    rtx: RtxEncoding | None = None
    scalabilityMode: Token | None = None


class RtpHeaderExtensionParameters(_Lenient):
    uri: Uri
    id: int = Field(ge=1, le=255)
    encrypt: bool = False


class RtcpParameters(_Lenient):
    cname: Token | None = None
    reducedSize: bool = True
    mux: bool | None = None


class RtpParameters(_Lenient):
    """A mediasoup Consumer's `rtpParameters`, bounded: at most 16 codecs, 8 encodings, 16 extensions."""

    mid: Token | None = None
    codecs: list[RtpCodecParameters] = Field(min_length=1, max_length=16)
    encodings: list[RtpEncodingParameters] = Field(min_length=1, max_length=8)
    headerExtensions: list[RtpHeaderExtensionParameters] = Field(default_factory=list, max_length=16)
    rtcp: RtcpParameters = Field(default_factory=RtcpParameters)

    @model_validator(mode="after")
    def _unique_payload_types(self) -> RtpParameters:
        pts = [c.payloadType for c in self.codecs]
        if len(set(pts)) != len(pts):
            raise ValueError("codecs: payload types must be unique")
        return self


class HeaderExtension(_Strict):
    id: int
    uri: str


class ConsumerStream(_Strict):
    """What one Consumer sends, as the recorder needs it: codec, payload type, clock rate, SSRC, RTX."""

    kind: MediaKind
    codec: Codec
    payload_type: int = Field(ge=0, le=127)
    clock_rate: int = Field(gt=0)
    channels: int = Field(default=1, ge=1, le=8)
    ssrc: int = Field(ge=0, le=0xFFFFFFFF)
    rtx_payload_type: int | None = Field(default=None, ge=0, le=127)
    rtx_ssrc: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    header_extensions: tuple[HeaderExtension, ...] = ()
    scalability_mode: str | None = None
    mid: str | None = None


def parse_rtp_parameters(data: object) -> RtpParameters:
    """Validate a decoded JSON body as RtpParameters; SdpError names the first problem."""
    try:
        return RtpParameters.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "rtpParameters"
        raise SdpError(f"rtpParameters.{where}: {first['msg']}") from None


def describe(params: RtpParameters, kind: MediaKind | None = None) -> ConsumerStream:
    """The recordable stream the parameters describe. Raises UnsupportedCodecError when the media codec
    cannot be stored without transcoding, SdpError when the parameters contradict themselves."""
    media = [c for c in params.codecs if _subtype(c) not in COMPANIONS]
    if not media:
        raise SdpError("rtpParameters.codecs: no media codec (only RTX/RED/FEC companions)")
    encoding = params.encodings[0]
    chosen = media[0]
    if encoding.codecPayloadType is not None:  # the encoding names its codec
        named = [c for c in media if c.payloadType == encoding.codecPayloadType]
        if not named:
            raise SdpError(
                f"rtpParameters.encodings.0.codecPayloadType {encoding.codecPayloadType} is no codec"
            )
        chosen = named[0]
    codec = MIME_CODECS.get(chosen.mimeType.lower())
    if codec is None:
        raise UnsupportedCodecError(
            f"rtpParameters: unsupported codec {chosen.mimeType}/{chosen.clockRate} (supported: {SUPPORTED})"
        )
    if kind is not None and codec.kind is not kind:
        raise SdpError(f"rtpParameters: a consumer of kind {kind.value} cannot send {chosen.mimeType}")
    if codec.kind is MediaKind.VIDEO and chosen.clockRate != 90000:
        raise UnsupportedCodecError(f"rtpParameters: {chosen.mimeType} with clock rate {chosen.clockRate}")
    channels = chosen.channels or 1
    if codec is Codec.OPUS and (chosen.clockRate != 48000 or channels not in (1, 2)):
        raise UnsupportedCodecError("rtpParameters: opus must be 48000 Hz with 1 or 2 channels (RFC 7587)")
    if encoding.ssrc is None:
        raise SdpError("rtpParameters.encodings.0.ssrc: a consumer's encoding must carry its SSRC")
    rtx_pt = _rtx_payload_type(params.codecs, chosen.payloadType)
    rtx_ssrc = encoding.rtx.ssrc if encoding.rtx is not None else None
    if rtx_ssrc is not None and rtx_pt is None:
        raise SdpError("rtpParameters: an RTX SSRC without an RTX codec for the media payload type")
    if rtx_ssrc is not None and rtx_ssrc == encoding.ssrc:
        raise SdpError("rtpParameters: the RTX SSRC equals the media SSRC")
    return ConsumerStream(
        kind=codec.kind,
        codec=codec,
        payload_type=chosen.payloadType,
        clock_rate=chosen.clockRate,
        channels=channels,
        ssrc=encoding.ssrc,
        rtx_payload_type=rtx_pt if rtx_ssrc is not None else None,
        rtx_ssrc=rtx_ssrc,
        header_extensions=tuple(HeaderExtension(id=h.id, uri=h.uri) for h in params.headerExtensions),
        scalability_mode=encoding.scalabilityMode,
        mid=params.mid,
    )


def to_stream_spec(
    stream: ConsumerStream, name: str, port: int, rtcp_port: int | None, address: str = "0.0.0.0"
) -> StreamSpec:
    """The `StreamSpec` `parse_sdp` would make for an SDP announcing the same stream on these ports."""
    return StreamSpec(
        name=name,
        codec=stream.codec,
        payload_type=stream.payload_type,
        clock_rate=stream.clock_rate,
        channels=stream.channels,
        port=port,
        rtcp_port=rtcp_port,
        ssrc=stream.ssrc,
        address=address,
    )


def _subtype(codec: RtpCodecParameters) -> str:
    return codec.mimeType.split("/", 1)[1].lower()


def _rtx_payload_type(codecs: list[RtpCodecParameters], media_pt: int) -> int | None:
    for c in codecs:
        if _subtype(c) == "rtx" and c.parameters.get("apt") == media_pt:
            return c.payloadType
    return None
