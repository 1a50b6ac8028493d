"""One real two-party call with espeak-ng speech, recorded through a RecordingSession over RTP (shared by
the session), and its transcript made by `callvault transcribe` once; tests that alter it work on copies."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(1, str(Path(__file__).parent))  # speech, beside this file

from composite_kit import record_call
from speech import AGENT, AGENT_SAYS, CUSTOMER, CUSTOMER_SAYS, SpokenCall, onset, pcm, speak

from recorder.cli import main


@pytest.fixture(scope="session")
def spoken_call(tmp_path_factory: pytest.TempPathFactory) -> SpokenCall:
    work = tmp_path_factory.mktemp("spoken")
    refs = [(AGENT, speak(work, "alice", AGENT_SAYS)), (CUSTOMER, speak(work, "bob", CUSTOMER_SAYS))]
    summaries = asyncio.run(record_call(work / "rec", refs))
    assert all(s.state == "complete" for s in summaries), summaries
    onsets = {pub.id: onset(pcm(ref)) for pub, ref in refs}
    return SpokenCall(work / "rec", {s.name: s for s in summaries}, onsets)


@pytest.fixture(scope="session")
def transcribed(spoken_call: SpokenCall, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the call with transcript.json and transcript.vtt written by `callvault transcribe`."""
    folder = spoken_call.copy(tmp_path_factory.mktemp("transcribed") / "rec")
    assert main(["transcribe", str(folder)]) == 0
    return folder
