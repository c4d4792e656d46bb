"""Typed records the repositories return. No SQL here: these are what the rest of the bot sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

# Spend of members who asked to be forgotten keeps counting for their server under this id.
FORGOTTEN_MEMBER_ID = 0


class Payer(StrEnum):
    USER = "user"  # each member's linked token
    SERVER = "server"  # the token an admin set for the guild
    OPERATOR = "operator"  # CIVITAI_TOKEN of whoever runs the bot


class TokenSource(StrEnum):
    """Whose token a job actually used (NONE: simulated with no token configured)."""

    USER = "user"
    SERVER = "server"
    OPERATOR = "operator"
    NONE = "none"


class ThreadMode(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class Variant(StrEnum):
    DEV = "dev"
    SCHNELL = "schnell"


class JobStatus(StrEnum):
    # Local states before the orchestrator knows the job.
    DRAFT = "draft"  # priced, waiting for Confirm
    SUBMITTING = "submitting"  # Confirm claimed it; the submit may or may not have reached Civitai
    SUBMITTED = "submitted"  # the orchestrator accepted it; its own status follows
    # The orchestrator's workflow statuses, mirrored.
    UNASSIGNED = "unassigned"
    PREPARING = "preparing"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    # Never submitted: the member cancelled, the confirmation expired, or the submit was refused.
    DISCARDED = "discarded"
    # Submitted, but it can no longer be followed (deleted or aged out at Civitai, its token
    # removed, a simulated run after switching to real mode): ``Job.end_reason`` says which.
    LOST = "lost"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATUSES


FINISHED_STATUSES = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.EXPIRED,
        JobStatus.CANCELED,
        JobStatus.DISCARDED,
        JobStatus.LOST,
    }
)
# Jobs that count against the per-member concurrency limit and that the tracker follows.
ACTIVE_STATUSES = frozenset(
    {
        JobStatus.SUBMITTING,
        JobStatus.SUBMITTED,
        JobStatus.UNASSIGNED,
        JobStatus.PREPARING,
        JobStatus.SCHEDULED,
        JobStatus.PROCESSING,
    }
)


class LedgerKind(StrEnum):
    CHARGE = "charge"  # the price at submit
    SETTLE = "settle"  # final cost minus what was charged
    CREDIT = "credit"  # refunds, stored negative


@dataclass(frozen=True)
class GuildDefaults:
    """Global defaults a guild falls back to for every setting it has not overridden."""

    max_concurrent_jobs_per_user: int = 2
    user_daily_buzz_cap: int | None = None
    guild_monthly_buzz_cap: int | None = None
    max_steps: int | None = None  # None: no cap beyond the orchestrator's own limits
    max_epochs: int | None = None
    payer: Payer = Payer.OPERATOR
    thread_mode: ThreadMode = ThreadMode.PUBLIC
    cooldown_seconds: float = 10.0


# Settings an admin can change with ``store.guilds.update``; None resets one to its default.
GUILD_SETTING_FIELDS = (
    "required_role_id",
    "max_concurrent_jobs_per_user",
    "user_daily_buzz_cap",
    "guild_monthly_buzz_cap",
    "max_steps",
    "max_epochs",
    "payer",
    "thread_mode",
    "log_channel_id",
    "cooldown_seconds",
)


@dataclass(frozen=True)
class GuildSettings:
    guild_id: int
    required_role_id: int | None
    max_concurrent_jobs_per_user: int
    user_daily_buzz_cap: int | None
    guild_monthly_buzz_cap: int | None
    max_steps: int | None
    max_epochs: int | None
    payer: Payer
    thread_mode: ThreadMode
    log_channel_id: int | None
    cooldown_seconds: float
    has_server_token: bool
    # Names of the settings this guild set itself (the rest are defaults), for /admin settings.
    overridden: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Block:
    guild_id: int
    user_id: int
    blocked_by: int | None
    reason: str | None
    blocked_at: datetime


@dataclass(frozen=True)
class UserSettings:
    user_id: int
    dm_notify: bool
    has_token: bool
    updated_at: datetime | None  # None: the member never changed anything


@dataclass(frozen=True)
class NewJob:
    """What the caller knows when it creates a draft; the store adds ids, status and times."""

    guild_id: int
    channel_id: int
    user_id: int
    name: str
    variant: Variant
    params: Mapping[str, Any]
    dataset_digest: str
    image_count: int
    payer: Payer
    token_source: TokenSource
    hook_secret_hash: str | None = None
    price_estimate: float | None = None
    price_quoted: float | None = None
    simulated: bool = False


@dataclass(frozen=True)
class Job:
    id: str
    guild_id: int
    channel_id: int
    user_id: int
    name: str
    variant: Variant
    params: Mapping[str, Any]
    dataset_digest: str
    image_count: int
    payer: Payer
    token_source: TokenSource
    external_id: str
    hook_secret_hash: str | None
    workflow_id: str | None
    status: JobStatus
    price_estimate: float | None
    price_quoted: float | None
    price_charged: float | None
    final_cost: float | None
    last_state: Mapping[str, Any] | None
    last_state_at: datetime | None
    progress: float | None
    card_channel_id: int | None
    card_message_id: int | None
    thread_id: int | None
    simulated: bool
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    # Bumped by every change of a draft; Confirm submits only the revision it showed.
    revision: int = 1
    # While a submit is in flight, the time its task last promised to be done by.
    lease_until: datetime | None = None
    # Why a run ended the way it did, when the workflow cannot say (a ``lost`` run).
    end_reason: str | None = None
    # The thread is unusable (archived, deleted, forbidden): posts go to the owner's DMs.
    thread_gone: bool = False


@dataclass(frozen=True)
class SubmitLimits:
    """The limits a submit claim checks in the same transaction that reserves its price."""

    max_active: int | None
    daily_cap: float | None
    day_start: datetime
    monthly_cap: float | None
    month_start: datetime


class ClaimRefusal(StrEnum):
    NOT_A_DRAFT = "not_a_draft"  # submitted, being submitted, cancelled or gone
    REVISED = "revised"  # the draft changed since the revision the member confirmed
    CONCURRENCY = "concurrency"  # the member already has as many runs going as allowed
    DAILY_CAP = "daily_cap"  # the member's spend today plus this price is over the daily cap
    MONTHLY_CAP = "monthly_cap"  # the server's spend this month plus this price is over its cap


@dataclass(frozen=True)
class Claim:
    """What ``jobs.claim_for_submit`` did. True only for the caller that now holds the submit.

    ``job`` is the row as it stands after the claim (read in the claim's transaction, so its
    parameters are those of the claimed revision). On a cap refusal, ``used`` is what counted
    against it: runs going, or Buzz spent in the period.
    """

    job: Job | None
    refusal: ClaimRefusal | None = None
    used: float = 0.0
    reserved: float = 0.0

    def __bool__(self) -> bool:
        return self.refusal is None and self.job is not None


@dataclass(frozen=True)
class PostedEpoch:
    job_id: str
    epoch_number: int
    message_id: int | None
    posted_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    job_id: str
    received_at: datetime
    body_digest: str
    outcome: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    guild_id: int | None
    actor_id: int | None
    subject_id: int | None
    action: str
    details: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True)
class UserUsage:
    user_id: int
    spent: float
    jobs: int
