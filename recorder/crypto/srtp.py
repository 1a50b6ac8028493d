"""SRTP on the forward leg: the SFU encrypts the RTP it forwards to CallVault, CallVault decrypts it at the
UDP edge (RFC 3711, through libsrtp: pylibsrtp).

Janus's VideoRoom takes `srtp_suite` (32 or 80: the authentication tag's bits of AES_CM_128_HMAC_SHA1_32
or _80) and `srtp_crypto` (the base64 of a 30-byte master key and salt, as SDES writes it) in
`rtp_forward`, one per request, and protects only RTP with it: what it sends from a forwarder's
`local_rtcp_port` (latching) and what it reads there (our PLI/FIR) stay plain RTCP. So CallVault decrypts
RTP and sends its keyframe requests in the clear.

`SrtpKey` is one forwarder's key, made fresh from the OS's random source for each forwarder and never
stored: its `repr`/`str` show the suite only, so a key in a log line, an exception or a model dump says
`<redacted>`. `SrtpReceiver` decrypts one track's packets: a packet that fails authentication (another
key, forged, corrupted) or the replay check (an index already received, or older than the replay window)
is dropped and counted, never raised.
"""

from __future__ import annotations

import base64
import secrets
from enum import StrEnum
from typing import Any

import pylibsrtp

MASTER_LENGTH = 30
"""Bytes of an AES_CM_128 master key (16) and master salt (14)."""
BUFFER_SIZE = 4096
"""Largest datagram decrypted (the UDP edge reads at most this much: recorder/ingest/udp.RECV_SIZE)."""
_FFI: Any = getattr(pylibsrtp, "ffi", None)
_LIB: Any = getattr(pylibsrtp, "lib", None)
"""pylibsrtp's cffi binding of libsrtp (None if a release stops exposing it: then the slower public API)."""
_REPLAY_STATUSES = frozenset({9, 10})
"""srtp_err_status_replay_fail, srtp_err_status_replay_old (libsrtp 2's srtp_err_status_t)."""
REPLAY_WINDOW = 1024
"""Packets the replay check remembers behind the newest: a reordered packet within it is still accepted
(libsrtp's default is 128; a video keyframe is often more packets than that)."""


class SrtpSuite(StrEnum):
    """The crypto suites Janus's forwarders offer (RFC 4568 names)."""

    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
    AES_CM_128_HMAC_SHA1_32 = "AES_CM_128_HMAC_SHA1_32"

    @property
    def tag_bits(self) -> int:
        """Janus's `srtp_suite` value: the authentication tag's length in bits."""
        return 80 if self is SrtpSuite.AES_CM_128_HMAC_SHA1_80 else 32

    @property
    def profile(self) -> int:
        if self is SrtpSuite.AES_CM_128_HMAC_SHA1_80:
            return int(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        return int(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32)


class SrtpKey:
    """A forwarder's SRTP master key and salt. Its text forms never show the key material; it is no
    dataclass or model, so `asdict`/`model_dump`/pickle cannot copy it into a state file or a response."""

    __slots__ = ("_material", "suite")

    def __init__(self, suite: SrtpSuite, material: bytes) -> None:
        if len(material) != MASTER_LENGTH:
            raise ValueError(f"an SRTP master key and salt is {MASTER_LENGTH} bytes")
        self.suite = SrtpSuite(suite)
        self._material = bytes(material)

    @property
    def material(self) -> bytes:
        return self._material

    @classmethod
    def generate(cls, suite: SrtpSuite = SrtpSuite.AES_CM_128_HMAC_SHA1_80) -> SrtpKey:
        """A fresh key from the OS's random source."""
        return cls(suite, secrets.token_bytes(MASTER_LENGTH))

    def inline(self) -> str:
        """The key as Janus's `srtp_crypto` (and SDES's `inline:`) takes it: base64 of key and salt."""
        return base64.b64encode(self.material).decode("ascii")

    def __repr__(self) -> str:
        return f"SrtpKey({self.suite.value}, <redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an SRTP key is not pickled")

    def __copy__(self) -> SrtpKey:
        return self  # immutable: a copy is the key itself (and `asdict` keeps it a redacting SrtpKey)

    def __deepcopy__(self, memo: dict[int, object]) -> SrtpKey:
        return self


def _policy(key: SrtpKey, ssrc_type: int) -> pylibsrtp.Policy:
    policy = pylibsrtp.Policy(key=key.material, ssrc_type=ssrc_type, srtp_profile=key.suite.profile)
    policy.window_size = REPLAY_WINDOW
    return policy


class SrtpReceiver:
    """Decrypts one track's SRTP packets (any SSRC: a sender that restarts keeps its key).

    `unprotect` calls libsrtp's `srtp_unprotect` through pylibsrtp's own cffi binding into one buffer
    allocated up front: `pylibsrtp.Session.unprotect` allocates per call and costs about twice as much
    CPU per packet (bench/srtp.py). Should a pylibsrtp release no longer expose what that needs, it falls
    back to `Session.unprotect`."""

    __slots__ = (
        "_buffer",
        "_ctx",
        "_length",
        "_session",
        "_unprotect",
        "_view",
        "replayed",
        "suite",
        "unauthenticated",
    )

    def __init__(self, key: SrtpKey) -> None:
        self.suite = key.suite
        self._session = pylibsrtp.Session(_policy(key, pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.unauthenticated = 0
        """Packets dropped because they failed authentication (another key, forged, corrupted, cut)."""
        self.replayed = 0
        """Packets dropped by the replay check: an index already received (a duplicate or a replay) or
        older than the replay window."""
        self._unprotect: Any = None
        try:
            self._ctx = self._session._srtp[0]
            self._buffer = _FFI.new("char[]", BUFFER_SIZE)
            self._view = _FFI.buffer(self._buffer)
            self._length = _FFI.new("int *")
            self._unprotect = _LIB.srtp_unprotect
        except AttributeError:  # pragma: no cover - another pylibsrtp layout: the slower public call
            self._unprotect = None

    def unprotect(self, data: bytes) -> bytes | None:
        """The RTP packet inside `data`; None (counted) when it fails authentication or the replay check."""
        if self._unprotect is None:  # pragma: no cover
            return self._unprotect_slow(data)
        size = len(data)
        if size > BUFFER_SIZE:
            self.unauthenticated += 1
            return None
        view, length = self._view, self._length
        view[0:size] = data
        length[0] = size
        status = self._unprotect(self._ctx, self._buffer, length)
        if status == 0:
            return view[0 : length[0]]  # type: ignore[no-any-return]
        if status in _REPLAY_STATUSES:
            self.replayed += 1
        else:
            self.unauthenticated += 1
        return None

    def _unprotect_slow(self, data: bytes) -> bytes | None:
        try:
            return self._session.unprotect(data)
        except pylibsrtp.Error as exc:
            if str(exc).startswith("replay check failed"):
                self.replayed += 1
            else:
                self.unauthenticated += 1
        except ValueError:  # longer than pylibsrtp's buffer (1,500 bytes)
            self.unauthenticated += 1
        return None

    def __repr__(self) -> str:
        return f"SrtpReceiver({self.suite.value})"


class SrtpSender:
    """Encrypts RTP as an SFU's forwarder does (tests and benchmarks play Janus with it)."""

    __slots__ = ("_session",)

    def __init__(self, key: SrtpKey) -> None:
        self._session = pylibsrtp.Session(_policy(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))

    def protect(self, packet: bytes) -> bytes:
        return self._session.protect(packet)
