"""The link a server admin opens to add the bot to a server, with exactly what it needs.

One function builds it for every place that shows it: the start-up log, ``python -m bot doctor``
and the README. The permission bits are Discord's documented flags, kept here as plain numbers
because the core does not import discord; tests/test_invite.py checks them against
``discord.Permissions``, so a name and its bit can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

AUTHORIZE_URL = "https://discord.com/oauth2/authorize"
# "bot" adds the bot user; "applications.commands" lets the server see its slash commands.
SCOPES = ("bot", "applications.commands")



@dataclass(frozen=True)
class Permission:
    attribute: str  # the discord.Permissions attribute
    bit: int
    label: str  # as Discord's interface names it
    why: str


# Nothing more than this: an admin should be able to read the list and agree with every line.
REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    Permission("view_channel", 10, "View Channel", "see the channels where /train is used"),
    Permission("send_messages", 11, "Send Messages", "post the public job card in the channel"),
    Permission("embed_links", 14, "Embed Links", "job cards, reports and epoch messages are embeds"),
    Permission("attach_files", 15, "Attach Files", "sample images, the contact sheet and the comparison grid"),
    Permission("read_message_history", 16, "Read Message History", "edit the job card and reply in its thread"),
    Permission(
        "manage_threads", 34, "Manage Threads",
        "add the trainer to a private job thread: those are created closed to invites",
    ),
    Permission("create_public_threads", 35, "Create Public Threads", "open the job thread on the card (the default)"),
    Permission("create_private_threads", 36, "Create Private Threads", "open private job threads (/admin threads)"),
    Permission(
        "send_messages_in_threads", 38, "Send Messages in Threads", "post every epoch and the result in the thread"
    ),
)

PERMISSIONS = sum(1 << p.bit for p in REQUIRED_PERMISSIONS)


def invite_url(application_id: int) -> str:
    """The OAuth2 link that adds the bot with the slash-command scope and the permissions above."""
    query = urlencode({"client_id": str(application_id), "scope": " ".join(SCOPES), "permissions": str(PERMISSIONS)})
    return f"{AUTHORIZE_URL}?{query}"


def permission_names() -> str:
    """The permissions as Discord's interface names them, for messages to admins."""
    return ", ".join(p.label for p in REQUIRED_PERMISSIONS)
