"""Room commands' rows on both backends, in process (recorder/fleet/commands.py): a command is executed at
most once — the recorder's claim and the API node's giving up are conditional updates of which exactly one
wins; a command expired by the clock is never taken; a recorder restarted with a command taken and not
answered fails it instead of running it again; commands go only to the recorder they are addressed to."""

from __future__ import annotations

from pathlib import Path

import pytest
from postgres_kit import BACKENDS

from recorder.api.db import Database
from recorder.fleet import commands, registry
from recorder.fleet.commands import Action, Command, Result, State
from recorder.fleet.models import Registration

pytestmark = [BACKENDS, pytest.mark.timeout(120)]


def _command(cid: str, action: Action = Action.PAUSE) -> Command:
    return Command(
        command_id=cid, action=action, room_id="room-1", recording_id="rec-1", reason="card number",
        requested_by="alice", requested_from="api-1",
    )  # fmt: skip


def test_a_command_runs_at_most_once(tmp_path: Path, catalog_url: str | None) -> None:
    db = Database(catalog_url if catalog_url is not None else tmp_path / "catalog.sqlite3")
    c, dialect = db.connection, db.dialect

    def run(fn):  # type: ignore[no-untyped-def]
        return db.submit(fn).result()

    try:
        # taken by its recorder only, with what the API node asked; answered once
        run(lambda: commands.submit(c, dialect, "rec-a", _command("cmd-1"), 30))
        assert run(lambda: commands.take(c, dialect, "rec-b")) == []  # another recorder: not its command
        [taken] = run(lambda: commands.take(c, dialect, "rec-a"))
        assert (taken.action, taken.reason, taken.requested_by, taken.requested_from) == (
            Action.PAUSE, "card number", "alice", "api-1",
        )  # fmt: skip
        assert run(lambda: commands.take(c, dialect, "rec-a")) == []  # never twice
        assert not run(lambda: commands.expire(c, dialect, "cmd-1"))  # too late to give up: it was taken
        run(lambda: commands.finish(c, dialect, "cmd-1", Result(done=True, has_room=True)))
        out = run(lambda: commands.outcome(c, "cmd-1"))
        assert out.state is State.DONE and out.result is not None and out.result.done

        # the API node gave up first: the recorder never takes it
        run(lambda: commands.submit(c, dialect, "rec-a", _command("cmd-2"), 30))
        assert run(lambda: commands.expire(c, dialect, "cmd-2"))
        assert run(lambda: commands.take(c, dialect, "rec-a")) == []
        assert run(lambda: commands.outcome(c, "cmd-2")).state is State.EXPIRED

        # expired by the database's clock: not taken either
        run(lambda: commands.submit(c, dialect, "rec-a", _command("cmd-3"), -1))
        assert run(lambda: commands.take(c, dialect, "rec-a")) == []

        # taken, then the recorder died: its restart fails the command instead of running it again
        run(lambda: commands.submit(c, dialect, "rec-a", _command("cmd-4", Action.RESUME), 30))
        assert [t.command_id for t in run(lambda: commands.take(c, dialect, "rec-a"))] == ["cmd-4"]
        assert run(lambda: commands.interrupted(c, dialect, "rec-a")) == 1
        out = run(lambda: commands.outcome(c, "cmd-4"))
        assert out.state is State.FAILED and out.result is not None and out.result.problem == "interrupted"
        assert run(lambda: commands.take(c, dialect, "rec-a")) == []
        run(lambda: commands.finish(c, dialect, "cmd-4", Result(done=True)))  # a late answer changes nothing
        assert run(lambda: commands.outcome(c, "cmd-4")).state is State.FAILED

        # answered and expired commands are forgotten after a while; pending ones never
        run(lambda: commands.submit(c, dialect, "rec-a", _command("cmd-5"), 30))
        assert run(lambda: commands.prune(c, dialect, "rec-a", 3600)) == 0  # all younger than an hour
        assert run(lambda: commands.prune(c, dialect, "rec-a", -60)) == 4  # cmd-1..4, not the pending cmd-5
        assert run(lambda: commands.outcome(c, "cmd-5")).state is State.PENDING

        # which recorders are alive, by their heartbeat on the database's clock
        me = Registration(
            node="rec-a", incarnation="a1", sfu="ws://janus-a:8188", rtp_port_min=40000, rtp_port_max=40999,
            version="0.1.0",
        )  # fmt: skip
        run(lambda: registry.register(c, dialect, me, 30, None))
        assert run(lambda: commands.live_recorders(c, dialect, 30)) == ["rec-a"]
        assert run(lambda: commands.recorder_state(c, dialect, "rec-a", 30)).alive
        gone = run(lambda: commands.recorder_state(c, dialect, "rec-z", 30))
        assert not gone.alive and gone.silent_for is None
        run(lambda: c.execute("UPDATE recorders SET heartbeat_at = heartbeat_at - 60 WHERE node = 'rec-a'"))
        silent = run(lambda: commands.recorder_state(c, dialect, "rec-a", 30))
        assert not silent.alive and silent.silent_for is not None and silent.silent_for >= 60
        assert run(lambda: commands.live_recorders(c, dialect, 30)) == []
    finally:
        db.close()
