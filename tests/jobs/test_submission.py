"""The submission core against the in-process simulator and a real SQLite file (no Discord)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.civitai.training import TrainingOptions
from bot.config import CivitaiMode, Settings
from bot.dataset.intake import intake_from_stream
from bot.dataset.report import DatasetResult
from bot.jobs.payer import SIMULATED_TOKEN
from bot.jobs.policy import Member, TrainingRefused
from bot.jobs.submission import SHORT_OF_BUZZ_PREFIX, ConfirmationClosed, ConfirmationExpired, NotYourJob, Requester
from bot.services import Services
from storage.models import Job, JobStatus
from tests.dataset_helpers import image_bytes, make_zip

GUILD = 1
ALICE = Requester(GUILD, Member(user_id=10, role_ids=frozenset(), channel_id=100))
BOB = Requester(GUILD, Member(user_id=11, role_ids=frozenset(), channel_id=100))


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        data_dir=tmp_path / "data", civitai_mode=CivitaiMode.SIMULATE, http_port=0, http_host="127.0.0.1",
        simulator_speed=50_000,
    )
    services = await Services.start(settings)
    yield services
    await services.close()


async def dataset(services: Services, tmp_path: Path, count: int = 4) -> DatasetResult:
    files = {f"img{n}.jpg": image_bytes(size=(128, 128)) for n in range(count)}
    files["img0.txt"] = b"a photo of sks dog on a beach"
    data = make_zip(tmp_path / "in.zip", files).read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return await intake_from_stream(chunks(), services.settings, store=services.datasets)


async def test_quote_then_confirm_submits_once_even_when_clicked_twice(services: Services, tmp_path: Path) -> None:
    result = await dataset(services, tmp_path)
    options = TrainingOptions.from_user(steps=1000, epochs=4, trigger_word="sks")
    quote = await services.training.quote(ALICE, options, result, name="dog")
    # The whatif price is authoritative and nothing ran: no workflow exists yet.
    assert not quote.price_is_estimate and quote.price >= 1600
    assert quote.options.sample_prompts[0] == "a photo of sks dog on a beach"
    assert services.orchestrator.simulator is not None and services.orchestrator.simulator.workflows == {}

    first, second = await asyncio.gather(
        services.training.confirm(quote.job.id, ALICE), services.training.confirm(quote.job.id, ALICE)
    )
    assert {first.status, second.status} <= {JobStatus.SUBMITTED, JobStatus.SUBMITTING}
    sim = services.orchestrator.simulator
    assert len(sim.workflows) == 1
    template = next(iter(sim.workflows.values()))
    training_input = template["steps"][0]["input"]
    assert (training_input["steps"], training_input["epochs"], training_input["trainingData"]["type"]) == (
        1000, 4, "blobs"
    )
    assert len(training_input["trainingData"]["items"]) == result.image_count
    job = await services.store.jobs.get(quote.job.id)
    assert job is not None and job.status is JobStatus.SUBMITTED and job.workflow_id
    # A third click later changes nothing.
    assert (await services.training.confirm(quote.job.id, ALICE)).workflow_id == job.workflow_id
    assert len(sim.workflows) == 1


async def test_only_the_caller_confirms_and_confirmations_expire(services: Services, tmp_path: Path) -> None:
    result = await dataset(services, tmp_path)
    quote = await services.training.quote(ALICE, TrainingOptions.from_user(), result)
    with pytest.raises(NotYourJob):
        await services.training.confirm(quote.job.id, BOB)
    services.clock.advance(minutes=16)
    with pytest.raises(ConfirmationExpired):
        await services.training.confirm(quote.job.id, ALICE)
    assert services.orchestrator.simulator is not None and services.orchestrator.simulator.workflows == {}


async def test_only_one_click_submits_and_hears_the_claim(services: Services, tmp_path: Path) -> None:
    result = await dataset(services, tmp_path)
    quote = await services.training.quote(ALICE, TrainingOptions.from_user(steps=500, epochs=2), result)
    claimed: list[str] = []

    async def on_claimed(job: Job) -> None:
        claimed.append(job.id)

    results = await asyncio.gather(
        *(services.training.submit_draft(quote.job.id, ALICE, on_claimed=on_claimed) for _ in range(3))
    )
    assert [r.submitted_now for r in results].count(True) == 1 and claimed == [quote.job.id]
    later = await services.training.submit_draft(quote.job.id, ALICE)
    assert not later.submitted_now and later.job.status is JobStatus.SUBMITTED


async def test_editing_prompts_prices_again_and_empty_means_the_defaults(services: Services, tmp_path: Path) -> None:
    result = await dataset(services, tmp_path)
    quote = await services.training.quote(ALICE, TrainingOptions.from_user(steps=500, epochs=4), result)
    more = await services.training.update_sample_prompts(quote.job.id, ALICE, [f"prompt {n}" for n in range(6)])
    assert more is not None and not more.price_is_estimate  # Civitai priced it again (whatif)
    assert more.price > quote.price and more.options.sample_prompts == tuple(f"prompt {n}" for n in range(6))
    stored = await services.store.jobs.get(quote.job.id)
    assert stored is not None and stored.price_quoted == more.price
    defaults = await services.training.update_sample_prompts(quote.job.id, ALICE, [])
    assert defaults is not None and defaults.options.sample_prompts[0] == "a photo of sks dog on a beach"
    with pytest.raises(NotYourJob):
        await services.training.update_sample_prompts(quote.job.id, BOB, ["x"])
    services.clock.advance(minutes=16)
    with pytest.raises(ConfirmationExpired):
        await services.training.update_sample_prompts(quote.job.id, ALICE, ["x"])


async def test_prompts_and_cancel_do_nothing_once_submitted(services: Services, tmp_path: Path) -> None:
    result = await dataset(services, tmp_path)
    quote = await services.training.quote(ALICE, TrainingOptions.from_user(steps=500, epochs=2), result)
    await services.training.confirm(quote.job.id, ALICE)
    assert await services.training.update_sample_prompts(quote.job.id, ALICE, ["x"]) is None
    assert not await services.training.discard(quote.job.id, ALICE)
    job = await services.store.jobs.get(quote.job.id)
    assert job is not None and job.status is JobStatus.SUBMITTED


async def test_cancel_then_confirm_says_cancelled_and_expired_discards_say_expired(
    services: Services, tmp_path: Path
) -> None:
    result = await dataset(services, tmp_path)
    first = await services.training.quote(ALICE, TrainingOptions.from_user(), result)
    assert await services.training.discard(first.job.id, ALICE)
    with pytest.raises(ConfirmationClosed):
        await services.training.confirm(first.job.id, ALICE)
    services.clock.advance(minutes=16)
    with pytest.raises(ConfirmationExpired):
        await services.training.confirm(first.job.id, ALICE)


async def test_precheck_refuses_before_any_download(services: Services) -> None:
    await services.store.guilds.update(GUILD, user_daily_buzz_cap=1000, max_steps=800)
    with pytest.raises(TrainingRefused, match="1,000 Buzz per day"):
        await services.training.precheck(ALICE, TrainingOptions.from_user(steps=500))
    with pytest.raises(TrainingRefused, match="at most 800 steps"):
        await services.training.precheck(ALICE, TrainingOptions.from_user(steps=900))
    await services.store.guilds.update(GUILD, user_daily_buzz_cap=None)
    await services.training.precheck(ALICE, TrainingOptions.from_user(steps=500))


async def test_a_short_account_is_warned_about_at_quote_time(services: Services, tmp_path: Path) -> None:
    sim = services.orchestrator.simulator
    assert sim is not None
    sim.add_account(SIMULATED_TOKEN.get_secret_value(), 100)
    result = await dataset(services, tmp_path)
    quote = await services.training.quote(ALICE, TrainingOptions.from_user(steps=500, epochs=2), result)
    assert any(w.startswith(SHORT_OF_BUZZ_PREFIX) and f"{quote.price:,} Buzz" in w for w in quote.warnings)
