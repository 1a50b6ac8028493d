"""RTP and RTCP on the wire (RFC 3550, 8285, 4585, 5104, 5761): pure parsing and serialization."""
