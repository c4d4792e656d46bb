"""Generating images with trained epochs: quote, confirm exactly once, follow, post.

The same rules as training, reused: who pays (``resolve_payer``: the member who presses pays
when the server's payer is ``user``), blocks, role and budget caps (``TrainingPolicy``), the
per-member cooldown, the spend ledger and the audit trail. A generation row exists before its
submit and carries its own ``externalId``; ``claim`` lets one Confirm through, so double clicks,
retries and a restart mid-submit never create or charge a second workflow. After the submit a
task follows the workflow to its end and hands the images to the sink (the Discord side); on
start-up every generation not posted yet is taken up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Protocol, cast

from pydantic import SecretStr

from bot.audit import AuditTrail
from bot.civitai import models as m
from bot.civitai.client import OrchestratorClient
from bot.civitai.errors import (
    OrchestratorServerError,
    OrchestratorUnreachable,
    OrchestratorValidationError,
    RateLimited,
)
from bot.civitai.models import air_ecosystem_and_type
from bot.civitai.pricing import BUZZ_PER_SAMPLE_IMAGE, price_from_workflow
from bot.clock import Clock
from bot.errors import UserFacingError
from bot.generation.options import Column, GenerationOptionError, GenerationOptions
from bot.generation.template import build_template, step_images
from bot.jobs.continuation import finished_loras
from bot.jobs.payer import PayingAccount, job_token, resolve_payer
from bot.jobs.policy import Cooldowns, TrainingPolicy, TrainingRefused
from bot.jobs.submission import CONFIRMATION_TTL, Requester
from bot.jobs.train_further import epoch_air
from bot.secretbox import SecretBox
from storage import Store
from storage.generations import (
    Generation,
    GenerationKind,
    GenerationRepository,
    GenerationStatus,
    NewGeneration,
    TryItAccess,
)
from storage.models import ClaimRefusal, GuildSettings, Job
from storage.shards import ShardScope

log = logging.getLogger(__name__)

COOLDOWN_COMMAND = "generate"
FOLLOW_WAIT_SECONDS = 30
FOLLOW_RETRY_SECONDS = 10.0
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_LORAS = 3
MAX_COMPARED = 6
# The baseline column: the same resources with the LoRA at strength 0, i.e. the base model alone.
BASELINE_LABEL = "Base model"


class TryItNotAllowed(UserFacingError):
    def __init__(self, owner_id: int) -> None:
        super().__init__(
            f"On this server only <@{owner_id}>, who trained this LoRA, and server admins can try it. "
            f"<@{owner_id}> can let everyone try this run (**Let everyone try it** on its final grid), "
            "or a server admin every run with `/admin settings try_it:members`.",
            title="Not your run",
        )


class OnlyTheOwnerOpens(UserFacingError):
    def __init__(self, owner_id: int) -> None:
        super().__init__(f"Only <@{owner_id}>, who trained this LoRA, can let everyone try it.", title="Not your run")


class GenerationRefused(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="You can't generate right now")


class EpochModelExpired(UserFacingError):
    def __init__(self, labels: list[str]) -> None:
        super().__init__(
            f"Civitai no longer has the model of {', '.join(labels)} (trained models are kept for a limited "
            "time), so nothing can be generated with it and nothing was charged. If you downloaded the "
            "`.safetensors` file, upload it to Civitai as a model to keep using it.",
            title="That epoch's model has expired",
        )


class GenerationNotFound(UserFacingError):
    def __init__(self) -> None:
        super().__init__("I can't find that generation any more. Press Try it again.", title="Unknown generation")


class NotYourGeneration(UserFacingError):
    def __init__(self) -> None:
        super().__init__("Only the member who asked for these images can confirm them.", title="Not yours")


class GenerationConfirmationExpired(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This confirmation is older than 15 minutes, so it has expired and nothing was submitted. "
            "Press Try it again.",
            title="Confirmation expired",
        )


@dataclass(frozen=True)
class GenerationQuote:
    generation: Generation
    options: GenerationOptions
    price: int
    price_is_estimate: bool
    payer: str
    simulated: bool


class GenerationSink(Protocol):
    """Where a generation's outcome is shown (the Discord side implements it)."""

    async def post_images(self, generation: Generation, images: list[list[tuple[str, bytes]]]) -> int | None: ...

    async def post_failure(self, generation: Generation, reason: str) -> None: ...


