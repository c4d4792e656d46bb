"""What the stage's Discord looks like: guilds, channels, roles and members, as tests configure it.

The defaults give one guild with two text channels and three members: ``alice`` and ``bob``
(plain members) and ``admin`` (Manage Server through the ``Admin`` role). Override the
``stage_config`` fixture, or pass a ``StageConfig`` to ``Stage``, for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1

# What @everyone may do in a fresh server.
EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS
    | SEND_MESSAGES_IN_THREADS
)
# What the bot's integration role grants: enough for cards, threads and uploads.
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_THREADS | MANAGE_MESSAGES

DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True)
class MemberSpec:
    name: str
    roles: tuple[str, ...] = ()
    owner: bool = False
    dms_open: bool = True


@dataclass(frozen=True)
class GuildSpec:
    name: str = "Stage Guild"
    channels: tuple[str, ...] = ("general", "training")
    # Role name -> permission bits (on top of @everyone's).
    roles: dict[str, int] = field(default_factory=lambda: {"Admin": MANAGE_GUILD, "Trainer": 0})
    members: tuple[MemberSpec, ...] = (
        MemberSpec("alice"),
        MemberSpec("bob"),
        MemberSpec("admin", roles=("Admin",)),
    )
    everyone_permissions: int = EVERYONE_PERMISSIONS
    attachment_size_limit: int = DEFAULT_ATTACHMENT_SIZE_LIMIT
    # (shard id, shard count): the server's id is drawn so that Discord puts it on that shard.
    shard: tuple[int, int] | None = None


@dataclass(frozen=True)
class StageConfig:
    guilds: tuple[GuildSpec, ...] = (GuildSpec(),)
    bot_name: str = "LoRA Trainer"
    token: str = "stage.bot.token"
    # Discord gives 3 s for the first answer and 15 min for the interaction token.
    interaction_deadline_seconds: float = 3.0
    interaction_token_minutes: float = 15.0
    # How long driver waits (wait_message, wait_ephemeral, …) give up after. Generous: a wait
    # ends as soon as its message arrives, and CI runs two loaded workers on two cores.
    wait_timeout_seconds: float = 15.0
