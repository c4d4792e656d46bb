"""The bot as an operator runs it (``python -m bot`` in a subprocess, Discord = the stage).

- a fresh start with nothing but DISCORD_TOKEN runs in simulated mode, says so, prints the invite
  link, and answers /help;
- from that same start a member trains a LoRA end to end at the default simulator speed, and
  every message about the run says SIMULATED;
- SIGTERM stops it cleanly within seconds: exit status 0, database sound and checkpointed, port free.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import time
from pathlib import Path

from bot.invite import PERMISSIONS
from storage import Store
from tests.databases import suite_backend_url
from tests.stage import Stage, StageMember
from tests.stage.bots import BotProcess
from tests.stage.server import MessageState
from tests.train.helpers import attachment, confirmation, submitted

LISTENING = re.compile(r"Web server listening on ([\d.]+):(\d+)")


class FreshBotProcess(BotProcess):
    """Only what the README asks for: DISCORD_TOKEN (and where Discord is, the data folder, a free port)."""

    def environment(self) -> dict[str, str]:
        env = super().environment()
        for key in ("CIVITAI_MODE", "HTTP_HOST", "LOG_LEVEL"):
            del env[key]
        return env


def log_of(process: BotProcess) -> str:
    return process.log_path.read_text(errors="replace")


async def test_a_fresh_start_with_only_a_discord_token_runs_simulated(
    stage: Stage, tmp_path: Path, alice: StageMember
) -> None:
    process = FreshBotProcess(stage, tmp_path / "fresh-data")
    assert not process.data_dir.exists()
    await process.start()
    try:
        reply = await (await alice.slash("help")).reply()
        assert reply.ephemeral and reply.embed["title"] == "LoRA Trainer"
        log = log_of(process)
        assert "SIMULATED mode (no Civitai token is configured" in log
        assert "voice will NOT be supported" not in log  # no noise about voice the bot never uses
        invite = re.search(r"https://discord\.com/oauth2/authorize\?\S+", log)
        assert invite is not None, log
        assert f"client_id={stage.application_id}" in invite.group(0)
        assert "scope=bot+applications.commands" in invite.group(0)
        assert f"permissions={PERMISSIONS}" in invite.group(0)
        assert (process.data_dir / "secret.key").exists()
        # The database: the default SQLite file in DATA_DIR (on the PostgreSQL pass, DATABASE_URL).
        assert (process.data_dir / "bot.sqlite3").exists() is (suite_backend_url() is None)
    finally:
        assert await process.stop() == 0
    assert "Traceback" not in log_of(process)


def is_confirmation(state: MessageState) -> bool:
    return "Confirm" in state.text and state.ephemeral


async def test_a_fresh_start_trains_end_to_end_and_every_message_says_simulated(
    stage: Stage, tmp_path: Path, alice: StageMember
) -> None:
    process = FreshBotProcess(stage, tmp_path / "fresh-data")  # SIMULATOR_SPEED left at its default
    await process.start()
    try:
        started = time.monotonic()
        await alice.slash("train flux1", dataset=attachment(3), name="Rex", steps=100, epochs=2)
        await alice.click(await confirmation(alice), label="Confirm")
        await alice.wait_ephemeral(submitted)
        card = await stage.wait_message("general", lambda m: "Rex" in m.embed["title"])
        final = await stage.wait_message(card, lambda m: "finished training" in m.content, timeout=15)
        dm = await alice.wait_dm(lambda m: "Rex" in m.content, timeout=5)
        await stage.wait_message("general", lambda m: m.id == card.id and "Finished" in m.text, timeout=5)
        took = time.monotonic() - started
    finally:
        assert await process.stop() == 0
    assert took < 10, f"the simulated run took {took:.1f} s at the default speed"
    assert "Traceback" not in log_of(process)

    # Every state of every message from the confirmation on, edits included, says SIMULATED.
    # (Before it only the dataset check's progress lines were shown: no job existed yet.)
    states = stage.message_states
    first = next(i for i, state in enumerate(states) if is_confirmation(state))
    about_the_job = [s for s in states[first:] if not s.deleted and not s.loading]
    unmarked = [(s.message_id, s.text[:120]) for s in about_the_job if "SIMULATED" not in s.text]
    assert not unmarked, unmarked
    thread = stage.channel(card)
    seen = {s.message_id for s in about_the_job}
    epochs = [m for m in stage.messages_in(thread) if m.content.startswith("**Epoch ")]
    assert len(epochs) == 2
    # The confirmation, the card, the thread's opening post, both epochs, the end, the DM.
    assert {card.id, final.id, dm.id, *(m.id for m in stage.messages_in(thread))} <= seen
    assert len(stage.messages_in(thread)) == 4


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def test_sigterm_stops_cleanly_within_seconds(
    stage: Stage, bot_process: BotProcess, alice: StageMember
) -> None:
    assert (await (await alice.slash("help")).reply()).embed["title"] == "LoRA Trainer"
    found = LISTENING.search(log_of(bot_process))
    assert found is not None
    host, port = found.group(1), int(found.group(2))
    assert not port_is_free(host, port)
    database = bot_process.data_dir / "bot.sqlite3"

    assert bot_process.process is not None
    started = time.monotonic()
    bot_process.process.terminate()  # SIGTERM, as docker stop and systemd send
    code = await asyncio.wait_for(bot_process.process.wait(), 10)
    elapsed = time.monotonic() - started
    await bot_process.stop()  # closes the log file

    assert code == 0, bot_process.log_tail()
    assert elapsed < 5, f"took {elapsed:.1f} s"
    log = log_of(bot_process)
    assert "Shutting down" in log and "Traceback" not in log
    assert port_is_free(host, port)
    if suite_backend_url() is not None:  # PostgreSQL: what the bot wrote is there
        store = await Store.open(os.environ["DATABASE_URL"])
        try:
            assert await store.db.one("SELECT value FROM meta WHERE key LIKE 'command_tree_hash:%'") is not None
        finally:
            await store.close()
        return
    # The last connection closed properly: the WAL was checkpointed into the file and removed.
    wal = database.with_name(database.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT value FROM meta WHERE key LIKE 'command_tree_hash:%'").fetchone() is not None
