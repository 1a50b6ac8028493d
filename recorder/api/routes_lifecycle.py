"""Retention: the rules (admin sets them, auditors read them), each recording's plan and what was deleted,
the dry run (what will be deleted and when), and a pass of the scheduler on demand (admin)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from recorder.api import examples
from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.problems import ApiError
from recorder.api.registry import TAGS, Call, Registry
from recorder.api.times import utc
from recorder.lifecycle import catalog as lc
from recorder.lifecycle import examples as lifecycle_examples
from recorder.lifecycle.fleet_pass import PassBusyError
from recorder.lifecycle.models import (
    DryRunPage,
    DryRunQuery,
    DueOut,
    KindOut,
    LifecycleOut,
    ObjectOut,
    PassOut,
    RuleList,
)
from recorder.lifecycle.rules import RECORD, DeletionPlan, ObjectKind, RetentionRule, RuleSpec, kind_of
from recorder.lifecycle.service import Lifecycle
from recorder.storage.base import StorageError

ADMIN: set[Role] = set()
READERS = {Role.AUDITOR}
TAG = "lifecycle"


def _kinds(plan: DeletionPlan, until: float | None = None) -> list[KindOut]:
    return [
        KindOut(kind=k.value, delete_after=_utc(p.delete_after), rule=p.rule)
        for k, p in plan.kinds.items()
        if until is None or (p.delete_after is not None and p.delete_after <= until)
    ]


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else utc(seconds)


def register(reg: Registry, ctx: ApiContext, lifecycle: Lifecycle) -> None:
    TAGS.setdefault(TAG, "Retention rules, each recording's deletion plan, the dry run; export jobs.")
    examples.BODIES.update(lifecycle_examples.BODIES)
    db = ctx.db
    settings = lifecycle.settings

    async def rule_list() -> RuleList:
        rules = await db.run(lambda: lc.load_rules(db.connection))
        return RuleList(defaults=settings.defaults, settings_rules=settings.rules, rules=rules)

    @reg.add("GET", "/v1/lifecycle/rules", READERS, "Retention rules", TAG, None, response=RuleList)
    async def list_retention_rules(call: Call) -> RuleList:
        return await rule_list()

    @reg.add(
        "PUT",
        "/v1/lifecycle/rules/{rule_id}",
        ADMIN,
        "Set a retention rule (every recording is planned again)",
        TAG,
        "lifecycle.rule_set",
        body=RuleSpec,
        response=RuleList,
        errors=(409,),
    )
    async def put_retention_rule(call: Call) -> RuleList:
        rule_id = call.path["rule_id"]
        if any(r.rule_id == rule_id for r in settings.rules):
            raise ApiError(409, f"rule {rule_id} is set in the settings (lifecycle.rules)", "settings-rule")
        rule = RetentionRule(rule_id=rule_id, **call.body(RuleSpec).model_dump(exclude_unset=True))
        new = await db.run(lambda: lc.put_rule(db.connection, rule, call.principal.name))
        call.detail = {"rule": rule.model_dump_json()[:500], "new": new}
        await lifecycle.rules_changed()
        return await rule_list()

    @reg.add(
        "DELETE",
        "/v1/lifecycle/rules/{rule_id}",
        ADMIN,
        "Remove a retention rule (every recording is planned again)",
        TAG,
        "lifecycle.rule_delete",
        response=RuleList,
        errors=(404,),
    )
    async def delete_retention_rule(call: Call) -> RuleList:
        rule_id = call.path["rule_id"]
        if not await db.run(lambda: lc.delete_rule(db.connection, rule_id)):
            raise ApiError(404, f"no retention rule {rule_id} set through the API", "not-found")
        await lifecycle.rules_changed()
        return await rule_list()

    @reg.add(
        "GET",
        "/v1/recordings/{recording_id}/lifecycle",
        {Role.SUPERVISOR, Role.AUDITOR},
        "A recording's retention: when each object is deleted, by which rule, what was deleted",
        TAG,
        "recording.lifecycle",
        response=LifecycleOut,
        errors=(404, 503),
    )
    async def recording_lifecycle(call: Call) -> LifecycleOut:
        rid = call.path["recording_id"]

        def read() -> tuple[object, list[lc.DeletedObject]] | None:
            row = lc.lifecycle_row(db.connection, rid)
            return None if row is None else (dict(row), lc.deleted_objects(db.connection, rid))

        found = await db.run(read)
        if found is None:
            raise ApiError(404, f"no recording {rid}", "not-found")
        row, deleted = found
        assert isinstance(row, dict)
        plan = DeletionPlan.model_validate_json(row["delete_plan"]) if row["delete_plan"] else None
        names: list[str] = []
        if row["status"] != "deleted":
            files = await ctx.files(rid)
            try:
                names = sorted(
                    {*await asyncio.to_thread(files.stored), *await asyncio.to_thread(files.local)}
                )
            except StorageError as exc:
                raise ApiError(503, f"the store cannot be read now: {exc}", "storage-unavailable") from exc
        present = {k for n in names if (k := kind_of(n)) != RECORD}
        last = plan.delete_after_for(ObjectKind(k) for k in present) if plan is not None and present else None
        objects = [
            ObjectOut(
                name=n,
                kind=str(kind_of(n)),
                delete_after=_utc(
                    last
                    if kind_of(n) == RECORD
                    else (p.delete_after if plan and (p := plan.kinds.get(ObjectKind(kind_of(n)))) else None)
                ),
            )
            for n in names
        ] + [ObjectOut(name=d.name, kind=d.kind, deleted_at=utc(d.deleted_at)) for d in deleted]
        return LifecycleOut(
            recording_id=rid,
            status=row["status"],
            legal_hold=bool(row["legal_hold"]),
            legal_hold_in_store=bool(row["hold_applied"]),
            delete_after=_utc(last),
            next_deletion=row["next_deletion"],
            blocked=row["lifecycle_blocked"],
            kinds=_kinds(plan) if plan is not None else [],
            objects=objects,
            deleted_by=row["deleted_by"],
        )

    @reg.add(
        "GET",
        "/v1/lifecycle/due",
        READERS,
        "Dry run: what retention will delete, and when (nothing is deleted)",
        TAG,
        "lifecycle.dry_run",
        query=DryRunQuery,
        response=DryRunPage,
    )
    async def retention_dry_run(call: Call) -> DryRunPage:
        q = call.query(DryRunQuery)
        until = q.until.timestamp() if q.until is not None else time.time()
        await lifecycle.deletion.evaluate()
        rows = await lifecycle.deletion.dry_run(until, q.limit + 1, q.offset)
        items = [
            DueOut(
                recording_id=rid,
                room_id=room,
                next_deletion=utc(nxt),
                kinds=_kinds(plan, until),
                legal_hold=hold,
                blocked=blocked,
            )
            for rid, room, plan, nxt, blocked, hold in rows[: q.limit]
        ]
        call.detail = {"until": until, "items": len(items)}
        more = len(rows) > q.limit
        return DryRunPage(
            until=datetime.fromtimestamp(until, UTC),
            items=items,
            next_offset=q.offset + q.limit if more else None,
        )

    @reg.add(
        "POST",
        "/v1/lifecycle/run",
        ADMIN,
        "Run a pass of the deletion scheduler now (holds to the store, due deletions, export schedules)",
        TAG,
        "lifecycle.run",
        response=PassOut,
        errors=(409,),
        description="On a fleet one pass runs at a time across the nodes: this one waits (up to 60 s) for"
        " another node's pass to end, else 409 `lifecycle-busy`.",
    )
    async def run_lifecycle_pass(call: Call) -> PassOut:
        try:
            ran = await lifecycle.run_pass()
        except PassBusyError as exc:
            raise ApiError(409, str(exc), "lifecycle-busy") from exc
        assert ran is not None  # a pass that waits runs or raises
        report, holds = ran
        call.detail = {"deleted": len(report.deleted_whole), "objects": report.objects_deleted}
        return PassOut(
            evaluated=report.evaluated,
            deleted=report.deleted_whole,
            deleted_partly=report.deleted_partly,
            objects_deleted=report.objects_deleted,
            blocked=report.blocked,
            holds_applied=holds,
        )
