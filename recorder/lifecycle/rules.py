"""Retention rules and their evaluation (pure: no I/O, no clock; `now` and the facts come in).

A rule matches recordings by room, tags (the recording's metadata: `key` or `key:value`) and recording
kind, and says how many days each kind of object is kept after the recording finished. The first rule
(in order) that matches a recording and names a kind decides that kind's period; kinds no rule names use
the defaults. `None` days means "keep forever".

Object kinds, from the object's name in the recording:
- `originals`: the per-participant tracks (everything not below);
- `composite`: `composite-*` files and anything under `composite/`;
- `transcript`: `*.vtt`, `*.srt` and names with `transcript`;
- `forensic`: raw captures (`*.pcapng`, `*.pcap`) and names with `forensic`;
- `record`: the manifest, its signature and other JSON/text records of the recording: kept as long as any
  other object of the recording is, and deleted with the last one (they say what the recording held).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from recorder.names import SAFE_ID_PATTERN

DAY = 86400.0
MAX_DAYS = 36500


class ObjectKind(StrEnum):
    ORIGINALS = "originals"
    COMPOSITE = "composite"
    TRANSCRIPT = "transcript"
    FORENSIC = "forensic"


RECORD = "record"
"""The kind of the recording's own records (manifest, signature): they follow the last media object."""

MEDIA_KINDS = tuple(ObjectKind)

RuleId = Annotated[str, StringConstraints(pattern=f"^{SAFE_ID_PATTERN}$")]
TagFilter = Annotated[
    str, StringConstraints(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9_.-]+(:.*)?$")
]
Days = Annotated[float, Field(ge=0, le=MAX_DAYS)]


class KeepPeriods(BaseModel):
    """Days each kind of object is kept after the recording finished; unset: not decided here."""

    model_config = ConfigDict(extra="forbid")

    originals: Days | None = None
    composite: Days | None = None
    transcript: Days | None = None
    forensic: Days | None = None

    def of(self, kind: ObjectKind) -> float | None:
        value: float | None = getattr(self, kind.value)
        return value


class RuleSpec(BaseModel):
    """Which recordings (every condition given must hold) and how long each kind of object is kept."""

    model_config = ConfigDict(extra="forbid")

    rooms: list[Annotated[str, StringConstraints(pattern=f"^{SAFE_ID_PATTERN}$")]] = Field(
        default_factory=list, max_length=1000, description="Any of these rooms (empty: every room)."
    )
    tags: list[TagFilter] = Field(
        default_factory=list,
        max_length=50,
        description="Every one of these tags of the recording: 'key' (present) or 'key:value'.",
    )
    keep_days: KeepPeriods = Field(description="Days kept after the recording finished, by object kind.")

    @field_validator("keep_days")
    @classmethod
    def _names_a_kind(cls, keep: KeepPeriods) -> KeepPeriods:
        if not keep.model_fields_set:
            raise ValueError("name at least one kind: originals, composite, transcript or forensic")
        return keep


class RetentionRule(RuleSpec):
    """A named rule (the name is in plans, tombstones, webhooks and the audit log)."""

    rule_id: RuleId = Field(description="Names the rule in plans, tombstones and the audit log.")

    def matches(self, facts: RecordingFacts) -> bool:
        if self.rooms and facts.room_id not in self.rooms:
            return False
        for tag in self.tags:
            key, sep, value = tag.partition(":")
            if key not in facts.tags or (sep and facts.tags[key] != value):
                return False
        return True


class RetentionPolicy(BaseModel):
    """The defaults (settings) and the rules in order (settings first, then those set through the API)."""

    model_config = ConfigDict(extra="forbid")

    defaults: KeepPeriods = Field(default_factory=KeepPeriods)
    rules: list[RetentionRule] = Field(default_factory=list)


