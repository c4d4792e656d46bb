"""Auto-captioning without Discord: the text rules, the simulator's two step types, and the
service from a checked dataset to a captioned one (priced, charged once, resumed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.captioning.media import upload_media
from bot.captioning.options import AutoCaption, CaptionOptions, CaptionStyle
from bot.captioning.service import CaptioningFailed
from bot.captioning.text import tags_caption, with_trigger_first
from bot.captioning.workflow import captioning_template
from bot.civitai.simulator import Simulator
from bot.civitai.simulator.captioning import is_captioning
from bot.dataset.intake import intake_from_stream
from bot.dataset.report import DatasetResult
from bot.errors import UserFacingError
from bot.jobs.payer import SIMULATED_TOKEN
from bot.jobs.policy import Member
from bot.jobs.recovery import workflow_tag
from bot.jobs.submission import Requester
from bot.services import Services
from storage.captions import CaptionRunStatus
from tests.captioning.helpers import (
    COLOUR_NAMES,
    assert_valid_captioning_requests,
    captioned_zip,
    chunks_of,
    sidecars,
)

ALICE = Requester(1, Member(user_id=10, role_ids=frozenset(), channel_id=100))
TOKEN = SIMULATED_TOKEN.get_secret_value()


def test_trigger_word_comes_first_and_only_once() -> None:
    assert with_trigger_first("A photo of a dog.", "sks") == "sks, A photo of a dog."
    assert with_trigger_first("A photo of sks, a dog on SKS grass.", "sks") == "sks, A photo of a dog on grass."
    assert with_trigger_first("sks", "sks") == "sks"
    assert with_trigger_first("line one\nline\ttwo", None) == "line one line two"
    # A word that merely contains the trigger is not the trigger.
    assert with_trigger_first("sksdog runs", "sks") == "sks, sksdog runs"


def test_tags_above_the_threshold_best_first() -> None:
    tags = {"long_hair": 0.5, "red_theme": 0.9, "photo": 0.2, "outdoors": 0.5}
    assert tags_caption(tags, 0.35) == "red theme, long hair, outdoors"


def test_unknown_choices_are_refused_with_the_allowed_values() -> None:
    with pytest.raises(UserFacingError, match="off, missing, all"):
        CaptionOptions.from_user("some", None)
    options = CaptionOptions.from_user("missing", "tags", " sks ")
    assert (options.mode, options.style, options.trigger_word) == (AutoCaption.MISSING, CaptionStyle.TAGS, "sks")
    assert options.wants(None) and options.wants("  ") and not options.wants("a caption")


async def checked(services: Services, data: bytes, trigger: str | None = "sks") -> DatasetResult:
    return await intake_from_stream(chunks_of(data), services.settings, trigger_word=trigger, store=services.datasets)


def simulator(services: Services) -> Simulator:
    sim = services.orchestrator.simulator
    assert sim is not None
    return sim


def captioning_bodies(sim: Simulator) -> list[dict[str, object]]:
    return [body for body in sim.workflows.values() if is_captioning(body)]


@pytest.mark.parametrize("style", ["sentences", "tags"])
async def test_missing_captions_are_generated_priced_and_charged_once(services: Services, style: str) -> None:
    dataset = await checked(services, captioned_zip(6, {0: "sks, my own words"}))
    options = CaptionOptions.from_user("missing", style, "sks")
    quote = await services.captioning.quote(ALICE, options, dataset, {"source": "dog.zip"})
    assert quote is not None and quote.count == 5 and not quote.price_is_estimate
    sim = simulator(services)
    whatif = [body for body in sim.whatif_requests if is_captioning(body)]
    assert_valid_captioning_requests(whatif)
    assert quote.price == 5 * (2 if style == "sentences" else 1)  # the simulator's price, through whatif
    assert sim.charges(TOKEN) == [] if sim.account(TOKEN) else True  # nothing spent before the run

    seen: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        seen.append((done, total))

    first, second = await asyncio.gather(
        services.captioning.run(quote.run.id, ALICE, progress), services.captioning.run(quote.run.id, ALICE)
    )
    outcome = first or second
    assert outcome is not None and (first is None or second is None)  # a double click runs once
    assert seen[-1] == (5, 5) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert_valid_captioning_requests(captioning_bodies(sim))
    assert len(captioning_bodies(sim)) == 1 and len(captioning_bodies(sim)[0]["steps"]) == 5  # type: ignore[arg-type]
    assert [c["amount"] for c in sim.charges(TOKEN) if c["type"] == "debit"] == [quote.price]
    ledger = await services.store.ledger.spent_by_user(1, 10, quote.run.created_at.replace(hour=0, minute=0))
    assert ledger == quote.price

    summary = outcome.summary
    assert (summary.kept, summary.generated, summary.replaced, summary.failed) == (1, 5, 0, [])
    assert outcome.dataset.digest != dataset.digest and outcome.dataset.accepted
    assert outcome.dataset.captioned == 6 and outcome.dataset.captions_missing_trigger == []
    assert outcome.dataset.zip_path is not None
    written = sidecars(outcome.dataset.zip_path)
    assert written["img00"] == "sks, my own words"  # kept as it was
    for n in range(1, 6):
        text = written[f"img{n:02d}"]
        assert text.startswith("sks, ") and text.count("sks") == 1
        assert COLOUR_NAMES[n % 4] in text  # derived from the image itself
        if style == "sentences":
            assert "160×128 pixels" in text and "landscape" in text
        else:
            assert "photo" in text and "no humans" in text  # 0.38 ≥ 0.35; 0.2 tags are left out
    assert summary.captions_txt().splitlines()[1] == f"img01.jpg\t{written['img01']}"
    run = await services.store.captions.get(quote.run.id)
    assert run is not None and run.status is CaptionRunStatus.SUCCEEDED and run.result_digest == outcome.dataset.digest


async def test_all_replaces_existing_captions_and_missing_with_nothing_to_do_asks_nothing(services: Services) -> None:
    dataset = await checked(services, captioned_zip(3, {0: "sks one", 1: "sks two", 2: "sks three"}))
    assert await services.captioning.quote(ALICE, CaptionOptions.from_user("missing", None, "sks"), dataset, {}) is None
    quote = await services.captioning.quote(ALICE, CaptionOptions.from_user("all", None, "sks"), dataset, {})
    assert quote is not None and quote.count == 3
    outcome = await services.captioning.run(quote.run.id, ALICE)
    assert outcome is not None
    assert (outcome.summary.kept, outcome.summary.generated, outcome.summary.replaced) == (0, 0, 3)
    assert all("tones" in text for text in sidecars(outcome.dataset.zip_path).values())


async def test_an_image_refused_by_moderation_is_named_and_left_uncaptioned(services: Services) -> None:
    dataset = await checked(services, captioned_zip(4))
    simulator(services).captioning.refuse["img02.jpg"] = "blocked"
    quote = await services.captioning.quote(ALICE, CaptionOptions.from_user("missing", None, "sks"), dataset, {})
    assert quote is not None
    outcome = await services.captioning.run(quote.run.id, ALICE)
    assert outcome is not None
    assert outcome.summary.failed == [("img02.jpg", "refused by moderation (blocked)")]
    assert outcome.summary.generated == 3
    assert "img02" not in sidecars(outcome.dataset.zip_path)
    assert "- `img02.jpg`: refused by moderation (blocked); left uncaptioned" in outcome.summary.lines()


async def test_a_failed_workflow_explains_itself_and_changes_nothing(services: Services) -> None:
    dataset = await checked(services, captioned_zip(3))
    sim = simulator(services)
    sim.captioning.fail_workflow = "no_provider_available"
    quote = await services.captioning.quote(ALICE, CaptionOptions.from_user("all", "tags", "sks"), dataset, {})
    assert quote is not None
    with pytest.raises(CaptioningFailed) as failed:
        await services.captioning.run(quote.run.id, ALICE)
    message = failed.value.user_message
    assert "no_provider_available" in message and "given back" in message and "unchanged" in message
    assert sum(c["amount"] for c in sim.charges(TOKEN) if c["type"] == "debit") == sum(
        c["amount"] for c in sim.charges(TOKEN) if c["type"] == "credit"
    )
    run = await services.store.captions.get(quote.run.id)
    assert run is not None and run.status is CaptionRunStatus.FAILED and run.result_digest is None


async def test_a_restart_mid_captioning_resumes_without_charging_twice(services: Services, tmp_path: Path) -> None:
    dataset = await checked(services, captioned_zip(5))
    sim = simulator(services)
    quote = await services.captioning.quote(ALICE, CaptionOptions.from_user("missing", None, "sks"), dataset, {})
    assert quote is not None
    sim.speed = 0  # time stands still: the run is submitted and stays in the middle
    task = asyncio.create_task(services.captioning.run(quote.run.id, ALICE))
    await _until(lambda: bool(captioning_bodies(sim)))
    run = await services.store.captions.get(quote.run.id)
    await _until_async(lambda: _status(services, quote.run.id), CaptionRunStatus.RUNNING)
    task.cancel()  # the process goes away while the workflow runs
    with pytest.raises(asyncio.CancelledError):
        await task
    sim.speed = 50_000
    resumed: list[str] = []

    async def done(run: object, outcome: object) -> None:
        resumed.append(getattr(run, "id", ""))
        assert outcome is not None

    assert await services.captioning.resume(done) == 1
    assert resumed == [quote.run.id]
    assert len(captioning_bodies(sim)) == 1  # the same workflow, followed again
    assert [c["amount"] for c in sim.charges(TOKEN) if c["type"] == "debit"] == [quote.price]
    finished = await services.store.captions.get(quote.run.id)
    assert run is not None and finished is not None and finished.status is CaptionRunStatus.SUCCEEDED
    assert await services.captioning.resume() == 0


async def _status(services: Services, run_id: str) -> CaptionRunStatus | None:
    run = await services.store.captions.get(run_id)
    return run.status if run else None


async def _until(check: object, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _until_async(read: object, wanted: object, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await read() != wanted:  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_run_left_submitting_is_looked_up_on_resume_never_sent_again(services: Services) -> None:
    """A restart between the claim and the submit: resume asks Civitai for the run's workflow (by
    its tag and externalId) instead of submitting it again; Civitai has none, so the reservation
    is released and the run is a draft again, which Caption then runs and charges once."""
    store = services.store
    dataset = await checked(services, captioned_zip(3))
    quote = await services.captioning.quote(ALICE, CaptionOptions.from_user("all", None, "sks"), dataset, {})
    assert quote is not None
    claim = await store.captions.claim(quote.run.id, None, services.clock.now())
    assert claim.refusal is None and await store.captions.spent(quote.run.id) == quote.price  # reserved
    assert await services.captioning.resume() == 1
    sim = simulator(services)
    assert captioning_bodies(sim) == []
    run = await store.captions.get(quote.run.id)
    assert run is not None and run.status is CaptionRunStatus.DRAFT and await store.captions.spent(run.id) == 0
    assert await services.captioning.run(run.id, ALICE) is not None
    assert len(captioning_bodies(sim)) == 1 and captioning_bodies(sim)[0]["externalId"] == quote.run.external_id
    assert [c["amount"] for c in sim.charges(TOKEN) if c["type"] == "debit"] == [quote.price]
    run = await store.captions.get(quote.run.id)
    assert run is not None and run.status is CaptionRunStatus.SUCCEEDED and run.price_charged == quote.price
    assert await store.captions.spent(run.id) == quote.price
    # Recording a workflow again (a lost answer retried) changes nothing: charged once.
    assert await store.captions.mark_running(run.id, "another", 99) is False
    assert await store.captions.spent(run.id) == quote.price


async def test_a_run_whose_submit_got_through_before_a_restart_is_adopted_on_resume(services: Services) -> None:
    """The process died after Civitai created the workflow, before its answer was recorded:
    resume finds it by the run's tag and externalId, adopts it (never submits it again) and
    charges it once, the reservation becoming Civitai's price."""
    store = services.store
    dataset = await checked(services, captioned_zip(3))
    quote = await services.captioning.quote(ALICE, CaptionOptions.from_user("all", None, "sks"), dataset, {})
    assert quote is not None and dataset.zip_path is not None
    assert (await store.captions.claim(quote.run.id, None, services.clock.now())).refusal is None
    run = await store.captions.get(quote.run.id)
    assert run is not None
    session = services.orchestrator.client.session(SIMULATED_TOKEN)  # what the dead process sent
    media = await upload_media(session, dataset.zip_path, run.images)
    options = services.captioning.options_of(run)
    await session.submit(captioning_template(media, options, external_id=run.external_id, run_tag=workflow_tag(run.id)))
    assert await services.captioning.resume() == 1
    sim = simulator(services)
    assert len(captioning_bodies(sim)) == 1
    run = await store.captions.get(quote.run.id)
    assert run is not None and run.status is CaptionRunStatus.SUCCEEDED
    assert run.workflow_id == next(iter(sim.workflows))
    assert [c["amount"] for c in sim.charges(TOKEN) if c["type"] == "debit"] == [quote.price]
    assert await store.captions.spent(run.id) == quote.price


async def test_a_run_whose_member_is_forgotten_while_it_runs_leaves_nothing_behind(services: Services) -> None:
    dataset = await checked(services, captioned_zip(4))
    sim = simulator(services)
    quote = await services.captioning.quote(ALICE, CaptionOptions.from_user("missing", None, "sks"), dataset, {})
    assert quote is not None
    sim.speed = 0  # the workflow stays in the middle while the member asks to be forgotten
    task = asyncio.create_task(services.captioning.run(quote.run.id, ALICE))
    await _until_async(lambda: _status(services, quote.run.id), CaptionRunStatus.RUNNING)
    stored_before = set(services.datasets.root.rglob("*.zip"))
    assert services.datasets.path_for(dataset.digest or "") in stored_before

    report = await services.accounts.forget_user(ALICE.member.user_id)
    assert report.removed_rows["caption_runs"] == 1
    sim.speed = 50_000
    with pytest.raises(UserFacingError, match="deleted with your data"):
        await asyncio.wait_for(task, 10)
    assert list(services.datasets.root.rglob("*.zip")) == []  # neither her upload nor a captioned copy
    assert await services.store.captions.get(quote.run.id) is None
