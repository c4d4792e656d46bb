"""Datasets and waits shared by the /train end-to-end tests."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Callable
from typing import Any

from bot.app import TrainerBot
from bot.civitai.simulator import Simulator
from bot.jobs.payer import SIMULATED_TOKEN
from storage.models import Job
from tests.dataset_helpers import image_bytes
from tests.stage import Attachment, StageMember
from tests.stage.interactions import MESSAGE_COMPONENT
from tests.stage.model import Message

TOKEN = SIMULATED_TOKEN.get_secret_value()


def dataset_zip(images: int = 4, *, captions: bool = True, size: tuple[int, int] = (160, 128)) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n in range(images):
            archive.writestr(f"photos/img{n}.jpg", image_bytes(size=size))
            if captions:
                archive.writestr(f"photos/img{n}.txt", f"a photo of sks dog, pose {n}")
    return out.getvalue()


def attachment(images: int = 4, **kwargs: Any) -> Attachment:
    return Attachment("dog.zip", dataset_zip(images, **kwargs))


def simulator(bot: TrainerBot) -> Simulator:
    sim = bot.services.orchestrator.simulator
    assert sim is not None, "these tests run in simulated mode"
    return sim


def charges(bot: TrainerBot) -> list[dict[str, Any]]:
    sim = simulator(bot)
    return sim.charges(TOKEN) if sim.account(TOKEN) is not None else []


def is_confirmation(message: Message) -> bool:
    return any(b.get("label") == "Confirm" and not b.get("disabled") for b in message.buttons)


async def confirmation(member: StageMember) -> Message:
    return await member.wait_ephemeral(is_confirmation)


def submitted(message: Message) -> bool:
    return message.content.startswith("✅ Submitted")


async def press_as(member: StageMember, message: Message, label: str) -> None:
    """``member`` presses a button on a message they cannot see (another member's ephemeral
    confirmation). Discord never shows it to them, but a crafted interaction or a leaked
    custom id must still be refused, so the driver's visibility check is skipped on purpose."""
    button = message.button(label=label)
    data = {"custom_id": button["custom_id"], "component_type": 2}
    await member._start(MESSAGE_COMPONENT, f"button {label!r} (as {member.name})", data, source=message)


async def only_job(bot: TrainerBot, member: StageMember) -> Job:
    jobs = await bot.services.store.jobs.list_for_user(member.id)
    assert len(jobs) == 1, jobs
    return jobs[0]


async def eventually(check: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy (for the simulator's own state)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (result := check()):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return result


async def refused(member: StageMember, **options: Any) -> Message:
    """Run /train flux1 and return the refusal shown in place of the progress lines."""
    options.setdefault("dataset", attachment(3))
    ix = await member.slash("train flux1", **options)
    assert await ix.response() == 5  # deferred before any check
    reply = await ix.reply(lambda m: m.embeds)
    assert reply.ephemeral and not reply.buttons
    return reply


async def assert_nothing_submitted(bot: TrainerBot, member: StageMember) -> None:
    assert simulator(bot).workflows == {} and charges(bot) == []
    assert [j for j in await bot.services.store.jobs.list_for_user(member.id) if j.workflow_id] == []
