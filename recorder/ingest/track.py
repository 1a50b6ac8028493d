"""The UDP edge of one recorded stream: RTP in, RTCP in (sender reports, the sender's address), PLI out.

`datagram_received` is the hot path: parse, filter by payload type and SSRC, hand to the pure
pipeline. Nothing else happens per packet; frames leave for the mux worker on the session's timer. The
sockets are `udp.DatagramSocket`s: many datagrams per event-loop wakeup.

Only the SFU may send: the first valid packet from an allowed source (`sources`, networks; None: any)
locks the RTP socket to its sender and `connect()`s it, so the kernel drops every other sender's
datagrams before they cost any CPU. The RTCP socket locks the same way to the first packet from an
allowed source (Janus latches it from its `local_rtcp_port`) and, once the RTP sender is known, from
its host only, so nobody else can redirect keyframe requests. What was refused is counted
(`packets_foreign` in the summary).

With SRTP on the forward leg (`srtp`: the forwarder's key), every RTP datagram is decrypted here, before
anything reads it, so everything downstream sees plain RTP; one that fails authentication or the replay
check is dropped and counted (`packets_unauthenticated`, `packets_replayed`), and only an authenticated
packet can lock the track. RTCP stays plain, as Janus's forwarders send and read it.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Sequence
from typing import Protocol

from recorder.assembly.pipeline import MuxItem, StreamPipeline
from recorder.capture.writer import PacketCapture
from recorder.crypto.srtp import SrtpReceiver
from recorder.errors import MalformedPacketError
from recorder.models import MediaKind, StreamSpec
from recorder.rtp.packet import RtpPacket
from recorder.rtp.rtcp import SenderReport, build_pli, is_rtcp, parse_rtcp
from recorder.rtp.rtx import RtxRepair, build_nack

log = logging.getLogger(__name__)

# A new SSRC replaces the locked one only after the old one has been silent this long (seconds).
SSRC_TAKEOVER_SILENCE = 0.5

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed(host: str, sources: Sequence[Network] | None) -> bool:
    """Whether a datagram from `host` may lock a track (any host when `sources` is None)."""
    if sources is None:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in sources)


class Socket(Protocol):
    """What the receiver needs of a socket (`udp.DatagramSocket`)."""

    @property
    def port(self) -> int: ...

    def connect(self, peer: Address) -> None: ...

    def sendto(self, data: bytes, addr: Address) -> bool: ...

    def close(self) -> None: ...


class TrackReceiver:
    def __init__(
        self,
        spec: StreamSpec,
        pipeline: StreamPipeline,
        sources: Sequence[Network] | None = None,
        srtp: SrtpReceiver | None = None,
    ) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.sources = sources
        self.srtp = srtp
        """Decrypts the forwarded SRTP (None: the SFU sends plain RTP)."""
        self.capture: PacketCapture | None = None
        """Keeps every packet as received (decrypted), when the recording captures (docs/forensics.md)."""
        self.rtp_socket: Socket | None = None
        self.rtcp_socket: Socket | None = None
        """The separate RTCP socket (None with rtcp-mux: RTCP shares the RTP socket)."""
        self.sender: Address | None = None
        """The RTP sender this track locked to (its socket is connected to it)."""
        self.rtcp_remote: Address | None = None
        """The sender's RTCP address, where PLIs go (the RTCP socket is connected to it)."""
        self.media_ssrc: int | None = spec.ssrc
        self.our_ssrc = random.getrandbits(32)
        self.pli_sent = 0
        self._pt = spec.payload_type
        self._last_packet = 0.0
        self._rtcp_mux = spec.rtcp_port == spec.port
        self.rtx: RtxRepair | None = None
        """NACKs for lost packets and RTX unwrapping, when the sender announced RTX (mediasoup video)."""
        if spec.rtx_payload_type is not None and spec.kind is MediaKind.VIDEO:
            self.rtx = RtxRepair(spec.payload_type, spec.rtx_payload_type, spec.rtx_ssrc)

    # -- RTP socket --------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address) -> None:
        pipeline = self.pipeline
        if addr != self.sender and self.sender is not None:
            pipeline.foreign_packets += 1  # queued before the socket was connected
            return
        now = time.time()
        if self._rtcp_mux and len(data) > 1 and 192 <= data[1] <= 223:
            self.rtcp_received(data, addr)
            return
        srtp = self.srtp
        if srtp is not None:
            if self.sender is None and not allowed(addr[0], self.sources):
                pipeline.foreign_packets += 1
                return
            # Decrypted during a pause too (and dropped below): libsrtp must see the sequence numbers go
            # by to keep its rollover counter right after a long pause.
            plain = srtp.unprotect(data)
            if plain is None:
                pipeline.unauthenticated_packets = srtp.unauthenticated
                pipeline.replayed_packets = srtp.replayed
                return
            data = plain
        if pipeline.paused:
            pipeline.paused_packets += 1  # dropped unread: nothing of a pause reaches any file
            if self.rtx is not None:
                self.rtx.forget()  # and never asked for again
            return
        capture = self.capture
        if capture is not None and (self.sender is not None or allowed(addr[0], self.sources)):
            capture.rtp(data, addr, now)
        try:
            packet = RtpPacket.parse(data)
        except MalformedPacketError:
            pipeline.malformed += 1
            return
        rtx = self.rtx
        repaired = False
        if packet.payload_type != self._pt:
            original = None
            if rtx is not None and self.sender == addr and packet.payload_type == rtx.rtx_payload_type:
                original = rtx.rtx(packet)  # None: not asked for, or arrived already (never twice)
            if original is None:
                pipeline.foreign_packets += 1
                return
            packet, repaired = original, True
        if self.sender is None:
            if not allowed(addr[0], self.sources):
                pipeline.foreign_packets += 1
                return
            self._lock(addr)
        ssrc = packet.ssrc
        if ssrc != self.media_ssrc:
            if self.media_ssrc is not None and now - self._last_packet < SSRC_TAKEOVER_SILENCE:
                pipeline.foreign_packets += 1
                return
            if self.media_ssrc is not None:
                log.info("track %s: sender changed SSRC %08x -> %08x", self.spec.name, self.media_ssrc, ssrc)
            self.media_ssrc = ssrc
            self.pipeline.summary.ssrc = ssrc
        self._last_packet = now
        pipeline.push(packet, now)
        if rtx is not None and not repaired:
            lost = rtx.media(packet.sequence_number, ssrc, now)
            if lost:
                self._send_rtcp(build_nack(self.our_ssrc, ssrc, lost))

    def _lock(self, addr: Address) -> None:
        self.sender = addr
        if self.rtp_socket is not None:
            self.rtp_socket.connect(addr)
        if self._rtcp_mux:
            self.rtcp_remote = addr
        log.info("track %s: receiving from %s:%d only", self.spec.name, addr[0], addr[1])

    # -- RTCP ---------------------------------------------------------------------------------------

    def rtcp_received(self, data: bytes, addr: Address) -> None:
        # The first packet from an allowed source on the RTCP port tells where the sender's RTCP lives
        # (Janus latches this path by sending empty RTP headers from its local_rtcp_port), so PLIs can go
        # back to it; the RTCP socket is then connected to it.
        if addr != self.rtcp_remote:
            sender = self.sender
            if (
                self.rtcp_remote is not None
                or (sender is not None and addr[0] != sender[0])
                or not allowed(addr[0], self.sources)
            ):
                self.pipeline.foreign_packets += 1
                return
            self.rtcp_remote = addr
            if self.rtcp_socket is not None:
                self.rtcp_socket.connect(addr)
        capture = self.capture
        if capture is not None and not self.pipeline.paused:
            capture.rtcp(data, addr, time.time())
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
        if self.media_ssrc is None or not self._send_rtcp(build_pli(self.our_ssrc, self.media_ssrc)):
            return False
        self.pli_sent += 1
        return True

    def tick(self, now: float) -> list[MuxItem]:
        """The session timer's step for this track (every `tick_interval`): overdue holes given up, a
        keyframe asked for when the pipeline wants one, and the frames for the muxer handed out."""
        pipeline = self.pipeline
        pipeline.tick(now)
        if pipeline.take_keyframe_request(now) and not self._request_keyframe_early():
            pipeline.keyframe_request_failed()
        return pipeline.take_output()

    def _request_keyframe_early(self) -> bool:
        """A PLI to the sender, also before any RTP came: the media SSRC is not known then but the RTCP
        path may be (Janus latches it as it creates the forwarder). A Janus simulcast forwarder sends
        nothing until the publisher sends a keyframe, which only a PLI brings when its first one went
        by before the forwarder existed. Janus relays any PLI on a forwarder's RTCP port: SSRC 0 then."""
        if self.request_keyframe():
            return True
        sock, remote = self.rtcp_socket, self.rtcp_remote
        if self.media_ssrc is not None or sock is None or remote is None:
            return False
        if not sock.sendto(build_pli(self.our_ssrc, 0), remote):
            return False
        self.pli_sent += 1
        return True

    def _send_rtcp(self, data: bytes) -> bool:
        sock = self.rtcp_socket or (self.rtp_socket if self._rtcp_mux else None)
        if sock is None or self.rtcp_remote is None:
            return False
        return sock.sendto(data, self.rtcp_remote)

    def close(self) -> None:
        rtx = self.rtx
        if rtx is not None and (rtx.nacks_sent or rtx.unsolicited):
            log.info(
                "track %s: %d NACKs sent, %d packets repaired from RTX, %d RTX packets dropped",
                self.spec.name, rtx.nacks_sent, rtx.repaired, rtx.unsolicited,
            )  # fmt: skip
        for sock in (self.rtp_socket, self.rtcp_socket):
            if sock is not None:
                sock.close()
