"""Submitting runs through the core (until /train drives them) and reading what they produced."""

from __future__ import annotations

import asyncio
import io
import json
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import SecretStr

from bot.app import TrainerBot
from bot.civitai.simulator import Simulator
from bot.civitai.training import TrainingOptions
from bot.config import CivitaiMode
from bot.dataset.intake import intake_from_stream
from bot.dataset.report import DatasetResult
from bot.jobs.policy import Member
from bot.jobs.submission import Requester
from bot.services import Services
from cogs.job_thread import open_job_thread
from storage.models import Job
from tests.dataset_helpers import image_bytes, make_zip
from tests.stage import Channel, Message, Stage, StageMember

PROMPTS = ("a photo of sks dog", "sks dog on a beach")
# Settings that make a run take about a second and the bot react within tens of milliseconds.
FAST: dict[str, Any] = {
    "simulator_speed": 400,
    "poll_delays_seconds": (0.05, 0.1),
    "poll_interval_seconds": 0.2,
    "card_edit_interval_seconds": 0.2,
    "reconcile_interval_seconds": 60,
}
PUBLIC_URL = "https://bot.test"
OPERATOR_TOKEN = "operator-token"


def real_mode(sim: Simulator) -> dict[str, Any]:
    """Settings of a bot in real mode against ``sim`` (an orchestrator outside the bot)."""
    assert sim.base_url is not None
    return {
        "civitai_mode": CivitaiMode.REAL,
        "orchestrator_url": sim.base_url,
        "civitai_token": SecretStr(OPERATOR_TOKEN),
        "dataset_transport": "blobs",
    }


async def checked_dataset(services: Services, tmp_path: Path, count: int = 3) -> DatasetResult:
    files = {f"img{n}.jpg": image_bytes(size=(128, 128)) for n in range(count)}
    data = make_zip(tmp_path / "dataset-in.zip", files).read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return await intake_from_stream(chunks(), services.settings, store=services.datasets)


async def submit(
    services: Services,
    tmp_path: Path,
    *,
    guild_id: int,
    user_id: int,
    channel_id: int,
    epochs: int = 10,
    steps: int = 200,
    name: str = "dog",
) -> Job:
    """A submitted job, exactly as Confirm leaves it."""
    requester = Requester(guild_id, Member(user_id=user_id, role_ids=frozenset(), channel_id=channel_id))
    options = TrainingOptions.from_user(steps=steps, epochs=epochs, trigger_word="sks", sample_prompts=list(PROMPTS))
    quote = await services.training.quote(requester, options, await checked_dataset(services, tmp_path), name=name)
    return await services.training.confirm(quote.job.id, requester)


async def start_run(
    bot: TrainerBot, stage: Stage, member: StageMember, tmp_path: Path, **options: Any
) -> tuple[Job, Channel]:
    """Submit a run for ``member`` in #general and open its card and thread, like /train does."""
    general = stage.channel("general")
    job = await submit(
        bot.services, tmp_path, guild_id=stage.guild.id, user_id=member.id, channel_id=general.id, **options
    )
    _, thread = await open_job_thread(bot, bot.services.store, job)
    assert thread is not None
    return job, stage.channel(thread.id)


def simulator(bot: TrainerBot) -> Simulator:
    sim = bot.services.orchestrator.simulator
    assert sim is not None, "the bot runs against its in-process simulator"
    return sim


async def advance(sim: Simulator, seconds: float, step: float = 2.0) -> None:
    """Move a stopped simulator's time on in small steps: each stage of a run waits relative to
    when it started, so one big jump would only finish the stage in progress."""
    while seconds > 0:
        await sim.advance(min(step, seconds))
        seconds -= step


async def eventually(condition: Callable[[], object], what: str, within: float = 10.0) -> None:
    """Wait until ``condition()`` is true (for state the stage does not announce)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def finished(bot: TrainerBot, job_id: str, within: float = 10.0) -> Job:
    """The job once the tracker stored its end (it does so last, after every post and DM)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        job = await bot.services.store.jobs.get(job_id)
        assert job is not None
        if job.status.finished:
            return job
        assert loop.time() < deadline, f"job {job_id} still {job.status} after {within} s"
        await asyncio.sleep(0.02)


def is_epoch(message: Message) -> bool:
    return message.content.startswith("**Epoch ")


def epoch_messages(stage: Stage, thread: Channel) -> list[Message]:
    return [m for m in stage.messages_in(thread) if is_epoch(m)]


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # a truncated or corrupt file fails here
        return image.size


def safetensors_header(data: bytes) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON)."""
    (length,) = struct.unpack("<Q", data[:8])
    assert 0 < length <= len(data) - 8, "header length beyond the file"
    header: dict[str, Any] = json.loads(data[8 : 8 + length])
    return header
