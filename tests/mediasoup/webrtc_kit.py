"""WebRTC publishers (aiortc, headless Chromium) into a real mediasoup WebRtcTransport, with no
mediasoup-client: the browser's SDP offer is turned into what a mediasoup application gets from
mediasoup-client (each m-section's Producer ``rtpParameters``, the transport's DTLS parameters) and the
transport's ICE/DTLS parameters into the SDP answer (ICE-lite, ``a=setup:passive``: the publisher is the
DTLS client, mediasoup the server; one BUNDLE port).

Pure text work: ``parse_offer(sdp)`` -> ``Offer``; ``answer(offer, transport)`` -> SDP text;
``producer_parameters(section)`` -> the dict ``transport.produce({rtpParameters})`` takes.
Simulcast offers (``a=rid:... send`` + ``a=simulcast:send``) give one encoding per rid, ordered from the
smallest picture to the largest (mediasoup's spatial layer = encoding index), with the mid/rid header
extensions mediasoup needs to tell them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
RRID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
KNOWN_EXTENSIONS = {MID, RID, RRID, ABS_SEND_TIME, TRANSPORT_CC}
FEEDBACK = {("nack", ""), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", ""), ("transport-cc", "")}
WANTED = {"audio": "opus", "video": "vp8"}


@dataclass
class Codec:
    pt: int
    name: str
    clock: int
    channels: int | None = None
    fmtp: dict[str, str] = field(default_factory=dict)
    feedback: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Section:
    """One m-section of the offer: the codec chosen (and its RTX), extensions, SSRCs or rids."""

    kind: str
    mid: str
    codec: Codec
    rtx: Codec | None
    extensions: dict[str, int]
    ssrcs: list[int]
    fid: tuple[int, int] | None
    rids: list[str]
    cname: str
    raw: list[str]


@dataclass
class Offer:
    fingerprint: tuple[str, str]
    sections: list[Section]


def _attr(lines: list[str], name: str) -> list[str]:
    prefix = f"a={name}:"
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def _codecs(lines: list[str]) -> dict[int, Codec]:
    codecs: dict[int, Codec] = {}
    for value in _attr(lines, "rtpmap"):
        pt, spec = value.split(" ", 1)
        parts = spec.split("/")
        channels = int(parts[2]) if len(parts) > 2 else None
        codecs[int(pt)] = Codec(int(pt), parts[0].lower(), int(parts[1]), channels)
    for value in _attr(lines, "fmtp"):
        pt, params = value.split(" ", 1)
        if int(pt) in codecs:
            codecs[int(pt)].fmtp = dict(p.strip().split("=", 1) for p in params.split(";") if "=" in p)
    for value in _attr(lines, "rtcp-fb"):
        pt, fb = value.split(" ", 1)
        kind, _, param = fb.partition(" ")
        if pt != "*" and int(pt) in codecs and (kind, param) in FEEDBACK:
            codecs[int(pt)].feedback.append((kind, param))
    return codecs


def parse_offer(sdp: str) -> Offer:
    """The offer's fingerprint and, per m-section, what a mediasoup Producer needs."""
    blocks = re.split(r"\r?\n(?=m=)", sdp.strip())
    session = blocks[0].splitlines()
    sections: list[Section] = []
    fingerprints: dict[str, str] = {}
    for found in _attr(session, "fingerprint"):
        algo, value = found.split(" ", 1)
        fingerprints.setdefault(algo.lower(), value)
    for block in blocks[1:]:
        lines = block.splitlines()
        kind = lines[0][2:].split(" ", 1)[0]
        for found in _attr(lines, "fingerprint"):
            algo, value = found.split(" ", 1)
            fingerprints.setdefault(algo.lower(), value)
        codecs = _codecs(lines)
        chosen = next(c for c in codecs.values() if c.name == WANTED[kind])
        rtx = next(
            (c for c in codecs.values() if c.name == "rtx" and c.fmtp.get("apt") == str(chosen.pt)), None
        )
        extensions = {}
        for value in _attr(lines, "extmap"):
            ident, uri = value.split(" ", 1)
            uri = uri.split(" ", 1)[0]
            if uri in KNOWN_EXTENSIONS:
                extensions[uri] = int(ident.split("/", 1)[0])
        ssrcs: list[int] = []
        cname = "callvault-test"
        for value in _attr(lines, "ssrc"):
            ssrc, attr = value.split(" ", 1)
            if int(ssrc) not in ssrcs:
                ssrcs.append(int(ssrc))
            if attr.startswith("cname:"):
                cname = attr[len("cname:") :]
        fid = None
        for value in _attr(lines, "ssrc-group"):
            semantics, *members = value.split()
            if semantics == "FID" and len(members) == 2:
                fid = (int(members[0]), int(members[1]))
        rids = [value.split(" ", 1)[0] for value in _attr(lines, "rid") if " send" in value]
        mid = _attr(lines, "mid")[0]
        sections.append(Section(kind, mid, chosen, rtx, extensions, ssrcs, fid, rids, cname, lines))
    if not fingerprints:
        raise ValueError("the offer has no DTLS fingerprint")
    algorithm = "sha-256" if "sha-256" in fingerprints else next(iter(fingerprints))
    return Offer((algorithm, fingerprints[algorithm]), sections)


