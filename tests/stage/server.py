"""The stage: a fake Discord (REST API + gateway on one loopback port) and everything it saw.

It holds the world (guilds, channels, members, messages, threads, DMs), answers the bot as
Discord does, checks every request body, and collects problems — invalid requests, failed
interactions, unknown routes — so that the test that caused them fails, naming the route
and the field. Tests act through ``stage.member(name)`` (see driver.py) and wait with
``stage.wait_message`` and friends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from tests.stage.clock import StageClock
from tests.stage.faults import Faults
from tests.stage.gateway import Gateway
from tests.stage.http import (
    API_PREFIX,
    HttpError,
    StageRequest,
    json_response,
    rate_limit_headers,
    read_body,
)
from tests.stage.ids import Snowflakes
from tests.stage.interactions import InteractionRecord, StageError, interaction_payload
from tests.stage.limits import Upload, check_limits
from tests.stage.model import (
    DM,
    EPHEMERAL,
    GUILD_TEXT,
    LOADING,
    Channel,
    Guild,
    GuildMember,
    Json,
    Message,
    Role,
    StoredFile,
    User,
)
from tests.stage.openapi import OpenApiValidator, shared_validator
from tests.stage.rest import TOKEN_ROUTES, RestApi
from tests.stage.violations import Path, Violation, discord_error_body
from tests.stage.world import (
    BOT_PERMISSIONS,
    DEFAULT_ATTACHMENT_SIZE_LIMIT,
    EVERYONE_PERMISSIONS,
    GuildSpec,
    MemberSpec,
    StageConfig,
)

if TYPE_CHECKING:
    from tests.stage.driver import StageMember

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # above Discord's 25 MiB, so oversized uploads are reported, not cut


class StageTimeout(StageError):
    """A wait ran out; the message says what was waited for and what the stage had instead."""


class BodyError(Exception):
    """A request body that is well-formed JSON but refers to something that does not exist."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


@dataclass
class RequestRecord:
    method: str
    route: str
    path: str
    status: int
    body: Any
    files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.route} -> {self.status}"


@dataclass(frozen=True)
class MessageState:
    """One state a message was in (created, edited, given a thread, deleted), as members read it then."""

    message_id: int
    channel_id: int
    revision: int
    text: str
    ephemeral: bool
    loading: bool
    deleted: bool


@dataclass(frozen=True)
class FailedInteraction:
    interaction_id: int
    description: str
    user: str
    reason: str

    def __str__(self) -> str:
        return f"{self.description} by {self.user}: {self.reason} (the member saw 'This interaction failed')"


