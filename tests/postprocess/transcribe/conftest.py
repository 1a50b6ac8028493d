"""One real two-party call with espeak-ng speech, recorded through a RecordingSession over RTP (shared by
the session), and its transcript made by `callvault transcribe` once; tests that alter it work on copies."""

from __future__ import annotations

import asyncio
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(1, str(Path(__file__).parent))  # speech, beside this file

from composite_kit import Publisher, record_call
from speech import onset, pcm, speak

from recorder.cli import main
from recorder.models import TrackSummary

AGENT_SAYS = "Acme support, how can I help you?"
CUSTOMER_SAYS = (
    "My card number is four five three nine, one four eight eight, zero three four three, six four six seven."
    " The expiration date is zero nine, two eight."
    " My order number is five two seven three, eight four zero one, nine two six five, eight three zero one."
    " My extension is four five six seven."
)
CARD = "4539148803436467"  # Luhn-valid
ORDER = "5273840192658301"  # 16 digits, Luhn-invalid
EXTENSION = "4567"
AGENT = Publisher("alice", tone=0, seconds=0, video=False)
CUSTOMER = Publisher("bob", tone=0, seconds=0, start_delay=3.0, video=False)


@dataclass
class SpokenCall:
    folder: Path
    summaries: dict[str, TrackSummary]
    onsets: dict[str, float]
    """Seconds from the start of each publisher's file to its first speech."""

    def copy(self, dst: Path) -> Path:
        shutil.copytree(self.folder, dst)
        return dst


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
