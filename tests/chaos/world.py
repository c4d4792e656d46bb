"""A seeded world for chaos tests: the bot's real core restarted at random await points.

The bot runs in real mode against an orchestrator simulator that outlives its restarts (as
Civitai does), over HTTP, with its real SQLite file. Discord is a recording sink that behaves as
Discord does for what the tracker relies on: a message sent again with the same nonce inside
the nonce window is the same message, and a restart longer than the window forgets nonces.

A crash is a ``Killed`` raised at the chosen await point (before or after the call it wraps, so
"posted but not recorded" and "charged but not answered" both happen); from then on every
wrapped call of that process raises too, its tasks are cancelled, and a new process is started
on the same data directory.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.civitai.client import RetryPolicy
from bot.civitai.simulator import Simulator
from bot.civitai.training import TrainingOptions
from bot.clock import Clock
from bot.config import CivitaiMode, Settings
from bot.dataset.report import DatasetResult
from bot.jobs.events import EpochReady, Notice, dm_key, notice_key
from bot.jobs.policy import Member
from bot.jobs.submission import Quote, Requester
from bot.services import Services
from storage.models import Job
from tests.tracking.helpers import checked_dataset

TOKEN = "chaos-operator-token"
GUILD = 7
CHANNEL = 70
PUBLIC_URL = "https://bot.chaos"


class Killed(BaseException):
    """The process died here (BaseException: no ``except Exception`` of the bot may catch it)."""


@dataclass
class Post:
    job_id: str
    key: str
    message_id: int


@dataclass
class FakeDiscord:
    """What Discord would show. ``nonces`` lives as long as Discord's nonce window."""

    posts: list[Post] = field(default_factory=list)
    nonces: dict[tuple[str, str], int] = field(default_factory=dict)
    not_submitted: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    next_id: int = 1000

    def send(self, job_id: str, key: str) -> int:
        known = self.nonces.get((job_id, key))
        if known is not None:
            return known  # the same nonce inside the window: Discord returns the same message
        self.next_id += 1
        self.posts.append(Post(job_id, key, self.next_id))
        self.nonces[(job_id, key)] = self.next_id
        return self.next_id

    def count(self, job_id: str, key: str) -> int:
        return sum(1 for p in self.posts if p.job_id == job_id and p.key == key)


class Crashes:
    """Counts await points and kills the process at the chosen one."""

    def __init__(self, at: int | None, after: bool, log: list[str] | None = None) -> None:
        self.at, self.after = at, after
        self.count = 0
        self.dead = False
        self.log = log if log is not None else []

    def point(self, name: str, after: bool) -> None:
        if self.dead:
            raise Killed(name)
        if after != self.after:
            return
        self.count += 1
        if self.at is not None and self.count == self.at:
            self.dead = True
            self.log.append(f"{'after' if after else 'before'} {name}")
            raise Killed(name)

    def wrap(self, owner: object, name: str, label: str | None = None) -> None:
        original: Callable[..., Awaitable[Any]] = getattr(owner, name)
        label = label or name

        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.point(label, after=False)
            result = await original(*args, **kwargs)
            self.point(label, after=True)
            return result

        setattr(owner, name, wrapped)


class RecordingSink:
    def __init__(self, discord: FakeDiscord, crashes: Crashes) -> None:
        self.discord = discord
        for name in ("show_card", "post_epoch", "post_notice", "send_dm", "reopen", "not_submitted", "find_post"):
            crashes.wrap(self, name, f"sink.{name}")

    async def show_card(self, job: Job, epochs_done: int) -> None:
        return None

    async def post_epoch(self, event: EpochReady) -> int | None:
        return self.discord.send(event.job.id, event.key)

    async def post_notice(self, notice: Notice) -> int | None:
        return self.discord.send(notice.job.id, notice_key(notice.kind))

    async def send_dm(self, notice: Notice, message_id: int | None) -> None:
        self.discord.send(notice.job.id, dm_key(notice.kind))

    async def find_post(self, job: Job, key: str) -> int | None:
        """Discord's channel history: every post is there, whatever the nonce window."""
        return next((p.message_id for p in self.discord.posts if p.job_id == job.id and p.key == key), None)

    async def reopen(self, job: Job) -> None:
        self.discord.reopened.append(job.id)
        self.discord.send(job.id, "card")

    async def not_submitted(self, job: Job) -> None:
        self.discord.not_submitted.append(job.id)
        self.discord.send(job.id, "not-submitted")


@dataclass
class Draft:
    """One member's confirmation as they see it: the revision shown and what it showed."""

    job_id: str
    requester: Requester
    shown: dict[int, tuple[tuple[str, ...], int, bool]]  # revision → (prompts, price, is estimate)
    revision: int
    confirmed: set[int] = field(default_factory=set)


