"""The invite link: the scopes and permissions the bot needs, as Discord computes them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import discord

from bot.invite import PERMISSIONS, REQUIRED_PERMISSIONS, SCOPES, invite_url


def test_every_permission_bit_is_the_one_discord_py_knows() -> None:
    for permission in REQUIRED_PERMISSIONS:
        assert discord.Permissions(**{permission.attribute: True}).value == 1 << permission.bit, permission


def test_the_permissions_integer_is_exactly_the_listed_permissions() -> None:
    expected = discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        create_public_threads=True,
        create_private_threads=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
        manage_threads=True,
    )
    assert PERMISSIONS == expected.value == 395137108992
    # Nothing an admin would balk at.
    granted = discord.Permissions(PERMISSIONS)
    assert not (granted.administrator or granted.manage_guild or granted.manage_messages or granted.mention_everyone)


def test_invite_url_has_the_client_id_scopes_and_permissions() -> None:
    url = invite_url(1234567890)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "discord.com", "/oauth2/authorize")
    assert query == {
        "client_id": ["1234567890"], "scope": ["bot applications.commands"], "permissions": [str(PERMISSIONS)]
    }
    assert SCOPES == ("bot", "applications.commands")
    # The same link discord.py would build.
    assert url == discord.utils.oauth_url(1234567890, permissions=discord.Permissions(PERMISSIONS), scopes=SCOPES)
