"""Wireshark's view of a capture (issue 18 item 3), with loss injected by a seeded UDP relay of the test's
own between the senders (Debian's ffmpeg, VP8 and Opus) and the recorder (`tc netem` is not available):

- tshark decodes the captures as RTP with the payload types sent, VP8 and Opus by their dissectors, every
  IPv4 header checksum good;
- `tshark -z rtp,streams` counts, per stream, exactly the packets the relay dropped, and so does the
  track summary's `packets_lost`;
- `callvault record-pcap` rebuilds, from the captures alone, the live recording's frames bit for bit,
  loss and all.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from media import encode_reference, read_packets, rtp_sender, sdp_for

from recorder.commands.demo import free_port_pair
from recorder.config import RecorderSettings
from recorder.models import StreamSpec, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

pytestmark = pytest.mark.slow

LOSS = 0.04
SECONDS = 4.0


class LossyRelay:
    """Forwards RTP from `port` to `target` dropping each packet with probability `loss` (seeded) and
    RTCP from `port + 1` to `target + 1` untouched; remembers the sequence numbers it dropped and sent."""

    def __init__(self, port: int, target: int, loss: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.target = target
        self.dropped: list[int] = []
        self.sent: list[int] = []
        self.socks = []
        for p in (port, port + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", p))
            s.settimeout(0.2)
            self.socks.append(s)
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out.bind(("127.0.0.1", 0))
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in (0, 1)]
        for t in self.threads:
            t.start()

    def _run(self, which: int) -> None:
        sock = self.socks[which]
        while not self._stop.is_set():
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            if which == 0:
                seq = int.from_bytes(data[2:4], "big")
                if self.sent and self.rng.random() < self.loss:  # the first packet always goes
                    self.dropped.append(seq)
                    continue
                self.sent.append(seq)
            self.out.sendto(data, ("127.0.0.1", self.target + which))

    def lost_inside(self) -> int:
        """Drops between the first and the last packet sent: what a receiver can count as lost."""
        last = max(self.sent)
        return sum(1 for seq in self.dropped if seq < last)

    def stop(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(5)
        for s in (*self.socks, self.out):
            s.close()


def tshark(*args: str) -> str:
    result = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout


def rtp_streams(capture: Path, port: int) -> dict[int, tuple[int, int, str]]:
    """SSRC -> (packets, lost, payload) from `tshark -z rtp,streams`."""
    out = tshark("-r", str(capture), "-d", f"udp.port=={port},rtp", "-q", "-z", "rtp,streams")
    streams = {}
    for line in out.splitlines():
        m = re.search(r"0x([0-9A-Fa-f]{8})\s+(\S+)\s+(\d+)\s+(-?\d+) \(", line)
        if m:
            streams[int(m.group(1), 16)] = (int(m.group(3)), int(m.group(4)), m.group(2))
    return streams


@pytest.fixture
def wireshark() -> None:
    if shutil.which("tshark") is None or shutil.which("mergecap") is None:
        pytest.skip("tshark (Debian's tshark package) is not installed")


async def test_tshark_sees_the_loss_the_relay_made_and_record_pcap_rebuilds_the_frames(
    tmp_path: Path, wireshark: None
) -> None:
    refs = {c: encode_reference(c, tmp_path, SECONDS) for c in ("vp8", "opus")}
    pts = {"vp8": 96, "opus": 111}
    ports = {c: free_port_pair() for c in refs}
    specs = parse_sdp(sdp_for([(c, ports[c], pts[c]) for c in refs]))
    settings = RecorderSettings(segment_seconds=1.5, capture=True)
    workers = MuxWorkers(1)
    session = RecordingSession(tmp_path / "rec", settings, workers)
    tracks = {c: await session.add_track(s) for c, s in zip(refs, specs, strict=True)}
    track_ports = {c: t.port for c, t in tracks.items()}
    relays = {c: LossyRelay(free_port_pair(), tracks[c].port, LOSS, seed=18 + i) for i, c in enumerate(refs)}
    try:
        senders = [rtp_sender(refs[c], relays[c].socks[0].getsockname()[1], pts[c]) for c in refs]
        for sender in senders:
            await asyncio.to_thread(sender.wait, 60)
        await asyncio.sleep(0.5)  # the last packets through the relay and the reorder buffer
        summaries = {s.name: s for s in await session.stop()}
    finally:
        for relay in relays.values():
            relay.stop()
        workers.shutdown()
    await asyncio.to_thread(check, tmp_path, specs, summaries, relays, track_ports)


def check(
    tmp_path: Path,
    specs: list[StreamSpec],
    summaries: dict[str, TrackSummary],
    relays: dict[str, LossyRelay],
    ports: dict[str, int],
) -> None:
    folder = tmp_path / "rec"
    pts = {"vp8": 96, "opus": 111}
    for codec, spec in zip(relays, specs, strict=True):
        summary = summaries[spec.name]
        relay = relays[codec]
        assert relay.lost_inside() >= 3, "the relay dropped too little to test anything"
        segments = sorted((folder / f"{spec.name}.capture").glob("*.pcapng"))
        assert len(segments) >= 2
        merged = tmp_path / f"{spec.name}.pcapng"
        subprocess.run(["mergecap", "-w", str(merged), *map(str, segments)], check=True, timeout=60)
        port = ports[codec]
        # One stream, with the loss the relay made and the recorder counted.
        ((packets, lost, _),) = rtp_streams(merged, port).values()
        assert lost == relay.lost_inside() == summary.packets_lost
        assert packets == len(relay.sent) == summary.packets_received
        # Decoded with the payload type sent, by the codec's dissector.
        fields = tshark(
            "-r", str(merged), "-d", f"udp.port=={port},rtp", "-d", f"rtp.pt=={pts[codec]},{codec}",
            "-Y", "rtp", "-T", "fields", "-e", "rtp.p_type", "-e", "frame.protocols",
        ).splitlines()  # fmt: skip
        assert len(fields) == packets
        assert all(f.split("\t")[0] == str(pts[codec]) and f.endswith(f":rtp:{codec}") for f in fields)
        # The synthesized IPv4 headers check out in Wireshark's eyes.
        bad = tshark("-r", str(merged), "-o", "ip.check_checksum:TRUE", "-Y", "ip.checksum.status == 0")
        assert bad == ""

    # Rebuilt from the captures alone: the live recording's frames, bit for bit, loss and all.
    captures = sorted(str(p) for p in folder.glob("*.capture/*.pcapng"))
    out = tmp_path / "rebuilt"
    result = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "record-pcap", *captures, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for spec in specs:
        live, rebuilt = summaries[spec.name], json.loads((out / f"{spec.name}.json").read_text())
        assert live.file is not None
        a, b = read_packets(folder / live.file), read_packets(out / rebuilt["file"])
        assert len(a.data) > 10 and a.data == b.data and a.keyframes == b.keyframes
        assert a.pts_seconds == b.pts_seconds
        assert rebuilt["packets_lost"] == live.packets_lost and rebuilt["frames"] == live.frames