def estimate(options: GenerationOptions) -> int:
    return options.images * BUZZ_PER_SAMPLE_IMAGE


class GenerationService:
    def __init__(
        self,
        *,
        store: Store,
        secretbox: SecretBox,
        clock: Clock,
        orchestrator: OrchestratorClient,
        operator_token: SecretStr | None,
        simulated: bool,
        cooldowns: Cooldowns,
        audit: AuditTrail | None = None,
        shards: ShardScope | None = None,
    ) -> None:
        self.store = store
        self.repo = GenerationRepository(store.db)
        self.shards = shards  # the servers whose generations this process follows (None: all)
        self.secretbox = secretbox
        self.clock = clock
        self.orchestrator = orchestrator
        self.operator_token = operator_token
        self.simulated = simulated
        self.policy = TrainingPolicy(store, clock)
        self.cooldowns = cooldowns
        self.audit = audit
        self.sink: GenerationSink | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, sink: GenerationSink) -> None:
        """Attach the sink and take up every generation submitted but not posted yet."""
        self.sink = sink
        for generation in await self.repo.unfinished(self.shards):
            self._follow_later(generation)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def idle(self) -> None:
        """Wait until no generation is being followed (tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- who may ---------------------------------------------------------------------------------

    async def check_try_access(self, job: Job, user_id: int, *, is_admin: bool) -> None:
        if user_id == job.user_id or is_admin or await self.repo.run_is_open(job.id):
            return
        if await self.repo.try_it_access(job.guild_id) is TryItAccess.OWNER:
            raise TryItNotAllowed(job.user_id)

    async def open_run(self, job: Job, user_id: int) -> bool:
        """The owner lets every member try this run, or takes it back; the new state."""
        if user_id != job.user_id:
            raise OnlyTheOwnerOpens(job.user_id)
        opened = not await self.repo.run_is_open(job.id)
        await self.repo.set_run_open(job.id, opened)
        return opened

    async def _check_member(self, requester: Requester) -> GuildSettings:
        """Blocks and the required role, as for training (running jobs do not stop a generation)."""
        guild_id, member = requester.guild_id, requester.member
        settings = await self.store.guilds.get(guild_id)
        if await self.store.guilds.is_blocked(guild_id, member.user_id):
            raise GenerationRefused(
                "A server admin has blocked you from using the bot here. Ask them if you think that's a mistake."
            )
        if settings.required_role_id is not None and settings.required_role_id not in member.role_ids:
            raise GenerationRefused(
                f"You need the <@&{settings.required_role_id}> role to generate on this server. Ask a server admin."
            )
        return settings

    async def _paying_account(self, requester: Requester) -> PayingAccount:
        return await resolve_payer(
            self.store,
            self.secretbox,
            guild_id=requester.guild_id,
            user_id=requester.member.user_id,
            operator_token=self.operator_token,
            simulated=self.simulated,
        )

    # --- quoting --------------------------------------------------------------------------------

    async def quote_try(
        self, job: Job, epoch: int, requester: Requester, options: GenerationOptions, strength: float, *, is_admin: bool
    ) -> GenerationQuote:
        """Try it: ``options`` (without columns) with epoch ``epoch``'s LoRA at ``strength``."""
        await self.check_try_access(job, requester.member.user_id, is_admin=is_admin)
        column = Column(f"Epoch {epoch}", {epoch_air(job, epoch): strength}, epoch)
        options = GenerationOptions(
            prompt=options.prompt,
            negative_prompt=options.negative_prompt,
            size=options.size,
            seed=options.seed,
            quantity=options.quantity,
            variant=job.variant.value,
            columns=(column,),
        )
        return await self.quote(requester, options, GenerationKind.TRY, job=job)

    async def quote_compare(
        self, job: Job, epochs: list[int], requester: Requester, options: GenerationOptions, *, is_admin: bool
    ) -> GenerationQuote:
        """Compare: one prompt and one seed over up to six epochs plus the base model (the
        LoRA at strength 0), one image each, in one workflow priced once."""
        await self.check_try_access(job, requester.member.user_id, is_admin=is_admin)
        chosen = sorted(set(epochs))
        if not 1 <= len(chosen) <= MAX_COMPARED:
            raise GenerationOptionError(f"Choose 1 to {MAX_COMPARED} epochs to compare.")
        airs = {n: epoch_air(job, n) for n in chosen}
        columns = [Column(f"Epoch {n}", {airs[n]: 1.0}, n) for n in chosen]
        columns.append(Column(BASELINE_LABEL, {airs[chosen[-1]]: 0.0}))
        options = replace(options, variant=job.variant.value, quantity=1, columns=tuple(columns))
        return await self.quote(requester, options, GenerationKind.COMPARE, job=job)

    async def quote_generate(
        self, requester: Requester, options: GenerationOptions, loras: list[str], strength: float
    ) -> GenerationQuote:
        """/generate: one to three LoRAs (the member's trained epochs or pasted flux1 LoRA AIRs)."""
        airs = list(dict.fromkeys(air.strip() for air in loras if air and air.strip()))
        if not 1 <= len(airs) <= MAX_LORAS:
            raise GenerationOptionError(f"Choose 1 to {MAX_LORAS} LoRAs (different ones).")
        for air in airs:
            if air_ecosystem_and_type(air) != ("flux1", "lora"):
                raise GenerationOptionError(
                    f"`{air[:100]}` is not a flux1 LoRA AIR. Pick one of your trained epochs from the list, "
                    "or paste an AIR that starts with `urn:air:flux1:lora:`."
                )
        known = {choice.air: choice.label for choice in await finished_loras(self.store, requester.member.user_id, "")}
        label = " + ".join(known.get(air, "a pasted LoRA").split(" · job ")[0] for air in airs)
        column = Column(label, dict.fromkeys(airs, strength))
        options = replace(options, columns=(column,))
        return await self.quote(requester, options, GenerationKind.GENERATE, job=None)

    async def quote_again(self, generation_id: str, requester: Requester, *, is_admin: bool) -> GenerationQuote:
        """Try again: the same settings with a new seed, paid by whoever presses."""
        source = await self.repo.get(generation_id)
        if source is None or source.guild_id != requester.guild_id:
            raise GenerationNotFound()
        job = await self.store.jobs.get(source.job_id) if source.job_id else None
        if job is not None:
            await self.check_try_access(job, requester.member.user_id, is_admin=is_admin)
        elif requester.member.user_id != source.user_id:
            raise NotYourGeneration()
        options = GenerationOptions.from_dict(source.params).with_new_seed()
        return await self.quote(requester, options, source.kind, job=job, channel_id=source.channel_id)

    async def quote(
        self,
        requester: Requester,
        options: GenerationOptions,
        kind: GenerationKind,
        *,
        job: Job | None,
        channel_id: int | None = None,
    ) -> GenerationQuote:
        settings = await self._check_member(requester)
        self.cooldowns.hit(COOLDOWN_COMMAND, requester.guild_id, requester.member.user_id, settings.cooldown_seconds)
        account = await self._paying_account(requester)
        price, is_estimate = await self._whatif(account, options)
        await self._check_budget(settings, requester.member.user_id, price)
        where = channel_id or (job.thread_id or job.card_channel_id if job else None) or requester.member.channel_id
        generation = await self.repo.create(
            NewGeneration(
                guild_id=requester.guild_id,
                channel_id=where,
                user_id=requester.member.user_id,
                job_id=job.id if job else None,
                kind=kind,
                params=options.as_dict(),
                payer=account.payer,
                token_source=account.source,
                price_estimate=estimate(options),
                price_quoted=None if is_estimate else price,
                simulated=account.simulated,
            )
        )
        return GenerationQuote(generation, options, price, is_estimate, account.describe(), account.simulated)

    async def _check_budget(self, settings: GuildSettings, user_id: int, price: float) -> None:
        try:
            await self.policy.check_budget(settings, user_id, price)
        except TrainingRefused as exc:
            raise _for_images(exc) from None

    async def _whatif(self, account: PayingAccount, options: GenerationOptions) -> tuple[int, bool]:
        template = build_template(options, external_id=None, generation_id=None)
        try:
            workflow = await self.orchestrator.session(account.token).submit(template, whatif=True)
        except (OrchestratorUnreachable, OrchestratorServerError, RateLimited) as exc:
            log.warning("whatif pricing of a generation unavailable (%s); showing an estimate", type(exc).__name__)
            return estimate(options), True
        except OrchestratorValidationError as exc:
            raise _expired_or(exc, options) from None
        price = price_from_workflow(workflow)
        return (estimate(options), True) if price is None else (price, False)

    # --- confirming -----------------------------------------------------------------------------

    async def discard(self, generation_id: str, requester: Requester) -> bool:
        generation = await self._own(generation_id, requester)
        return await self.repo.discard(generation.id)

    async def confirm(self, generation_id: str, requester: Requester) -> tuple[Generation, bool]:
        """Submit once; ``(generation, submitted_now)``: only the click that submitted gets True."""
        generation = await self._own(generation_id, requester)
        if generation.status is not GenerationStatus.DRAFT:
            return generation, False
        if self.clock.now() - generation.created_at > CONFIRMATION_TTL:
            await self.repo.discard(generation.id)
            raise GenerationConfirmationExpired()
        settings = await self._check_member(requester)
        claim = await self.repo.claim(generation.id, replace(self.policy.limits(settings), max_active=None))
        if claim.refusal is ClaimRefusal.NOT_A_DRAFT:
            current = await self.repo.get(generation.id)
            assert current is not None
            return current, False
        if claim.refusal is not None:
            raise _for_images(self.policy.refusal(claim, settings))
        try:
            submitted = await self._submit(generation)
        except BaseException:
            # Not submitted, or the same externalId will return the same workflow: Confirm again.
            await self.repo.release_claim(generation.id)
            raise
        self._follow_later(submitted)
        return submitted, True

    async def _submit(self, generation: Generation) -> Generation:
        options = GenerationOptions.from_dict(generation.params)
        template = build_template(options, external_id=generation.external_id, generation_id=generation.id)
        session = self.orchestrator.session(await self._token(generation))
        quoted = round(generation.price_quoted) if generation.price_quoted is not None else None
        try:
            workflow = await session.submit(template, price=quoted)
        except OrchestratorValidationError as exc:
            raise _expired_or(exc, options) from None
        price = price_from_workflow(workflow) or generation.price
        submitted = await self.repo.mark_submitted(generation.id, workflow.id or "", price)
        if submitted is None:
            raise RuntimeError(f"generation {generation.id} left 'submitting' during its own submit")
        shown = f"{price:,.0f}" + (" simulated" if generation.simulated else "")
        log.info("Submitted generation %s as workflow %s (%s Buzz)", generation.id, workflow.id, shown)
        if self.audit is not None:
            details = {"generation": generation.id, "job": generation.job_id, "price": shown, "kind": generation.kind}
            await self.audit.record(generation.guild_id, generation.user_id, "generation.submit", details)
        return submitted

    async def _own(self, generation_id: str, requester: Requester) -> Generation:
        generation = await self.repo.get(generation_id)
        if generation is None or generation.guild_id != requester.guild_id:
            raise GenerationNotFound()
        if generation.user_id != requester.member.user_id:
            raise NotYourGeneration()
        return generation

    async def _token(self, generation: Generation) -> SecretStr:
        # job_token reads only simulated, token_source, user_id and guild_id, which a generation has.
        return await job_token(
            self.store,
            self.secretbox,
            cast(Job, generation),
            operator_token=self.operator_token,
        )

    # --- following ------------------------------------------------------------------------------

    def _follow_later(self, generation: Generation) -> None:
        if generation.id in self._tasks:
            return
        task = asyncio.create_task(self._follow(generation), name=f"generation-{generation.id}")
        self._tasks[generation.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(generation.id, None))

    async def _follow(self, generation: Generation) -> None:
        while True:
            try:
                await self._follow_once(generation)
                return
            except asyncio.CancelledError:
                raise
            except UserFacingError as exc:
                # Lasting (the paying token was removed, Civitai refused the replay): say so, once.
                log.warning("Generation %s cannot go on: %s", generation.id, exc.title)
                assert self.sink is not None
                await self.sink.post_failure(generation, exc.user_message)
                await self.repo.finish(generation.id, GenerationStatus.FAILED, reason=exc.title)
                return
            except Exception:
                # A warning: the next attempt (or the next start) takes it up again.
                log.warning("Following generation %s failed; trying again", generation.id, exc_info=True)
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)

    async def _follow_once(self, generation: Generation) -> None:
        current = await self.repo.get(generation.id)
        if current is None or current.status.finished:
            return
        if current.status is GenerationStatus.SUBMITTING:
            current = await self._submit(current)  # a restart mid-submit: same externalId, same workflow
        if current.status is GenerationStatus.DRAFT or current.workflow_id is None:
            return
        session = self.orchestrator.session(await self._token(current))
        workflow = await session.get(current.workflow_id)
        while not workflow.terminal:
            workflow = await session.get(current.workflow_id, wait=FOLLOW_WAIT_SECONDS)
        assert self.sink is not None, "start() attaches the sink before anything is followed"
        if workflow.status != m.WorkflowStatus.SUCCEEDED:
            reasons = [r for step in workflow.steps for r in step.failure_reasons()]
            reason = f"Civitai ended the generation ({workflow.status})" + (
                f": {'; '.join(reasons)}" if reasons else ""
            )
            if workflow.transactions is not None and workflow.transactions.debited() <= 0:
                await self.repo.credit(current.id, current.price)
            await self.sink.post_failure(current, reason)
            await self.repo.finish(current.id, GenerationStatus.FAILED, reason=reason)
            return
        images = []
        for number, blobs in enumerate(step_images(workflow)):
            files = []
            for index, blob in enumerate(blobs):
                url = blob.url or (await session.refresh_blob(blob.id)).url
                if url is None:
                    continue
                data = await session.download(url, max_bytes=MAX_IMAGE_BYTES)
                files.append((f"{current.id}_{number}_{index}.png", data))
            images.append(files)
        message_id = await self.sink.post_images(current, images)
        await self.repo.finish(current.id, GenerationStatus.POSTED, message_id=message_id)


def _for_images(refusal: TrainingRefused) -> GenerationRefused:
    """A budget refusal worded for images instead of a run."""
    return GenerationRefused(refusal.user_message.replace("This run costs", "These images cost"))


def _expired_or(exc: OrchestratorValidationError, options: GenerationOptions) -> UserFacingError:
    """A refused LoRA is an epoch whose model Civitai no longer has; anything else as Civitai said."""
    if any("lora" in field.lower() for field in exc.field_errors):
        labels = [column.label.lower() for column in options.columns if column.loras] or ["this LoRA"]
        return EpochModelExpired(labels)
    return exc
