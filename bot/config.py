"""Settings for the whole process, read from the environment and ``.env``.

Every setting of DESIGN §8 lives here, with secrets as ``SecretStr`` so they never print.
Per-server settings (channels, limits, payer…) live in the store; these are the global
defaults they fall back to.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CIVITAI_ORCHESTRATOR_URL = "https://orchestration.civitai.com"
DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"
SECRET_KEY_FILE = "secret.key"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


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

    # Storage and secrets
    data_dir: Path = Path("./data")
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

    @property
    def database_path(self) -> Path:
        return self.data_dir / "bot.sqlite3"

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
