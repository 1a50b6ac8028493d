"""A recorder node's side of the job queue: a finished recording's composites are queued (ids only).

The recording sink used instead of the in-process Compositor when the catalog is PostgreSQL: one job per
composite profile of a recording that wants composites (its room's `outputs`, else composite.enabled).
"""

from __future__ import annotations

import logging

import procrastinate

from postprocess.settings import CompositeSettings
from recorder.jobs.queue import defer_composite
from recorder.models import TrackSummary
from recorder.recording import FinishedRecordingSink, RecordingInfo

log = logging.getLogger(__name__)


class CompositeQueue(FinishedRecordingSink):
    def __init__(self, app: procrastinate.App, settings: CompositeSettings) -> None:
        self.app = app
        self.settings = settings
        self.queued = 0

    def stats(self) -> dict[str, int]:
        return {"queued": self.queued}

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        rid = info.recording_id
        if not self.settings.wanted(info.metadata.get("outputs")):
            return
        if not any(t.file for t in tracks):
            log.info("recording %s: no media, no composite", rid)
            return
        for profile in dict.fromkeys(self.settings.profiles):
            job = await defer_composite(self.app, rid, profile)
            self.queued += 1
            log.info("recording %s: composite %s queued (job %d)", rid, profile.value, job)
