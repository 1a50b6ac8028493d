"""Typed errors shared by the recorder's parts. Each carries enough context to act on."""


class CallVaultError(Exception):
    """Base of every error CallVault raises on purpose."""


class MalformedPacketError(CallVaultError, ValueError):
    """An RTP/RTCP packet or payload that cannot be parsed; the message says what is wrong."""


class SdpError(CallVaultError, ValueError):
    """An SDP description that cannot be recorded; the message names the offending line or codec."""


class UnsupportedCodecError(SdpError):
    """A codec the recorder cannot store without transcoding."""


class MuxError(CallVaultError):
    """The muxer could not write or join a recording file."""


class RecordingRefusedError(CallVaultError):
    """A new recording was refused (for example the upload spool is near its disk limit)."""


class MissingExtraError(CallVaultError):
    """The settings need an optional extra that is not installed; the message names the pip command."""