class Stage:
    def __init__(self, config: StageConfig | None = None) -> None:
        self.config = config or StageConfig()
        self.token = self.config.token
        self.clock = StageClock()
        self.ids = Snowflakes(self.clock)
        self.faults = Faults(self)
        self.gateway = Gateway(self)
        self.validator: OpenApiValidator | None = None
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.stored_files: dict[int, StoredFile] = {}
        self.commands: dict[str, dict[str, Json]] = {}  # scope ("global" or guild id) -> name -> command
        self.command_permission_overrides: set[str] = set()
        self.interactions: dict[int, InteractionRecord] = {}
        self.requests: list[RequestRecord] = []
        # Every state of every message, in order: what members could have read at some moment.
        self.message_states: list[MessageState] = []
        self.violations: list[Violation] = []
        self.failed_interactions: list[FailedInteraction] = []
        self.errors: list[str] = []
        self.bot_errors: list[str] = []  # ERROR logs of an in-process bot (see bots.py)
        self._tokens: dict[str, InteractionRecord] = {}
        self._command_ids: dict[tuple[str, str, int], int] = {}
        self._revision = 0
        self._pulse = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.application_id = self.ids.next()
        # A bot's user id is its application's id.
        self.bot_user = User(self.application_id, self.config.bot_name.lower().replace(" ", "-"), bot=True)
        self.users[self.bot_user.id] = self.bot_user
        for spec in self.config.guilds:
            self._build_guild(spec)

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Stage:
        self.validator = shared_validator()
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get("/attachments/{file_id}/{filename}", self._serve_file)
        for method, path, handler in RestApi(self).routes():
            app.router.add_route(method, API_PREFIX + path, self._endpoint(method, path, handler))
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self.faults.release()
        for task in list(self._tasks):
            task.cancel()
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Stage:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What the bot's DISCORD_API_BASE should be."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """What the bot's DISCORD_GATEWAY_URL should be."""
        return f"ws://127.0.0.1:{self.port}/"

    # --- building the world ---------------------------------------------------------------------
    def _add_user(self, name: str, *, bot: bool = False, dms_open: bool = True) -> User:
        for user in self.users.values():
            if user.username == name:
                return user
        user = User(self.ids.next(), name, bot=bot, dms_open=dms_open)
        self.users[user.id] = user
        return user

    def _build_guild(self, spec: GuildSpec) -> Guild:
        guild_id = self.ids.next_on_shard(*spec.shard) if spec.shard else self.ids.next()
        members = list(spec.members)
        if not any(m.owner for m in members):
            members.append(MemberSpec("owner", owner=True))
        owner = next(m for m in members if m.owner)
        roles = {guild_id: Role(guild_id, "@everyone", spec.everyone_permissions or EVERYONE_PERMISSIONS)}
        for position, (name, permissions) in enumerate(spec.roles.items(), start=1):
            role = Role(self.ids.next(), name, permissions, position)
            roles[role.id] = role
        bot_role = Role(self.ids.next(), self.config.bot_name, BOT_PERMISSIONS, len(roles))
        roles[bot_role.id] = bot_role
        guild = Guild(guild_id, spec.name, 0, roles, {}, [], spec.attachment_size_limit)
        joined = self.clock.iso()
        for member_spec in members:
            user = self._add_user(member_spec.name, dms_open=member_spec.dms_open)
            role_ids = [guild.role_named(name).id for name in member_spec.roles]
            guild.members[user.id] = GuildMember(user, role_ids, joined)
        guild.owner_id = self._add_user(owner.name).id
        guild.members[self.bot_user.id] = GuildMember(self.bot_user, [bot_role.id], joined)
        for position, name in enumerate(spec.channels):
            channel = Channel(self.ids.next(), GUILD_TEXT, name, guild_id=guild_id, position=position)
            self.channels[channel.id] = channel
            guild.channel_ids.append(channel.id)
        self.guilds[guild_id] = guild
        return guild

    # --- lookups -------------------------------------------------------------------------------
    @property
    def guild(self) -> Guild:
        """The first (usually the only) guild."""
        return next(iter(self.guilds.values()))

    def member(self, name: str, *, guild: Guild | None = None) -> StageMember:
        """The driver for a member: ``await stage.member("alice").slash("help")``."""
        from tests.stage.driver import StageMember

        user = self.user(name)
        home = guild or next((g for g in self.guilds.values() if user.id in g.members), None)
        if home is None or user.id not in home.members:
            raise StageError(f"{name!r} is not a member of any guild on the stage")
        return StageMember(self, user, home, self.channel(home.channel_ids[0]))

    def user(self, who: Any) -> User:
        """A user by name, id, ``User`` or ``StageMember``."""
        if isinstance(who, User):
            return who
        if hasattr(who, "user") and isinstance(who.user, User):
            return who.user
        for user in self.users.values():
            if who in (user.username, user.id, str(user.id)):
                return user
        raise StageError(f"no user {who!r} on the stage (users: {[u.username for u in self.users.values()]})")

    def channel(self, where: Any) -> Channel:
        """A channel or thread by name, id, ``Channel`` or ``Message`` (its thread)."""
        if isinstance(where, Channel):
            return where
        if isinstance(where, Message):
            if where.thread_id is None:
                raise StageError(f"message {where.id} has no thread")
            return self.channels[where.thread_id]
        for channel in self.channels.values():
            if where in (channel.id, str(channel.id)) or (where == channel.name and channel.type != DM):
                return channel
        names = [c.name for c in self.channels.values() if c.type != DM]
        raise StageError(f"no channel {where!r} on the stage (channels and threads: {names})")

    def threads(self, parent: Any = None) -> list[Channel]:
        parent_id = self.channel(parent).id if parent is not None else None
        return [
            c
            for c in self.channels.values()
            if c.is_thread and not c.deleted and (parent_id is None or c.parent_id == parent_id)
        ]

    def files(self, message: Message) -> dict[str, bytes]:
        """The bytes of every file on ``message``, by file name."""
        return {a.filename: a.data for a in message.attachments}

    def interaction_by_token(self, token: str) -> InteractionRecord | None:
        return self._tokens.get(token)

    def find_command(self, name: str, guild_id: int | None) -> Json | None:
        scopes = [str(guild_id)] if guild_id is not None else []
        for scope in [*scopes, "global"]:
            command = self.commands.get(scope, {}).get(name)
            if command is not None and command.get("type", 1) == 1:
                return command
        return None

    def override_command_permissions(self, name: str) -> None:
        """What an admin does in Server Settings → Integrations: let everyone use /name."""
        self.command_permission_overrides.add(name)

    # --- payloads --------------------------------------------------------------------------------
    def application_payload(self) -> Json:
        return {
            "id": str(self.application_id),
            "name": self.config.bot_name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.users[self.guild.owner_id].payload() if self.guilds else self.bot_user.payload(),
            "team": None,
            "flags": 0,
            "rpc_origins": [],
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.guilds),
            "bot": self.bot_user.payload(),
        }

    def ready_payload(self, session_id: str, guilds: list[int], shard: tuple[int, int]) -> Json:
        return {
            "v": 10,
            "user": self.bot_user.payload() | {"verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
            "shard": list(shard),
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth": {},
            "_trace": ["stage"],
        }

    def guild_create_payload(self, guild: Guild) -> Json:
        channels = [self.channels[c] for c in guild.channel_ids if not self.channels[c].deleted]
        threads = [t for t in self.threads() if t.guild_id == guild.id and not t.archived]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "roles": [r.payload() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "members": [m.payload() for m in guild.members.values()],
            "member_count": len(guild.members),
            "channels": [self.channel_payload(c) for c in channels],
            "threads": [self.channel_payload(t) for t in threads],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "large": False,
            "unavailable": False,
            "joined_at": self.clock.iso(),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
        }

    def channel_payload(self, channel: Channel) -> Json:
        return channel.payload()

    def message_payload(self, message: Message) -> Json:
        thread = self.channels.get(message.thread_id) if message.thread_id is not None else None
        return message.payload(thread=thread)

    def bot_permissions(self, channel: Channel) -> int:
        if channel.guild_id is None:
            return EVERYONE_PERMISSIONS
        return self.guilds[channel.guild_id].permissions_of(self.bot_user.id)

    def attachment_size_limit(self, channel: Channel) -> int:
        if channel.guild_id is None:
            return DEFAULT_ATTACHMENT_SIZE_LIMIT
        return self.guilds[channel.guild_id].attachment_size_limit

    # --- changing the world ---------------------------------------------------------------------
    def touch(self, message: Message) -> None:
        self._revision += 1
        message.revision = self._revision
        self.message_states.append(
            MessageState(
                message.id,
                message.channel_id,
                message.revision,
                message.text,
                message.ephemeral,
                message.loading,
                message.deleted,
            )
        )
        self.notify()

    @property
    def revision(self) -> int:
        """Grows with every message created or changed; waits use it to mean "since"."""
        return self._revision

    def store_file(
        self, filename: str, data: bytes, content_type: str | None = None, description: str | None = None
    ) -> StoredFile:
        file_id = self.ids.next()
        signature = f"ex={int(self.clock.time()) + 86400:x}&is={int(self.clock.time()):x}&hm={secrets.token_hex(8)}"
        url = f"{self.base_url}/attachments/{file_id}/{quote(filename)}?{signature}"
        stored = StoredFile(file_id, filename, data, url, content_type or _guess_type(filename), description)
        self.stored_files[file_id] = stored
        return stored

    def create_message(
        self,
        channel: Channel,
        body: Json,
        uploads: list[Upload],
        *,
        interaction: InteractionRecord | None = None,
        visible_to: int | None = None,
    ) -> Message:
        message = Message(
            id=self.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=self.bot_user,
            created_at=self.clock.iso(),
            flags=int(body.get("flags") or 0) & ~(0 if interaction else EPHEMERAL),
            visible_to=visible_to,
        )
        if interaction is not None:
            message.webhook_id = self.application_id
            message.interaction_id, message.interaction_user = interaction.id, interaction.user
        self._apply(message, body, uploads, editing=False)
        self.messages[message.id] = message
        channel.message_ids.append(message.id)
        self.touch(message)
        return message

    def edit_message(self, message: Message, body: Json, uploads: list[Upload]) -> Message:
        self._apply(message, body, uploads, editing=True)
        if body.get("flags") is not None:  # only SUPPRESS_EMBEDS can change on an edit
            message.flags = (message.flags & ~4) | (int(body["flags"]) & 4)
        message.flags &= ~LOADING  # editing a deferred answer fills it in
        message.edited_at = self.clock.iso()
        message.edit_count += 1
        self.touch(message)
        return message

    def _apply(self, message: Message, body: Json, uploads: list[Upload], *, editing: bool) -> None:
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = [{"type": "rich", **e} for e in body["embeds"] or []]
        if "components" in body:
            message.components = list(body["components"] or [])
        by_index = {u.field.removeprefix("files[").removesuffix("]"): u for u in uploads}
        if body.get("attachments") is None:
            kept = message.attachments if editing else []
            message.attachments = kept + [self.store_file(u.filename, u.data, u.content_type) for u in uploads]
            return
        existing = {str(a.id): a for a in message.attachments}
        attachments = []
        for index, item in enumerate(body["attachments"]):
            key = str(item.get("id"))
            if key in existing:
                attachments.append(existing[key])
            elif key in by_index:
                upload = by_index[key]
                name = item.get("filename") or upload.filename
                attachments.append(self.store_file(name, upload.data, upload.content_type, item.get("description")))
            else:
                raise BodyError(("attachments", index, "id"), f"no uploaded file or existing attachment with id {key}")
        message.attachments = attachments

    def delete_message(self, message: Message) -> None:
        message.deleted = True
        self.touch(message)

    async def create_thread(self, parent: Channel, body: Json, kind: int, *, thread_id: int | None = None) -> Channel:
        thread = Channel(
            id=thread_id or self.ids.next(),
            type=kind,
            name=body.get("name") or "thread",
            guild_id=parent.guild_id,
            parent_id=parent.id,
            owner_id=self.bot_user.id,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            invitable=bool(body.get("invitable", True)),
            archive_timestamp=self.clock.iso(),
            thread_member_ids={self.bot_user.id},
        )
        self.channels[thread.id] = thread
        await self.gateway.dispatch("THREAD_CREATE", self.channel_payload(thread) | {"newly_created": True})
        self.notify()
        return thread

    async def dispatch_thread_update(self, thread: Channel) -> None:
        await self.gateway.dispatch("THREAD_UPDATE", self.channel_payload(thread))
        self.notify()

    async def delete_channel(self, channel: Channel) -> None:
        channel.deleted = True
        if channel.is_thread:
            data = {"id": str(channel.id), "guild_id": str(channel.guild_id), "parent_id": str(channel.parent_id)}
            await self.gateway.dispatch("THREAD_DELETE", data | {"type": channel.type})
        elif channel.guild_id is not None:
            await self.gateway.dispatch("CHANNEL_DELETE", self.channel_payload(channel))
        self.notify()

    def dm_channel(self, user: User) -> Channel:
        for channel in self.channels.values():
            if channel.type == DM and channel.recipient is user:
                return channel
        channel = Channel(self.ids.next(), DM, f"dm-{user.username}", recipient=user)
        self.channels[channel.id] = channel
        return channel

    def register_command(self, scope: str, body: Json) -> Json:
        kind = int(body.get("type") or 1)
        command_id = self._command_ids.setdefault((scope, body.get("name", ""), kind), self.ids.next())
        command = {
            "default_member_permissions": None,
            "nsfw": False,
            "description": "",
            "options": [],
            **body,
            "id": str(command_id),
            "application_id": str(self.application_id),
            "version": str(self.ids.next()),
            "type": kind,
        }
        if scope != "global":
            command["guild_id"] = scope
        self.commands.setdefault(scope, {})[command["name"]] = command
        self.notify()
        return command

    # --- interactions ----------------------------------------------------------------------------
    async def start_interaction(
        self,
        record: InteractionRecord,
        data: Json,
        message: Message | None = None,
    ) -> InteractionRecord:
        """Send INTERACTION_CREATE to the bot and start Discord's 3-second clock."""
        await self.wait_connected()
        record.payload = interaction_payload(self, record, data, message)
        self.interactions[record.id] = record
        self._tokens[record.token] = record
        await self.gateway.dispatch("INTERACTION_CREATE", record.payload)
        self._spawn(self._watch_deadline(record))
        return record

    def new_interaction(
        self, kind: int, user: User, channel: Channel, description: str, source: Message | None = None
    ) -> InteractionRecord:
        now = self.clock.time()
        return InteractionRecord(
            id=self.ids.next(),
            token="stage." + secrets.token_urlsafe(48),
            type=kind,
            user=user,
            channel=channel,
            guild_id=channel.guild_id,
            created_at=now,
            deadline=now + self.config.interaction_deadline_seconds,
            expires_at=now + 60 * self.config.interaction_token_minutes,
            description=description,
            source_message_id=source.id if source else None,
        )

    async def _watch_deadline(self, record: InteractionRecord) -> None:
        await self.clock.sleep_until(record.deadline)
        if not record.answered:
            self.fail_interaction(record, "the bot did not answer within 3 s")

    def fail_interaction(self, record: InteractionRecord, reason: str) -> None:
        if record.failure is None:
            record.failure = reason
            self.failed_interactions.append(
                FailedInteraction(record.id, record.description, record.user.username, reason)
            )
            self.notify()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- problems ---------------------------------------------------------------------------------
    def record_error(self, text: str) -> None:
        log.error("stage: %s", text)
        self.errors.append(text)
        self.notify()

    def problems(self) -> list[str]:
        return (
            [f"invalid request: {v}" for v in self.violations]
            + [f"failed interaction: {f}" for f in self.failed_interactions]
            + [f"stage error: {e}" for e in self.errors]
            + [f"the bot logged an error: {e}" for e in self.bot_errors]
        )

    def check(self) -> None:
        """Raise if the stage saw anything a test did not take (violations, failures, errors)."""
        problems = self.problems()
        if problems:
            raise StageError("the stage saw problems:\n" + "\n".join(f"  - {p}" for p in problems))

    def take_violations(self) -> list[Violation]:
        """The invalid requests seen so far, and forget them (a test that expected them)."""
        taken, self.violations = self.violations, []
        return taken

    def take_failed_interactions(self) -> list[FailedInteraction]:
        taken, self.failed_interactions = self.failed_interactions, []
        return taken

    def record_bot_error(self, text: str) -> None:
        self.bot_errors.append(text)
        self.notify()

    def take_bot_errors(self) -> list[str]:
        taken, self.bot_errors = self.bot_errors, []
        return taken

    def take_errors(self) -> list[str]:
        taken, self.errors = self.errors, []
        return taken

    # --- waiting --------------------------------------------------------------------------------
    def notify(self) -> None:
        pulse, self._pulse = self._pulse, asyncio.Event()
        pulse.set()

    async def wait_for(
        self,
        check: Callable[[], T | None],
        what: str | Callable[[], str],
        *,
        timeout: float | None = None,
        fail_on_problems: bool = True,
    ) -> T:
        """Wait until ``check()`` returns something; raise the stage's problems as soon as they appear."""
        __tracebackhide__ = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.wait_timeout_seconds if timeout is None else timeout)
        while True:
            if fail_on_problems:
                self.check()
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                description = what() if callable(what) else what
                raise StageTimeout(f"timed out waiting for {description}{self._recent_failures()}")
            pulse = self._pulse
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pulse.wait(), remaining)

    def _recent_failures(self) -> str:
        failed = [str(r) for r in self.requests[-50:] if r.status >= 400]
        return ("\nrecent failed requests:\n" + "\n".join(f"  {f}" for f in failed[-10:])) if failed else ""

    async def wait_connected(self, *, timeout: float | None = None) -> None:
        await self.wait_for(lambda: True if self.gateway.connected else None, "the bot to connect", timeout=timeout)

    async def wait_ready(self, *, identifies: int = 1, timeout: float | None = None) -> None:
        """Wait until the bot has IDENTIFIED ``identifies`` times in all and is connected (READY sent)."""

        def ready() -> bool | None:
            return True if self.gateway.identify_count >= identifies and self.gateway.connected else None

        await self.wait_for(ready, f"the bot to IDENTIFY (READY number {identifies})", timeout=timeout)

    def messages_in(self, where: Any, *, since: int = 0, include_ephemeral: bool = False) -> list[Message]:
        channel = self.channel(where) if not isinstance(where, Channel) else where
        out = [self.messages[i] for i in channel.message_ids]
        return [m for m in out if not m.deleted and m.revision > since and (include_ephemeral or m.visible_to is None)]

    async def wait_message(
        self,
        where: Any,
        predicate: Callable[[Message], Any] | None = None,
        *,
        timeout: float | None = None,
        since: int = 0,
    ) -> Message:
        """The first public message in a channel, thread or DM that matches ``predicate``.

        ``where`` is a channel name, id, ``Channel``, or a ``Message`` (its thread). The
        predicate sees each message's latest state, so it also waits for edits; a predicate
        that raises (``m.embed["title"]`` on a message without embed) counts as "no".
        """
        channel = self.channel(where)
        return await self.wait_for(
            lambda: first_match(self.messages_in(channel, since=since), predicate),
            lambda: f"a message in #{channel.name}" + describe_messages(self.messages_in(channel)),
            timeout=timeout,
        )

    async def wait_thread(
        self, predicate: Callable[[Channel], Any] | None = None, *, parent: Any = None, timeout: float | None = None
    ) -> Channel:
        return await self.wait_for(
            lambda: first_match(self.threads(parent), predicate),
            lambda: f"a thread (threads: {[t.name for t in self.threads()]})",
            timeout=timeout,
        )

    async def wait_violation(self, *, timeout: float | None = None) -> Violation:
        """Wait for an invalid request and take it (the test expected it)."""
        await self.wait_for(
            lambda: self.violations or None, "an invalid request", timeout=timeout, fail_on_problems=False
        )
        return self.violations.pop(0)

    async def wait_bot_error(self, contains: str = "", *, timeout: float | None = None) -> str:
        """Wait for the bot to log an error containing ``contains`` and take it (the test expected it)."""
        found = await self.wait_for(
            lambda: next((e for e in self.bot_errors if contains in e), None),
            f"the bot to log an error containing {contains!r}",
            timeout=timeout,
            fail_on_problems=False,
        )
        self.bot_errors.remove(found)
        return found

    async def wait_failed_interaction(self, *, timeout: float | None = None) -> FailedInteraction:
        """Wait for a failed interaction and take it (the test expected it)."""
        await self.wait_for(
            lambda: self.failed_interactions or None, "a failed interaction", timeout=timeout, fail_on_problems=False
        )
        return self.failed_interactions.pop(0)

    # --- HTTP ------------------------------------------------------------------------------------
    def _endpoint(self, method: str, path: str, handler: Callable[[StageRequest], Any]) -> Any:
        route = f"{method} {path}"

        async def endpoint(request: web.Request) -> web.StreamResponse:
            req = StageRequest(
                method, route, request.path, dict(request.match_info), dict(request.query), dict(request.headers)
            )
            status, body, headers = await self._run(req, request, handler)
            self.requests.append(
                RequestRecord(method, route, request.path, status, req.body, [u.filename for u in req.uploads])
            )
            self.notify()
            headers = {**rate_limit_headers(route, self.clock.time()), **headers}
            if status == 204 or body is None:
                return web.Response(status=204 if status < 300 else status, headers=headers)
            return json_response(status, body, headers)

        return endpoint

    async def _run(
        self, req: StageRequest, request: web.Request, handler: Callable[[StageRequest], Any]
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            if not req.route.split(" ", 1)[1].startswith(TOKEN_ROUTES):
                if req.headers.get("Authorization") != f"Bot {self.token}":
                    raise HttpError(401, 0, "401: Unauthorized")
            req.body, req.uploads = await read_body(request)
            self._validate(req)
            fault = self.faults.take(req.route, req.params)
            if fault is not None and not fault.stall:
                return fault.status, fault.body, fault.headers
            result = await handler(req)
            if fault is not None:  # done, but the answer is held back
                await self.faults.released.wait()
            return (204, None, {}) if result is None else (200, result, {})
        except HttpError as error:
            return error.status, error.body(), {}
        except BodyError as error:
            violation = Violation(req.route, error.path, error.message, source="stage")
            self.violations.append(violation)
            self.notify()
            return 400, discord_error_body([violation]), {}
        except Exception:
            self.record_error(f"the stage failed on {req.route}:\n{traceback.format_exc()}")
            # Not a 5xx: discord.py would retry it for seconds.
            return 400, {"message": "stage internal error (see the test failure)", "code": 0}, {}

    def _validate(self, req: StageRequest) -> None:
        found = self.validator.validate_query(req.route, req.query) if self.validator else []
        if found:
            self.violations.extend(found)
            self.notify()
            raise HttpError(400, 50035, "Invalid Form Body", errors=discord_error_body(found)["errors"])
        if req.method in ("GET", "DELETE") or (req.body is None and not req.uploads):
            return
        found = self.validator.validate(req.route, req.body) if self.validator else []
        paths = {v.path for v in found}
        found += [
            v for v in check_limits(req.route, req.body, req.uploads, self._size_limit(req)) if v.path not in paths
        ]
        if found:
            self.violations.extend(found)
            self.notify()
            raise HttpError(400, 50035, "Invalid Form Body", errors=discord_error_body(found)["errors"])

    def _size_limit(self, req: StageRequest) -> int:
        record = None
        if "webhook_token" in req.params:
            record = self.interaction_by_token(req.params["webhook_token"])
        elif "interaction_token" in req.params:
            record = self.interaction_by_token(req.params["interaction_token"])
        if record is not None:
            return self.attachment_size_limit(record.channel)
        channel_id = req.params.get("channel_id", "")
        channel = self.channels.get(int(channel_id)) if channel_id.isdigit() else None
        return self.attachment_size_limit(channel) if channel else DEFAULT_ATTACHMENT_SIZE_LIMIT

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        text = f"{request.method} {request.path} is not a route the stage knows"
        self.record_error(f"{text}: add it to tests/stage/rest.py if the bot really needs it")
        self.requests.append(RequestRecord(request.method, "unknown", request.path, 404, None))
        return json_response(404, {"message": f"404: Not Found ({text}; see tests/stage/rest.py)", "code": 0})

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        stored = self.stored_files.get(int(file_id)) if file_id.isdigit() else None
        if stored is None:
            return web.Response(status=404, text="no such attachment on the stage")
        return web.Response(body=stored.data, content_type=stored.content_type or "application/octet-stream")


def first_match(items: Iterable[T], predicate: Callable[[T], Any] | None) -> T | None:
    for item in items:
        if predicate is None or _safely(predicate, item):
            return item
    return None


def _safely(predicate: Callable[[T], Any], item: T) -> bool:
    try:
        return bool(predicate(item))
    except (AssertionError, KeyError, IndexError, TypeError, AttributeError):
        return False


def describe_messages(messages: list[Message]) -> str:
    if not messages:
        return " (it has no messages)"
    return "; it has:\n" + "\n".join(f"  - {m.summary()}" for m in messages[-8:])


def _guess_type(filename: str) -> str | None:
    import mimetypes

    return mimetypes.guess_type(filename)[0]
