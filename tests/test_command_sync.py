"""The command-sync marker belongs to one Discord application.

The bot skips syncing when the command tree is unchanged since the last sync. That memory lives
in DATA_DIR; pointed at a new application (a new DISCORD_TOKEN, same folder), the bot must sync
again or the new application has no commands at all.
"""

from __future__ import annotations

from pathlib import Path

from tests.stage import Stage
from tests.stage.bots import bot_in_process


def syncs(stage: Stage) -> int:
    return sum(r.route.startswith("PUT /applications") for r in stage.requests)


async def test_a_new_application_on_the_same_data_dir_gets_its_commands(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with Stage() as first:
        async with bot_in_process(first, data_dir):
            assert syncs(first) == 1
        async with bot_in_process(first, data_dir):
            assert syncs(first) == 1  # same application, same commands: not synced again
    first.check()

    async with Stage() as second:
        assert second.application_id != first.application_id
        async with bot_in_process(second, data_dir):
            assert syncs(second) == 1
            reply = await (await second.member("alice").slash("help")).reply()
            assert reply.embed["title"] == "LoRA Trainer"
    second.check()
