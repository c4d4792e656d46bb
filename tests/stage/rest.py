"""The REST routes the bot uses, answering as Discord does (status codes, error codes, bodies).

Each handler takes a ``StageRequest`` and returns the JSON body (``None`` → 204) or raises
``HttpError``. Route names are the OpenAPI document's paths, so validation, fault injection
and the request log all speak the same names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tests.stage.http import (
    ALREADY_ACKNOWLEDGED,
    CANNOT_DM,
    CANNOT_EDIT_OTHERS,
    INVALID_WEBHOOK_TOKEN,
    THREAD_ALREADY_CREATED,
    THREAD_LOCKED,
    UNKNOWN_CHANNEL,
    UNKNOWN_INTERACTION,
    UNKNOWN_MESSAGE,
    UNKNOWN_USER,
    UNKNOWN_WEBHOOK,
    HttpError,
    StageRequest,
    unknown,
)
from tests.stage.interactions import (
    AUTOCOMPLETE_RESULT,
    CALLBACKS_FOR,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE,
    MODAL,
    UPDATE_MESSAGE,
    InteractionRecord,
    Modal,
)
from tests.stage.model import (
    DM,
    EPHEMERAL,
    GUILD_TEXT,
    LOADING,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    Channel,
    Guild,
    Json,
    Message,
    User,
)

if TYPE_CHECKING:
    from tests.stage.server import Stage

Handler = Callable[[StageRequest], Awaitable[Any]]
# Routes that carry an interaction token instead of the bot token.
TOKEN_ROUTES = ("/interactions/", "/webhooks/")
WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"
# Discord dedupes a message sent with ``enforce_nonce`` against the author's last few minutes.
NONCE_WINDOW_SECONDS = 300


class RestApi:
    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler); specific paths before the ones with a parameter in their place."""
        return [
            ("GET", "/users/@me", self.get_me),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway),
            ("POST", "/users/@me/channels", self.open_dm),
            ("GET", "/users/{user_id}", self.get_user),
            ("GET", "/applications/{application_id}/commands", self.get_commands),
            ("PUT", "/applications/{application_id}/commands", self.put_commands),
            ("POST", "/applications/{application_id}/commands", self.post_command),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.get_commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.put_commands),
            ("POST", "/applications/{application_id}/guilds/{guild_id}/commands", self.post_command),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self.callback),
            ("POST", WEBHOOK, self.followup),
            ("GET", WEBHOOK + "/messages/@original", self.get_original),
            ("PATCH", WEBHOOK + "/messages/@original", self.edit_original),
            ("DELETE", WEBHOOK + "/messages/@original", self.delete_original),
            ("GET", WEBHOOK + "/messages/{message_id}", self.get_followup),
            ("PATCH", WEBHOOK + "/messages/{message_id}", self.edit_followup),
            ("DELETE", WEBHOOK + "/messages/{message_id}", self.delete_followup),
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("PATCH", "/channels/{channel_id}", self.edit_channel),
            ("DELETE", "/channels/{channel_id}", self.delete_channel),
            ("GET", "/channels/{channel_id}/messages", self.history),
            ("POST", "/channels/{channel_id}/messages", self.send),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.thread_from_message),
            ("POST", "/channels/{channel_id}/threads", self.thread_without_message),
            ("PUT", "/channels/{channel_id}/thread-members/@me", self.join_thread),
            ("PUT", "/channels/{channel_id}/thread-members/{user_id}", self.add_thread_member),
            ("DELETE", "/channels/{channel_id}/thread-members/{user_id}", self.remove_thread_member),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
            ("GET", "/guilds/{guild_id}/roles", self.get_roles),
        ]

    # --- login ---------------------------------------------------------------------------------
    async def get_me(self, req: StageRequest) -> Json:
        return self.stage.bot_user.payload() | {"verified": True, "mfa_enabled": False}

    async def get_application(self, req: StageRequest) -> Json:
        return self.stage.application_payload()

    async def get_gateway(self, req: StageRequest) -> Json:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {"url": self.stage.gateway_url, "shards": 1, "session_start_limit": limit}

    # --- commands ------------------------------------------------------------------------------
    def _command_scope(self, req: StageRequest) -> str:
        if int(req.params["application_id"]) != self.stage.application_id:
            raise HttpError(403, 50001, "Missing Access")
        return req.params.get("guild_id", "global")

    async def get_commands(self, req: StageRequest) -> list[Json]:
        return list(self.stage.commands.get(self._command_scope(req), {}).values())

    async def put_commands(self, req: StageRequest) -> list[Json]:
        scope = self._command_scope(req)
        self.stage.commands[scope] = {}  # a bulk overwrite: commands left out are deleted
        return [self.stage.register_command(scope, command) for command in req.body or []]

    async def post_command(self, req: StageRequest) -> Json:
        return self.stage.register_command(self._command_scope(req), req.body or {})

    # --- interactions --------------------------------------------------------------------------
    def _interaction(self, req: StageRequest, *, id_param: str | None = None) -> InteractionRecord:
        if id_param is not None:
            record = self.stage.interactions.get(req.param_int(id_param))
            if record is None or record.token != req.params["interaction_token"]:
                raise unknown("interaction", UNKNOWN_INTERACTION)
            return record
        if int(req.params["webhook_id"]) != self.stage.application_id:
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
        record = self.stage.interaction_by_token(req.params["webhook_token"])
        if record is None:
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
        if self.stage.clock.time() > record.expires_at:
            raise HttpError(401, INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        return record

    async def callback(self, req: StageRequest) -> Json | None:
        record = self._interaction(req, id_param="interaction_id")
        if not record.answered and self.stage.clock.time() > record.deadline:
            self.stage.fail_interaction(record, "the bot answered after the 3 s deadline")
        if record.failure is not None:
            raise unknown("interaction", UNKNOWN_INTERACTION)
        if record.answered:
            raise HttpError(400, ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.")
        body: Json = req.body or {}
        kind, data = body.get("type"), body.get("data") or {}
        if kind not in CALLBACKS_FOR[record.type]:
            raise HttpError(400, 50035, f"Interaction callback type {kind} is not valid for this interaction")
        message = self._answer(record, kind, data, req)
        record.response_type = kind
        self.stage.notify()
        if req.query.get("with_response") not in ("true", "1", "True"):
            return None
        resource: Json = {"type": kind}
        if message is not None:
            resource["message"] = self.stage.message_payload(message)
        return {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": bool(message and message.loading),
                "response_message_ephemeral": bool(message and message.ephemeral),
            },
            "resource": resource,
        }

    def _answer(self, record: InteractionRecord, kind: int, data: Json, req: StageRequest) -> Message | None:
        stage = self.stage
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0)
            visible_to = record.user.id if flags & EPHEMERAL else None
            if kind == DEFERRED_CHANNEL_MESSAGE:
                data = {"flags": (flags & EPHEMERAL) | LOADING}
            message = stage.create_message(record.channel, data, req.uploads, interaction=record, visible_to=visible_to)
            record.original_message_id = message.id
            return message
        if kind in (DEFERRED_UPDATE, UPDATE_MESSAGE):
            source = stage.messages.get(record.source_message_id or 0)
            if source is None:
                raise HttpError(400, 50035, "This interaction has no message to update")
            record.original_message_id = source.id
            if kind == UPDATE_MESSAGE:
                stage.edit_message(source, data, req.uploads)
            return source if kind == UPDATE_MESSAGE else None
        if kind == AUTOCOMPLETE_RESULT:
            record.choices = list(data.get("choices") or [])
        elif kind == MODAL:
            record.modal = Modal(data.get("custom_id", ""), data.get("title", ""), data.get("components", []), record)
        return None

    async def followup(self, req: StageRequest) -> Json | None:
        record = self._interaction(req)
        if not record.answered:
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
        original = self.stage.messages.get(record.original_message_id or 0)
        body: Json = req.body or {}
        if original is not None and original.loading:
            # The first follow-up after a deferral replaces the "thinking…" message.
            message = self.stage.edit_message(original, body, req.uploads)
        else:
            ephemeral = int(body.get("flags") or 0) & EPHEMERAL
            visible_to = record.user.id if ephemeral else None
            message = self.stage.create_message(
                record.channel, body, req.uploads, interaction=record, visible_to=visible_to
            )
            record.followup_ids.append(message.id)
        return self.stage.message_payload(message) if req.query.get("wait") in ("true", "1", "True") else None

    def _original(self, req: StageRequest) -> tuple[InteractionRecord, Message]:
        record = self._interaction(req)
        message = self.stage.messages.get(record.original_message_id or 0)
        if message is None or message.deleted:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return record, message

    def _followup_message(self, req: StageRequest) -> Message:
        record = self._interaction(req)
        message_id = req.param_int("message_id")
        message = self.stage.messages.get(message_id)
        if message is None or message.deleted or message_id not in (record.original_message_id, *record.followup_ids):
            raise unknown("Message", UNKNOWN_MESSAGE)
        return message

    async def get_original(self, req: StageRequest) -> Json:
        return self.stage.message_payload(self._original(req)[1])

    async def edit_original(self, req: StageRequest) -> Json:
        _, message = self._original(req)
        return self.stage.message_payload(self.stage.edit_message(message, req.body or {}, req.uploads))

    async def delete_original(self, req: StageRequest) -> None:
        self.stage.delete_message(self._original(req)[1])

    async def get_followup(self, req: StageRequest) -> Json:
        return self.stage.message_payload(self._followup_message(req))

    async def edit_followup(self, req: StageRequest) -> Json:
        message = self._followup_message(req)
        return self.stage.message_payload(self.stage.edit_message(message, req.body or {}, req.uploads))

    async def delete_followup(self, req: StageRequest) -> None:
        self.stage.delete_message(self._followup_message(req))

    # --- channels and messages -----------------------------------------------------------------
    def _channel(self, req: StageRequest) -> Channel:
        channel = self.stage.channels.get(req.param_int("channel_id"))
        if channel is None or channel.deleted:
            raise unknown("Channel", UNKNOWN_CHANNEL)
        return channel

    def _message(self, req: StageRequest) -> tuple[Channel, Message]:
        channel = self._channel(req)
        message = self.stage.messages.get(req.param_int("message_id"))
        # Ephemeral messages exist only for their member: the bot cannot fetch them by id.
        if message is None or message.deleted or message.channel_id != channel.id or message.visible_to is not None:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return channel, message

    async def get_channel(self, req: StageRequest) -> Json:
        return self.stage.channel_payload(self._channel(req))

    async def edit_channel(self, req: StageRequest) -> Json:
        channel = self._channel(req)
        body: Json = req.body or {}
        for key in ("name", "auto_archive_duration", "invitable"):
            if key in body:
                setattr(channel, key, body[key])
        if "locked" in body:
            channel.locked = bool(body["locked"])
        if "archived" in body:
            channel.archived = bool(body["archived"])
            channel.archive_timestamp = self.stage.clock.iso()
        if channel.is_thread:
            await self.stage.dispatch_thread_update(channel)
        return self.stage.channel_payload(channel)

    async def delete_channel(self, req: StageRequest) -> Json:
        channel = self._channel(req)
        await self.stage.delete_channel(channel)
        return self.stage.channel_payload(channel)

    async def history(self, req: StageRequest) -> list[Json]:
        """Discord's message history: newest first, ``limit`` (1–100, default 50) messages before,
        after or around a message id (at most one of the three), else the latest."""
        channel = self._channel(req)
        limit = int(req.query.get("limit", 50))  # its range was checked against the OpenAPI document
        anchors = {name: int(req.query[name]) for name in ("before", "after", "around") if name in req.query}
        if len(anchors) > 1:
            raise HttpError(400, 50035, "Invalid Form Body: only one of around, before and after may be given")
        newest_first = [self.stage.messages[i] for i in reversed(channel.message_ids)]
        visible = [m for m in newest_first if not m.deleted and m.visible_to is None]
        if "before" in anchors:
            page = [m for m in visible if m.id < anchors["before"]][:limit]
        elif "after" in anchors:  # the ``limit`` messages right after it, still newest first
            page = [m for m in visible if m.id > anchors["after"]][-limit:]
        elif "around" in anchors:
            older = [m for m in visible if m.id <= anchors["around"]][: (limit + 1) // 2]
            newer = [m for m in visible if m.id > anchors["around"]][-(limit // 2) :] if limit > 1 else []
            page = newer + older
        else:
            page = visible[:limit]
        return [self.stage.message_payload(m) for m in page]

    async def send(self, req: StageRequest) -> Json:
        channel = self._channel(req)
        if channel.type == DM and channel.recipient is not None and not channel.recipient.dms_open:
            raise HttpError(403, CANNOT_DM, "Cannot send messages to this user")
        body: Json = req.body or {}
        nonce = str(body["nonce"]) if body.get("enforce_nonce") and body.get("nonce") is not None else None
        if nonce is not None and (earlier := self._sent_with_nonce(channel, nonce)) is not None:
            # Discord: a resend with the same enforced nonce within minutes returns the first message.
            return self.stage.message_payload(earlier)
        if channel.is_thread:
            await self._reopen_thread(channel)
        message = self.stage.create_message(channel, body, req.uploads)
        message.nonce, message.sent_at = nonce, self.stage.clock.time()
        return self.stage.message_payload(message)

    def _sent_with_nonce(self, channel: Channel, nonce: str) -> Message | None:
        since = self.stage.clock.time() - NONCE_WINDOW_SECONDS
        for message_id in reversed(channel.message_ids):
            message = self.stage.messages[message_id]
            if message.nonce == nonce and message.sent_at >= since and message.author is self.stage.bot_user:
                return message
        return None

    async def _reopen_thread(self, thread: Channel) -> None:
        if thread.locked:
            raise HttpError(400, THREAD_LOCKED, "Thread is locked")
        if thread.archived:  # sending to an archived thread unarchives it
            thread.archived = False
            await self.stage.dispatch_thread_update(thread)

    async def get_message(self, req: StageRequest) -> Json:
        return self.stage.message_payload(self._message(req)[1])

    async def edit_message(self, req: StageRequest) -> Json:
        _, message = self._message(req)
        if message.author.id != self.stage.bot_user.id:
            raise HttpError(403, CANNOT_EDIT_OTHERS, "Cannot edit a message authored by another user")
        return self.stage.message_payload(self.stage.edit_message(message, req.body or {}, req.uploads))

    async def delete_message(self, req: StageRequest) -> None:
        self.stage.delete_message(self._message(req)[1])

    # --- threads -------------------------------------------------------------------------------
    async def thread_from_message(self, req: StageRequest) -> Json:
        channel, message = self._message(req)
        if message.thread_id is not None:
            raise HttpError(400, THREAD_ALREADY_CREATED, "A thread has already been created for this message")
        body: Json = req.body or {}
        thread = await self.stage.create_thread(channel, body, PUBLIC_THREAD, thread_id=message.id)
        message.thread_id = thread.id
        self.stage.touch(message)
        return self.stage.channel_payload(thread)

    async def thread_without_message(self, req: StageRequest) -> Json:
        channel = self._channel(req)
        if channel.type != GUILD_TEXT:
            raise HttpError(400, 50024, "Cannot execute action on this channel type")
        body: Json = req.body or {}
        kind = int(body.get("type") or PRIVATE_THREAD)
        thread = await self.stage.create_thread(channel, body, kind)
        return self.stage.channel_payload(thread)

    def _thread(self, req: StageRequest) -> Channel:
        thread = self._channel(req)
        if not thread.is_thread:
            raise HttpError(400, 50024, "Cannot execute action on this channel type")
        return thread

    async def join_thread(self, req: StageRequest) -> None:
        self._thread(req).thread_member_ids.add(self.stage.bot_user.id)

    async def add_thread_member(self, req: StageRequest) -> None:
        thread = self._thread(req)
        if thread.locked or thread.archived:
            raise HttpError(400, 50083, "Thread is archived")
        thread.thread_member_ids.add(self._user(req).id)
        self.stage.notify()

    async def remove_thread_member(self, req: StageRequest) -> None:
        self._thread(req).thread_member_ids.discard(self._user(req).id)
        self.stage.notify()

    # --- users and guilds ----------------------------------------------------------------------
    def _user(self, req: StageRequest) -> User:
        user = self.stage.users.get(req.param_int("user_id"))
        if user is None:
            raise unknown("User", UNKNOWN_USER)
        return user

    async def get_user(self, req: StageRequest) -> Json:
        return self._user(req).payload()

    async def open_dm(self, req: StageRequest) -> Json:
        recipient = str((req.body or {}).get("recipient_id"))
        user = self.stage.users.get(int(recipient)) if recipient.isdigit() else None
        if user is None or user.bot:
            raise HttpError(400, 50033, "Invalid Recipient(s)")
        return self.stage.channel_payload(self.stage.dm_channel(user))

    def _guild(self, req: StageRequest) -> Guild:
        guild = self.stage.guilds.get(req.param_int("guild_id"))
        if guild is None:
            raise HttpError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, req: StageRequest) -> Json:
        return self.stage.guild_create_payload(self._guild(req))

    async def get_guild_channels(self, req: StageRequest) -> list[Json]:
        guild = self._guild(req)
        return [self.stage.channel_payload(self.stage.channels[c]) for c in guild.channel_ids]

    async def get_member(self, req: StageRequest) -> Json:
        guild, user = self._guild(req), self._user(req)
        if user.id not in guild.members:
            raise HttpError(404, 10007, "Unknown Member")
        return guild.members[user.id].payload()

    async def get_roles(self, req: StageRequest) -> list[Json]:
        return [role.payload() for role in self._guild(req).roles.values()]