class RecordingFacts(BaseModel):
    """What evaluation needs of a recording."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recording_id: str
    room_id: str | None = None
    tags: Mapping[str, str] = Field(default_factory=dict)
    finished_at: float | None = Field(default=None, description="Unix seconds; None: still recording.")


class KindPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delete_after: float | None = Field(description="Unix seconds; None: kept forever.")
    rule: str = Field(description="The rule that decided it ('default' for the settings' defaults).")


class DeletionPlan(BaseModel):
    """When each kind of the recording's objects is due, and the recording as a whole (its last kind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: dict[ObjectKind, KindPlan]

    @property
    def delete_after(self) -> float | None:
        """When the last object is due if the recording has every kind (None: some kind is kept forever);
        `delete_after_for` answers for the kinds it has."""
        return self.delete_after_for(self.kinds)

    def delete_after_for(self, kinds: Iterable[ObjectKind]) -> float | None:
        """When the last object of these kinds is due: then the recording becomes a tombstone."""
        times = [p.delete_after if (p := self.kinds.get(k)) is not None else None for k in kinds]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

    def due(self, kind: ObjectKind | str, now: float) -> bool:
        if kind == RECORD:
            return False
        plan = self.kinds.get(ObjectKind(kind))
        return plan is not None and plan.delete_after is not None and plan.delete_after <= now

    def next_deletion(self, pending: Iterable[ObjectKind]) -> float | None:
        """The earliest time one of the `pending` kinds (kinds the recording still has) is due."""
        times = [
            p.delete_after
            for k in pending
            if (p := self.kinds.get(k)) is not None and p.delete_after is not None
        ]
        return min(times) if times else None

    def rule_of(self, kind: ObjectKind | str) -> str | None:
        if kind == RECORD:
            return None
        plan = self.kinds.get(ObjectKind(kind))
        return plan.rule if plan is not None else None


def evaluate(facts: RecordingFacts, policy: RetentionPolicy) -> DeletionPlan | None:
    """The recording's deletion plan; None while it is in progress (nothing is due before it ends)."""
    if facts.finished_at is None:
        return None
    kinds: dict[ObjectKind, KindPlan] = {}
    for kind in MEDIA_KINDS:
        days, rule = policy.defaults.of(kind), "default"
        for candidate in policy.rules:
            value = candidate.keep_days.of(kind)
            if value is not None and candidate.matches(facts):
                days, rule = value, candidate.rule_id
                break
        at = None if days is None else facts.finished_at + days * DAY
        kinds[kind] = KindPlan(delete_after=at, rule=rule)
    return DeletionPlan(kinds=kinds)


ENCRYPTED_SUFFIX = ".age"
_MANIFEST = re.compile(r"^manifest(\.\d+)?\.json(\.sig)?$")


def kind_of(name: str) -> ObjectKind | str:
    """The kind of a recording's object, from its name (relative to the recording)."""
    if name.endswith(ENCRYPTED_SUFFIX):  # an object encrypted at rest is of the kind of its plaintext
        name = name[: -len(ENCRYPTED_SUFFIX)]
    path = PurePosixPath(name)
    lower = name.lower()
    base = path.name.lower()
    if _MANIFEST.match(base) or (path.suffix.lower() in {".json", ".txt"} and "/" not in name):
        return RECORD
    if base.startswith("composite") or path.parts[0].lower() == "composite":
        return ObjectKind.COMPOSITE
    if path.suffix.lower() in {".vtt", ".srt"} or "transcript" in lower:
        return ObjectKind.TRANSCRIPT
    if path.suffix.lower() in {".pcapng", ".pcap"} or "forensic" in lower:
        return ObjectKind.FORENSIC
    return ObjectKind.ORIGINALS


def due_objects(names: Sequence[str], plan: DeletionPlan, now: float) -> tuple[list[str], bool]:
    """(names due now, whether the recording is then gone entirely). The records (manifest...) are due
    only with the last media object."""
    media = [n for n in names if kind_of(n) != RECORD]
    due = [n for n in media if plan.due(kind_of(n), now)]
    whole = len(due) == len(media) and (bool(media) or _all_due(plan, now))
    if whole:
        return list(names), True
    return due, False


def _all_due(plan: DeletionPlan, now: float) -> bool:
    after = plan.delete_after
    return after is not None and after <= now
