"""Retention rules evaluated as a pure function: first matching rule per kind, defaults, keep forever."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recorder.lifecycle.rules import (
    DAY,
    RECORD,
    KeepPeriods,
    ObjectKind,
    RecordingFacts,
    RetentionPolicy,
    RetentionRule,
    due_objects,
    evaluate,
    kind_of,
)

POLICY = RetentionPolicy(
    defaults=KeepPeriods(originals=30, composite=2555),
    rules=[
        RetentionRule(rule_id="vip", tags=["tier:vip"], keep_days=KeepPeriods(originals=365)),
        RetentionRule(rule_id="billing", rooms=["billing"], keep_days=KeepPeriods(originals=90, forensic=7)),
        RetentionRule(rule_id="complaints", tags=["complaint"], keep_days=KeepPeriods(composite=3650)),
    ],
)


def facts(room: str | None = "billing", **tags: str) -> RecordingFacts:
    return RecordingFacts(recording_id="r1", room_id=room, tags=tags, finished_at=1000.0)


def test_first_matching_rule_decides_each_kind() -> None:
    plan = evaluate(facts(tier="vip", complaint="yes"), POLICY)
    assert plan is not None
    assert plan.kinds[ObjectKind.ORIGINALS].rule == "vip"
    assert plan.kinds[ObjectKind.ORIGINALS].delete_after == 1000 + 365 * DAY
    assert plan.kinds[ObjectKind.FORENSIC].rule == "billing"  # vip says nothing of forensic captures
    assert plan.kinds[ObjectKind.COMPOSITE].rule == "complaints"
    assert plan.kinds[ObjectKind.TRANSCRIPT].delete_after is None  # no rule, no default: kept forever


def test_rooms_and_tag_values_must_match() -> None:
    plan = evaluate(facts(room="sales", tier="gold"), POLICY)
    assert plan is not None
    assert plan.kinds[ObjectKind.ORIGINALS].rule == "default"
    assert plan.kinds[ObjectKind.ORIGINALS].delete_after == 1000 + 30 * DAY


def test_nothing_is_planned_while_recording() -> None:
    assert evaluate(RecordingFacts(recording_id="r1", finished_at=None), POLICY) is None


def test_kinds_from_object_names() -> None:
    assert kind_of("manifest.json") == RECORD and kind_of("manifest.1.json.sig") == RECORD
    assert kind_of("1001-video-0.webm") is ObjectKind.ORIGINALS
    assert kind_of("segments/1001-video-0.000001.webm") is ObjectKind.ORIGINALS
    assert kind_of("composite-grid.mp4") is ObjectKind.COMPOSITE
    assert kind_of("composite/grid.mp4") is ObjectKind.COMPOSITE
    assert kind_of("transcript.vtt") is ObjectKind.TRANSCRIPT
    assert kind_of("capture/1001.pcapng") is ObjectKind.FORENSIC
    assert kind_of("capture/1001.pcapng.age") is ObjectKind.FORENSIC  # encrypted at rest: same kind
    assert kind_of("transcript.vtt.age") is ObjectKind.TRANSCRIPT


def test_records_go_with_the_last_media_object() -> None:
    plan = evaluate(facts(), POLICY)
    assert plan is not None
    names = ["manifest.json", "manifest.json.sig", "1001-video-0.webm", "composite-grid.mp4"]
    assert due_objects(names, plan, 1000 + 91 * DAY) == (["1001-video-0.webm"], False)
    assert due_objects(names, plan, 1000 + 2556 * DAY) == (names, True)
    assert plan.delete_after_for([ObjectKind.ORIGINALS, ObjectKind.COMPOSITE]) == 1000 + 2555 * DAY


def test_a_rule_must_name_a_kind_and_a_valid_id() -> None:
    with pytest.raises(ValidationError, match="name at least one kind"):
        RetentionRule(rule_id="empty", keep_days=KeepPeriods())
    with pytest.raises(ValidationError):
        RetentionRule(rule_id="../x", keep_days=KeepPeriods(originals=1))
    with pytest.raises(ValidationError):
        KeepPeriods(originals=-1)
