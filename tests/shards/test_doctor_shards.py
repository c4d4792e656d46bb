"""``python -m bot doctor`` for a process of a sharded bot: it names this process's shards, says
when the processes cannot share the database, and checks the datasets folder is shared (each
process's marker is seen by the others)."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.doctor import check_shards
from tests.databases import fresh_postgres, postgres_server_url
from tests.test_doctor import doctor
from tests.test_doctor import good_env as good_env  # the fixture: a doctor's environment on the stage


def line(output: str, name: str) -> str:
    return next(row for row in output.splitlines() if row[2:].startswith(name + ":"))


def test_one_process_runs_every_shard() -> None:
    check = check_shards(Settings(_env_file=None))  # type: ignore[call-arg]
    assert check.status.name == "OK" and "one process runs every shard" in check.detail


async def test_two_processes_on_sqlite_are_refused_with_the_fix(good_env: dict[str, str], tmp_path: Path) -> None:
    env = good_env | {"SHARD_COUNT": "2", "SHARD_IDS": "0", "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}"}
    code, output = await doctor(tmp_path, env)
    assert code == 1
    shards = line(output, "Shards")
    assert shards.startswith("✗") and "shard(s) 0 of 2" in shards and "cannot share a SQLite file" in shards
    assert "DATABASE_URL=postgresql://" in output


async def test_each_process_sees_the_shared_datasets_folder(good_env: dict[str, str], tmp_path: Path) -> None:
    shared = tmp_path / "shared-datasets"
    with fresh_postgres(postgres_server_url()) as url:
        common = good_env | {"SHARD_COUNT": "2", "DATABASE_URL": url, "DATASETS_DIR": str(shared)}
        code, first = await doctor(tmp_path, common | {"SHARD_IDS": "0", "DATA_DIR": str(tmp_path / "a")})
        assert code == 0, first
        assert line(first, "Shards").startswith("✓") and "shard(s) 0 of 2" in line(first, "Shards")
        assert line(first, "Database").startswith("✓") and "PostgreSQL" in line(first, "Database")
        folder = line(first, "Datasets folder")
        assert folder.startswith("!") and "no other process" in folder  # the other one never ran yet

        code, second = await doctor(tmp_path, common | {"SHARD_IDS": "1", "DATA_DIR": str(tmp_path / "b")})
        assert code == 0, second
        assert line(second, "Datasets folder").startswith("✓")
        assert "shared with the processes of shard(s) 0" in line(second, "Datasets folder")

        # A process pointed at another folder is told.
        elsewhere = common | {"SHARD_IDS": "1", "DATA_DIR": str(tmp_path / "c"), "DATASETS_DIR": str(tmp_path / "own")}
        code, alone = await doctor(tmp_path, elsewhere)
        assert line(alone, "Datasets folder").startswith("!") and "DATASETS_DIR" in alone
