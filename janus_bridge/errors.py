"""Typed Janus errors.

Three families, kept apart so callers can tell "Janus refused" from "we could not talk to Janus":

- ``JanusApiError``: the core API answered ``{"janus": "error", "error": {"code", "reason"}}`` (codes from
  janus-gateway ``apierror.h``: 403, 405, 450, 452-472, 490).
- ``PluginError`` > ``VideoRoomError``: the VideoRoom plugin answered with ``error_code``/``error`` in
  its data (codes from ``plugins/janus_videoroom.c``: 421-437, 499).
- ``JanusConnectionError`` / ``JanusTimeoutError``: transport trouble (not connected, connection lost,
  no answer in time). These carry no Janus code.

``api_error(code, reason)`` and ``videoroom_error(code, reason)`` build the most specific class for a code;
unknown codes get the family's base class, so nothing Janus says is lost.
"""

from __future__ import annotations

from collections.abc import Sequence


class JanusError(Exception):
    """Any error answered by Janus: a numeric ``code`` and Janus's own ``reason`` text."""

    code: int = 0
    message: str = "Janus error"

    def __init__(self, code: int | None = None, reason: str | None = None) -> None:
        if code is not None:
            self.code = code
        self.reason = reason if reason else self.message
        super().__init__(f"{self.code} {self.reason}")


# -- core API (apierror.h) ----------------------------------------------------------------------------


class JanusApiError(JanusError):
    """Core Janus API error (``janus: error``)."""

    message = "Janus API error"


class UnauthorizedError(JanusApiError):
    code = 403
    message = "Unauthorized request (wrong or missing secret/token)"


class UnauthorizedPluginError(JanusApiError):
    code = 405
    message = "Unauthorized access to plugin (token is not allowed to)"


class TransportSpecificError(JanusApiError):
    code = 450
    message = "Transport specific error"


class MissingRequestError(JanusApiError):
    code = 452
    message = "Missing request"


class UnknownRequestError(JanusApiError):
    code = 453
    message = "Unknown request"


class InvalidJsonError(JanusApiError):
    code = 454
    message = "Invalid JSON"


class InvalidJsonObjectError(JanusApiError):
    code = 455
    message = "Invalid JSON Object"


class MissingMandatoryElementError(JanusApiError):
    code = 456
    message = "Missing mandatory element"


class InvalidRequestPathError(JanusApiError):
    code = 457
    message = "Invalid path for this request"


class SessionNotFoundError(JanusApiError):
    code = 458
    message = "Session not found"


class HandleNotFoundError(JanusApiError):
    code = 459
    message = "Handle not found"


class PluginNotFoundError(JanusApiError):
    code = 460
    message = "Plugin not found"


class PluginAttachError(JanusApiError):
    code = 461
    message = "Error attaching plugin"


class PluginMessageError(JanusApiError):
    code = 462
    message = "Error sending message to plugin"


class PluginDetachError(JanusApiError):
    code = 463
    message = "Error detaching from plugin"


class JsepUnknownTypeError(JanusApiError):
    code = 464
    message = "Unsupported JSEP type"


class JsepInvalidSdpError(JanusApiError):
    code = 465
    message = "Invalid SDP"


class TrickleInvalidStreamError(JanusApiError):
    code = 466
    message = "Invalid stream"


class InvalidElementTypeError(JanusApiError):
    code = 467
    message = "Invalid element type"


class SessionConflictError(JanusApiError):
    code = 468
    message = "Session ID already in use"


class UnexpectedAnswerError(JanusApiError):
    code = 469
    message = "Unexpected ANSWER (no OFFER)"


class TokenNotFoundError(JanusApiError):
    code = 470
    message = "Token not found"


class WebRtcStateError(JanusApiError):
    code = 471
    message = "Wrong WebRTC state"


class NotAcceptingSessionsError(JanusApiError):
    code = 472
    message = "Currently not accepting new sessions"


class UnknownApiError(JanusApiError):
    code = 490
    message = "Unknown error"


# -- plugins -------------------------------------------------------------------------------------------


class PluginError(JanusError):
    """A plugin answered with ``error_code``/``error`` in its data (any plugin)."""

    message = "Plugin error"


# -- VideoRoom plugin (janus_videoroom.c) --------------------------------------------------------------


class VideoRoomError(PluginError):
    """VideoRoom plugin error (``error_code`` in the plugin's answer)."""

    message = "VideoRoom error"


class VideoRoomNoMessageError(VideoRoomError):
    code = 421
    message = "No message"


class VideoRoomInvalidJsonError(VideoRoomError):
    code = 422
    message = "Invalid JSON"


class VideoRoomInvalidRequestError(VideoRoomError):
    code = 423
    message = "Invalid request"


class JoinFirstError(VideoRoomError):
    code = 424
    message = "Join first"


class AlreadyJoinedError(VideoRoomError):
    code = 425
    message = "Already joined"


