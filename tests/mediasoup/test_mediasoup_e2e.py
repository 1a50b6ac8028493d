"""A mediasoup call recorded end to end: a real mediasoup worker (3.12.16, built from Debian's libraries)
whose Router the package records (recordRouter), Producers fed by ffmpeg through PlainTransports, and
`callvault serve` with the ingest API and the local archive. Every recorded frame is checked bit for bit
against what ffmpeg sent: a track is runs of consecutive sent frames, one run per stretch recorded, each
starting at a keyframe."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mediasoup_kit import (
    PT,
    CallVault,
    Harness,
    LossyRelay,
    WebhookReceiver,
    encode,
    frames,
    read_packets,
    runs_in,
    send,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # the first test may build the worker (once)

CODEC_OF = {"VP8": "vp8", "H264": "h264", "OPUS": "opus"}
ROOM = "support-42"


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("refs")
    return {codec: encode(codec, folder, 12.0) for codec in ("vp8", "h264", "opus")}


class Call:
    """Participants publishing to the harness's Router, each Producer fed by its own ffmpeg."""

    def __init__(self, harness: Harness, refs: dict[str, Path]) -> None:
        self.harness = harness
        self.refs = refs
        self.producers: dict[tuple[str, str], str] = {}
        self.senders: dict[tuple[str, str], subprocess.Popen[bytes]] = {}

    def join(self, participant: str, codecs: list[str]) -> None:
        for codec in codecs:
            ssrc = 1000 + 10 * ord(participant[0]) + list(PT).index(codec)
            produced = self.harness.call(
                "produce", participant=participant, display=participant.title(), codec=codec,
                pt=PT[codec], ssrc=ssrc,
            )  # fmt: skip
            self.producers[(participant, codec)] = produced["id"]
            self.senders[(participant, codec)] = send(
                self.refs[codec], produced["port"], produced["rtcpPort"], PT[codec], ssrc
            )
        for _ in codecs:  # the package registered each Producer with CallVault
            self.harness.streamstart(participant)

    def leave(self, participant: str) -> None:
        for (who, codec), producer in list(self.producers.items()):
            if who == participant:
                self.harness.call("close", id=producer)
                self.senders.pop((who, codec)).kill()

    def close(self) -> None:
        for sender in self.senders.values():
            sender.kill()
            sender.wait()


@pytest.fixture
def webhooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def callvault(tmp_path: Path, mediasoup_worker: Path, webhooks: WebhookReceiver) -> Iterator[CallVault]:
    service = CallVault(tmp_path / "callvault", webhook_url=webhooks.url)
    service.start()
    yield service
    service.stop()


def media_for(seconds: float) -> None:
    """Let the call run (media flows in real time: this is the call's length, not a wait for a result)."""
    time.sleep(seconds)


def check_track(
    summary: dict[str, Any], folder: Path, refs: dict[str, Path], runs_expected: int
) -> list[tuple[int, int]]:
    codec = CODEC_OF[summary["codec"]]
    assert summary["state"] == "complete", summary
    got = frames(folder / summary["file"], codec)
    sent = frames(refs[codec], codec)
    runs = runs_in(sent, got)
    assert len(runs) == runs_expected, (summary["name"], runs)
    if codec != "opus":
        keyframes = read_packets(refs[codec]).keyframes
        assert all(keyframes[start] for start, _ in runs), (summary["name"], runs)  # each from a keyframe
    assert summary["packets_lost"] == 0 and summary["frames"] == len(got), summary
    return runs


def test_two_participants_late_join_pause_and_early_leave_bit_exact(
    callvault: CallVault,
    mediasoup_worker: Path,
    refs: dict[str, Path],
    tmp_path: Path,
    webhooks: WebhookReceiver,
) -> None:
    harness = Harness(mediasoup_worker, callvault.url, ROOM, tmp_path / "node.log")
    call = Call(harness, refs)
    try:
        call.join("alice", ["vp8", "opus"])
        media_for(2.0)
        call.join("bob", ["h264", "opus"])  # late join
        media_for(2.0)
        harness.call("pause", id=call.producers[("alice", "vp8")])
        media_for(1.5)
        harness.call("resume", id=call.producers[("alice", "vp8")])
        media_for(2.0)
        call.leave("bob")  # early leave
        media_for(1.5)
        harness.call("closeRouter")
        rid = callvault.finished(ROOM)
    finally:
        call.close()
        harness.close()
    summaries = callvault.summaries(rid)
    assert sorted(summaries) == ["alice-audio-1", "alice-video-0", "bob-audio-1", "bob-video-0"]
    folder = callvault.data / "recordings" / rid
    alice_video = check_track(summaries["alice-video-0"], folder, refs, runs_expected=2)  # the pause
    check_track(summaries["alice-audio-1"], folder, refs, runs_expected=1)
    bob_video = check_track(summaries["bob-video-0"], folder, refs, runs_expected=1)
    check_track(summaries["bob-audio-1"], folder, refs, runs_expected=1)
    assert alice_video[0][1] >= 45 and bob_video[0][1] >= 45  # 1.5 s and more of each at 30 fps
    (pause,) = summaries["alice-video-0"]["pauses"]
    assert pause["end_time"] - pause["start_time"] >= 1.0
    alice, bob = summaries["alice-video-0"], summaries["bob-video-0"]
    assert bob["first_wallclock"] - alice["first_wallclock"] >= 1.5  # joined late
    assert alice["last_wallclock"] - bob["last_wallclock"] >= 1.0  # left early
    detail = callvault.get(f"/v1/recordings/{rid}")
    names = {p["id"]: p.get("display_name") for p in detail["participants"]}
    assert names == {"alice": "Alice", "bob": "Bob"}
    assert detail.get("metadata", {}).get("source") == "mediasoup-test"
    # The Producer's pause reached the application as webhooks, like a participant's pause in Janus.
    until(lambda: webhooks.of("recording.finished"), 30)
    (paused,) = webhooks.of("recording.paused")
    (resumed,) = webhooks.of("recording.resumed")
    assert paused["data"]["recording_id"] == rid == resumed["data"]["recording_id"]
    assert paused["data"]["reason"] == "participant alice: stream 0: producer paused", paused
    gap = datetime.fromisoformat(resumed["data"]["resumed_at"]) - datetime.fromisoformat(
        paused["data"]["paused_at"]
    )
    assert abs(gap.total_seconds() - (pause["end_time"] - pause["start_time"])) < 0.5, (gap, pause)


