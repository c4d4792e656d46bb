"""The stage's state: users, guilds, channels, threads and messages, and their JSON payloads.

``Message`` and ``Channel`` are also what tests get back from the driver, so they carry small
accessors (``message.embed``, ``message.buttons``, ``message.text``…) that make assertions read
like what a member sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.stage.world import ADMINISTRATOR, ALL_PERMISSIONS

Json = dict[str, Any]

# Channel types.
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (PUBLIC_THREAD, PRIVATE_THREAD)

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7
IS_COMPONENTS_V2 = 1 << 15


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    dms_open: bool = True

    def payload(self) -> Json:
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.username.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int = 0

    def payload(self) -> Json:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
            "icon": None,
            "unicode_emoji": None,
        }


@dataclass
class GuildMember:
    user: User
    role_ids: list[int]
    joined_at: str

    def payload(self) -> Json:
        return {
            "user": self.user.payload(),
            "roles": [str(r) for r in self.role_ids],
            "nick": None,
            "avatar": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role]
    members: dict[int, GuildMember]
    channel_ids: list[int]
    attachment_size_limit: int

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]  # @everyone's id is the guild's

    def permissions_of(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members.get(user_id)
        perms = self.everyone.permissions
        for role_id in member.role_ids if member else []:
            perms |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def role_named(self, name: str) -> Role:
        for role in self.roles.values():
            if role.name == name:
                return role
        raise KeyError(f"no role {name!r} in guild {self.name!r} (roles: {[r.name for r in self.roles.values()]})")


@dataclass
class StoredFile:
    """An uploaded file: the bytes are kept so tests can open what the bot posted."""

    id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> Json:
        out: Json = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            out["content_type"] = self.content_type
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class Channel:
    id: int
    type: int
    name: str
    guild_id: int | None = None
    parent_id: int | None = None
    position: int = 0
    recipient: User | None = None  # DMs
    owner_id: int | None = None  # threads
    archived: bool = False
    locked: bool = False
    deleted: bool = False
    invitable: bool = True
    auto_archive_duration: int = 1440
    archive_timestamp: str = ""
    thread_member_ids: set[int] = field(default_factory=set)
    message_ids: list[int] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def is_private_thread(self) -> bool:
        return self.type == PRIVATE_THREAD

    def payload(self) -> Json:
        if self.type == DM:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": DM,
                "recipients": [self.recipient.payload()],
                "last_message_id": str(self.message_ids[-1]) if self.message_ids else None,
                "flags": 0,
            }
        out: Json = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "rate_limit_per_user": 0,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "last_message_id": str(self.message_ids[-1]) if self.message_ids else None,
            "flags": 0,
        }
        if self.is_thread:
            out |= {
                "owner_id": str(self.owner_id),
                "message_count": len(self.message_ids),
                "member_count": len(self.thread_member_ids),
                "total_message_sent": len(self.message_ids),
                "thread_metadata": {
                    "archived": self.archived,
                    "locked": self.locked,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": self.archive_timestamp,
                    "invitable": self.invitable,
                },
            }
        return out


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author: User
    created_at: str
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[StoredFile] = field(default_factory=list)
    flags: int = 0
    webhook_id: int | None = None
    interaction_id: int | None = None
    interaction_user: User | None = None
    interaction_name: str | None = None
    # Ephemeral messages are visible only to this user.
    visible_to: int | None = None
    edited_at: str | None = None
    edit_count: int = 0
    thread_id: int | None = None
    deleted: bool = False
    # Bumped on every change; lets waits ask for "new or changed since my last action".
    revision: int = 0
    # A message sent with ``enforce_nonce``: its nonce and when (stage clock), for dedupe.
    nonce: str | None = None
    sent_at: float = 0.0

    # --- what tests read -------------------------------------------------------------------
    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response still "thinking" (nothing to read yet)."""
        return bool(self.flags & LOADING)

    @property
    def embed(self) -> Json:
        if not self.embeds:
            raise AssertionError(f"message {self.id} has no embed (content: {self.content!r})")
        return self.embeds[0]

    @property
    def rows(self) -> list[list[Json]]:
        return [row.get("components", []) for row in self.components if row.get("type") == 1]

    @property
    def buttons(self) -> list[Json]:
        return [c for row in self.rows for c in row if c.get("type") == 2]

    @property
    def selects(self) -> list[Json]:
        return [c for row in self.rows for c in row if c.get("type") in (3, 5, 6, 7, 8)]

    def button(self, *, label: str | None = None, custom_id: str | None = None) -> Json:
        for button in self.buttons:
            if (label is None or button.get("label") == label) and (
                custom_id is None or button.get("custom_id") == custom_id
            ):
                return button
        seen = [(b.get("label"), b.get("custom_id")) for b in self.buttons]
        raise AssertionError(f"no button label={label!r} custom_id={custom_id!r} on message {self.id}; has {seen}")

    @property
    def text(self) -> str:
        """Everything a member reads on the message, as one string (content, embeds, buttons)."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            parts += [f"{f.get('name', '')}\n{f.get('value', '')}" for f in embed.get("fields", [])]
            parts += [(embed.get("footer") or {}).get("text", ""), (embed.get("author") or {}).get("name", "")]
        parts += [b.get("label") or "" for b in self.buttons]
        return "\n".join(p for p in parts if p)

    def file(self, filename: str) -> bytes:
        for attachment in self.attachments:
            if attachment.filename == filename:
                return attachment.data
        raise AssertionError(f"message {self.id} has no file {filename!r}: {[a.filename for a in self.attachments]}")

    def summary(self) -> str:
        kind = "ephemeral " if self.ephemeral else ""
        text = self.text.replace("\n", " / ")
        return f"{kind}message {self.id} by {self.author.username}: {text[:160]!r}"

    # --- wire format ------------------------------------------------------------------------
    def payload(self, thread: Channel | None = None) -> Json:
        """The message as Discord sends it; ``thread`` is the thread started from it, if any."""
        out: Json = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.created_at,
            "edited_timestamp": self.edited_at,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": 20 if self.interaction_id else 0,  # 20: a reply to a slash command
            "flags": self.flags,
        }
        if self.guild_id is not None:
            out["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            out["webhook_id"] = str(self.webhook_id)
            out["application_id"] = str(self.webhook_id)
        if self.interaction_id is not None and self.interaction_user is not None:
            out["interaction_metadata"] = {
                "id": str(self.interaction_id),
                "type": 2,
                "user": self.interaction_user.payload(),
                "authorizing_integration_owners": {},
            }
        if thread is not None:
            out["thread"] = thread.payload()
        return out
