"""A whole run followed on the stage: epoch posts with samples, downloads, the grid, one DM."""

from __future__ import annotations

from pathlib import Path

import httpx

from storage.models import JobStatus
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process
from tests.tracking.helpers import (
    FAST,
    PROMPTS,
    PUBLIC_URL,
    epoch_messages,
    finished,
    image_size,
    is_epoch,
    safetensors_header,
    start_run,
)
from tests.train.helpers import attachment, confirmation, submitted


def is_final(message: object) -> bool:
    return "finished training" in getattr(message, "content", "")


async def test_a_ten_epoch_run_posts_every_epoch_once_then_the_grid_and_one_dm(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST) as bot:
        job, thread = await start_run(bot, stage, alice, tmp_path, epochs=10)
        final = await stage.wait_message(thread, is_final, timeout=20)
        dm = await alice.wait_dm(lambda m: "finished training" in m.content)

        epochs = epoch_messages(stage, thread)
        assert [m.content.split(" ")[1].rstrip("*") for m in epochs] == [f"{n}/10" for n in range(1, 11)]
        for number, message in enumerate(epochs, 1):
            assert "SIMULATED" in message.content
            files = stage.files(message)
            assert len(files) == len(PROMPTS)
            assert all(image_size(data)[0] > 0 for data in files.values())
            assert "urn:air:flux1:lora:orchestrator:blob@" in message.text
            assert [b["custom_id"] for b in message.buttons] == [
                f"ltb:dl:{job.id}:{number}",
                f"ltb:more:{job.id}:{number}",
                f"ltb:try:{job.id}:{number}",
                f"ltb:pick:{job.id}:{number}",
            ]
            assert PROMPTS[0] in message.embed["description"]

        # The final message: the grid as an image and a menu to download any epoch.
        assert final.selects[0]["custom_id"] == f"ltb:dlsel:{job.id}"
        assert [o["value"] for o in final.selects[0]["options"]] == [str(n) for n in range(1, 11)]
        assert final.selects[1]["custom_id"] == f"ltb:trysel:{job.id}"  # Try any epoch
        grid = stage.files(final)["grid.png"]
        width, height = image_size(grid)
        assert height > width / 2 and height > 10 * 64  # ten rows of epochs
        assert "SIMULATED" in final.content
        assert f"/{thread.id}/{final.id}" in dm.content  # a jump link to the final message

        # Download buttons: the ephemeral answer links to a valid .safetensors.
        for number in (1, 10):
            ix = await alice.click(epochs[number - 1], label=f"Download epoch {number}")
            reply = await ix.reply()
            assert reply.ephemeral and "KiB" in reply.content
            url = reply.buttons[0]["url"]
            async with httpx.AsyncClient() as http:
                response = await http.get(url)
            assert response.status_code == 200
            assert safetensors_header(response.content)["__metadata__"]["ss_epoch"] == str(number)

        stored = await finished(bot, job.id)
        assert stored.status is JobStatus.SUCCEEDED
        card = stage.messages[stored.card_message_id or 0]
        assert "Finished" in card.text and "100%" in card.text and "epoch 10/10" in card.text
        # Nothing more arrives: one message per epoch, one final message, one DM.
        assert len(epoch_messages(stage, thread)) == 10
        assert len([m for m in stage.messages_in(thread) if is_final(m)]) == 1
        assert len(stage.messages_in(alice.in_dm().channel)) == 1
        assert not [m for m in stage.messages_in("general") if is_epoch(m)]


async def test_a_run_started_with_slash_train_is_followed_to_the_end(
    stage: Stage, alice: StageMember, tmp_path: Path
) -> None:
    async with bot_in_process(stage, tmp_path / "bot", public_url=PUBLIC_URL, **FAST):
        ix = await alice.slash(
            "train flux1", dataset=attachment(3), name="Rex", steps=60, epochs=3, sample_prompts="sks dog | sks cat"
        )
        assert await ix.response() == 5
        await alice.click(await confirmation(alice), label="Confirm")
        await alice.wait_ephemeral(submitted)
        card = await stage.wait_message("general", lambda m: "Rex" in m.embed["title"])
        final = await stage.wait_message(card, is_final, timeout=20)
        assert len(epoch_messages(stage, stage.channel(card))) == 3
        assert [o["value"] for o in final.selects[0]["options"]] == ["1", "2", "3"]
        await alice.wait_dm(lambda m: "Rex" in m.content)
        await stage.wait_message("general", lambda m: m.id == card.id and "Finished" in m.text)
