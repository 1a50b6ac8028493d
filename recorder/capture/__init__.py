"""Forensic RAW: every RTP and RTCP packet of a track as received, in pcapng segments (docs/forensics.md).

`pcapng` writes blocks (pure), `reader` reads them back (pure), `writer` is a track's capture (the
event-loop half and the file half), `recorder` a session's captures, `recovery` the repair after a crash,
`replay` rebuilds a recording from captures.
"""
