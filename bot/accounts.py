"""Civitai tokens (a member's own, or a server's) and forgetting a member.

A token is checked against the orchestrator before it is stored, stored only as ciphertext,
and registered with the log redactor the moment it arrives. Nothing here ever puts a token in
a message, an exception or the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pydantic import SecretStr

from bot.audit import AuditTrail
from bot.civitai.client import OrchestratorClient
from bot.civitai.errors import Forbidden, OrchestratorUnreachable, Unauthorized
from bot.dataset.store import DatasetStore
from bot.errors import UserFacingError
from bot.jobs.cancel import JobCanceller
from bot.logging_setup import register_secret
from bot.secretbox import SecretBox
from storage import Store
from storage.models import ACTIVE_STATUSES, Job, TokenSource

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 8
MAX_TOKEN_LENGTH = 512


class TokenRejected(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message + " Nothing was stored.", title="Token not linked")


def clean_token(raw: str) -> SecretStr:
    """The token as typed, minus surrounding spaces and a pasted ``Bearer`` prefix; checked for shape only."""
    token = raw.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    register_secret(token)
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise TokenRejected(
            "That doesn't look like a Civitai API key (one word, no spaces). Copy it again from civitai.com → "
            "Account settings → API Keys."
        )
    return SecretStr(token)


@dataclass(frozen=True)
class ForgetReport:
    """What ``forget_user`` did: shown to the member so nothing happens behind their back."""

    cancelled: list[Job] = field(default_factory=list)
    left_running: list[Job] = field(default_factory=list)  # no token left to stop them with
    removed_rows: dict[str, int] = field(default_factory=dict)
    cards: list[Job] = field(default_factory=list)  # jobs whose public card/thread the cog removes


class AccountService:
    def __init__(
        self, *, store: Store, secretbox: SecretBox, orchestrator: OrchestratorClient, audit: AuditTrail,
        canceller: JobCanceller, datasets: DatasetStore,
    ) -> None:  # fmt: skip
        self.store = store
        self.secretbox = secretbox
        self.orchestrator = orchestrator
        self.audit = audit
        self.canceller = canceller
        self.datasets = datasets

    async def check(self, token: SecretStr) -> None:
        """Ask the orchestrator whether it accepts ``token`` (one cheap authenticated read)."""
        try:
            await self.orchestrator.session(token).check_token()
        except (Unauthorized, Forbidden):
            raise TokenRejected(
                "Civitai refused that token: it is invalid, expired or revoked. Create a new API key on civitai.com "
                "(Account settings → API Keys) and try again."
            ) from None
        except OrchestratorUnreachable:
            raise TokenRejected("I couldn't reach Civitai to check the token. Try again in a few minutes.") from None

    async def link_user_token(self, user_id: int, raw: str) -> None:
        token = clean_token(raw)
        await self.check(token)
        await self.store.users.set_token_ciphertext(user_id, self.secretbox.encrypt(token.get_secret_value()))
        log.info("Member %s linked a Civitai token", user_id)

    async def link_server_token(self, guild_id: int, actor_id: int, raw: str) -> None:
        token = clean_token(raw)
        await self.check(token)
        await self.store.guilds.set_token_ciphertext(guild_id, self.secretbox.encrypt(token.get_secret_value()))
        await self.audit.record(guild_id, actor_id, "settings.server_token.set")

    async def clear_server_token(self, guild_id: int, actor_id: int) -> bool:
        cleared = await self.store.guilds.clear_token(guild_id)
        if cleared:
            await self.audit.record(guild_id, actor_id, "settings.server_token.clear")
        return cleared

    async def running_on_own_token(self, user_id: int) -> list[Job]:
        """Runs paid with the member's own token: once it is deleted, the bot cannot stop them."""
        jobs = await self.store.jobs.list_for_user(user_id, status=ACTIVE_STATUSES, limit=1000)
        return [job for job in jobs if job.token_source is TokenSource.USER]

    async def forget_token(self, user_id: int) -> bool:
        return await self.store.users.clear_token(user_id)

    async def forget_user(self, user_id: int) -> ForgetReport:
        """Cancel what can be cancelled, then delete every row of the member, everywhere."""
        report = ForgetReport()
        for job in await self.store.jobs.list_for_user(user_id, status=ACTIVE_STATUSES, limit=1000):
            try:
                result = await self.canceller.cancel(job, actor_id=user_id)
                # A lost run that may still go on at Civitai was only closed here, not stopped.
                still_running = result.lost_reason is not None and result.lost_reason.may_still_run
                (report.left_running if still_running else report.cancelled).append(job)
            except UserFacingError as exc:
                log.info("Job %s of a forgotten member could not be cancelled: %s", job.id, type(exc).__name__)
                report.left_running.append(job)
        every_job = await self.store.jobs.list_for_user(user_id, limit=10_000)
        report.cards.extend(job for job in every_job if job.card_message_id)
        digests = {job.dataset_digest for job in every_job} | await self.store.captions.datasets_of_user(user_id)
        report.removed_rows.update(await self.store.forget_user(user_id))
        # Their images too, unless someone else's job or captioning run uses the very same dataset.
        for digest in digests:
            if not (await self.store.jobs.uses_dataset(digest) or await self.store.captions.uses_dataset(digest)):
                self.datasets.remove(digest)
        log.info("Deleted the data of member %s: %s", user_id, report.removed_rows)
        return report
