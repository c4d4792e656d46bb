"""Settings for the whole process, read from the environment and ``.env``.

Every setting of DESIGN §8 lives here, with secrets as ``SecretStr`` so they never print.
Per-server settings (channels, limits, payer…) live in the store; these are the global
defaults they fall back to.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.shards import ShardScope

CIVITAI_ORCHESTRATOR_URL = "https://orchestration.civitai.com"
DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"
SECRET_KEY_FILE = "secret.key"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


class CivitaiMode(StrEnum):
    AUTO = "auto"  # simulate when no Civitai token is configured anywhere, else real
    REAL = "real"
    SIMULATE = "simulate"


class DatasetTransport(StrEnum):
    AUTO = "auto"  # hosted when PUBLIC_URL is set, else blobs
    HOSTED = "hosted"
    BLOBS = "blobs"


class Settings(BaseSettings):
    # An empty value means "the default", so .env.example's blank DISCORD_TOKEN= reads as unset.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    # Discord
    discord_token: SecretStr | None = None
    discord_api_base: str = DISCORD_API_BASE
    discord_gateway_url: str = DISCORD_GATEWAY_URL
    dev_guild_id: int | None = None
    # Several processes (README "Beyond one process"): the total number of shards, and the
    # shards this process connects (discord.py's shard ids, e.g. 0,1). Unset: one process, with
    # as many shards as Discord recommends. A process follows only its own shards' jobs.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None

    # Civitai
    civitai_token: SecretStr | None = None
    civitai_mode: CivitaiMode = CivitaiMode.AUTO
    orchestrator_url: str = CIVITAI_ORCHESTRATOR_URL
    dataset_transport: DatasetTransport = DatasetTransport.AUTO
    # Simulated time runs this many times faster than real time (simulated mode only).
    simulator_speed: float = Field(default=200.0, gt=0)

    # Embedded web server
    public_url: str | None = None
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # Slow or idle clients must not hold connections: a request head must arrive this soon after
    # connecting or after the previous answer (aiohttp's keep-alive timer covers both)…
    http_idle_timeout_seconds: float = Field(default=15.0, gt=0)
    # …a callback body this soon after its head, and one address holds this many connections.
    http_body_timeout_seconds: float = Field(default=10.0, gt=0)
    http_max_connections_per_peer: int = Field(default=64, ge=1)

    # Storage and secrets
    data_dir: Path = Path("./data")
    # Normalised datasets, served to the orchestrator by whichever process a request reaches:
    # with several processes, a directory they all share (unset: DATA_DIR/datasets).
    datasets_dir: Path | None = None
    # sqlite:///path (unset: DATA_DIR/bot.sqlite3) or postgresql://user:password@host:5432/db.
    database_url: SecretStr | None = None
    secret_key: SecretStr | None = None
    log_level: LogLevel = "INFO"

    # Dataset intake caps (DESIGN §4)
    max_zip_bytes: int = 500 * 1024 * 1024
    max_zip_entries: int = 2000
    max_uncompressed_bytes: int = 2 * 1024 * 1024 * 1024
    max_compression_ratio: float = 200.0
    max_image_pixels: int = 64_000_000
    # Images smaller than this on either side are refused; under the warning size they are
    # accepted with a warning (they tend to train blurry); above max_image_side they are
    # downscaled (the trainer buckets at ≤ 1024 px, so 2048 keeps headroom for crops).
    min_image_side: int = Field(default=64, ge=1)
    warn_below_image_side: int = Field(default=512, ge=1)
    max_image_side: int = Field(default=2048, ge=64)
    min_images: int = 1
    max_images: int = 1000
    warn_below_images: int = 5
    url_timeout_seconds: float = 120.0
    url_max_redirects: int = 5
    # Tests serve datasets from 127.0.0.1; production must never fetch loopback URLs.
    dataset_allow_loopback: bool = False
    dataset_retention_days: int = 30
    # Threads that decode images during a check (0 = one per CPU, at most 4).
    dataset_workers: int = Field(default=0, ge=0)
    # Pixels decoded at once by all dataset checks of the process together (0: no limit).
    dataset_decode_pixels: int = Field(default=24_000_000, ge=0)
    # How long a signed dataset URL stays valid: the orchestrator may fetch it after a queue wait.
    dataset_url_ttl_seconds: int = Field(default=24 * 3600, ge=60)

    # Behaviour
    command_cooldown_seconds: float = 10.0
    reconcile_interval_seconds: float = Field(default=180.0, gt=0)
    # Without PUBLIC_URL jobs are polled: these waits after a change, then every poll_interval.
    poll_delays_seconds: tuple[float, ...] = (2.0, 5.0, 10.0, 15.0)
    poll_interval_seconds: float = Field(default=30.0, gt=0)
    # The public job card is edited at most this often per job (the final state always shows).
    card_edit_interval_seconds: float = Field(default=10.0, ge=0)
    callback_retention_days: int = 14

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            items = [item.strip() for item in value.strip().strip("[]").split(",") if item.strip()]
            return tuple(items)
        return (value,) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT: set SHARD_COUNT to the total number of shards")
        wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
        if wrong or not self.shard_ids or len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError(
                f"SHARD_IDS must list distinct shard ids from 0 to {self.shard_count - 1}"
                f" (SHARD_COUNT={self.shard_count}), e.g. SHARD_IDS=0,1"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(DATABASE_SCHEMES):
            raise ValueError("use sqlite:///path/to/file.sqlite3 or postgresql://user:password@host:5432/database")
        return value

    @property
    def shard_scope(self) -> ShardScope | None:
        """The servers this process owns; None when it runs every shard (one process)."""
        if self.shard_count is None:
            return None
        ids = self.shard_ids if self.shard_ids is not None else range(self.shard_count)
        return ShardScope(self.shard_count, frozenset(ids))

    @property
    def datasets_path(self) -> Path:
        return self.datasets_dir if self.datasets_dir is not None else self.data_dir / "datasets"

    @property
    def database_path(self) -> Path:
        """The SQLite file used when DATABASE_URL is unset."""
        return self.data_dir / "bot.sqlite3"

    @property
    def database_password(self) -> str | None:
        """The password in DATABASE_URL, to keep out of logs and messages."""
        if self.database_url is None:
            return None
        return urlsplit(self.database_url.get_secret_value()).password

    @property
    def database_target(self) -> str:
        """What ``Store.open`` connects to: DATABASE_URL, else the SQLite file in DATA_DIR."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.database_path}"

    @property
    def simulated(self) -> bool:
        """Whether the in-process orchestrator simulator serves Civitai calls.

        In ``auto`` mode a server token stored in the database also counts as "configured";
        the app re-checks that once the store is open (see ``bot.app``).
        """
        if self.civitai_mode is CivitaiMode.AUTO:
            return self.civitai_token is None
        return self.civitai_mode is CivitaiMode.SIMULATE

    def effective_transport(self) -> DatasetTransport:
        if self.dataset_transport is not DatasetTransport.AUTO:
            return self.dataset_transport
        return DatasetTransport.HOSTED if self.public_url else DatasetTransport.BLOBS


def ensure_secret_key(settings: Settings) -> SecretStr:
    """Return SECRET_KEY, generating and persisting one in DATA_DIR on first start."""
    if settings.secret_key is not None:
        return settings.secret_key
    path = settings.data_dir / SECRET_KEY_FILE
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        # Created with 0600 so other local users cannot read it.
        path.touch(mode=0o600)
        path.write_text(key + "\n", encoding="utf-8")
    settings.secret_key = SecretStr(key)
    return settings.secret_key
