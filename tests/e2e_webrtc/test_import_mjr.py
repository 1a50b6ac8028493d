"""`callvault import-mjr` on recordings made by the real Janus: a VideoRoom with `record: true` records two
aiortc publishers (VP8 + Opus, H.264 + Opus) into .mjr files; the import makes one CallVault recording of
the room whose frames are those `janus-pp-rec` (Debian's janus-tools) extracts from the same files, from
the first keyframe on, bit for bit; its manifest is signed and verifies."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from janus_fixture import ROOM, JanusServer, start_or_skip
from media import ffprobe_errors
from mjr_compare import janus_pp_rec_frames, our_frames
from netns import NetNamespace
from webrtc import PublisherProcess

from recorder.cli import main

pytestmark = pytest.mark.slow

SECONDS = 2.5


async def test_import_of_real_janus_recordings(netns_for_test: NetNamespace, tmp_path: Path) -> None:
    if shutil.which("janus-pp-rec") is None:
        pytest.skip("janus-pp-rec (Debian's janus-tools) is not installed")
    ns = netns_for_test
    janus = JanusServer(tmp_path / "janus", ice_enforce_list=ns.interface, videocodec="vp8,h264", record=True)
    start_or_skip(janus)
    publishers: list[PublisherProcess] = []
    try:
        for name, codec in (("agent", "vp8"), ("customer", "h264")):
            publishers.append(
                await PublisherProcess.start(
                    janus.ws_url,
                    ROOM,
                    name,
                    codec=codec,
                    seconds=SECONDS,
                    fps=30,
                    ice_address=ns.address,
                    netns=ns.name,
                )
            )
        for p in publishers:
            await p.finish(within=SECONDS + 30)
    finally:
        for p in publishers:
            p.kill()
        janus.stop()
    files = sorted((janus.workdir / "rec").glob("*.mjr"))
    assert len(files) == 4, files
    if keep := os.environ.get("CALLVAULT_KEEP_MJR"):  # how tests/recorder/mjr/data was made
        for f in files:
            shutil.copy(f, Path(keep) / f.name)

    out = tmp_path / "vault"
    key = tmp_path / "key.pem"
    status = main(["import-mjr", "--out", str(out), "--signing-key", str(key), *map(str, files)])
    assert status == 0
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert main(["verify", str(folder), "--public-key", str(key)]) == 0
    for mjr in files:
        ours = our_frames(folder, mjr)
        theirs = janus_pp_rec_frames(mjr, tmp_path / "pp")
        assert len(ours) > 30, (mjr.name, len(ours))
        assert ours == theirs[len(theirs) - len(ours) :], mjr.name  # the same frames, from a keyframe on
        assert len(theirs) - len(ours) <= 10, (mjr.name, len(theirs), len(ours))
    for media in folder.glob("*.mk*"):
        assert ffprobe_errors(media) == "", media
