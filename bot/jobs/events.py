"""What the tracker tells the Discord side about a run, and the keys that make each telling happen once.

The tracker (``bot.jobs.tracker``) turns authoritative workflow states into these events; a
``JobEventSink`` (the cog ``cogs.job_posts``) shows them. Every post (an epoch, an end notice, a
DM) happens once, across crashes and however long the bot was down:

1. the tracker records an *intent* for the post's key (``store.intents``) before the sink posts;
2. the sink posts, with ``message_nonce(job, key)`` (Discord answers a resend within minutes
   with the message it already created) and ``post_marker(job, key)`` in the message;
3. the tracker records the post as done (``store.epochs`` / ``store.events``).

An intent without its done record means the bot stopped (or the post failed) between 1 and 3:
the post may exist. Before posting again the tracker asks the sink to ``find_post``: the sink
reads the channel(s) the post could have gone to and looks for the marker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.jobs.explain import Explanation
from storage.models import Job

# Handled-event keys (``store.events``); epochs are recorded in ``store.epochs`` instead.
THREAD_OPENED = "thread:opened"  # the card and thread exist: posts may start
CARD_FINAL = "card:final"


class NoticeKind(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    LOST = "lost"  # the run can no longer be followed (``bot.jobs.explain.LostReason``)
    UNDER_REVIEW = "under_review"  # not an end: the run waits for a human moderator

    @property
    def ends_run(self) -> bool:
        return self is not NoticeKind.UNDER_REVIEW


def notice_key(kind: NoticeKind) -> str:
    return f"notice:{'end' if kind.ends_run else kind.value}"


def dm_key(kind: NoticeKind) -> str:
    return f"dm:{'end' if kind.ends_run else kind.value}"


def epoch_key(number: int) -> str:
    return f"epoch:{number}"


def post_marker(job_id: str, key: str) -> str:
    """The line every post for ``key`` carries (an embed footer, or the last line of a text
    message), so the post can be recognised in its channel after a crash."""
    return f"Job {job_id} · {key.replace(':', ' ').replace('_', ' ')}"


def carries_marker(text: str | None, job_id: str, key: str) -> bool:
    """Whether ``text`` (a footer or a message's content) holds the marker of ``key``: a line that
    is the marker, or starts with it followed by `` ·`` (``epoch 1`` is not ``epoch 10``)."""
    marker = post_marker(job_id, key)
    for line in (text or "").splitlines():
        line = line.removeprefix("-# ").strip()
        if line == marker or line.startswith(marker + " ·"):
            return True
    return False


def message_nonce(job_id: str, key: str) -> str:
    """A deterministic Discord nonce (≤ 25 characters) for one event's message."""
    digest = hashlib.sha256(f"{job_id}:{key}".encode()).digest()
    return str(int.from_bytes(digest[:8], "big") >> 1)  # ≤ 19 digits


@dataclass(frozen=True)
class SampleImage:
    filename: str
    data: bytes
    prompt: str


@dataclass(frozen=True)
class EpochReady:
    """A checkpoint became available: its samples (already downloaded: signed URLs expire)."""

    job: Job
    number: int
    total: int
    air: str | None  # for Civitai generation's ``loras`` field and "train further"
    prompts: tuple[str, ...]
    samples: tuple[SampleImage, ...]
    # Sample images that could not be fetched (posted without them rather than not at all).
    missing_samples: int = 0

    @property
    def key(self) -> str:
        return epoch_key(self.number)


@dataclass(frozen=True)
class Notice:
    """The end of a run (or a moderation hold), explained, for the thread and the owner's DMs."""

    job: Job  # with the status the run ended in
    kind: NoticeKind
    explanation: Explanation | None  # None for success
    epochs: tuple[int, ...] = ()  # epochs that can be downloaded
    total_epochs: int = 0
    grid: bytes | None = None  # PNG: epochs × prompts (success only)
    final_cost: float | None = None


class JobEventSink(Protocol):
    """Shows a run's events to people. Raising means "try again later" (a transient failure);
    permanent failures (nowhere left to post) are handled inside and return normally."""

    async def show_card(self, job: Job, epochs_done: int) -> None:
        """Edit the public job card to show ``job`` as it stands."""
        ...

    async def post_epoch(self, event: EpochReady) -> int | None:
        """Post the epoch's message; returns its id (None when nowhere could take it)."""
        ...

    async def post_notice(self, notice: Notice) -> int | None:
        """Post the end-of-run (or moderation) message in the job's thread; returns its id."""
        ...

    async def send_dm(self, notice: Notice, message_id: int | None) -> None:
        """Tell the owner in DMs, linking to ``message_id`` in the thread when known."""
        ...

    async def reopen(self, job: Job) -> None:
        """Post the card and thread of a job whose submit was recovered after a crash."""
        ...

    async def not_submitted(self, job: Job) -> None:
        """Tell the owner that a submit whose outcome was unknown created nothing (it is known
        now: the orchestrator has no workflow for it) and nothing was charged for it."""
        ...

    async def find_post(self, job: Job, key: str) -> int | None:
        """Look for a post made for ``key`` (``post_marker``) wherever it could have gone (the
        thread, the owner's DMs): its message id, or None when it is nowhere to be found. Raise
        when a place could not be read for a transient reason (the tracker tries again later)."""
        ...
