"""Which recording and track each .mjr file becomes: a VideoRoom's files of one call are one recording,
tracks named as the service names live ones, unsafe names never reach a path."""

from __future__ import annotations

from recorder.mjr.naming import identify, plan
from recorder.names import SAFE_ID


def test_a_videoroom_call_is_one_recording_with_a_track_per_file() -> None:
    sources = [
        identify(0, "videoroom-1234-user-111-1700000000000000-audio-0", "audio", 100.0, 160.0),
        identify(1, "videoroom-1234-user-111-1700000000000001-video-1", "video", 100.1, 160.0),
        identify(2, "videoroom-1234-user-222-1700000030000000-video-1", "video", 130.0, 190.0),
        identify(3, "videoroom-1234-user-333-1700009000000000-audio", "audio", 9000.0, 9060.0),  # later call
        identify(4, "videoroom-77-user-111-1700000000000000-audio-0", "audio", 100.0, 160.0),  # other room
    ]
    first, other_room, later = plan(sources)
    assert first.recording_id == "janus-1234-19700101T000140Z" and first.room_id == "1234"
    assert [t.track for t in first.tracks] == ["111-audio-0", "111-video-1", "222-video-1"]
    assert [t.participant_id for t in first.tracks] == ["111", "111", "222"]
    assert (first.start, first.end) == (100.0, 190.0)
    assert other_room.room_id == "77" and [t.file_index for t in other_room.tracks] == [4]
    assert [t.track for t in later.tracks] == ["333-audio-0"]


def test_other_names_group_audio_with_video_of_the_same_name() -> None:
    a = identify(0, "echotest-42-audio", "audio", 10.0, 20.0)
    v = identify(1, "echotest-42-video", "video", 10.0, 20.0)
    (recording,) = plan([a, v])
    assert recording.room_id is None and [t.track for t in recording.tracks] == [
        "echotest-42-audio",
        "echotest-42-video",
    ]
    assert all(t.participant_id is None for t in recording.tracks)


def test_unsafe_names_are_replaced_by_hashes_and_repeats_made_unique() -> None:
    evil = identify(0, "videoroom-../../etc-user-$(rm -rf)-1-video-1", "video", 0.0, 1.0)
    assert evil.room_id is not None and evil.room_id.startswith("room-") and SAFE_ID.fullmatch(evil.room_id)
    assert evil.participant_id is not None and SAFE_ID.fullmatch(evil.participant_id)
    odd = identify(1, "../..\n", "video", 0.0, 1.0)
    twice = identify(2, "../..\n", "video", 0.5, 1.0)
    (recording,) = plan([odd, twice])
    assert SAFE_ID.fullmatch(recording.recording_id)
    names = [t.track for t in recording.tracks]
    assert len(set(names)) == 2 and all(SAFE_ID.fullmatch(n) for n in names)
