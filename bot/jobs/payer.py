"""Whose Civitai account pays for a run, and the token to use for it.

The guild's ``payer`` setting decides: each member's own linked token, the server's token,
or the operator's ``CIVITAI_TOKEN``. In simulated mode nothing is charged anywhere, and the
simulator accepts a fixed token, so no one has to link anything to try the bot.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from bot.errors import UserFacingError
from bot.secretbox import SecretBox
from storage import Store
from storage.models import Job, Payer, TokenSource

SIMULATED_TOKEN = SecretStr("simulated-mode-token")


class MissingToken(UserFacingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, title="No Civitai account to pay for this")


@dataclass(frozen=True)
class PayingAccount:
    payer: Payer
    source: TokenSource
    token: SecretStr
    simulated: bool

    def describe(self) -> str:
        """Who pays, in the words shown on the confirmation and the job card."""
        if self.simulated:
            return "nobody: this is a SIMULATED run, no Buzz is spent"
        return {
            Payer.USER: "you, with your linked Civitai account",
            Payer.SERVER: "this server's Civitai account",
            Payer.OPERATOR: "the bot operator's Civitai account",
        }[self.payer]


def describe_payer(payer: Payer, *, simulated: bool, server_token_set: bool) -> str:
    """Who pays in this server, as /help tells every member (the rule, not one run)."""
    if simulated:
        return "nobody: the bot runs in SIMULATED mode, so no Buzz is spent and results are generated"
    if payer is Payer.USER:
        return "each member, with their own Civitai account (link yours with `/account token`)"
    if payer is Payer.SERVER:
        unset = "" if server_token_set else " (not set up yet: a server admin must run `/admin token set`)"
        return f"this server's Civitai account{unset}"
    return "the bot operator's Civitai account"


async def resolve_payer(
    store: Store,
    secretbox: SecretBox,
    *,
    guild_id: int,
    user_id: int,
    operator_token: SecretStr | None,
    simulated: bool,
) -> PayingAccount:
    settings = await store.guilds.get(guild_id)
    payer = settings.payer
    if simulated:
        return PayingAccount(payer, TokenSource.NONE, SIMULATED_TOKEN, simulated=True)
    if payer is Payer.USER:
        ciphertext = await store.users.get_token_ciphertext(user_id)
        if ciphertext is None:
            raise MissingToken(
                "On this server each member pays with their own Civitai account, and you haven't linked yours. "
                "Run `/account token` and paste an API key from civitai.com → Account settings → API keys."
            )
        return PayingAccount(payer, TokenSource.USER, SecretStr(secretbox.decrypt(ciphertext)), simulated=False)
    if payer is Payer.SERVER:
        ciphertext = await store.guilds.get_token_ciphertext(guild_id)
        if ciphertext is None:
            raise MissingToken(
                "This server pays for training, but no server Civitai token is set. "
                "Ask a server admin to run `/admin token set`."
            )
        return PayingAccount(payer, TokenSource.SERVER, SecretStr(secretbox.decrypt(ciphertext)), simulated=False)
    if operator_token is None:
        raise MissingToken(
            "The bot operator pays for training here, but they haven't configured a Civitai token (CIVITAI_TOKEN). "
            "Ask a server admin: they can switch `/admin payer` to `user` or `server`."
        )
    return PayingAccount(payer, TokenSource.OPERATOR, operator_token, simulated=False)


async def job_token(store: Store, secretbox: SecretBox, job: Job, *, operator_token: SecretStr | None) -> SecretStr:
    """The token a submitted job was paid with, to follow it and fetch its files.

    A job keeps the account it was submitted with, whatever ``/admin payer`` says now: only that
    account can read the workflow. ``MissingToken`` when that token was removed since.
    """
    if job.simulated or job.token_source is TokenSource.NONE:
        return SIMULATED_TOKEN
    ciphertext: str | None = None
    if job.token_source is TokenSource.USER:
        ciphertext = await store.users.get_token_ciphertext(job.user_id)
    elif job.token_source is TokenSource.SERVER:
        ciphertext = await store.guilds.get_token_ciphertext(job.guild_id)
    elif operator_token is not None:
        return operator_token
    if ciphertext is None:
        raise MissingToken(
            "The Civitai token this run was paid with has been removed, so I can no longer read the run "
            "or fetch its files. Link it again (`/account token` or `/admin token set`) to follow it."
        )
    return SecretStr(secretbox.decrypt(ciphertext))
