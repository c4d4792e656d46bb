"""Choices for continue_from from stored runs, and the limits /help shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.jobs.continuation import finished_loras, job_epoch_airs
from bot.jobs.limits import describe_limits
from bot.jobs.payer import describe_payer
from storage import Store
from storage.models import JobStatus, Payer
from tests.storage.conftest import GUILD, OTHER_USER, USER, new_job


def workflow_state(*models: str | None) -> dict[str, Any]:
    """A stored workflow whose training step has one epoch per entry (None: not available yet)."""
    epochs = [
        {"epochNumber": n, "model": {"id": blob, "available": True}} if blob else {"epochNumber": n}
        for n, blob in enumerate(models, 1)
    ]
    return {"id": "wf-1", "status": "succeeded", "steps": [{"$type": "training", "output": {"epochs": epochs}}]}


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


async def finished(store: Store, name: str, state: dict[str, Any], *, user: int = USER) -> str:
    job = await store.jobs.create(new_job(name=name, user_id=user))
    assert await store.jobs.claim_for_submit(job.id)
    assert await store.jobs.mark_submitted(job.id, f"wf-{job.id}", 1700.0) is not None
    assert await store.jobs.update_state(job.id, JobStatus.SUCCEEDED, state, 1.0)
    return job.id


async def test_epochs_of_finished_runs_newest_first_with_their_airs(store: Store) -> None:
    older = await finished(store, "cat", workflow_state("blob-c1", "blob-c2"))
    newer = await finished(store, "dog", workflow_state("blob-d1", None, "blob-d3"))
    await finished(store, "bob's", workflow_state("blob-b1"), user=OTHER_USER)
    choices = await finished_loras(store, USER, "")
    assert [c.air for c in choices] == [
        "urn:air:flux1:lora:orchestrator:blob@blob-d3",
        "urn:air:flux1:lora:orchestrator:blob@blob-d1",
        "urn:air:flux1:lora:orchestrator:blob@blob-c2",
        "urn:air:flux1:lora:orchestrator:blob@blob-c1",
    ]
    assert choices[0].label == f"dog · epoch 3/10 · job {newer}"
    assert [c.label for c in await finished_loras(store, USER, "CAT")] == [
        f"cat · epoch 2/10 · job {older}", f"cat · epoch 1/10 · job {older}",
    ]  # fmt: skip


async def test_a_pasted_air_is_offered_as_typed_and_a_running_job_is_not(store: Store) -> None:
    await store.jobs.create(new_job(name="still a draft"))
    pasted = "urn:air:flux1:lora:civitai:123@456"
    assert [(c.label, c.air) for c in await finished_loras(store, USER, f"  {pasted} ")] == [(pasted, pasted)]
    own = await finished(store, "dog", workflow_state("blob-d1"))
    known = "urn:air:flux1:lora:orchestrator:blob@blob-d1"
    assert [c.label for c in await finished_loras(store, USER, known)] == [f"dog · epoch 1/10 · job {own}"]


async def test_a_state_that_does_not_parse_is_skipped(store: Store) -> None:
    job_id = await finished(store, "odd", {"steps": "not a list"})
    job = await store.jobs.get(job_id)
    assert job is not None and job_epoch_airs(job) == []


async def test_limits_and_payer_in_words(store: Store) -> None:
    settings = await store.guilds.update(
        GUILD, required_role_id=77, max_concurrent_jobs_per_user=1, user_daily_buzz_cap=5000, max_steps=3000,
        cooldown_seconds=30, payer=Payer.SERVER,
    )  # fmt: skip
    lines = "\n".join(describe_limits(settings, [101, 102]))
    for expected in ("<#101>, <#102>", "<@&77>", "1 per member", "5,000 Buzz per member per day",
                     "no monthly cap", "at most 3,000", "up to 20", "every 30 s"):  # fmt: skip
        assert expected in lines
    assert "any channel" in "\n".join(describe_limits(await store.guilds.get(GUILD + 1), []))
    assert "not set up yet" in describe_payer(Payer.SERVER, simulated=False, server_token_set=False)
    assert "/account token" in describe_payer(Payer.USER, simulated=False, server_token_set=False)
    assert "SIMULATED" in describe_payer(Payer.USER, simulated=True, server_token_set=False)
