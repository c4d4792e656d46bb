"""From a checked dataset and the member's options to a submitted training workflow.

``quote`` runs the policy checks, finds who pays, prices the run (whatif is authoritative;
the formula, labelled as an estimate, when whatif is unreachable) and stores a draft job.
``confirm`` submits the draft exactly once, however many times Confirm is pressed: the job
row exists before the submit, ``claim_for_submit`` lets one caller through, and the submit
carries the job's ``externalId`` so a retry after a lost answer returns the same workflow.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from bot.audit import AuditTrail
from bot.civitai import models as m
from bot.civitai.client import OrchestratorClient, OrchestratorSession
from bot.civitai.errors import (
    OrchestratorError,
    OrchestratorServerError,
    OrchestratorUnreachable,
    OrchestratorValidationError,
    RateLimited,
    UnexpectedResponse,
)
from bot.civitai.pricing import PriceBreakdown, estimate_price, price_from_workflow
from bot.civitai.training import DEFAULT_CALLBACK_EVENTS, TrainingOptions
from bot.clock import Clock
from bot.config import DatasetTransport, Settings
from bot.dataset.report import DatasetResult
from bot.dataset.store import DatasetStore
from bot.errors import UserFacingError
from bot.hooks import hash_hook_secret, hook_url
from bot.jobs.advice import training_warnings
from bot.jobs.dataset_files import DEFAULT_PROMPTS_FROM_CAPTIONS, default_sample_prompts, iter_images
from bot.jobs.payer import PayingAccount, resolve_payer
from bot.jobs.policy import Member, TrainingPolicy
from bot.jobs.recovery import (
    LEASE_RENEW_EVERY,
    SUBMIT_LEASE,
    UNKNOWN_OUTCOME_GRACE,
    find_workflow,
    surely_refused,
    workflow_tag,
)
from bot.jobs.transport import FALLBACK_NOTE, UploadedDatasets, remember_fallback, transport_for
from bot.logging_setup import about_job, job_context
from bot.secretbox import SecretBox
from bot.web.signing import DatasetUrlSigner
from storage import Store
from storage.models import ClaimRefusal, GuildSettings, Job, JobStatus, NewJob, Variant

log = logging.getLogger(__name__)

# The interaction token behind the confirmation lives 15 minutes; so does the confirmation.
CONFIRMATION_TTL = timedelta(minutes=15)
WORKFLOW_TAG = "lora-trainer-bot"
BLOB_UPLOAD_CONCURRENCY = 4


class DatasetGone(UserFacingError):
    def __init__(self, retention_days: int) -> None:
        super().__init__(
            f"The stored dataset for this job is gone (datasets are kept for {retention_days} days). "
            "Run `/train flux1` again with the zip.",
            title="Dataset no longer stored",
        )


class JobNotFound(UserFacingError):
    def __init__(self) -> None:
        super().__init__("I can't find that job any more. Start again with `/train flux1`.", title="Unknown job")


class NotYourJob(UserFacingError):
    def __init__(self) -> None:
        super().__init__("Only the member who started this can use these buttons.", title="Not your job")


class ConfirmationExpired(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This confirmation is older than 15 minutes, so it has expired and nothing was submitted. "
            "Run `/train flux1` again: the dataset check is quick the second time.",
            title="Confirmation expired",
        )


class ConfirmationClosed(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This confirmation was cancelled, so nothing was submitted. Run `/train flux1` to start again.",
            title="Already cancelled",
        )


class DraftRevised(UserFacingError):
    """Confirm was pressed on a revision of the draft that is no longer the current one: the
    caller shows ``job`` (the current draft) again instead of submitting."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(
            "This run changed since the confirmation you pressed Confirm on (you edited it meanwhile), so "
            "nothing was submitted. Here it is as it stands now: check it and press Confirm again.",
            title="Changed since you looked",
        )


