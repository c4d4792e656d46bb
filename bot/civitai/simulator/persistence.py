"""The simulator's state in one SQLite file, so it survives restarts (``--data DIR``; in simulated
mode ``DATA_DIR/simulator``): accounts and their transactions, workflows, blob records (contents
are files beside it), the signing key of blob URLs and the simulated clock.

Changes are written within ``FLUSH_SECONDS``, in one transaction (WAL): a process killed with
SIGKILL loses at most that much simulated history, which a restored run simply makes again
(runs replay what was not recorded). Tokens are never stored, only their ``owner_key`` digests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.civitai.simulator.blobs import StoredBlob
from bot.civitai.simulator.state import Account, Epoch, RunFaults, WorkflowRecord
from bot.civitai.simulator.validation import TrainingPlan

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (owner TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workflows (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (id TEXT PRIMARY KEY, record TEXT NOT NULL);
"""
FILENAME = "simulator.sqlite3"
# Writing each change at once cost ~1.5 ms of event loop per change; batched, one commit each.
FLUSH_SECONDS = 0.05
_UPSERT = {
    "meta": "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
    "accounts": "INSERT OR REPLACE INTO accounts (owner, record) VALUES (?, ?)",
    "workflows": "INSERT OR REPLACE INTO workflows (id, record) VALUES (?, ?)",
    "blobs": "INSERT OR REPLACE INTO blobs (id, record) VALUES (?, ?)",
}
# Live objects of a record that are not state: a pending review, long-poll wake-ups, the hook.
_TRANSIENT = frozenset({"review", "version", "on_change", "_changed"})
_MOMENTS = frozenset({"created_at", "started_at", "completed_at", "eta_start", "eta_complete"})


def _record_json(rec: WorkflowRecord) -> str:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(rec):
        if f.name in _TRANSIENT:
            continue
        value = getattr(rec, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif dataclasses.is_dataclass(value) or f.name == "epochs":
            value = json.loads(json.dumps(value, default=dataclasses.asdict))
        out[f.name] = value
    return json.dumps(out)


def _record_from(text: str) -> WorkflowRecord:
    data = json.loads(text)
    for name in _MOMENTS:
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    data["plan"] = TrainingPlan(**data["plan"])
    data["faults"] = RunFaults(**data["faults"])
    data["epochs"] = [
        Epoch(**{**e, "sample_sizes": [tuple(size) for size in e["sample_sizes"]]}) for e in data["epochs"]
    ]
    return WorkflowRecord(**data)


class SimState:
    """Write-through storage of one simulator; ``blob_dir`` holds blob contents."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.blob_dir = directory / "blobs"
        # The simulator may be driven from worker threads: one short statement at a time.
        self._lock = threading.Lock()
        # What to write, made when written: a record changing ten times in a flush is encoded once.
        self._pending: dict[tuple[str, str], Callable[[], str]] = {}
        self._flush_at: asyncio.TimerHandle | None = None
        self._db = sqlite3.connect(directory / FILENAME, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()

    def _stage(self, table: str, key: str, value: Callable[[], str]) -> None:
        """Write soon (now when no event loop runs), the latest value of each key only."""
        with self._lock:
            self._pending[(table, key)] = value
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_at is None:
            self._flush_at = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        with self._lock:
            if self._flush_at is not None:
                self._flush_at.cancel()
                self._flush_at = None
            pending, self._pending = self._pending, {}
            if not pending:
                return
            self._db.execute("BEGIN")
            for (table, key), value in pending.items():
                self._db.execute(_UPSERT[table], (key, value()))
            self._db.execute("COMMIT")

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def get_meta(self, key: str) -> str | None:
        self.flush()
        rows = self._run("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._stage("meta", key, lambda: value)

    def save_account(self, owner: str, account: Account) -> None:
        self._stage("accounts", owner, lambda: json.dumps(dataclasses.asdict(account)))

    def accounts(self) -> dict[str, Account]:
        rows = self._run("SELECT owner, record FROM accounts")
        return {owner: Account(**json.loads(record)) for owner, record in rows}

    def save_workflow(self, rec: WorkflowRecord) -> None:
        assert rec.id is not None
        self._stage("workflows", rec.id, lambda: _record_json(rec))

    def workflows(self) -> list[WorkflowRecord]:
        """Every workflow, oldest first (the order they were created in)."""
        rows = self._run("SELECT record FROM workflows ORDER BY rowid")
        return sorted((_record_from(row[0]) for row in rows), key=lambda rec: rec.created_at)

    def save_blob(self, blob: StoredBlob) -> None:
        self._stage("blobs", blob.id, lambda: json.dumps(dataclasses.asdict(blob)))

    def blobs(self) -> list[StoredBlob]:
        found = []
        for (record,) in self._run("SELECT record FROM blobs"):
            data = json.loads(record)
            data["size"] = tuple(data["size"]) if data.get("size") else None
            found.append(StoredBlob(**data))
        return found