def test_node_process_killed_mid_call_recording_finished_after_the_lease(
    callvault: CallVault, mediasoup_worker: Path, refs: dict[str, Path], tmp_path: Path
) -> None:
    harness = Harness(mediasoup_worker, callvault.url, ROOM, tmp_path / "node.log")
    call = Call(harness, refs)
    try:
        call.join("alice", ["vp8", "opus"])
        media_for(2.5)
        killed = time.time()
        harness.kill()  # SIGKILL: no goodbye; its mediasoup worker goes with it
        rid = callvault.finished(ROOM, within=30)
        finished = time.time()
    finally:
        call.close()
        harness.close()
    assert (
        finished - killed >= callvault.lease * 2 / 3 - 0.1
    )  # not before the lease ran out (renewed every third)
    summaries = callvault.summaries(rid)
    assert sorted(summaries) == ["alice-audio-1", "alice-video-0"]
    folder = callvault.data / "recordings" / rid
    (video,) = check_track(summaries["alice-video-0"], folder, refs, runs_expected=1)
    check_track(summaries["alice-audio-1"], folder, refs, runs_expected=1)
    assert video[1] >= 45
    assert summaries["alice-video-0"]["last_wallclock"] <= killed + 0.5


def test_callvault_killed_mid_call_recording_continues_as_new_parts(
    callvault: CallVault, mediasoup_worker: Path, refs: dict[str, Path], tmp_path: Path
) -> None:
    harness = Harness(mediasoup_worker, callvault.url, ROOM, tmp_path / "node.log")
    call = Call(harness, refs)
    try:
        call.join("alice", ["vp8", "opus"])
        media_for(2.5)
        first = callvault.get("/v1/status")["rooms"][ROOM]["recording_id"]
        callvault.kill()  # SIGKILL mid-call
        media_for(1.0)
        callvault.start()  # the same address: the package's heartbeats find it again
        for _ in range(2):  # both streams registered again: new parts of the same recording
            harness.streamstart("alice")
        media_for(2.5)
        harness.call("closeRouter")
        rid = callvault.finished(ROOM)
    finally:
        call.close()
        harness.close()
    assert rid == first
    summaries = callvault.summaries(rid)
    assert sorted(summaries) == [
        "alice-audio-1",
        "alice-audio-1-part2",
        "alice-video-0",
        "alice-video-0-part2",
    ]
    folder = callvault.data / "recordings" / rid
    assert summaries["alice-video-0"]["state"] == "recovered"
    (part2,) = check_track(summaries["alice-video-0-part2"], folder, refs, runs_expected=1)
    check_track(summaries["alice-audio-1-part2"], folder, refs, runs_expected=1)
    codec_frames = frames(folder / summaries["alice-video-0"]["file"], "vp8")
    (part1,) = runs_in(frames(refs["vp8"], "vp8"), codec_frames)
    assert part1[0] + part1[1] <= part2[0]  # part 2 continues after part 1, nothing written twice
    assert part2[1] >= 45


def test_packets_lost_on_the_way_to_callvault_are_repaired_from_rtx(
    callvault: CallVault, mediasoup_worker: Path, refs: dict[str, Path], tmp_path: Path
) -> None:
    """Every 12th video packet from mediasoup to CallVault is lost (a relay in between): CallVault NACKs
    each, the Consumer retransmits it on its RTX stream, and the recording is still every frame ffmpeg
    sent, bit for bit, with nothing lost and nothing written twice."""
    relay = LossyRelay(callvault.rtp_low, 200, every=12)
    harness = Harness(mediasoup_worker, callvault.url, ROOM, tmp_path / "node.log", rtp_host=relay.host)
    call = Call(harness, refs)
    try:
        call.join("alice", ["vp8"])
        media_for(4.0)
        # The last packets pass: a loss at the very end would have no later packet to reveal it.
        relay.dropping = False
        media_for(0.5)
        harness.call("closeRouter")
        rid = callvault.finished(ROOM)
    finally:
        call.close()
        harness.close()
        relay.close()
    assert relay.dropped >= 10, relay.dropped
    summaries = callvault.summaries(rid)
    folder = callvault.data / "recordings" / rid
    ((_, n),) = check_track(summaries["alice-video-0"], folder, refs, runs_expected=1)
    assert n >= 100 and summaries["alice-video-0"]["packets_duplicate"] == 0
    repaired = re.search(r"alice-video-0: (\d+) NACKs sent, (\d+) packets repaired from RTX", callvault.log())
    assert repaired is not None and int(repaired.group(2)) == relay.dropped, (repaired, relay.dropped)
    print(f"dropped {relay.dropped}, forwarded {relay.forwarded}: {repaired.group(0)}")
