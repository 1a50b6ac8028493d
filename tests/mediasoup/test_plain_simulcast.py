"""Why a simulcast Producer fed with plain RTP was recorded at its low layer: a mediasoup
SimulcastConsumer takes the first layer it forwards as its RTP timestamp reference and switches to another
only once both layers' streams have had an RTCP Sender Report (SimulcastConsumer::CanSwitchToSpatialLayer).
Two ffmpeg encoders (160x120 and 320x240 VP8) feed one simulcast Producer through one socket (a merger:
mediasoup's comedia PlainTransport latches one source), the low layer first: with their SRs forwarded the
recording switches up to 320x240; without them it stays at 160x120 for twice as long as the switch took
with them (and for good, by mediasoup's code)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mediasoup_kit import CallVault, Harness, send, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LOW, HIGH = (160, 120), (320, 240)


def reference(folder: Path, size: tuple[int, int]) -> Path:
    out = folder / f"ref-{size[0]}x{size[1]}.webm"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size[0]}x{size[1]}:rate=30", "-t", "20", "-c:v", "libvpx", "-b:v", "300k",
         "-g", "15", "-deadline", "realtime", "-cpu-used", "8", str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return out


class Merger:
    """Two ffmpeg RTP senders (each its RTP and RTCP port here) sent on from one socket to `target`;
    their RTCP (the Sender Reports) only if `sender_reports`."""

    def __init__(self, target: int, sender_reports: bool) -> None:
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out.bind(("127.0.0.1", 0))
        self.inputs: list[socket.socket] = []
        for _ in range(4):  # low RTP, low RTCP, high RTP, high RTCP
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.2)
            self.inputs.append(s)
        self.target, self.sender_reports = target, sender_reports
        self.srs = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._pump, args=(s, i % 2 == 1), daemon=True) for i, s in
                        enumerate(self.inputs)]  # fmt: skip
        for t in self.threads:
            t.start()

    def port(self, i: int) -> int:
        return int(self.inputs[i].getsockname()[1])

    def _pump(self, sock: socket.socket, rtcp: bool) -> None:
        while not self.stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if rtcp:
                if not self.sender_reports:
                    continue
                self.srs += 1
            self.out.sendto(data, ("127.0.0.1", self.target))

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=2)
        for s in [*self.inputs, self.out]:
            s.close()


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], Path]:
    folder = tmp_path_factory.mktemp("simulcast-refs")
    return {size: reference(folder, size) for size in (LOW, HIGH)}


@pytest.fixture
def callvault(tmp_path: Path, mediasoup_worker: Path) -> Iterator[CallVault]:
    service = CallVault(tmp_path / "callvault")
    service.start()
    yield service
    service.stop()


def record(
    callvault: CallVault,
    worker: Path,
    refs: dict[tuple[int, int], Path],
    tmp: Path,
    sender_reports: bool,
    switch_within: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Record the two-layer Producer. With `switch_within` None: until the Consumer forwards the high
    layer (returns how long that took after the high layer started); else for that long."""
    room = f"plain-simulcast-{int(sender_reports)}"
    harness = Harness(worker, callvault.url, room, tmp / f"node-{room}.log")
    senders: list[subprocess.Popen[bytes]] = []
    merger: Merger | None = None
    try:
        produced = harness.call(
            "produceSimulcast", participant="fred", display="Fred", pt=101, ssrcs=[1001, 1002]
        )
        assert produced["type"] == "simulcast"
        merger = Merger(produced["port"], sender_reports)
        senders.append(send(refs[LOW], merger.port(0), merger.port(1), 101, 1001))
        harness.streamstart("fred")
        # The low layer first: once the Consumer forwards it, it is its timestamp reference.
        until(lambda: harness.call("consumerStats")["consumers"][0]["currentLayers"], 30, step=0.2)
        senders.append(send(refs[HIGH], merger.port(2), merger.port(3), 101, 1002))
        started = time.monotonic()

        def layer() -> int:
            return int(harness.call("consumerStats")["consumers"][0]["currentLayers"]["spatialLayer"])

        if switch_within is None:
            until(lambda: layer() == 1, 60, step=0.2)
            took = time.monotonic() - started
            time.sleep(1.0)  # a second of the high layer in the recording
        else:
            time.sleep(switch_within)  # the call's length: twice what the switch took with SRs
            took = switch_within
        (consumer,) = harness.call("consumerStats")["consumers"]
        harness.call("closeRouter")
        rid = callvault.finished(room)
    finally:
        for s in senders:
            s.kill()
            s.wait()
        if merger is not None:
            merger.close()
        harness.close()
    (track,) = callvault.summaries(rid).values()
    return track, consumer, took


def test_plain_rtp_simulcast_switches_up_only_with_sender_reports(
    callvault: CallVault, mediasoup_worker: Path, refs: dict[tuple[int, int], Path], tmp_path: Path
) -> None:
    # ffmpeg sends an SR before its first RTP packet (mediasoup does not know the stream yet and ignores
    # it), then every 5 s: the switch comes with the high layer's second SR.
    with_srs, consumer, took = record(callvault, mediasoup_worker, refs, tmp_path, sender_reports=True)
    sizes = [(x["width"], x["height"]) for x in with_srs["layers"]]
    assert sizes[-1] == HIGH and consumer["currentLayers"]["spatialLayer"] == 1, (sizes, consumer)
    assert took < 12, took  # within the 20-s references, with room for the second call
    without, consumer, _ = record(
        callvault, mediasoup_worker, refs, tmp_path, sender_reports=False, switch_within=min(2 * took + 1, 16)
    )
    sizes = [(x["width"], x["height"]) for x in without["layers"]]
    assert set(sizes) == {LOW} and consumer["currentLayers"]["spatialLayer"] == 0, (sizes, consumer)
