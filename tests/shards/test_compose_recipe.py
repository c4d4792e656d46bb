"""README "Beyond one process" is a tested recipe: docker-compose.yml (docker itself is not run
here) sets only real settings, gives every shard to exactly one process, and has every process
share the database, the secret key and the datasets volume; the README points at it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS = {name.upper() for name in Settings.model_fields}


def substituted(value: str) -> str:
    """``${NAME}`` / ``${NAME:?message}`` as compose fills them from .env (a stand-in value)."""
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: f"from-env-{m.group(1).lower()}", value)


def bots() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in COMPOSE["services"].items() if "SHARD_IDS" in (svc.get("environment") or {})}


def settings_of(service: dict[str, Any], tmp_path: Path) -> Settings:
    env = {key: substituted(str(value)) for key, value in service["environment"].items()}
    return Settings(_env_file=None, data_dir=tmp_path, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]


def test_every_variable_the_bots_get_is_a_setting() -> None:
    assert len(bots()) == 2
    for name, service in bots().items():
        unknown = set(service["environment"]) - SETTINGS
        assert not unknown, f"{name} sets {unknown}, which the bot does not read"
        assert service.get("env_file") == ".env" and service.get("build") == "."


def test_each_shard_runs_in_exactly_one_process(tmp_path: Path) -> None:
    scopes = [settings_of(service, tmp_path).shard_scope for service in bots().values()]
    assert all(scope is not None for scope in scopes)
    counts = {scope.count for scope in scopes if scope is not None}
    assert len(counts) == 1
    ids = sorted(i for scope in scopes if scope is not None for i in scope.ids)
    assert ids == list(range(counts.pop()))


def test_the_processes_share_the_database_the_key_and_the_datasets_volume(tmp_path: Path) -> None:
    services = list(bots().values())
    settings = [settings_of(service, tmp_path) for service in services]
    urls = {s.database_target for s in settings}
    assert len(urls) == 1 and urls.pop().startswith("postgresql://bot:from-env-postgres_password@db:5432/bot")
    assert "db" in COMPOSE["services"] and all("db" in service["depends_on"] for service in services)
    assert len({s.secret_key.get_secret_value() for s in settings if s.secret_key}) == 1
    folders = {str(s.datasets_path) for s in settings}
    assert len(folders) == 1
    folder = folders.pop()
    mounts = [{volume.split(":")[0] for volume in service["volumes"] if volume.split(":")[1] == folder}
              for service in services]  # fmt: skip
    assert all(len(m) == 1 for m in mounts) and len(set.union(*mounts)) == 1, mounts
    assert set.union(*mounts) <= set(COMPOSE["volumes"])  # a named volume, the same in both
    # The image owns the mount point, so the new shared volume starts writable by the bot's user.
    assert re.search(rf"chown bot:bot [^\n]*{re.escape(folder)}\b", (ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_each_process_listens_on_its_own_host_port() -> None:
    published = [port for service in bots().values() for port in service["ports"]]
    assert len({p.rsplit(":", 1)[0] for p in published}) == len(published)
    assert all(p.startswith("127.0.0.1:") and p.endswith(f":{Settings.model_fields['http_port'].default}")
               for p in published)  # fmt: skip


def test_the_readme_gives_the_recipe_and_the_rest_proxy_note() -> None:
    section = README.split("## Beyond one process", 1)[1].split("\n## ", 1)[0]
    assert "docker-compose.yml" in section and "docker compose up" in section
    for setting in ("SHARD_COUNT", "SHARD_IDS", "DATASETS_DIR", "DATABASE_URL", "SECRET_KEY", "PUBLIC_URL"):
        assert setting in section and setting in SETTINGS
    assert "REST proxy" in section and "DISCORD_API_BASE" in section and "python -m bot doctor" in section
    assert "Still to come" not in section
