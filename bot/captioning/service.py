"""Captioning a member's dataset: price, confirm, submit once, follow, apply, resume.

``quote`` finds the images to caption, prices the workflow with whatif (the per-image formula,
labelled an estimate, when whatif is unreachable), checks the same caps and payer as training
and stores a draft run. ``run`` claims the draft once (the claim checks the Buzz caps and
reserves the price in the ledger in one transaction, as a training Confirm does), sends the
images the way the server's datasets travel (signed hosted links, or uploaded blobs), submits
the workflow with the run's ``externalId`` and tag, settles the charge at the price Civitai
answered, follows the workflow (callbacks with PUBLIC_URL, long-polls without), and writes the
captions into a new normalised zip.

A submit whose answer was lost is resolved as training resolves one (``bot.jobs.recovery``):
the workflow is looked up by tag and externalId and adopted when it exists; the reservation is
released only when it is known not to; otherwise the run stays ``submitting`` and is looked up
again once nothing can still be on its way. ``resume`` does the same for the runs a restart
interrupted, and follows the ones already running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.captioning.apply import apply_captions
from bot.captioning.media import hosted_media, upload_media
from bot.captioning.options import AutoCaption, CaptionOptions, CaptionStyle
from bot.captioning.summary import CaptionSummary
from bot.captioning.workflow import (
    CaptioningWorkflowTemplate,
    MediaToCaption,
    StepResult,
    captioning_template,
    read_results,
)
from bot.civitai import models as m
from bot.civitai.client import OrchestratorSession
from bot.civitai.errors import (
    OrchestratorError,
    OrchestratorServerError,
    OrchestratorUnreachable,
    OrchestratorValidationError,
    RateLimited,
    UnexpectedResponse,
)
from bot.civitai.pricing import price_from_workflow
from bot.config import DatasetTransport
from bot.dataset.check import check_zip
from bot.dataset.report import DatasetResult
from bot.errors import UserFacingError
from bot.hooks import hash_hook_secret, hook_url
from bot.jobs.dataset_files import dataset_items
from bot.jobs.payer import PayingAccount, resolve_payer
from bot.jobs.recovery import SUBMIT_LEASE, UNKNOWN_OUTCOME_GRACE, find_workflow, surely_refused, workflow_tag
from bot.jobs.submission import Requester, TrainingService, hook_secret_for
from bot.jobs.transport import remember_fallback, transport_for
from storage.captions import CaptionRun, CaptionRunStatus, NewCaptionRun
from storage.models import ClaimRefusal

log = logging.getLogger(__name__)

# Per-image prices for the estimate shown when whatif is unreachable.
ESTIMATED_BUZZ_PER_IMAGE = {CaptionStyle.SENTENCES: 2, CaptionStyle.TAGS: 1}
WHATIF_MEDIA_URL = "https://civitai.com/lora-trainer-bot/price-only/image.jpg"
# One long-poll (until=change) returns at once when anything changes, but it cannot say "since
# when": a change between two reads (the last one, typically) is only seen when the hold ends.
FOLLOW_WAIT_SECONDS = 5
FOLLOW_RETRY_SECONDS = 5.0
# With callbacks, the workflow is read again this often anyway (a callback can be lost).
CALLBACK_SAFETY_SECONDS = 60.0

Progress = Callable[[int, int], Awaitable[None]]


class CaptioningFailed(UserFacingError):
    """The captioning workflow failed as a whole; the dataset is unchanged."""


class CaptioningUnavailable(UserFacingError):
    pass


class CaptionSubmitUnknown(UserFacingError):
    """The submit's answer was lost and Civitai does not show the workflow yet: the run stays
    ``submitting`` with its price reserved until a lookup knows."""

    def __init__(self) -> None:
        super().__init__(
            "Civitai did not confirm the captioning run, so I can't tell yet whether it started. I'm checking: "
            "press **Caption** again in a minute to see the captions if it did. If it didn't, that press starts "
            "it; it is never charged twice.",
            title="Checking with Civitai",
        )


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


def _forgotten() -> CaptioningUnavailable:
    """A run deleted by ``/account forget`` while it ran (its member asked for all their data to go)."""
    return CaptioningUnavailable("This captioning run was deleted with your data, as you asked.",
                                 title="Captioning run deleted")


class CaptioningService:
    def __init__(self, training: TrainingService) -> None:
        # Captioning pays, counts and is refused exactly like training: reuse its pieces.
        self.training = training
        self.store = training.store
        self.settings = training.settings
        self.datasets = training.datasets
        self.policy = training.policy
        self.orchestrator = training.orchestrator
        self.clock = training.clock
        # Tasks following a run now: stopped with the process (the run resumes at the next start).
        self._following: set[asyncio.Task[Any]] = set()
        # Set by a run's callback: each of its followers reads the workflow again (callback mode).
        self._wakeups: dict[str, set[asyncio.Event]] = {}

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
        account = await self.training.paying_account(requester)
        # The caps are checked, and the price reserved, in the claim's own transaction.
        lease = self.clock.now() + SUBMIT_LEASE
        claim = await self.store.captions.claim(run.id, self.policy.limits(guild), lease)
        if claim.refusal is ClaimRefusal.NOT_A_DRAFT:
            return None
        if claim.refusal is not None:
            raise self.policy.refusal(claim, guild)
        return await self._carry_on(await self._get(run.id), account, progress)

    async def _get(self, run_id: str) -> CaptionRun:
        run = await self.store.captions.get(run_id)
        if run is None:
            raise CaptioningUnavailable("I can't find that captioning run any more. Run the command again.")
        return run

    async def attach(self, run_id: str, requester: Requester, progress: Progress | None = None
                     ) -> CaptionOutcome | None:  # fmt: skip
        """A run already started: followed to its end (after a restart too), or its stored
        result once it has one. A submit whose outcome was unknown is looked up now (and, known
        never to have reached Civitai, submitted: Caption was pressed). None while it is being
        submitted or when it was cancelled."""
        run = await self.own_run(run_id, requester)
        if run.status is CaptionRunStatus.SUBMITTING and run.lease_until is not None:
            outcome = await self.recheck(run.id, progress)
            if outcome is None and (await self._get(run.id)).status is CaptionRunStatus.DRAFT:
                return await self.run(run.id, requester, progress)
            return outcome
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
                outcome: CaptionOutcome | None = None
                if run.status is CaptionRunStatus.SUBMITTING:
                    outcome = await self.recheck(run.id)  # looked up, never sent again
                else:
                    outcome = await self._carry_on(run, await self._account_of(run), None)
            except UserFacingError as exc:
                log.warning("caption run %s could not resume: %s", run.id, exc.user_message)
                outcome = None
            except Exception as exc:  # one run's trouble must not stop the others; Caption retries it
                log.warning("caption run %s could not resume: %s", run.id, type(exc).__name__)
                outcome = None
            if on_done is not None:
                await on_done(run, outcome)
        return len(runs)

    async def _account_of(self, run: CaptionRun) -> PayingAccount:
        return await resolve_payer(
            self.store, self.training.secretbox, guild_id=run.guild_id, user_id=run.user_id,
            operator_token=self.settings.civitai_token, simulated=self.training.simulated,
        )  # fmt: skip

    async def recheck(self, run_id: str, progress: Progress | None = None) -> CaptionOutcome | None:
        """Resolve a run left ``submitting`` (its answer lost, or a restart): once nothing can
        still be on its way, adopt the workflow Civitai has for it and follow it to its end, or
        release the reservation when Civitai has none. None while it cannot be known yet (looked
        up again later) or when there was nothing to resolve."""
        run = await self.store.captions.get(run_id)
        if run is None or run.status is not CaptionRunStatus.SUBMITTING:
            return None
        now = self.clock.now()
        if run.lease_until is not None and run.lease_until > now:
            self._recheck_later(run.id, (run.lease_until - now).total_seconds() + 1)
            return None
        account = await self._account_of(run)
        try:
            found = await find_workflow(self.orchestrator.session(account.token), run)
        except OrchestratorError as exc:
            log.warning("Looking up caption run %s at Civitai failed (%s); again later", run.id, type(exc).__name__)
            self._recheck_later(run.id, UNKNOWN_OUTCOME_GRACE.total_seconds())
            return None
        if found is None:
            if await self.store.captions.release(run.id):
                log.info("Caption run %s never reached Civitai: its reservation is released", run.id)
            return None
        log.info("Caption run %s was created despite the lost answer: workflow %s", run.id, found.id)
        await self._adopt(run, found)
        return await self._carry_on(await self._get(run.id), account, progress)

    def _recheck_later(self, run_id: str, seconds: float) -> None:
        async def later() -> None:
            await asyncio.sleep(seconds)
            try:
                await self.recheck(run_id)
            except Exception as exc:  # the next start looks again
                log.warning("caption run %s could not be looked up: %s", run_id, type(exc).__name__)

        task = asyncio.create_task(later(), name=f"caption-recheck-{run_id}")
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def on_callback(self, run_id: str, payload: Mapping[str, Any]) -> None:
        """A callback of a run's workflow (authenticated by its URL): only a hint to read it again."""
        for event in self._wakeups.get(run_id, ()):
            event.set()

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
            await self._adopt(run, workflow)
            workflow_id = workflow.id or ""
        try:
            results = await self._follow(session, run.id, workflow_id, run.images, options, progress, run.simulated)
        except CaptioningFailed as exc:
            await self.store.captions.finish(run.id, result_digest=None, summary=None, failure=exc.user_message)
            raise
        return await self._finish(run, options, source, results)

    async def _adopt(self, run: CaptionRun, workflow: m.Workflow) -> None:
        """The workflow is the run's: its charge becomes the price Civitai answered (else the quote)."""
        assert workflow.id
        await self.store.captions.mark_running(run.id, workflow.id, price_from_workflow(workflow) or run.price_quoted)

    async def _submit(
        self, session: OrchestratorSession, run: CaptionRun, options: CaptionOptions, source: Path
    ) -> m.Workflow:
        try:
            callback_url = await self._callback_url(run)
            can_host = self.training.signer is not None
            transport = await transport_for(self.settings, self.store, run.guild_id, can_host=can_host)
            hosted = transport is DatasetTransport.HOSTED
            media = await self._media(session, run, source, hosted=hosted)
        except BaseException:
            await self.store.captions.release(run.id)  # nothing was sent
            raise

        def template(media: Sequence[MediaToCaption]) -> CaptioningWorkflowTemplate:
            return captioning_template(media, options, external_id=run.external_id, callback_url=callback_url,
                                       run_tag=workflow_tag(run.id))  # fmt: skip

        price = round(run.price_quoted or 0) or None
        await self.store.captions.set_lease(run.id, self.clock.now() + SUBMIT_LEASE)
        try:
            try:
                return await session.submit(template(media), price=price)
            except OrchestratorValidationError as exc:
                if not (hosted and "mediaUrl" in exc.field_errors):
                    raise
                # Civitai will not fetch the bot's links: this server's datasets go as blobs from now on.
                await remember_fallback(self.store, run.guild_id)
            media = await self._media(session, run, source, hosted=False)
            return await session.submit(template(media), price=price)
        except asyncio.CancelledError:
            raise  # shutting down: the run stays submitting, and the next start looks it up
        except Exception as exc:
            return await self._after_failed_submit(session, run, exc)

    async def _after_failed_submit(self, session: OrchestratorSession, run: CaptionRun, exc: Exception) -> m.Workflow:
        """A submit raised: adopt the workflow when it was created, release the reservation when
        it surely was not, else leave the run to a later lookup. Re-raises ``exc`` (or
        ``CaptionSubmitUnknown``): the member is never told "nothing was charged" unless known."""
        if surely_refused(exc):
            await self.store.captions.release(run.id)
            raise exc
        log.warning("The submit of caption run %s ended without a usable answer (%s); asking Civitai", run.id,
                    type(exc).__name__)  # fmt: skip
        lookup_failed = False
        try:
            found = await find_workflow(session, run)
        except OrchestratorError as lookup_error:
            log.warning("Looking up caption run %s failed too (%s)", run.id, type(lookup_error).__name__)
            found, lookup_failed = None, True
        if found is not None:
            log.info("Caption run %s was created despite the failed answer: workflow %s", run.id, found.id)
            return found
        answers_lost = lookup_failed or getattr(exc, "unanswered_attempts", 0) > 0
        if not answers_lost and not isinstance(exc, UnexpectedResponse):
            await self.store.captions.release(run.id)  # every attempt was answered: known not created
            raise exc
        # Maybe still on its way: looked up again once it can no longer be.
        await self.store.captions.set_lease(run.id, self.clock.now() + UNKNOWN_OUTCOME_GRACE)
        self._recheck_later(run.id, UNKNOWN_OUTCOME_GRACE.total_seconds() + 1)
        raise CaptionSubmitUnknown() from exc

    async def _callback_url(self, run: CaptionRun) -> str | None:
        """With PUBLIC_URL the workflow calls the bot back, authenticated by the run's own secret."""
        if not self.settings.public_url:
            return None
        secret = hook_secret_for(self.training.hook_key, run.id)
        await self.store.captions.set_hook_secret_hash(run.id, hash_hook_secret(secret))
        return hook_url(self.settings.public_url, run.id, secret)

    async def _media(
        self, session: OrchestratorSession, run: CaptionRun, source: Path, *, hosted: bool
    ) -> list[MediaToCaption]:
        """The images as the server's datasets travel: signed links to them, or uploaded blobs."""
        signer = self.training.signer
        if hosted and signer is not None:
            return await asyncio.to_thread(hosted_media, signer, run.source_digest, source, run.images,
                                           now=self.clock.timestamp())  # fmt: skip
        return await upload_media(session, source, run.images)

    async def _follow(
        self,
        session: OrchestratorSession,
        run_id: str,
        workflow_id: str,
        names: Sequence[str],
        options: CaptionOptions,
        progress: Progress | None,
        simulated: bool,
    ) -> list[StepResult]:
        """Read the workflow until it ends: again on each callback (PUBLIC_URL), else long-polled."""
        callbacks = bool(self.settings.public_url)
        wake = asyncio.Event()  # its own: a run may be followed twice (Caption pressed while it resumes)
        self._wakeups.setdefault(run_id, set()).add(wake)
        shown, wait = -1, 0
        try:
            while True:
                wake.clear()  # a callback from now on means "read again"
                try:
                    # A first plain read: a held read of a workflow that already ended waits for nothing.
                    held = not callbacks and bool(wait)
                    workflow = await session.get(workflow_id, wait=wait if held else None, until_change=held)
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
                if callbacks:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), CALLBACK_SAFETY_SECONDS)
        finally:
            followers = self._wakeups.get(run_id, set())
            followers.discard(wake)
            if not followers:
                self._wakeups.pop(run_id, None)

    async def _finish(
        self, run: CaptionRun, options: CaptionOptions, source: Path, results: list[StepResult]
    ) -> CaptionOutcome:
        if await self.store.captions.get(run.id) is None:
            raise _forgotten()  # and its images with it: nothing to apply the captions to
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
        if finished is None:  # forgotten while the captions were applied: the captioned images go too
            if not await self.store.jobs.uses_dataset(dataset.digest):
                self.datasets.remove(dataset.digest)
            raise _forgotten()
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
