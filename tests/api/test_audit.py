"""The audit log: who, what, when, from where for every access; append-only (the database refuses
edits), hash-chained (an edit anywhere is found), exported as JSON Lines, checked by
`callvault verify --audit`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from api_kit import Api

from recorder.api.audit import AuditEntry, read_audit_file, verify_audit_chain
from recorder.cli import main


async def test_audit_trail_chain_export_and_cli(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await api.call("GET", "/v1/recordings?room=r1", role="supervisor")
    await api.call("GET", "/v1/recordings/missing", role="supervisor")
    await api.call("PUT", "/v1/policy", role="operator", json={"default": "all"})
    await api.call("DELETE", "/v1/recordings/missing", role="supervisor")
    status, page = await api.call("GET", "/v1/audit?limit=1000", role="auditor")
    assert status == 200
    entries = [AuditEntry.model_validate(e) for e in page["entries"]]
    seen = {(e.actor, e.action, e.target, e.outcome) for e in entries}
    assert ("bootstrap-admin", "key.create", entries[0].target, "ok") in seen
    assert ("supervisor-1", "recording.search", None, "ok") in seen
    assert ("supervisor-1", "recording.view", "missing", "not-found") in seen
    assert ("operator-1", "policy.update", "default", "ok") in seen
    assert ("supervisor-1", "recording.delete", "missing", "denied") in seen
    assert all(e.remote == "127.0.0.1" and e.at.endswith("Z") for e in entries)
    assert verify_audit_chain(entries) == []
    search = next(e for e in entries if e.action == "recording.search")
    assert search.detail == {"query": "room=r1", "results": 0}

    status, result = await api.call("GET", "/v1/audit/verify", role="auditor")
    assert status == 200 and result["ok"] and result["entries"] >= len(entries)
    status, text = await api.call("GET", "/v1/audit/export", role="auditor")
    assert status == 200
    export = tmp_path / "audit.jsonl"
    export.write_text(text)
    exported = list(read_audit_file(export))
    assert [e.seq for e in exported] == list(range(1, len(exported) + 1))

    # Append-only: the database itself refuses to change or drop an entry.
    db = sqlite3.connect(api.api.ctx.db.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 2")
    db.close()

    # `callvault verify --audit` on the live catalog and on the export: OK.
    assert main(["verify", "--audit", str(api.api.ctx.db.path)]) == 0
    assert main(["verify", "--audit", str(export)]) == 0
    assert "hash chain verified" in capsys.readouterr().out

    # Someone with the file rewrites history (dropping the triggers first): every check finds it.
    forged = tmp_path / "forged.sqlite3"
    live, db = sqlite3.connect(api.api.ctx.db.path), sqlite3.connect(forged)
    live.backup(db)
    live.close()
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET actor = 'operator-1' WHERE action = 'recording.delete'")
    db.commit()
    db.close()
    assert main(["verify", "--audit", str(forged)]) == 1
    assert "hash does not match the entry: edited" in capsys.readouterr().out
    lines = export.read_text().splitlines()
    del lines[2]
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join(lines) + "\n")
    assert main(["verify", "--audit", str(dropped)]) == 1
    out = capsys.readouterr().out
    assert "entries missing" in out and "prev_hash is not the previous entry's hash" in out
    edited = [json.loads(line) for line in export.read_text().splitlines()]
    edited[1]["detail"]["name"] = "someone else"
    rehashed = tmp_path / "edited.jsonl"
    rehashed.write_text("".join(json.dumps(e) + "\n" for e in edited))
    assert main(["verify", "--audit", str(rehashed)]) == 1
    (tmp_path / "junk.jsonl").write_text("not json\n")
    assert main(["verify", "--audit", str(tmp_path / "junk.jsonl")]) == 2
    assert main(["verify"]) == 2