def dtls_parameters(offer: Offer) -> dict[str, Any]:
    """What ``webRtcTransport.connect({dtlsParameters})`` takes: the publisher is the DTLS client."""
    algorithm, value = offer.fingerprint
    return {"role": "client", "fingerprints": [{"algorithm": algorithm, "value": value}]}


def _codec_parameters(codec: Codec) -> dict[str, Any]:
    return {k: int(v) if v.isdigit() else v for k, v in codec.fmtp.items()}


def producer_parameters(section: Section, scales: dict[str, float] | None = None) -> dict[str, Any]:
    """The Producer's ``rtpParameters`` for one m-section. ``scales``: rid -> scaleResolutionDownBy, to
    order simulcast encodings from the smallest picture up (default: the offer's order reversed, as
    browsers list them h, m, l)."""
    codec = section.codec
    codecs: list[dict[str, Any]] = [
        {
            "mimeType": f"{section.kind}/{codec.name}",
            "payloadType": codec.pt,
            "clockRate": codec.clock,
            **({"channels": codec.channels} if codec.channels else {}),
            "parameters": _codec_parameters(codec),
            "rtcpFeedback": [{"type": t, "parameter": p} for t, p in codec.feedback],
        }
    ]
    if section.rtx is not None:
        codecs.append(
            {
                "mimeType": f"{section.kind}/rtx",
                "payloadType": section.rtx.pt,
                "clockRate": section.rtx.clock,
                "parameters": {"apt": codec.pt},
                "rtcpFeedback": [],
            }
        )
    encodings: list[dict[str, Any]]
    if section.rids:
        order = sorted(section.rids, key=lambda r: -scales[r]) if scales else list(reversed(section.rids))
        encodings = [{"rid": rid, "dtx": False} for rid in order]
    elif section.fid is not None and section.rtx is not None:
        encodings = [{"ssrc": section.fid[0], "rtx": {"ssrc": section.fid[1]}}]
    else:
        encodings = [{"ssrc": section.ssrcs[0]}]
    return {
        "mid": section.mid,
        "codecs": codecs,
        "headerExtensions": [{"uri": uri, "id": ident} for uri, ident in section.extensions.items()],
        "encodings": encodings,
        "rtcp": {"cname": section.cname, "reducedSize": True},
    }


def answer(offer: Offer, transport: dict[str, Any], start_kbps: int | None = None) -> str:
    """The SDP answer of mediasoup's WebRtcTransport (``transport``: its id, iceParameters,
    iceCandidates, dtlsParameters as the harness returns them) accepting each section's chosen codec.
    ``start_kbps``: ``x-google-start-bitrate`` on the video codec, so a browser sends every simulcast
    layer from the start instead of after its bandwidth estimate ramped up."""
    ice = transport["iceParameters"]
    candidates = transport["iceCandidates"]
    address = candidates[0]["ip"]
    port = candidates[0]["port"]
    fingerprints = transport["dtlsParameters"]["fingerprints"]
    fp = next(f for f in fingerprints if f["algorithm"] == "sha-256")
    mids = " ".join(s.mid for s in offer.sections)
    out = [
        "v=0",
        "o=mediasoup 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        f"a=group:BUNDLE {mids}",
        "a=msid-semantic: WMS *",
        f"a=fingerprint:{fp['algorithm']} {fp['value']}",
    ]
    for section in offer.sections:
        codecs = [section.codec, *([section.rtx] if section.rtx else [])]
        out += [
            f"m={section.kind} {port} UDP/TLS/RTP/SAVPF {' '.join(str(c.pt) for c in codecs)}",
            f"c=IN IP4 {address}",
            "a=rtcp:9 IN IP4 0.0.0.0",
            f"a=mid:{section.mid}",
            "a=recvonly",
            "a=rtcp-mux",
            "a=rtcp-rsize",
            f"a=ice-ufrag:{ice['usernameFragment']}",
            f"a=ice-pwd:{ice['password']}",
            "a=setup:passive",
        ]
        for uri, ident in section.extensions.items():
            out.append(f"a=extmap:{ident} {uri}")
        for codec in codecs:
            channels = f"/{codec.channels}" if codec.channels else ""
            out.append(
                f"a=rtpmap:{codec.pt} {codec.name if codec.name != 'vp8' else 'VP8'}/{codec.clock}{channels}"
            )
            fmtp = dict(codec.fmtp)
            if start_kbps and section.kind == "video" and codec is section.codec:
                fmtp["x-google-start-bitrate"] = str(start_kbps)
            if fmtp:
                out.append(f"a=fmtp:{codec.pt} " + ";".join(f"{k}={v}" for k, v in fmtp.items()))
            for kind, param in codec.feedback:
                out.append(f"a=rtcp-fb:{codec.pt} {kind}{' ' + param if param else ''}")
        if section.rids:
            out += [f"a=rid:{rid} recv" for rid in section.rids]
            out.append(f"a=simulcast:recv {';'.join(section.rids)}")
        for c in candidates:
            out.append(
                f"a=candidate:{c['foundation']} 1 {c['protocol']} {c['priority']} {c['ip']} {c['port']} "
                f"typ {c['type']}"
            )
        out.append("a=end-of-candidates")
    return "\r\n".join(out) + "\r\n"