class SubmitOutcomeUnknown(UserFacingError):
    """The submit's answer was lost and Civitai does not show the run yet: the job stays
    ``submitting`` with its price reserved until recovery knows."""

    def __init__(self) -> None:
        super().__init__(
            "Civitai did not confirm this submit, so I can't tell yet whether the run started. I'm checking: "
            "if it started, its card appears in this channel; if it didn't, I'll tell you, and nothing is "
            "charged for it. There is no need to press Confirm again.",
            title="Checking with Civitai",
        )


@dataclass(frozen=True)
class Requester:
    """The member acting, in the guild they act in."""

    guild_id: int
    member: Member


@dataclass(frozen=True)
class Submission:
    """What one Confirm click did: ``submitted_now`` is true only for the click whose submit
    created the workflow, so exactly one click posts the job card and opens its thread."""

    job: Job
    submitted_now: bool


@dataclass(frozen=True)
class Pricing:
    price: int
    is_estimate: bool
    # Whatif says the paying account holds less Buzz than the run costs (a submit would be refused).
    short_of_buzz: bool = False
    # Told with the quote, once (e.g. the switch from the hosted link to blob uploads).
    notes: tuple[str, ...] = ()


SHORT_OF_BUZZ_PREFIX = "the paying Civitai account has less than"


def short_of_buzz_warning(price: int) -> str:
    return (
        f"{SHORT_OF_BUZZ_PREFIX} the {price:,} Buzz this run costs right now: "
        "add Buzz before pressing Confirm, or the submit is refused"
    )


@dataclass(frozen=True)
class Quote:
    job: Job
    options: TrainingOptions
    price: int
    price_is_estimate: bool
    breakdown: PriceBreakdown
    payer: str
    warnings: list[str]
    simulated: bool


def _whole(price: float | None) -> int | None:
    return None if price is None else round(price)


