"""Captioning a member's dataset: price, confirm, submit once, follow, apply, resume.

``quote`` finds the images to caption, prices the workflow with whatif (the per-image formula,
labelled an estimate, when whatif is unreachable), checks the same caps and payer as training
and stores a draft run. ``run`` claims the draft once, uploads the images, submits the workflow
with the run's ``externalId`` (a retry after a lost answer, or after a restart, returns the same
workflow and charges nothing more), charges the ledger once, follows the workflow with
long-polls, and writes the captions into a new normalised zip. ``resume`` finishes the runs a
restart interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.captioning.apply import apply_captions
from bot.captioning.media import upload_media
from bot.captioning.options import AutoCaption, CaptionOptions, CaptionStyle
from bot.captioning.summary import CaptionSummary
from bot.captioning.workflow import MediaToCaption, StepResult, captioning_template, read_results
from bot.civitai import models as m
from bot.civitai.client import OrchestratorSession
from bot.civitai.errors import OrchestratorServerError, OrchestratorUnreachable, RateLimited
from bot.civitai.pricing import price_from_workflow
from bot.dataset.check import check_zip
from bot.dataset.report import DatasetResult
from bot.errors import UserFacingError
from bot.jobs.dataset_files import dataset_items
from bot.jobs.payer import PayingAccount, resolve_payer
from bot.jobs.submission import Requester, TrainingService
from storage.captions import CaptionRun, CaptionRunStatus, NewCaptionRun

log = logging.getLogger(__name__)

# Per-image prices for the estimate shown when whatif is unreachable.
ESTIMATED_BUZZ_PER_IMAGE = {CaptionStyle.SENTENCES: 2, CaptionStyle.TAGS: 1}
WHATIF_MEDIA_URL = "https://civitai.com/lora-trainer-bot/price-only/image.jpg"
# One long-poll (until=change) returns at once when anything changes, but it cannot say "since
# when": a change between two reads (the last one, typically) is only seen when the hold ends.
FOLLOW_WAIT_SECONDS = 5
FOLLOW_RETRY_SECONDS = 5.0

Progress = Callable[[int, int], Awaitable[None]]


class CaptioningFailed(UserFacingError):
    """The captioning workflow failed as a whole; the dataset is unchanged."""


class CaptioningUnavailable(UserFacingError):
    pass


@dataclass(frozen=True)
class CaptionQuote:
    run: CaptionRun
    count: int
    price: int
    price_is_estimate: bool
    payer: str
    simulated: bool
    free: bool  # at or under the server's caption_buzz: runs without its own confirmation


@dataclass(frozen=True)
class CaptionOutcome:
    run: CaptionRun
    dataset: DatasetResult
    summary: CaptionSummary


class CaptioningService:
    def __init__(self, training: TrainingService) -> None:
        # Captioning pays, counts and is refused exactly like training: reuse its pieces.
        self.training = training
        self.store = training.store
        self.settings = training.settings
        self.datasets = training.datasets
        self.policy = training.policy
        self.orchestrator = training.orchestrator
        # Tasks following a run now: stopped with the process (the run resumes at the next start).
        self._following: set[asyncio.Task[Any]] = set()

    # Before anything is spent

    async def quote(
        self,
        requester: Requester,
        options: CaptionOptions,
        dataset: DatasetResult,
        context: Mapping[str, Any],
    ) -> CaptionQuote | None:
        """A priced draft run, or None when no image needs a caption."""
        if not options.enabled or dataset.zip_path is None or dataset.digest is None:
            return None
        names = [
            item.name
            for item in await asyncio.to_thread(dataset_items, dataset.zip_path)
            if options.wants(item.caption)
        ]
        if not names:
            return None
        guild = await self.policy.check_member(requester.guild_id, requester.member)
        account = await self.training.paying_account(requester)
        price, estimate = await self._whatif_price(account, options, len(names))
        await self.policy.check_budget(guild, requester.member.user_id, price)
        run = await self.store.captions.create(
            NewCaptionRun(
                guild_id=requester.guild_id, channel_id=requester.member.channel_id, user_id=requester.member.user_id,
                source_digest=dataset.digest, mode=options.mode.value, style=options.style.value,
                trigger_word=options.trigger_word, images=names, payer=account.payer, simulated=account.simulated,
                price_quoted=price, context=context,
            )
        )  # fmt: skip
        free = price <= await self.store.captions.free_threshold(requester.guild_id)
        log.info("Caption run %s: %d images, %s Buzz%s", run.id, len(names), f"{price:,}",
                 " simulated" if account.simulated else "")  # fmt: skip
        return CaptionQuote(run, len(names), price, estimate, account.describe(), account.simulated, free)

    async def _whatif_price(self, account: PayingAccount, options: CaptionOptions, count: int) -> tuple[int, bool]:
        estimate = ESTIMATED_BUZZ_PER_IMAGE[options.style] * count
        media = [MediaToCaption(f"image-{i}", WHATIF_MEDIA_URL) for i in range(count)]
        template = captioning_template(media, options, external_id=None)
        try:
            workflow = await self.orchestrator.session(account.token).submit(template, whatif=True)
        except (OrchestratorUnreachable, OrchestratorServerError, RateLimited) as exc:
            log.warning("captioning whatif unavailable (%s); showing an estimate", type(exc).__name__)
            return estimate, True
        price = price_from_workflow(workflow)
        return (estimate, True) if price is None else (price, False)

    async def discard(self, run_id: str, requester: Requester) -> bool:
        run = await self.own_run(run_id, requester)
        return await self.store.captions.move(run.id, CaptionRunStatus.DRAFT, CaptionRunStatus.DISCARDED)

    # Running

    async def run(self, run_id: str, requester: Requester, progress: Progress | None = None) -> CaptionOutcome | None:
        """Caption the draft once; None when another click already started it."""
        run = await self.own_run(run_id, requester)
        if run.status is not CaptionRunStatus.DRAFT:
            return None
        guild = await self.policy.check_member(requester.guild_id, requester.member)
        await self.policy.check_budget(guild, run.user_id, run.price_quoted or 0)
        if not await self.store.captions.move(run.id, CaptionRunStatus.DRAFT, CaptionRunStatus.SUBMITTING):
            return None
        return await self._carry_on(run, await self.training.paying_account(requester), progress)

    async def attach(self, run_id: str, requester: Requester, progress: Progress | None = None
                     ) -> CaptionOutcome | None:  # fmt: skip
        """A run already started: followed to its end (after a restart too), or its stored
        result once it has one. None while it is being submitted or when it was cancelled."""
        run = await self.own_run(run_id, requester)
        if run.status is CaptionRunStatus.SUCCEEDED:
            return await self._stored_outcome(run)
        if run.status is CaptionRunStatus.FAILED:
            raise CaptioningFailed(run.failure or "The captioning run failed.", title="Captioning failed")
        if run.status is CaptionRunStatus.RUNNING:
            return await self._carry_on(run, await self.training.paying_account(requester), progress)
        return None

    async def _stored_outcome(self, run: CaptionRun) -> CaptionOutcome:
        path = self.datasets.path_for(run.result_digest or "")
        if path is None or run.summary is None:
            raise CaptioningUnavailable("The captioned dataset is no longer stored. Run the command again.")
        dataset = await asyncio.to_thread(
            check_zip, path, self.settings, trigger_word=run.trigger_word, store=self.datasets,
            source=f"{run.context.get('source', 'dataset')} (captioned)",
        )  # fmt: skip
        return CaptionOutcome(run, dataset, CaptionSummary.from_dict(run.summary))

    async def resume(self, on_done: Callable[[CaptionRun, CaptionOutcome | None], Awaitable[None]] | None = None
                     ) -> int:  # fmt: skip
        """Finish every run a restart interrupted (submitting or running); returns how many."""
        runs = await self.store.captions.unfinished(self.settings.shard_scope)  # this process's servers only
        for run in runs:
            try:
                account = await resolve_payer(
                    self.store, self.training.secretbox, guild_id=run.guild_id, user_id=run.user_id,
                    operator_token=self.settings.civitai_token, simulated=self.training.simulated,
                )  # fmt: skip
                outcome: CaptionOutcome | None = await self._carry_on(run, account, None)
            except UserFacingError as exc:
                log.warning("caption run %s could not resume: %s", run.id, exc.user_message)
                outcome = None
            except Exception as exc:  # one run's trouble must not stop the others; Caption retries it
                log.warning("caption run %s could not resume: %s", run.id, type(exc).__name__)
                outcome = None
            if on_done is not None:
                await on_done(run, outcome)
        return len(runs)

    async def stop(self) -> None:
        """Stop following runs (the process is shutting down); they resume at the next start."""
        for task in list(self._following):
            task.cancel()

    async def _carry_on(self, run: CaptionRun, account: PayingAccount, progress: Progress | None) -> CaptionOutcome:
        task = asyncio.current_task()
        if task is not None:
            self._following.add(task)
        try:
            return await self._submit_and_follow(run, account, progress)
        finally:
            if task is not None:
                self._following.discard(task)

    async def _submit_and_follow(
        self, run: CaptionRun, account: PayingAccount, progress: Progress | None
    ) -> CaptionOutcome:
        session = self.orchestrator.session(account.token)
        options = self.options_of(run)
        source = self._source_path(run)
        workflow_id = run.workflow_id
        if workflow_id is None:
            workflow = await self._submit(session, run, options, source)
            workflow_id = workflow.id or ""
            price = price_from_workflow(workflow) or run.price_quoted
            await self.store.captions.mark_running(run.id, workflow_id, price)
        try:
            results = await self._follow(session, workflow_id, run.images, options, progress, run.simulated)
        except CaptioningFailed as exc:
            await self.store.captions.finish(run.id, result_digest=None, summary=None, failure=exc.user_message)
            raise
        return await self._finish(run, options, source, results)

    async def _submit(
        self, session: OrchestratorSession, run: CaptionRun, options: CaptionOptions, source: Path
    ) -> m.Workflow:
        media = await upload_media(session, source, run.images)
        template = captioning_template(media, options, external_id=run.external_id)
        try:
            return await session.submit(template, price=round(run.price_quoted or 0) or None)
        except BaseException:
            # The orchestrator answers a repeat of this externalId with the same workflow: a
            # draft again, so pressing Caption again is safe.
            await self.store.captions.move(run.id, CaptionRunStatus.SUBMITTING, CaptionRunStatus.DRAFT)
            raise

    async def _follow(
        self,
        session: OrchestratorSession,
        workflow_id: str,
        names: Sequence[str],
        options: CaptionOptions,
        progress: Progress | None,
        simulated: bool,
    ) -> list[StepResult]:
        shown, wait = -1, 0
        while True:
            try:
                # A first plain read: a held read of a workflow that already ended waits for nothing.
                workflow = await session.get(workflow_id, wait=wait or None, until_change=bool(wait))
                wait = FOLLOW_WAIT_SECONDS
            except (OrchestratorUnreachable, OrchestratorServerError, RateLimited) as exc:
                log.warning("caption workflow %s: %s; reading again shortly", workflow_id, type(exc).__name__)
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)
                continue
            results = read_results(workflow, names, options)
            done = sum(result.finished for result in results)
            if progress is not None and done != shown:
                shown = done
                await progress(done, len(names))
            if workflow.terminal:
                if not any(result.caption for result in results):
                    raise CaptioningFailed(_explain_failure(workflow, simulated), title="Captioning failed")
                return results

    async def _finish(
        self, run: CaptionRun, options: CaptionOptions, source: Path, results: list[StepResult]
    ) -> CaptionOutcome:
        existing = {item.name: item.caption for item in await asyncio.to_thread(dataset_items, source)}
        new = {r.name: r.caption for r in results if r.caption is not None}
        dataset = await asyncio.to_thread(
            apply_captions, source, new, self.settings, trigger_word=options.trigger_word, store=self.datasets,
            label=f"{run.context.get('source', 'dataset')} (captioned)",
        )  # fmt: skip
        if not dataset.accepted or dataset.digest is None:
            failure = "the captioned dataset did not pass the check again"
            await self.store.captions.finish(run.id, result_digest=None, summary=None, failure=failure)
            raise CaptioningFailed(f"Captioning worked, but {failure}. Your dataset is unchanged.")
        summary = summarise(existing, new, [(r.name, r.failure) for r in results if r.failure])
        await self.store.captions.finish(run.id, result_digest=dataset.digest, summary=summary.to_dict())
        finished = await self.store.captions.get(run.id)
        assert finished is not None
        return CaptionOutcome(finished, dataset, summary)

    # Helpers

    @staticmethod
    def options_of(run: CaptionRun) -> CaptionOptions:
        return CaptionOptions(AutoCaption(run.mode), CaptionStyle(run.style), run.trigger_word)

    def _source_path(self, run: CaptionRun) -> Path:
        path = self.datasets.path_for(run.source_digest)
        if path is None:
            raise CaptioningUnavailable(
                "The dataset to caption is no longer stored. Run the command again with the zip.",
                title="Dataset no longer stored",
            )
        return path

    async def own_run(self, run_id: str, requester: Requester) -> CaptionRun:
        run = await self.store.captions.get(run_id)
        if run is None or run.guild_id != requester.guild_id:
            raise CaptioningUnavailable("I can't find that captioning run any more. Run the command again.")
        if run.user_id != requester.member.user_id:
            raise UserFacingError("Only the member who started this can use these buttons.", title="Not yours")
        return run


def summarise(
    existing: Mapping[str, str | None], generated: Mapping[str, str], failed: list[tuple[str, str | None]]
) -> CaptionSummary:
    """Counts and final captions, in dataset order."""
    summary = CaptionSummary(failed=[(name, reason or "failed") for name, reason in failed])
    for name, caption in existing.items():
        if name in generated:
            if caption:
                summary.replaced += 1
            else:
                summary.generated += 1
            summary.generated_files.append(name)
            summary.captions.append((name, generated[name]))
        else:
            if caption:
                summary.kept += 1
            summary.captions.append((name, caption or ""))
    return summary


def _explain_failure(workflow: m.Workflow, simulated: bool) -> str:
    reasons = list(dict.fromkeys(r for step in workflow.steps for r in step.failure_reasons()))
    said = f" Civitai said: {', '.join(reasons)}." if reasons else ""
    refunded = workflow.transactions is not None and workflow.transactions.debited() <= 0
    money = " The Buzz for it was given back." if refunded else ""
    return ("SIMULATED: " if simulated else "") + (
        f"The captioning run ended {workflow.status or 'without a result'} and no image got a caption.{said}{money} "
        "Your dataset is unchanged: run the command again, or use `auto_caption: off` to keep your own captions."
    )
