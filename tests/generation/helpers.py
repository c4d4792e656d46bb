"""A finished run on the stage to generate with, and reading what the simulator received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app import TrainerBot
from bot.civitai.simulator import Simulator
from bot.generation.service import GenerationService
from storage.models import Job
from tests.civitai_spec import validate_request
from tests.stage import Channel, Message, Stage, StageMember
from tests.tracking.helpers import epoch_messages, finished, start_run


def is_final(message: Message) -> bool:
    return "finished training" in message.content


async def finished_run(
    bot: TrainerBot, stage: Stage, owner: StageMember, tmp_path: Path, epochs: int = 3
) -> tuple[Job, Channel, list[Message], Message]:
    """A succeeded run of ``owner``: the job, its thread, its epoch messages and the final grid."""
    job, thread = await start_run(bot, stage, owner, tmp_path, epochs=epochs, steps=20 * epochs)
    final = await stage.wait_message(thread, is_final)
    done = await finished(bot, job.id)
    return done, thread, epoch_messages(stage, thread), final


def image_gen_requests(sim: Simulator) -> list[dict[str, Any]]:
    """Every imageGen template the simulator received (whatif and real), each checked against
    Civitai's OpenAPI document."""
    bodies = [*sim.whatif_requests, *sim.workflows.values()]
    found = [b for b in bodies if b["steps"][0]["$type"] == "imageGen"]
    for body in found:
        assert validate_request("WorkflowTemplate", body) == [], body
    return found


def generation_service(bot: TrainerBot) -> GenerationService:
    service = getattr(bot.get_cog("TryIt"), "service", None)
    assert isinstance(service, GenerationService)
    return service


def is_images(message: Message) -> bool:
    return message.content.startswith("🎨")
