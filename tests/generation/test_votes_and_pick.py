"""Choose together on the stage: votes by three members (one changes), the tally on the grid,
the owner's pick (⭐, card, /jobs show), a non-owner refused, and all of it after a restart."""

from __future__ import annotations

from pathlib import Path

from tests.generation.helpers import finished_run
from tests.stage import Message, Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import FAST, eventually


def votes(message: Message) -> str:
    return next((f["value"] for f in message.embed.get("fields", []) if f["name"] == "Votes"), "")


async def test_three_members_vote_the_owner_picks_and_a_restart_keeps_both(
    stage: Stage, alice: StageMember, bob: StageMember, admin: StageMember, tmp_path: Path
) -> None:
    data = tmp_path / "bot"
    async with bot_in_process(stage, data, **FAST) as bot:
        job, _, epochs, grid = await finished_run(bot, stage, alice, tmp_path)
        vote = f"ltb:vote:{job.id}"
        said = await (await alice.choose(grid, vote, ["3"])).reply()
        assert said.ephemeral and "You voted for epoch 3" in said.text
        await (await bob.choose(grid, vote, ["1"])).reply()
        await (await admin.choose(grid, vote, ["3"])).reply()
        await (await bob.choose(grid, vote, ["3"])).reply()  # bob changes his mind
        await eventually(lambda: "Epoch 3: ▮▮▮ 3 votes" in votes(grid), "the tally on the grid")
        assert "Epoch 1" not in votes(grid), "a changed vote leaves its old epoch"

        refused = await (await bob.click(epochs[1], label="Pick this epoch")).reply()
        assert "Not your run" in refused.text and "Vote" in refused.text
        assert "Picked" not in epochs[1].content

        await (await alice.click(epochs[1], label="Pick this epoch")).reply()
        await eventually(lambda: "⭐ Picked" in epochs[1].content, "the star on epoch 2")
        await (await alice.click(epochs[2], label="Pick this epoch")).reply()
        await eventually(lambda: "⭐ Picked" in epochs[2].content, "the star on epoch 3")
        assert "⭐ Picked" not in epochs[1].content, "the star moved"
        card = stage.messages[job.card_message_id or 0]
        assert "⭐ Epoch 3" in card.text
        await eventually(lambda: "Picked by the owner: **epoch 3**" in votes(grid), "the pick on the grid")

    async with bot_in_process(stage, data, **FAST):
        shown = await (await alice.slash("jobs show", job=job.id)).reply()
        assert "⭐ Epoch 3" in shown.text
        await (await admin.choose(grid, vote, ["2"])).reply()
        await eventually(lambda: "Epoch 2: ▮ 1 vote" in votes(grid), "the tally after a restart")
        assert "Epoch 3: ▮▮ 2 votes" in votes(grid) and "epoch 3**" in votes(grid)
        refused = await (await bob.click(epochs[0], label="Pick this epoch")).reply()
        assert "Not your run" in refused.text


async def test_a_pick_before_any_vote_shows_on_the_grid_and_comes_first_in_downloads_and_lists(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", **FAST) as bot:
        job, _, epochs, grid = await finished_run(bot, stage, alice, tmp_path)
        await (await alice.click(epochs[1], label="Pick this epoch")).reply()
        await eventually(lambda: "Picked by the owner: **epoch 2**" in votes(grid), "the pick on the grid")
        download = next(s for s in grid.selects if s["custom_id"] == f"ltb:dlsel:{job.id}")
        assert download["options"][0]["value"] == "2" and "⭐" in download["options"][0]["label"]
        assert len(download["options"]) == 3
        epoch_2 = next(c["value"] for c in await alice.autocomplete("generate", "lora", "epoch 2"))
        for command, option in (("generate", "lora"), ("train flux1", "continue_from")):
            first = (await alice.autocomplete(command, option, ""))[0]
            assert first["name"].startswith("⭐") and first["value"] == epoch_2