class ChaosWorld:
    def __init__(self, seed: int, root: Path, database_url: str) -> None:
        self.seed = seed
        self.database_url = database_url
        self.rng = random.Random(seed)
        self.root = root
        self.clock = Clock()
        self.simulator = Simulator(speed=0, public_url=None, callback_backoff=0.01, callback_attempts=3)
        self.simulator.add_account(TOKEN, 10_000_000)
        self.discord = FakeDiscord()
        self.services: Services | None = None
        self.crash_log: list[str] = []
        self.crashes = Crashes(None, False, self.crash_log)
        self.restarts = 0
        self.sim_url = ""
        self.dataset: DatasetResult | None = None
        self.checked = 0  # invariant checks made

    # --- processes --------------------------------------------------------------------------------
    async def open(self) -> None:
        self.sim_url = await self.simulator.start("127.0.0.1", 0, access_log=False)

    async def start_process(self, crash_at: int | None = None, crash_after: bool = False) -> Services:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=self.root / "data",
            database_url=self.database_url,  # type: ignore[arg-type]
            civitai_mode=CivitaiMode.REAL,
            civitai_token=TOKEN,  # type: ignore[arg-type]
            orchestrator_url=self.sim_url,
            public_url=PUBLIC_URL,
            http_host="127.0.0.1",
            http_port=0,
            reconcile_interval_seconds=3600,
            card_edit_interval_seconds=0,
        )
        services = await Services.start(settings, clock=self.clock)
        assert services.web is not None
        self.simulator.route_host("bot.chaos", services.web.base_url)
        services.orchestrator.client.retry = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.005)
        self.crashes = crashes = Crashes(crash_at, crash_after, self.crash_log)
        jobs = services.store.jobs
        for name in ("claim_for_submit", "renew_lease", "mark_submitted", "release_claim", "take_over_submit",
                     "abandon_submit", "update_draft", "update_state"):  # fmt: skip
            crashes.wrap(jobs, name, f"jobs.{name}")
        for name in ("claim", "set_lease", "mark_running", "release"):
            crashes.wrap(services.store.captions, name, f"captions.{name}")
        crashes.wrap(services.store.epochs, "record_posted", "epochs.record_posted")
        crashes.wrap(services.store.events, "mark_handled", "events.mark_handled")
        crashes.wrap(services.store.ledger, "settle", "ledger.settle")
        crashes.wrap(services.orchestrator.client, "send_once", "orchestrator")
        services.tracker.attach(RecordingSink(self.discord, crashes))
        await services.tracker.start()
        self.services = services
        return services

    async def stop_process(self, *, long_outage: bool) -> None:
        """Kill (or stop) the process; a long outage also outlasts Discord's nonce window."""
        assert self.services is not None
        self.crashes.dead = True  # nothing it still has in flight has any effect
        try:
            await self.services.close()
        except Killed:
            await self.services.orchestrator.close()  # what close() did not reach
        self.services = None
        self.restarts += 1
        if long_outage:
            self.discord.nonces.clear()

    async def close(self) -> None:
        if self.services is not None:
            self.crashes.dead = False
            await self.services.close()
        await self.simulator.stop()

    def expect(self, condition: bool, violation: str) -> None:
        """One invariant check: counted, and a violation fails the seed."""
        self.checked += 1
        assert condition, violation

    # --- members ----------------------------------------------------------------------------------
    def requester(self, user_id: int) -> Requester:
        return Requester(GUILD, Member(user_id=user_id, role_ids=frozenset(), channel_id=CHANNEL))

    async def draft(self, user_id: int, prompts: tuple[str, ...], steps: int) -> Draft:
        assert self.services is not None
        requester = self.requester(user_id)
        options = TrainingOptions.from_user(steps=steps, epochs=2, trigger_word="sks", sample_prompts=list(prompts))
        if self.dataset is None:  # one checked dataset serves every draft (the check is not under test)
            folder = self.root / "dataset-in"
            folder.mkdir(parents=True, exist_ok=True)
            self.dataset = await checked_dataset(self.services, folder, count=2)
        quote = await self.services.training.quote(requester, options, self.dataset, name=f"run-{user_id}")
        draft = Draft(quote.job.id, requester, {}, quote.job.revision)
        self.saw(draft, quote)
        return draft

    @staticmethod
    def saw(draft: Draft, quote: Quote) -> None:
        draft.shown[quote.job.revision] = (quote.options.sample_prompts, quote.price, quote.price_is_estimate)
        draft.revision = quote.job.revision
