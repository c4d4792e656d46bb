"""Run the bot until it is stopped, shutting down cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import discord

from bot.app import TrainerBot, point_discord_at
from bot.config import Settings
from bot.logging_setup import register_secret, setup_logging

log = logging.getLogger(__name__)


async def run(settings: Settings) -> int:
    setup_logging(settings.log_level)
    assert settings.discord_token is not None
    token = settings.discord_token.get_secret_value()
    register_secret(token)
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
            log.error("Discord refused DISCORD_TOKEN: reset it in the developer portal and update .env")
            return 2
    return 0