class NoSuchRoomError(VideoRoomError):
    code = 426
    message = "No such room"


class RoomExistsError(VideoRoomError):
    code = 427
    message = "Room already exists"


class NoSuchFeedError(VideoRoomError):
    """Unknown publisher (or unknown forwarder ``stream_id`` in ``stop_rtp_forward``)."""

    code = 428
    message = "No such feed"


class MissingElementError(VideoRoomError):
    code = 429
    message = "Missing mandatory element"


class InvalidElementError(VideoRoomError):
    code = 430
    message = "Invalid element"


class InvalidSdpTypeError(VideoRoomError):
    code = 431
    message = "Invalid SDP type"


class PublishersFullError(VideoRoomError):
    code = 432
    message = "Maximum number of publishers reached"


class VideoRoomUnauthorizedError(VideoRoomError):
    """Wrong room ``secret``/``pin`` or wrong ``admin_key``."""

    code = 433
    message = "Unauthorized"


class AlreadyPublishedError(VideoRoomError):
    code = 434
    message = "Already published"


class NotPublishedError(VideoRoomError):
    code = 435
    message = "Not published"


class IdExistsError(VideoRoomError):
    code = 436
    message = "ID already exists"


class InvalidSdpError(VideoRoomError):
    code = 437
    message = "Invalid SDP"


class VideoRoomUnknownError(VideoRoomError):
    code = 499
    message = "Unknown error"


class ForwarderNotCreatedError(VideoRoomError):
    """``rtp_forward`` answered without a forwarder for some requested streams.

    Janus skips a ``mid`` the publisher does not have and still answers success; this client checks the
    answer. ``missing_mids`` names what was not forwarded; ``stopped_stream_ids`` lists forwarders that
    the same request did create and that were stopped again so the request is all-or-nothing.
    """

    code = 0
    message = "rtp_forward created no forwarder for some streams"

    def __init__(self, missing_mids: Sequence[str], stopped_stream_ids: Sequence[int] = ()) -> None:
        self.missing_mids = tuple(missing_mids)
        self.stopped_stream_ids = tuple(stopped_stream_ids)
        super().__init__(
            None,
            f"rtp_forward created no forwarder for mid(s) {', '.join(self.missing_mids)} "
            "(the publisher has no such stream)",
        )


# -- transport -----------------------------------------------------------------------------------------


class JanusConnectionError(Exception):
    """Not connected to Janus, or the connection was lost before an answer came."""


class JanusTimeoutError(JanusConnectionError, TimeoutError):
    """No answer from Janus within the request timeout."""


class JanusProtocolError(Exception):
    """Janus answered something this client cannot interpret (shape, type)."""


API_ERRORS: dict[int, type[JanusApiError]] = {
    cls.code: cls
    for cls in (
        UnauthorizedError,
        UnauthorizedPluginError,
        TransportSpecificError,
        MissingRequestError,
        UnknownRequestError,
        InvalidJsonError,
        InvalidJsonObjectError,
        MissingMandatoryElementError,
        InvalidRequestPathError,
        SessionNotFoundError,
        HandleNotFoundError,
        PluginNotFoundError,
        PluginAttachError,
        PluginMessageError,
        PluginDetachError,
        JsepUnknownTypeError,
        JsepInvalidSdpError,
        TrickleInvalidStreamError,
        InvalidElementTypeError,
        SessionConflictError,
        UnexpectedAnswerError,
        TokenNotFoundError,
        WebRtcStateError,
        NotAcceptingSessionsError,
        UnknownApiError,
    )
}

VIDEOROOM_ERRORS: dict[int, type[VideoRoomError]] = {
    cls.code: cls
    for cls in (
        VideoRoomNoMessageError,
        VideoRoomInvalidJsonError,
        VideoRoomInvalidRequestError,
        JoinFirstError,
        AlreadyJoinedError,
        NoSuchRoomError,
        RoomExistsError,
        NoSuchFeedError,
        MissingElementError,
        InvalidElementError,
        InvalidSdpTypeError,
        PublishersFullError,
        VideoRoomUnauthorizedError,
        AlreadyPublishedError,
        NotPublishedError,
        IdExistsError,
        InvalidSdpError,
        VideoRoomUnknownError,
    )
}


def api_error(code: int, reason: str | None = None) -> JanusApiError:
    """The typed core API error for ``code`` (``JanusApiError`` itself for codes Janus may add later)."""
    cls = API_ERRORS.get(code)
    return cls(code, reason) if cls is not None else JanusApiError(code, reason)


def videoroom_error(code: int, reason: str | None = None) -> VideoRoomError:
    """The typed VideoRoom error for ``code`` (``VideoRoomError`` itself for unknown codes)."""
    cls = VIDEOROOM_ERRORS.get(code)
    return cls(code, reason) if cls is not None else VideoRoomError(code, reason)
