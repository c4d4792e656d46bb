"""Starting runs for the /jobs, /account and /admin tests without going through Discord.

Until ``/train`` drives them, jobs are created the way Confirm creates them: ``quote`` then
``confirm`` of the real training service, with the member's real roles and channel on the stage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from bot.app import TrainerBot
from bot.civitai.simulator import Simulator
from bot.civitai.training import TrainingOptions
from bot.dataset.intake import intake_from_stream
from bot.dataset.report import DatasetResult
from bot.jobs.policy import Member
from bot.jobs.submission import Quote, Requester
from storage.models import Job, NewJob, Payer, TokenSource, Variant
from tests.dataset_helpers import image_bytes, make_zip
from tests.stage import Stage, StageMember
from tests.train.helpers import attachment, confirmation, refused, submitted


async def dataset(bot: TrainerBot, tmp_path: Path, count: int = 2) -> DatasetResult:
    files = {f"img{n}.jpg": image_bytes(size=(96, 96)) for n in range(count)}
    data = make_zip(tmp_path / f"in-{count}.zip", files).read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    result = await intake_from_stream(chunks(), bot.services.settings, store=bot.services.datasets)
    assert result.accepted, result.to_text()
    return result


def requester(stage: Stage, member: StageMember, channel: str | None = None) -> Requester:
    """The member as the policy sees them: their roles in the guild, the channel they act in."""
    where = stage.channel(channel) if channel else member.channel
    assert member.guild is not None
    roles = frozenset(member.guild.members[member.id].role_ids)
    return Requester(member.guild.id, Member(user_id=member.id, role_ids=roles, channel_id=where.id))


async def quote(
    bot: TrainerBot, stage: Stage, member: StageMember, data: DatasetResult, *, channel: str | None = None,
    steps: int = 200, epochs: int = 2, name: str = "dog",
) -> Quote:  # fmt: skip
    options = TrainingOptions.from_user(steps=steps, epochs=epochs, trigger_word="sks", sample_prompts="a sks dog")
    return await bot.services.training.quote(requester(stage, member, channel), options, data, name=name)


async def start_run(bot: TrainerBot, stage: Stage, member: StageMember, data: DatasetResult, **options: object) -> Job:
    """Quote and confirm a run as ``member``: the job is submitted to the simulator."""
    quoted = await quote(bot, stage, member, data, **options)  # type: ignore[arg-type]
    return await bot.services.training.confirm(quoted.job.id, requester(stage, member))


def simulator(bot: TrainerBot) -> Simulator:
    sim = bot.services.orchestrator.simulator
    assert sim is not None
    return sim


async def insert_jobs(bot: TrainerBot, guild_id: int, user_id: int, count: int, *, name: str = "run") -> list[Job]:
    """Submitted jobs written straight to the store (no simulator run behind them): for lists."""
    store = bot.services.store
    jobs = []
    for number in range(count):
        draft = await store.jobs.create(
            NewJob(
                guild_id=guild_id, channel_id=1, user_id=user_id, name=f"{name} {number}", variant=Variant.DEV,
                params={"steps": 100, "epochs": 1}, dataset_digest="0" * 64, image_count=2, payer=Payer.OPERATOR,
                token_source=TokenSource.NONE, price_estimate=10.0, simulated=True,
            )
        )  # fmt: skip
        await store.jobs.claim_for_submit(draft.id)
        job = await store.jobs.mark_submitted(draft.id, f"wf-{draft.id}", 10.0)
        assert job is not None
        jobs.append(job)
    return jobs


async def train(bot: TrainerBot, member: StageMember, **options: object) -> Job:
    """``/train flux1`` as ``member`` (2 images, 200 steps, 2 epochs unless told), Confirm, and the job."""
    options = {"dataset": attachment(2), "steps": 200, "epochs": 2} | options
    await member.slash("train flux1", **options)
    await member.click(await confirmation(member), label="Confirm")
    await member.wait_ephemeral(submitted)
    [job] = await bot.services.store.jobs.list_for_user(member.id, limit=1)
    assert job.workflow_id, job
    return job


async def train_refused(member: StageMember, **options: object) -> str:
    """``/train flux1`` as ``member``: the refusal it shows instead of a confirmation."""
    options = {"dataset": attachment(2), "steps": 200, "epochs": 2} | options
    reply = await refused(member, **options)
    return f"{reply.embed['title']}\n{reply.embed['description']}"