def hook_secret_for(key: bytes, job_id: str) -> str:
    """The job's callback secret: derived, so it needs no storage and survives a retried submit."""
    mac = hmac.new(key, f"hook:{job_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


class TrainingService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        secretbox: SecretBox,
        clock: Clock,
        orchestrator: OrchestratorClient,
        datasets: DatasetStore,
        signer: DatasetUrlSigner | None,
        hook_key: bytes,
        simulated: bool,
        audit: AuditTrail | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.secretbox = secretbox
        self.clock = clock
        self.orchestrator = orchestrator
        self.datasets = datasets
        self.signer = signer
        self.hook_key = hook_key
        self.simulated = simulated
        self.policy = TrainingPolicy(store, clock)
        self.audit = audit  # each submit becomes a line in the server's log channel
        self.uploads = UploadedDatasets()  # made when pricing, reused by the submit
        # Asks the tracker to look at a job again after a delay (a submit whose outcome is unknown).
        self.recheck: Callable[[str, float], None] | None = None

    # Before the confirmation

    async def check_requester(self, requester: Requester) -> GuildSettings:
        """The checks that need nothing but the member: run first, before any download."""
        return await self.policy.check_member(requester.guild_id, requester.member)

    async def precheck(self, requester: Requester, options: TrainingOptions) -> None:
        """Everything that can refuse a run before its dataset is downloaded: the member rules,
        the server's size caps, who pays, and the budget caps at the formula's price."""
        guild = await self.policy.check_member(requester.guild_id, requester.member)
        self.policy.check_size(guild, steps=options.steps, epochs=options.epochs)
        await self.paying_account(requester)
        prompts = len(options.sample_prompts) or DEFAULT_PROMPTS_FROM_CAPTIONS
        price = estimate_price(options.steps, options.epochs, prompts).total
        await self.policy.check_budget(guild, requester.member.user_id, price)

    async def paying_account(self, requester: Requester) -> PayingAccount:
        return await resolve_payer(
            self.store,
            self.secretbox,
            guild_id=requester.guild_id,
            user_id=requester.member.user_id,
            operator_token=self.settings.civitai_token,
            simulated=self.simulated,
        )

    async def quote(
        self, requester: Requester, options: TrainingOptions, dataset: DatasetResult, *, name: str | None = None
    ) -> Quote:
        if not dataset.accepted or dataset.digest is None:
            raise ValueError("quote() needs an accepted dataset")
        guild = await self.policy.check_member(requester.guild_id, requester.member)
        self.policy.check_size(guild, steps=options.steps, epochs=options.epochs)
        account = await self.paying_account(requester)
        if not options.sample_prompts:
            prompts = await asyncio.to_thread(default_sample_prompts, dataset.zip_path, options.trigger_word)
            options = replace(options, sample_prompts=tuple(prompts))
        breakdown = estimate_price(options.steps, options.epochs, len(options.sample_prompts))
        pricing = await self._whatif_price(
            account, options, dataset.digest, dataset.image_count, breakdown, guild_id=requester.guild_id
        )
        price, is_estimate = pricing.price, pricing.is_estimate
        await self.policy.check_budget(guild, requester.member.user_id, price)
        job = await self.store.jobs.create(
            NewJob(
                guild_id=requester.guild_id,
                channel_id=requester.member.channel_id,
                user_id=requester.member.user_id,
                name=(name or options.trigger_word or "LoRA")[:100],
                variant=Variant(options.variant),
                params=options.as_dict(),
                dataset_digest=dataset.digest,
                image_count=dataset.image_count,
                payer=account.payer,
                token_source=account.source,
                price_estimate=breakdown.total,
                price_quoted=None if is_estimate else price,
                simulated=account.simulated,
            )
        )
        with about_job(job):
            log.info("Draft job %s: %d images, %d steps × %d epochs, %s Buzz%s%s", job.id, job.image_count,
                     options.steps, options.epochs, f"{price:,}", " (estimate)" if is_estimate else "",
                     " simulated" if job.simulated else "")  # fmt: skip
        return Quote(
            job=job,
            options=options,
            price=price,
            price_is_estimate=is_estimate,
            breakdown=breakdown,
            payer=account.describe(),
            warnings=training_warnings(options, dataset) + _buzz_warning(pricing),
            simulated=account.simulated,
        )

    async def _whatif_price(
        self,
        account: PayingAccount,
        options: TrainingOptions,
        digest: str,
        image_count: int,
        breakdown: PriceBreakdown,
        *,
        guild_id: int,
    ) -> Pricing:
        """Price with whatif, sending the dataset the way the submit will. A refused hosted URL
        switches the server to blob uploads (and says so once); a refused image is raised
        (``BlobRefused``) so the member replaces it before paying."""
        session = self.orchestrator.session(account.token)
        notes: tuple[str, ...] = ()
        try:
            data = await self._dataset_data(session, account, guild_id, digest, image_count, for_whatif=True)
            try:
                workflow = await session.submit(self._priced_template(options, data), whatif=True)
            except OrchestratorValidationError as exc:
                if not (exc.refuses_dataset and isinstance(data, m.ZipTrainingData)):
                    raise
                await self._fall_back_to_blobs(guild_id)
                notes = (FALLBACK_NOTE,)
                data = await self._uploaded_blobs(session, account, digest)
                workflow = await session.submit(self._priced_template(options, data), whatif=True)
        except (OrchestratorUnreachable, OrchestratorServerError, RateLimited) as exc:
            log.warning("whatif pricing unavailable (%s); showing the formula as an estimate", type(exc).__name__)
            return Pricing(breakdown.total, True, notes=notes)
        price = price_from_workflow(workflow)
        if price is None:
            return Pricing(breakdown.total, True, notes=notes)
        short = bool(workflow.transactions and workflow.transactions.insufficient_buzz)
        return Pricing(price, False, short_of_buzz=short, notes=notes)

    def _priced_template(self, options: TrainingOptions, data: m.TrainingData) -> m.WorkflowTemplate:
        return self._template(options, data, external_id=None, callback_url=None, job_id=None)

    async def _dataset_data(
        self,
        session: OrchestratorSession,
        account: PayingAccount,
        guild_id: int,
        digest: str,
        image_count: int,
        *,
        for_whatif: bool = False,
    ) -> m.ZipTrainingData | m.BlobsTrainingData:
        """The training data as this server sends it: the signed zip URL, or uploaded blobs."""
        if await self._transport(guild_id) is DatasetTransport.HOSTED and self.signer is not None:
            url = self.signer.url_for(digest) if for_whatif else self.signer.url_for(digest, now=self.clock.timestamp())
            return m.ZipTrainingData(source_url=url, count=image_count)
        return await self._uploaded_blobs(session, account, digest)

    async def _fall_back_to_blobs(self, guild_id: int) -> None:
        log.warning("The orchestrator refused the hosted dataset URL; server %d uses blob uploads from now on",
                    guild_id)  # fmt: skip
        await remember_fallback(self.store, guild_id)

    async def update_sample_prompts(self, job_id: str, requester: Requester, prompts: list[str]) -> Quote | None:
        """Edit sample prompts on a draft and price it again (whatif, else the formula).

        No prompts means the defaults (captions from the dataset, else the trigger word). The
        edit is stored as a new revision *before* the re-pricing, so a Confirm pressed on the
        old confirmation meanwhile submits nothing; the price is a further revision. None when
        the job is no longer a draft, or was changed again meanwhile (the caller shows it as it
        stands).
        """
        job = await self.own_job(job_id, requester)
        if job.status is not JobStatus.DRAFT:
            return None
        if self.expired(job):
            raise ConfirmationExpired()
        if not prompts:
            trigger = job.params.get("trigger_word")
            prompts = default_sample_prompts(self.datasets.path_for(job.dataset_digest), trigger)
        options = TrainingOptions.from_user(**{**job.params, "sample_prompts": prompts})
        breakdown = estimate_price(options.steps, options.epochs, len(options.sample_prompts))
        pending = await self.store.jobs.update_draft(job.id, options.as_dict(), breakdown.total, None)
        if pending is None:
            return None
        account = await self.paying_account(requester)
        pricing = await self._whatif_price(
            account, options, job.dataset_digest, job.image_count, breakdown, guild_id=job.guild_id
        )
        quoted = None if pricing.is_estimate else pricing.price
        params = options.as_dict()
        priced = await self.store.jobs.update_draft(job.id, params, breakdown.total, quoted, revision=pending)
        if priced is None:
            return None
        updated = await self.store.jobs.get(job.id)
        assert updated is not None
        # Dataset warnings do not change with the prompts; the caller keeps those it showed.
        return self._quote_of(updated, options, breakdown, pricing, account)

    async def current_quote(self, job: Job, requester: Requester) -> Quote:
        """The draft as stored, for showing it again (no new pricing: what is stored is shown)."""
        options = TrainingOptions.from_user(**job.params)
        breakdown = estimate_price(options.steps, options.epochs, len(options.sample_prompts))
        quoted = job.price_quoted
        pricing = Pricing(round(quoted), False) if quoted is not None else Pricing(breakdown.total, True)
        return self._quote_of(job, options, breakdown, pricing, await self.paying_account(requester))

    @staticmethod
    def _quote_of(
        job: Job, options: TrainingOptions, breakdown: PriceBreakdown, pricing: Pricing, account: PayingAccount
    ) -> Quote:
        return Quote(
            job=job,
            options=options,
            price=pricing.price,
            price_is_estimate=pricing.is_estimate,
            breakdown=breakdown,
            payer=account.describe(),
            warnings=options.warnings() + _buzz_warning(pricing),
            simulated=job.simulated,
        )

    async def discard(self, job_id: str, requester: Requester) -> bool:
        """Cancel a draft; False when it is no longer one (already submitted or being submitted)."""
        job = await self.own_job(job_id, requester)
        return await self.store.jobs.discard_draft(job.id)

    # Confirm

    def expired(self, job: Job) -> bool:
        return self.clock.now() - job.created_at > CONFIRMATION_TTL

    async def confirm(self, job_id: str, requester: Requester, *, revision: int | None = None) -> Job:
        """Submit the draft once. Returns the job; its status says whether it is submitted
        (``submitted``) or another click is submitting it (``submitting``)."""
        return (await self.submit_draft(job_id, requester, revision=revision)).job

    async def submit_draft(
        self,
        job_id: str,
        requester: Requester,
        *,
        revision: int | None = None,
        on_claimed: Callable[[Job], Awaitable[None]] | None = None,
    ) -> Submission:
        """``confirm``, also telling whether this very call submitted the job.

        ``revision`` is the draft revision the member saw when pressing Confirm: when the draft
        changed since, ``DraftRevised`` carries the current one and nothing is submitted (None
        only for callers that show no draft, e.g. tests of the submit itself).

        ``on_claimed`` runs once this call holds the submit claim, before the (maybe slow) submit:
        only the click that will submit shows "Submitting…", so a second click never overwrites
        the first one's result.
        """
        with job_context(job_id=job_id, guild_id=requester.guild_id):
            return await self._submit_draft(job_id, requester, revision, on_claimed)

    async def _submit_draft(
        self,
        job_id: str,
        requester: Requester,
        revision: int | None,
        on_claimed: Callable[[Job], Awaitable[None]] | None,
    ) -> Submission:
        job = await self.own_job(job_id, requester)
        if job.status is JobStatus.DISCARDED:
            raise ConfirmationExpired() if self.expired(job) else ConfirmationClosed()
        if job.status is not JobStatus.DRAFT:
            return Submission(job, submitted_now=False)
        if self.expired(job):
            await self.store.jobs.discard_draft(job.id)
            raise ConfirmationExpired()
        guild = await self.policy.check_member(requester.guild_id, requester.member)
        options = TrainingOptions.from_user(**job.params)
        self.policy.check_size(guild, steps=options.steps, epochs=options.epochs)
        account = await self.paying_account(requester)
        lease = self.clock.now() + SUBMIT_LEASE
        claim = await self.store.jobs.claim_for_submit(
            job.id, revision=revision, limits=self.policy.limits(guild), lease_until=lease
        )
        if claim.refusal is ClaimRefusal.NOT_A_DRAFT:
            current = claim.job or job
            if current.status is JobStatus.DISCARDED:
                raise ConfirmationExpired() if self.expired(current) else ConfirmationClosed()
            return Submission(current, submitted_now=False)
        if claim.refusal is ClaimRefusal.REVISED:
            assert claim.job is not None
            raise DraftRevised(claim.job)
        if claim.refusal is not None:
            raise self.policy.refusal(claim, guild)
        assert claim.job is not None
        job = claim.job  # read under the claim: the parameters of the revision the member confirmed
        attempt = _SubmitAttempt(lease=lease)
        try:
            async with self._leased(job, attempt):
                if on_claimed is not None:
                    await on_claimed(job)
                workflow = await self._submit(job, TrainingOptions.from_user(**job.params), account, attempt)
        except (asyncio.CancelledError, SubmitTakenOver):
            # Shutting down mid-submit (or recovery owns the job now): the job stays submitting,
            # and recovery finds out once the lease ran out whether the request got through.
            raise
        except Exception as exc:
            workflow = await self._after_failed_submit(job, account, attempt, exc)
        return await self._submitted(job, workflow)

    async def _after_failed_submit(
        self, job: Job, account: PayingAccount, attempt: _SubmitAttempt, exc: Exception
    ) -> m.Workflow:
        """A submit raised: release it when it surely created nothing, adopt the workflow when it
        did, else leave it to recovery. Re-raises ``exc`` (or ``SubmitOutcomeUnknown``)."""
        if not attempt.sent or surely_refused(exc):
            await self.store.jobs.release_claim(job.id)
            raise exc
        log.warning("The submit of job %s ended without a usable answer (%s); asking Civitai", job.id,
                    type(exc).__name__)  # fmt: skip
        try:
            found = await find_workflow(self.orchestrator.session(account.token), job)
        except OrchestratorError as lookup_error:
            log.warning("Looking up job %s at Civitai failed too (%s)", job.id, type(lookup_error).__name__)
            found = None
            attempt.answers_lost = True  # unknown whether it exists: only recovery can tell
        if found is not None:
            log.info("Job %s was created despite the failed answer: workflow %s", job.id, found.id)
            return found
        answers_lost = attempt.answers_lost or getattr(exc, "unanswered_attempts", 0) > 0
        if not answers_lost and not isinstance(exc, UnexpectedResponse):
            # Every attempt was answered, and Civitai has no workflow for it: known not created.
            await self.store.jobs.release_claim(job.id)
            raise exc
        # Maybe still on its way: the lease runs out after a grace, then recovery looks again.
        await self.store.jobs.renew_lease(job.id, attempt.lease, self.clock.now() + UNKNOWN_OUTCOME_GRACE)
        if self.recheck is not None:
            self.recheck(job.id, UNKNOWN_OUTCOME_GRACE.total_seconds() + 1)
        raise SubmitOutcomeUnknown() from exc

    async def _submitted(self, job: Job, workflow: m.Workflow) -> Submission:
        if not workflow.id:
            raise UnexpectedResponse(200)  # pragma: no cover - the model requires an id on a real submit
        price = price_from_workflow(workflow) or job.price_quoted or job.price_estimate
        submitted = await self.store.jobs.mark_submitted(job.id, workflow.id, price)
        if submitted is None:
            # Recovery gave this submit up while it ran (its lease lapsed): the workflow would
            # run unfollowed, so it is cancelled; the member is told by the error handler.
            log.error("Job %s was taken over while its submit ran; cancelling workflow %s", job.id, workflow.id)
            raise RuntimeError(f"job {job.id} left 'submitting' during its own submit")
        shown = f"{price or 0:,.0f}" + (" simulated" if job.simulated else "")
        with about_job(submitted):
            log.info("Submitted job %s as workflow %s (%s Buzz)", job.id, submitted.workflow_id, shown)
            if self.audit is not None:
                details = {"job": job.id, "name": job.name, "price": shown, "owner": job.user_id}
                await self.audit.record(job.guild_id, job.user_id, "job.submit", details)
        return Submission(submitted, submitted_now=True)

    @contextlib.asynccontextmanager
    async def _leased(self, job: Job, attempt: _SubmitAttempt) -> AsyncIterator[None]:
        """Renew the submit lease while the block runs (uploads of many images take a while)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(LEASE_RENEW_EVERY.total_seconds())
                if not await self._renew_lease(job, attempt):
                    return

        task = asyncio.create_task(renew(), name=f"lease-{job.id}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_lease(self, job: Job, attempt: _SubmitAttempt) -> bool:
        async with attempt.renewing:
            until = self.clock.now() + SUBMIT_LEASE
            if not await self.store.jobs.renew_lease(job.id, attempt.lease, until):
                return False
            attempt.lease = until
            return True

    async def _send(
        self, session: OrchestratorSession, template: m.WorkflowTemplate, job: Job, attempt: _SubmitAttempt
    ) -> m.Workflow:
        """The real submit, only while this task still holds the job's lease."""
        if not await self._renew_lease(job, attempt):
            raise SubmitTakenOver()
        attempt.sent = True
        return await session.submit(template, price=_whole(job.price_quoted))

    async def _submit(
        self, job: Job, options: TrainingOptions, account: PayingAccount, attempt: _SubmitAttempt
    ) -> m.Workflow:
        session = self.orchestrator.session(account.token)
        callback_url = None
        if self.settings.public_url:
            secret = hook_secret_for(self.hook_key, job.id)
            await self.store.jobs.set_hook_secret_hash(job.id, hash_hook_secret(secret))
            callback_url = hook_url(self.settings.public_url, job.id, secret)
        self.dataset_path(job)  # a dataset gone from the store is told before anything is sent
        data = await self._dataset_data(session, account, job.guild_id, job.dataset_digest, job.image_count)

        def template(data: m.TrainingData) -> m.WorkflowTemplate:
            return self._template(options, data, external_id=job.external_id, callback_url=callback_url, job_id=job.id)

        try:
            return await self._send(session, template(data), job, attempt)
        except OrchestratorValidationError as exc:
            if not (exc.refuses_dataset and isinstance(data, m.ZipTrainingData)):
                raise
            await self._fall_back_to_blobs(job.guild_id)
        data = await self._uploaded_blobs(session, account, job.dataset_digest)
        return await self._send(session, template(data), job, attempt)

    async def _transport(self, guild_id: int) -> DatasetTransport:
        return await transport_for(self.settings, self.store, guild_id, can_host=self.signer is not None)

    async def _uploaded_blobs(
        self, session: OrchestratorSession, account: PayingAccount, digest: str
    ) -> m.BlobsTrainingData:
        """The dataset's images as blobs: the ones uploaded for this token and dataset a moment
        ago (when the run was priced), else uploaded now."""
        data = self.uploads.get(account.token, digest)
        if data is None:
            path = self.datasets.path_for(digest)
            if path is None:
                raise DatasetGone(self.settings.dataset_retention_days)
            data = await self._upload_blobs(session, path)
            self.uploads.put(account.token, digest, data)
        return data

    async def _upload_blobs(self, session: OrchestratorSession, path: Path) -> m.BlobsTrainingData:
        limit = asyncio.Semaphore(BLOB_UPLOAD_CONCURRENCY)

        async def upload(name: str, data: bytes, caption: str | None) -> m.BlobTrainingItem:
            async with limit:
                content_type = "image/png" if name.lower().endswith(".png") else "image/jpeg"
                blob = await session.upload_blob(data, filename=name, content_type=content_type)
            return m.BlobTrainingItem(air=blob.air, caption=caption)

        # Reading (and inflating) the zip's entries is disk and CPU work: off the event loop.
        images = await asyncio.to_thread(lambda: list(iter_images(path)))
        tasks = [upload(item.name, data, item.caption) for item, data in images]
        return m.BlobsTrainingData(items=list(await asyncio.gather(*tasks)))

    def dataset_path(self, job: Job) -> Path:
        path = self.datasets.path_for(job.dataset_digest)
        if path is None:
            raise DatasetGone(self.settings.dataset_retention_days)
        return path

    @staticmethod
    def _template(
        options: TrainingOptions,
        data: m.ZipTrainingData | m.BlobsTrainingData,
        *,
        external_id: str | None,
        callback_url: str | None,
        job_id: str | None,
    ) -> m.WorkflowTemplate:
        callbacks = (
            [m.WorkflowCallback(url=callback_url, type=list(DEFAULT_CALLBACK_EVENTS), detailed=False)]
            if callback_url
            else None
        )
        tags = [WORKFLOW_TAG] + ([workflow_tag(job_id)] if job_id else [])
        return m.WorkflowTemplate(
            steps=[m.TrainingStepTemplate(input=options.to_training_input(data))],
            callbacks=callbacks,
            tags=tags,
            external_id=external_id,
        )

    async def own_job(self, job_id: str, requester: Requester) -> Job:
        job = await self.store.jobs.get(job_id)
        if job is None or job.guild_id != requester.guild_id:
            raise JobNotFound()
        if job.user_id != requester.member.user_id:
            raise NotYourJob()
        return job


class SubmitTakenOver(SubmitOutcomeUnknown):
    """This task's submit lease ran out and recovery took the job over: it must not submit, and
    recovery tells the member what became of the run."""


@dataclass
class _SubmitAttempt:
    """What one Confirm's submit did, for deciding what a failure means."""

    lease: datetime  # the lease this task holds (renewals compare-and-swap on it)
    # The background renewal and the one before the submit must not race each other's swap.
    renewing: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent: bool = False  # the submit request went out at least once
    answers_lost: bool = False  # whether the workflow exists could not be found out


def _buzz_warning(pricing: Pricing) -> list[str]:
    """What the quote warns about from pricing: too little Buzz, and notes told once."""
    return ([short_of_buzz_warning(pricing.price)] if pricing.short_of_buzz else []) + list(pricing.notes)


__all__ = ["OrchestratorError", "Quote", "Requester", "Submission", "TrainingService"]
