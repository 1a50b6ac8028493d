"""One audit chain for a fleet: writer processes, each with its own connection to one PostgreSQL catalog
(as many API and worker nodes would have), append at the same moment; the log is then one unbroken chain
holding every entry once (the BEGIN IMMEDIATE advisory lock of recorder/db/postgres.py), and verifies.
The processes also open the fresh database together, so they migrate it together (once)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from postgres_kit import PostgresServer

from recorder.api.audit import query_entries, verify_audit_chain
from recorder.api.db import Database
from recorder.cli import main
from recorder.db import schema

WRITERS = 4
EACH = 40
START_TIMEOUT = 120.0

WRITER = """
import sys, time
from pathlib import Path
from recorder.api.audit import AuditLog
from recorder.api.db import Database
from recorder.cli import main

url, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
db = Database(url)
Path(go.parent / f"{name}.ready").touch()
deadline = time.monotonic() + 120
while not go.exists():  # all writers start appending at once
    if time.monotonic() > deadline:
        sys.exit("no go")
    time.sleep(0.01)
log = AuditLog(db)
for i in range(count):
    if i % 4 == 3:  # a batch inside the caller's transaction, as recorder/lifecycle appends
        def batch(i=i):
            c = db.connection
            c.execute("BEGIN IMMEDIATE")
            try:
                log.append_many_in([(name, "operator", "t.batch", f"{name}-{i}", "ok", None, {"i": i})])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        db.submit(batch).result()
    else:
        one = lambda i=i: log.append_now(name, "operator", "t.one", f"{name}-{i}", "ok", None, {"i": i})
        db.submit(one).result()
db.close()
"""


def test_concurrent_writer_processes_keep_one_chain(
    postgres_server: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_server.create_database()
    go = tmp_path / "go"
    names = [f"node{n}" for n in range(WRITERS)]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, name, str(EACH), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    deadline = time.monotonic() + START_TIMEOUT
    while not all((tmp_path / f"{n}.ready").exists() for n in names):
        failed = [w for w in writers if w.poll() not in (None, 0)]
        assert not failed, failed[0].communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "writers did not open the catalog"
        time.sleep(0.02)
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=START_TIMEOUT)
        assert writer.returncode == 0, err.decode()[-2000:]

    db = Database(url)
    try:
        entries = db.submit(lambda: query_entries(db.connection)).result()
        assert [e.seq for e in entries] == list(range(1, WRITERS * EACH + 1))
        assert verify_audit_chain(entries) == []
        for name in names:  # every writer's entries, each once, in its own order
            mine = [e.target for e in entries if e.actor == name]
            assert mine == [f"{name}-{i}" for i in range(EACH)]
        interleaved = sum(1 for a, b in itertools.pairwise(entries) if a.actor != b.actor)
        assert interleaved > WRITERS  # they really wrote at the same time
        rev = db.submit(
            lambda: db.connection.execute("SELECT version_num FROM alembic_version").fetchall()
        ).result()
        assert [r[0] for r in rev] == [schema.head()]  # migrated once
    finally:
        db.close()

    # `callvault verify --audit URL` says so too; and names an entry changed behind the triggers' back
    assert main(["verify", "--audit", url]) == 0
    assert (
        f"OK audit {url.split('?')[0]}: {WRITERS * EACH} entries, hash chain verified"
        in capsys.readouterr().out
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")  # what only a database superuser can do
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 7")
    assert main(["verify", "--audit", url]) == 1
    assert "broken-chain: audit#7" in capsys.readouterr().out
