"""Transcription and redaction benchmark: a synthetic two-party call of espeak-ng speech (Debian), laid
out as a recording folder (one Opus-in-WebM track per participant, 48 kHz stereo, as the recorder writes
them, with their summaries), transcribed with the packaged Whisper tiny.en (postprocess/transcribe), then
redacted (postprocess/redact: the card number said once by the customer, found in the transcript).

    .venv/bin/python bench/transcribe.py --seconds 600 --threads 2

The call: agent and customer take turns (lines of a support call, 0.6 s between turns), each line read by
espeak-ng at 150 words a minute with 120 ms between words; the script repeats until --seconds. Each track
holds its speaker's lines and silence while the other speaks (as a real participant's track does).
Prints the model's load time, then per track and in total: audio seconds, wall seconds, process CPU
seconds, real-time factor (wall / audio) and CPU per audio second (CPU / audio: the real-time factor per
core); then the redaction's wall and CPU time and what it found.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from postprocess.redact.recording import redact_recording  # noqa: E402
from postprocess.transcribe.engine import Engine, EngineSettings  # noqa: E402
from postprocess.transcribe.recording import transcribe_recording, write_transcript  # noqa: E402
from recorder.models import Codec, MediaKind, TrackSummary  # noqa: E402

RATE = 48_000
GAP = 0.6
SCRIPT = [
    ("agent", "Thank you for calling Acme support, my name is Alice. How can I help you today?"),
    ("customer", "Hi, I would like to cancel my subscription, the service has been very slow this month."),
    ("agent", "I am sorry to hear that. Can I ask what you use the service for?"),
    ("customer", "Mostly for video calls with my family, and sometimes for work meetings."),
    ("agent", "I can offer you a discount for three months if you would like to stay."),
    ("customer", "That sounds fair. Can you put it on my card please?"),
    ("agent", "Of course. Please read me the card number."),
    (
        "customer",
        "My card number is four five three nine, one four eight eight, zero three four three, six four"
        " six seven. The expiration date is zero nine, two eight.",
    ),
    ("agent", "Thank you, the discount is applied. Is there anything else I can help you with?"),
    ("customer", "No, that is all. I will file a complaint about the speed though."),
]
CARD_LINE = 7


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def line_audio(work: Path, i: int, text: str) -> np.ndarray:
    wav = work / f"line{i}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-g", "12", "-w", str(wav), text], check=True)
    raw = work / f"line{i}.f32"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav), "-ar", str(RATE),
                    "-ac", "1", "-f", "f32le", str(raw)], check=True)  # fmt: skip
    return np.fromfile(raw, dtype=np.float32)


def make_call(work: Path, folder: Path, seconds: float) -> None:
    """Two tracks of `seconds`, the script's turns repeated; the card number said once (the first round)."""
    lines = [line_audio(work, i, text) for i, (_, text) in enumerate(SCRIPT)]
    tracks = {
        "agent": np.zeros(round(seconds * RATE), np.float32),
        "customer": np.zeros(round(seconds * RATE), np.float32),
    }
    at, k = round(0.5 * RATE), 0
    while True:
        i = k % len(SCRIPT)
        if k >= len(SCRIPT) and i == CARD_LINE:
            i = CARD_LINE - 1  # the card number once
        who, audio = SCRIPT[i][0], lines[i]
        if at + audio.size > tracks[who].size:
            break
        tracks[who][at : at + audio.size] = audio
        at += audio.size + round(GAP * RATE)
        k += 1
    folder.mkdir(parents=True)
    t0 = 1_800_000_000.0
    for who, audio in tracks.items():
        name = f"{who}-audio-1"
        raw = work / f"{who}.f32"
        audio.tofile(raw)
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(RATE),
                        "-ac", "1", "-i", str(raw), "-ac", "2", "-c:a", "libopus", "-b:a", "32k",
                        str(folder / f"{name}.webm")], check=True)  # fmt: skip
        summary = TrackSummary(
            name=name, state="complete", kind=MediaKind.AUDIO, codec=Codec.OPUS, clock_rate=RATE,
            payload_type=111, file=f"{name}.webm", container="webm", first_rtp_timestamp=0,
            last_rtp_timestamp=round(seconds * RATE), first_wallclock=t0, last_wallclock=t0 + seconds,
            frames=round(seconds * 50),
        )  # fmt: skip
        (folder / f"{name}.json").write_text(summary.model_dump_json(indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-vad", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "rec"
        make_call(work, folder, args.seconds)
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        c0, t0 = cpu(), time.monotonic()
        engine = Engine(EngineSettings(threads=args.threads, vad=not args.no_vad))
        print(f"model load: {time.monotonic() - t0:.2f} s wall, {cpu() - c0:.2f} s CPU")
        c0, t0 = cpu(), time.monotonic()
        transcript = transcribe_recording(folder, engine)
        wall, spent = time.monotonic() - t0, cpu() - c0
        write_transcript(folder, transcript)
        audio = sum(t.duration for t in transcript.tracks)
        for t in transcript.tracks:
            print(f"  {t.track}: {t.duration:.0f} s audio, {t.processing_seconds:.1f} s in the model")
        words = sum(len(s.words) for s in transcript.segments)
        print(
            f"transcribe: {audio:.0f} s of audio ({len(transcript.tracks)} tracks) in {wall:.1f} s wall,"
            f" {spent:.1f} s CPU; RTF {wall / audio:.3f}, CPU per audio second {spent / audio:.3f}"
            f" ({args.threads} threads, VAD {'off' if args.no_vad else 'on'}); {words} words"
        )
        c0, t0 = cpu(), time.monotonic()
        report = redact_recording(folder, [], auto=True)
        wall, spent = time.monotonic() - t0, cpu() - c0
        print(
            f"redact: {wall:.2f} s wall, {spent:.2f} s CPU for {args.seconds * 2:.0f} s of audio"
            f" ({spent / (args.seconds * 2) * 1000:.2f} ms CPU per audio second);"
            f" {[(round(r.start, 1), round(r.end, 1), r.reason) for r in report.redactions]},"
            f" {sum(t.packets_silenced for t in report.tracks)} packets silenced"
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
