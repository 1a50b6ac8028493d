"""The UDP edge of one recorded stream: RTP in, RTCP in (sender reports, the sender's address), PLI out.

`datagram_received` is the hot path: parse, filter by payload type and SSRC, hand to the pure
pipeline. Nothing else happens per packet; frames leave for the mux worker on the session's timer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import cast

from recorder.assembly.pipeline import StreamPipeline
from recorder.errors import MalformedPacketError
from recorder.models import StreamSpec
from recorder.rtp.packet import RtpPacket
from recorder.rtp.rtcp import SenderReport, build_pli, is_rtcp, parse_rtcp

log = logging.getLogger(__name__)

# A new SSRC replaces the locked one only after the old one has been silent this long (seconds).
SSRC_TAKEOVER_SILENCE = 0.5

Address = tuple[str, int]


class TrackReceiver(asyncio.DatagramProtocol):
    def __init__(self, spec: StreamSpec, pipeline: StreamPipeline) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.rtp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_remote: Address | None = None
        self.media_ssrc: int | None = spec.ssrc
        self.our_ssrc = random.getrandbits(32)
        self.foreign_packets = 0
        self.pli_sent = 0
        self._pt = spec.payload_type
        self._last_packet = 0.0
        self._rtcp_mux = spec.rtcp_port == spec.port

    # -- RTP socket --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.rtp_transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        now = time.time()
        if self._rtcp_mux and len(data) > 1 and 192 <= data[1] <= 223:
            self.rtcp_received(data, addr)
            return
        if self.pipeline.paused:
            self.pipeline.paused_packets += 1  # dropped unread: nothing of a pause reaches any file
            return
        try:
            packet = RtpPacket.parse(data)
        except MalformedPacketError:
            self.pipeline.malformed += 1
            return
        if packet.payload_type != self._pt:
            self.foreign_packets += 1
            return
        ssrc = packet.ssrc
        if ssrc != self.media_ssrc:
            if self.media_ssrc is not None and now - self._last_packet < SSRC_TAKEOVER_SILENCE:
                self.foreign_packets += 1
                return
            if self.media_ssrc is not None:
                log.info("track %s: sender changed SSRC %08x -> %08x", self.spec.name, self.media_ssrc, ssrc)
            self.media_ssrc = ssrc
            self.pipeline.summary.ssrc = ssrc
        self._last_packet = now
        if self._rtcp_mux and self.rtcp_remote is None:
            self.rtcp_remote = addr
        self.pipeline.push(packet, now)

    def error_received(self, exc: Exception) -> None:
        log.debug("track %s: socket error %s", self.spec.name, exc)

    # -- RTCP ---------------------------------------------------------------------------------------

    def rtcp_received(self, data: bytes, addr: Address) -> None:
        # Any packet on the RTCP port tells where the sender's RTCP lives (Janus latches this path by
        # sending empty RTP headers from its local_rtcp_port), so PLIs can go back to it.
        self.rtcp_remote = addr
        if not is_rtcp(data):
            return
        try:
            packets = parse_rtcp(data)
        except MalformedPacketError:
            self.pipeline.malformed += 1
            return
        for p in packets:
            if isinstance(p, SenderReport) and (self.media_ssrc is None or p.ssrc == self.media_ssrc):
                self.pipeline.sender_report(p.ntp_timestamp, p.rtp_timestamp)

    def request_keyframe(self) -> bool:
        """Send a PLI to the sender's RTCP address, if one is known."""
        transport = self.rtcp_transport or (self.rtp_transport if self._rtcp_mux else None)
        if transport is None or self.rtcp_remote is None or self.media_ssrc is None:
            return False
        transport.sendto(build_pli(self.our_ssrc, self.media_ssrc), self.rtcp_remote)
        self.pli_sent += 1
        return True

    def close(self) -> None:
        for t in (self.rtp_transport, self.rtcp_transport):
            if t is not None:
                t.close()


class RtcpReceiver(asyncio.DatagramProtocol):
    """The separate RTCP socket of a track (when RTCP is not multiplexed on the RTP port)."""

    def __init__(self, track: TrackReceiver) -> None:
        self.track = track

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.track.rtcp_transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.track.rtcp_received(data, addr)
