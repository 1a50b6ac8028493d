"""Transcripts and redaction in the service: after a recording finishes, its audio is transcribed (and card
numbers redacted) in a worker process, the results stored beside the media, added to the signed manifest
as a new revision, indexed for search and announced (recorder/transcripts/service.py)."""
