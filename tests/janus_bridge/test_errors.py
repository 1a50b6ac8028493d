"""Error mapping: every Janus core and VideoRoom code has its typed error (apierror.h, janus_videoroom.c)."""

from __future__ import annotations

import pytest

from janus_bridge import errors
from janus_bridge.errors import (
    API_ERRORS,
    VIDEOROOM_ERRORS,
    ForwarderNotCreatedError,
    JanusApiError,
    JanusConnectionError,
    JanusError,
    JanusTimeoutError,
    PluginError,
    VideoRoomError,
    api_error,
    videoroom_error,
)

CORE_CODES = {
    403: errors.UnauthorizedError,
    405: errors.UnauthorizedPluginError,
    450: errors.TransportSpecificError,
    452: errors.MissingRequestError,
    453: errors.UnknownRequestError,
    454: errors.InvalidJsonError,
    455: errors.InvalidJsonObjectError,
    456: errors.MissingMandatoryElementError,
    457: errors.InvalidRequestPathError,
    458: errors.SessionNotFoundError,
    459: errors.HandleNotFoundError,
    460: errors.PluginNotFoundError,
    461: errors.PluginAttachError,
    462: errors.PluginMessageError,
    463: errors.PluginDetachError,
    464: errors.JsepUnknownTypeError,
    465: errors.JsepInvalidSdpError,
    466: errors.TrickleInvalidStreamError,
    467: errors.InvalidElementTypeError,
    468: errors.SessionConflictError,
    469: errors.UnexpectedAnswerError,
    470: errors.TokenNotFoundError,
    471: errors.WebRtcStateError,
    472: errors.NotAcceptingSessionsError,
    490: errors.UnknownApiError,
}

VIDEOROOM_CODES = {
    421: errors.VideoRoomNoMessageError,
    422: errors.VideoRoomInvalidJsonError,
    423: errors.VideoRoomInvalidRequestError,
    424: errors.JoinFirstError,
    425: errors.AlreadyJoinedError,
    426: errors.NoSuchRoomError,
    427: errors.RoomExistsError,
    428: errors.NoSuchFeedError,
    429: errors.MissingElementError,
    430: errors.InvalidElementError,
    431: errors.InvalidSdpTypeError,
    432: errors.PublishersFullError,
    433: errors.VideoRoomUnauthorizedError,
    434: errors.AlreadyPublishedError,
    435: errors.NotPublishedError,
    436: errors.IdExistsError,
    437: errors.InvalidSdpError,
    499: errors.VideoRoomUnknownError,
}


def test_maps_are_complete() -> None:
    assert API_ERRORS == CORE_CODES
    assert VIDEOROOM_ERRORS == VIDEOROOM_CODES


@pytest.mark.parametrize(("code", "cls"), sorted(CORE_CODES.items()))
def test_api_error_by_code(code: int, cls: type[JanusApiError]) -> None:
    err = api_error(code, "Janus says why")
    assert type(err) is cls
    assert isinstance(err, JanusApiError) and isinstance(err, JanusError)
    assert not isinstance(err, PluginError)
    assert (err.code, err.reason) == (code, "Janus says why")
    assert str(err) == f"{code} Janus says why"


@pytest.mark.parametrize(("code", "cls"), sorted(VIDEOROOM_CODES.items()))
def test_videoroom_error_by_code(code: int, cls: type[VideoRoomError]) -> None:
    err = videoroom_error(code, "No such room (42)")
    assert type(err) is cls
    assert isinstance(err, VideoRoomError) and isinstance(err, PluginError)
    assert not isinstance(err, JanusApiError)
    assert (err.code, err.reason) == (code, "No such room (42)")


def test_default_message_when_janus_gives_no_reason() -> None:
    assert api_error(458).reason == "Session not found"
    assert videoroom_error(433, None).reason == "Unauthorized"
    assert str(errors.SessionNotFoundError()) == "458 Session not found"


def test_unknown_codes_keep_code_and_reason() -> None:
    core = api_error(499, "new in a later Janus")
    assert type(core) is JanusApiError and core.code == 499 and core.reason == "new in a later Janus"
    plugin = videoroom_error(999, "?")
    assert type(plugin) is VideoRoomError and plugin.code == 999


def test_transport_errors_are_not_janus_errors() -> None:
    assert not issubclass(JanusConnectionError, JanusError)
    assert issubclass(JanusTimeoutError, JanusConnectionError) and issubclass(JanusTimeoutError, TimeoutError)


def test_forwarder_not_created_names_mids() -> None:
    err = ForwarderNotCreatedError(["7", "9"], [11])
    assert isinstance(err, VideoRoomError)
    assert err.missing_mids == ("7", "9") and err.stopped_stream_ids == (11,)
    assert "7, 9" in str(err)
