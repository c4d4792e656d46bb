"""Run the bot until it is stopped, shutting down cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
import discord

from bot.app import TrainerBot, point_discord_at
from bot.config import Settings
from bot.logging_setup import register_secret, setup_logging
from bot.startup import ExitCode, StartupError, checked

log = logging.getLogger(__name__)


async def run(settings: Settings) -> int:
    """Run until stopped; a reason not to start is raised as ``StartupError`` (one line, an exit code)."""
    setup_logging(settings.log_level)
    assert settings.discord_token is not None
    token = settings.discord_token.get_secret_value()
    register_secret(token)
    settings = checked(settings)
    point_discord_at(settings)
    bot = TrainerBot(settings)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    async with bot:
        runner = asyncio.create_task(bot.start(token))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("Shutting down")
            await bot.close()
        stopper.cancel()
        try:
            await runner
        except discord.LoginFailure:
            raise StartupError(
                ExitCode.DISCORD_REFUSED_TOKEN,
                "Discord refused DISCORD_TOKEN: reset it in the developer portal (Bot → Reset Token) and update .env",
            ) from None
        except (aiohttp.ClientConnectionError, OSError, discord.DiscordServerError) as exc:
            if bot.user is not None:
                raise  # logged in earlier: not a start-up failure
            raise StartupError(
                ExitCode.DISCORD_UNREACHABLE,
                f"could not reach Discord at {settings.discord_api_base} ({exc}): check the network and DNS, "
                "or DISCORD_API_BASE if you set it",
            ) from None
    return ExitCode.STOPPED
