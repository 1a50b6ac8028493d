"""The composite of a call, end to end: Janus in a network namespace, two aiortc publishers, `callvault
serve` with the archive (local store) and composites on. Nobody asks for the composite: when the call
ends the service records, stores and announces the originals, then builds the composite in a worker
process, adds it to a new signed manifest revision and sends composite.finished. The stored composite
decodes, lasts as long as the call, and the stored recording verifies against its key."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from archive_kit import Receiver
from janus_fixture import ROOM, JanusServer, start_or_skip
from media import ffprobe_errors
from netns import NetNamespace
from service_kit import (
    absent,
    client,
    free_tcp_port,
    get_json,
    janus_service_settings,
    until,
    wait_ready,
)
from webrtc import PublisherProcess

from postprocess.options import Profile
from postprocess.settings import CompositeSettings
from recorder.archive import ArchiveSettings
from recorder.commands.serve import serve
from recorder.manifest import StoreSource, verify_recording
from recorder.manifest.signing import load_private_key_file
from recorder.storage import LocalStore
from recorder.webhooks import CompositeFinished, RecordingFinished, generate_secret

pytestmark = pytest.mark.slow

FPS = 30
CALL, LATE = 5.0, 1.0


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return float(json.loads(out.stdout)["format"]["duration"])


async def test_a_finished_call_gets_its_composite_stored_signed_and_announced(
    netns_for_test: NetNamespace, tmp_path: Path
) -> None:
    ns = netns_for_test
    port = free_tcp_port()
    receiver = Receiver(free_tcp_port(), generate_secret())
    await receiver.start()
    janus = JanusServer(
        tmp_path / "janus",
        ice_enforce_list=ns.interface,
        videocodec="vp8",
        sampleevh_url=f"http://127.0.0.1:{port}/janus/events?token=evt",
    )
    start_or_skip(janus)
    archive = ArchiveSettings.model_validate(
        {
            "signing": {"key_file": "signing-key.pem", "key_env": "CALLVAULT_TEST_NO_SUCH_VAR"},
            "spool": {"poll_interval": 0.1},
            "webhooks": {
                "endpoints": [{"id": "crm", "url": receiver.url, "secret": receiver.secret}],
                "poll_interval": 0.1,
            },
            "completion_poll": 0.2,
        }
    )
    settings = janus_service_settings(
        tmp_path,
        janus.ws_url,
        port,
        (44000, 44999),
        archive=archive,
        composite=CompositeSettings(profiles=[Profile.SD]),
    )
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop, signals=False))
    base = f"http://127.0.0.1:{port}"
    publishers: list[PublisherProcess] = []
    try:
        async with client() as http:
            await wait_ready(http, base, 15)
            for name, delay in (("agent", 0.0), ("customer", LATE)):
                await asyncio.sleep(delay)
                publisher = await PublisherProcess.start(
                    janus.ws_url, ROOM, name, codec="vp8", seconds=CALL - delay, fps=FPS,
                    ice_address=ns.address, netns=ns.name,
                )  # fmt: skip
                publishers.append(publisher)
            for p in publishers:
                await p.finish(within=CALL + 20)
            async with asyncio.timeout(30):
                while not receiver.received:
                    receiver.changed.clear()
                    await receiver.changed.wait()
            rid = receiver.received[0].event.data.recording_id
            finished = await receiver.wait_for(rid, "recording.finished", 30)
            announced = await receiver.wait_for(rid, "composite.finished", 120)
            local = tmp_path / "data" / "recordings" / rid
            await until(lambda: absent(local), 10, 0.05)  # removed right after the event is in the outbox
            status = (await get_json(http, f"{base}/v1/status"))[1]
            detail_status, detail = await get_json(http, f"{base}/v1/recordings/{rid}")
    finally:
        for p in publishers:
            p.kill()
        stop.set()
        await asyncio.wait_for(service, 60)
        janus.stop()
        await receiver.stop()

    assert [r.event.type.value for r in receiver.of(rid)] == [
        "recording.started",
        "recording.finished",
        "composite.finished",
    ]
    first, event = finished.event.data, announced.event.data
    assert isinstance(first, RecordingFinished) and isinstance(event, CompositeFinished)
    assert first.manifest.revision == 1 and event.manifest is not None and event.manifest.revision == 2
    assert event.object.name == "composite-sd.mp4" and event.link is not None
    assert status["composites"] == {"pending": 0, "built": 1, "failed": 0}
    assert detail_status == 200 and detail["manifest"]["revision"] == 2

    composite = Path(urlparse(event.link.url).path)  # the local store's file:// link
    assert ffprobe_errors(composite) == ""
    assert abs(ffprobe_duration(composite) - CALL) <= 1.0

    store = LocalStore(tmp_path / "data" / "recordings-store")
    prefix = event.object.key[: -len(event.object.name)]
    key = load_private_key_file(tmp_path / "data" / "signing-key.pem").public_key()
    report = verify_recording(StoreSource(store, prefix), key)
    assert report.ok, report.problems
