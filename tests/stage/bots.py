"""Running the real bot against the stage: in this process, or as ``python -m bot``.

In-process is fast and lets a test load a test-only extension into the bot. The subprocess is
the bot exactly as an operator runs it, and the only way to kill it mid-run (SIGKILL) and start
it again. Both are configured only through the bot's ordinary settings (DISCORD_API_BASE,
DISCORD_GATEWAY_URL, DATA_DIR, …).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import discord
from pydantic import SecretStr

from bot.app import TrainerBot, point_discord_at
from bot.config import CivitaiMode, Settings
from tests.stage.interactions import StageError
from tests.stage.server import Stage

REPO_ROOT = Path(__file__).resolve().parents[2]
# discord.py waits this long after the last GUILD_CREATE before on_ready (2 s by default);
# the stage sends all of its guilds at once, so a short wait loses nothing.
GUILD_READY_TIMEOUT = 0.05
START_TIMEOUT = 20.0
BOT_LOGGERS = ("discord", "bot", "cogs", "storage")


class ErrorsToStage(logging.Handler):
    """Reports the bot's ERROR logs to the stage: an exception discord.py only logs (a view
    callback, a command without handler) or an "Unhandled error" fails the test."""

    def __init__(self, stage: Stage) -> None:
        super().__init__(logging.ERROR)
        self.stage = stage

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in BOT_LOGGERS:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            self.stage.record_bot_error(text)


def bot_settings(stage: Stage, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a bot on ``stage``; no ``.env`` and no environment leak in."""
    values: dict[str, Any] = {
        "discord_token": SecretStr(stage.token),
        "discord_api_base": stage.api_base,
        "discord_gateway_url": stage.gateway_url,
        "data_dir": data_dir,
        "civitai_mode": CivitaiMode.SIMULATE,
        "http_host": "127.0.0.1",
        "http_port": 0,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def bot_in_process(stage: Stage, data_dir: Path, **overrides: Any) -> AsyncIterator[TrainerBot]:
    """The real ``TrainerBot``, logged in, connected and ready (``on_ready`` fired)."""
    settings = bot_settings(stage, data_dir, **overrides)
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    point_discord_at(settings)
    bot = TrainerBot(settings)
    bot._connection.guild_ready_timeout = GUILD_READY_TIMEOUT
    errors = ErrorsToStage(stage)
    logging.getLogger().addHandler(errors)
    runner = asyncio.create_task(bot.start(stage.token), name="bot-on-stage")
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({runner, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # raises what stopped the bot
            raise StageError("the bot stopped before it was ready")
        if ready not in done:
            raise StageError(f"the bot was not ready after {START_TIMEOUT} s{stage._recent_failures()}")
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(runner, 10)
        logging.getLogger().removeHandler(errors)
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


class BotProcess:
    """``python -m bot`` on the stage; ``kill()`` is SIGKILL, ``start()`` again reuses DATA_DIR."""

    def __init__(self, stage: Stage, data_dir: Path, **env: str) -> None:
        self.stage = stage
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-bot.log"
        self.extra_env = env
        self.shard_id = int(env.get("SHARD_IDS", "0").split(",")[0])  # the shard waited for at start
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "CIVITAI_"))}
        return env | {
            "PYTHONPATH": str(REPO_ROOT),
            "DISCORD_TOKEN": self.stage.token,
            "DISCORD_API_BASE": self.stage.api_base,
            "DISCORD_GATEWAY_URL": self.stage.gateway_url,
            "DATA_DIR": str(self.data_dir),
            "CIVITAI_MODE": "simulate",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    async def start(self, *, wait: bool = True) -> None:
        """Start the process and (by default) wait until it has IDENTIFIED and got READY."""
        if self.process is not None and self.process.returncode is None:
            raise StageError("the bot process is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identifies = self.stage.gateway.identify_count
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=self.data_dir, env=self.environment(), stdout=self._log, stderr=self._log
        )
        if wait:
            await self.wait_ready(identifies + 1)

    async def wait_ready(self, identifies: int) -> None:
        def ready() -> bool | None:
            if self.process is not None and self.process.returncode is not None:
                raise StageError(f"the bot exited with {self.process.returncode}:\n{self.log_tail()}")
            connected = self.stage.gateway.shard_connected(self.shard_id)
            return True if self.stage.gateway.identify_count >= identifies and connected else None

        # The stage is not told when a process exits: poll alongside the stage's own events.
        async def poll() -> None:
            while True:
                await asyncio.sleep(0.1)
                self.stage.notify()

        poller = asyncio.create_task(poll())
        try:
            await self.stage.wait_for(ready, "the bot process to connect", timeout=START_TIMEOUT)
        finally:
            poller.cancel()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._close_log()

    async def stop(self) -> int | None:
        """SIGTERM and wait for a clean exit (SIGKILL after 10 s)."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._close_log()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
