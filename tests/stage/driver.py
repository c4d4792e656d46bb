"""The driver: tests act as members of the server and read what those members see.

    alice = stage.member("alice")
    ix = await alice.slash("train flux1", dataset=Attachment("d.zip", data), steps=1000)
    card = await alice.wait_ephemeral(lambda m: "Confirm" in m.text)
    await alice.click(card, label="Confirm")
    epoch = await stage.wait_message(card_thread, lambda m: m.embed["title"].startswith("Epoch 1"))

Every action refuses what a real member could not do (a command they cannot see, a button on a
message that is not theirs, a disabled button, a missing required option), so tests stay honest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tests.stage.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    Attachment,
    CommandBuilder,
    InteractionRecord,
    Modal,
    StageError,
    modal_submission,
)
from tests.stage.model import DM, Channel, Guild, Json, Message, User
from tests.stage.server import describe_messages, first_match
from tests.stage.world import ADMINISTRATOR, MANAGE_THREADS

if TYPE_CHECKING:
    from tests.stage.server import Stage

__all__ = ["Attachment", "InteractionHandle", "StageMember"]
BOT_DM_CONTEXT = 1
LINK_STYLE = 5


class InteractionHandle:
    """One interaction a member started, and what the bot did with it."""

    def __init__(self, stage: Stage, member: StageMember, record: InteractionRecord) -> None:
        self.stage, self.member, self.record = stage, member, record

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def failed(self) -> bool:
        return self.record.failure is not None

    @property
    def original(self) -> Message | None:
        return self.stage.messages.get(self.record.original_message_id or 0)

    @property
    def followups(self) -> list[Message]:
        return [self.stage.messages[i] for i in self.record.followup_ids]

    async def response(self, *, timeout: float | None = None) -> int:
        """Wait for the bot's first answer; its callback type (4 message, 5 deferred, 9 modal, …)."""
        return await self.stage.wait_for(
            lambda: self.record.response_type, f"the bot to answer {self.record.description}", timeout=timeout
        )

    async def reply(
        self, predicate: Callable[[Message], Any] | None = None, *, timeout: float | None = None
    ) -> Message:
        """The answer the member reads: the original response (once it is no longer "thinking…")
        or a follow-up, the first that matches ``predicate``."""

        def candidates() -> list[Message]:
            found = [self.original] if self.original is not None else []
            return [m for m in [*found, *self.followups] if not m.deleted and not m.loading]

        return await self.stage.wait_for(
            lambda: first_match(candidates(), predicate),
            lambda: f"a reply to {self.record.description}" + describe_messages(candidates()),
            timeout=timeout,
        )

    async def modal(self, *, timeout: float | None = None) -> Modal:
        return await self.stage.wait_for(
            lambda: self.record.modal, f"a modal in answer to {self.record.description}", timeout=timeout
        )

    async def choices(self, *, timeout: float | None = None) -> list[Json]:
        return await self.stage.wait_for(
            lambda: self.record.choices, f"autocomplete choices for {self.record.description}", timeout=timeout
        )


class StageMember:
    def __init__(self, stage: Stage, user: User, guild: Guild | None, channel: Channel) -> None:
        self.stage, self.user, self.guild, self.channel = stage, user, guild, channel
        self._since = stage.revision
        self.last: InteractionHandle | None = None

    def __repr__(self) -> str:
        return f"<StageMember {self.name} in #{self.channel.name}>"

    @property
    def name(self) -> str:
        return self.user.username

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def permissions(self) -> int:
        return self.guild.permissions_of(self.user.id) if self.guild else 0

    def in_channel(self, where: Any) -> StageMember:
        """The same member acting in another channel or thread."""
        channel = self.stage.channel(where)
        guild = self.stage.guilds.get(channel.guild_id) if channel.guild_id else None
        return StageMember(self.stage, self.user, guild, channel)

    def in_dm(self) -> StageMember:
        """The same member acting in their DM with the bot (no guild)."""
        return StageMember(self.stage, self.user, None, self.stage.dm_channel(self.user))

    def can_see(self, message: Message) -> bool:
        if message.deleted:
            return False
        if message.visible_to is not None:
            return message.visible_to == self.user.id
        channel = self.stage.channels[message.channel_id]
        if channel.type == DM:
            return channel.recipient is self.user
        if channel.is_private_thread:
            guild = self.stage.guilds[channel.guild_id or 0]
            return self.user.id in channel.thread_member_ids or bool(
                guild.permissions_of(self.user.id) & MANAGE_THREADS
            )
        return True

    # --- actions ---------------------------------------------------------------------------------
    async def slash(self, command: str, **options: Any) -> InteractionHandle:
        """Run ``/command`` ("train flux1" for a subcommand) with options as keyword arguments."""
        path = command.lstrip("/").split()
        definition = self._command(path[0])
        data = CommandBuilder(self.stage, definition, self.guild.id if self.guild else None).build(path, options)
        return await self._start(APPLICATION_COMMAND, "/" + " ".join(path), data)

    async def autocomplete(self, command: str, option: str, typed: str, **options: Any) -> list[Json]:
        """What the member sees while typing ``typed`` into ``option``: the bot's choices."""
        path = command.lstrip("/").split()
        definition = self._command(path[0])
        builder = CommandBuilder(self.stage, definition, self.guild.id if self.guild else None)
        data = builder.build(path, {**options, option: typed}, focused=option)
        handle = await self._start(AUTOCOMPLETE, f"autocomplete /{' '.join(path)} {option}", data)
        return await handle.choices()

    async def click(
        self, message: Message, *, label: str | None = None, custom_id: str | None = None
    ) -> InteractionHandle:
        """Press a button on ``message`` (found by label or custom_id)."""
        self._require_visible(message)
        button = message.button(label=label, custom_id=custom_id)
        if button.get("disabled"):
            raise StageError(f"button {button.get('label')!r} is disabled: a member cannot press it")
        if button.get("style") == LINK_STYLE or "custom_id" not in button:
            raise StageError(f"button {button.get('label')!r} is a link to {button.get('url')}: it opens a browser")
        data = {"custom_id": button["custom_id"], "component_type": 2}
        return await self._start(MESSAGE_COMPONENT, f"button {button.get('label')!r}", data, source=message)

    async def choose(self, message: Message, custom_id: str, values: Iterable[str]) -> InteractionHandle:
        """Pick ``values`` in the select menu ``custom_id`` on ``message``."""
        self._require_visible(message)
        select = next((s for s in message.selects if s.get("custom_id") == custom_id), None)
        if select is None:
            ids = [s.get("custom_id") for s in message.selects]
            raise StageError(f"message {message.id} has no select {custom_id!r}; it has {ids}")
        chosen = list(values)
        if select.get("disabled"):
            raise StageError(f"select {custom_id!r} is disabled")
        least, most = select.get("min_values", 1), select.get("max_values", 1)
        if not least <= len(chosen) <= most:
            raise StageError(f"select {custom_id!r} takes {least} to {most} values, not {len(chosen)}")
        if select.get("type") == 3:
            offered = [o.get("value") for o in select.get("options", [])]
            if any(v not in offered for v in chosen):
                raise StageError(f"select {custom_id!r} offers {offered}, not {chosen}")
        data = {"custom_id": custom_id, "component_type": select["type"], "values": chosen}
        return await self._start(MESSAGE_COMPONENT, f"select {custom_id!r}", data, source=message)

    async def submit_modal(
        self, modal: Modal | InteractionHandle, values: dict[str, Any] | None = None, **by_custom_id: Any
    ) -> InteractionHandle:
        """Fill in and submit a modal; inputs by custom_id or label (unnamed inputs keep their value)."""
        if isinstance(modal, InteractionHandle):
            modal = await modal.modal()
        if modal.interaction.user is not self.user:
            raise StageError(
                f"the modal {modal.title!r} was shown to {modal.interaction.user.username}, not {self.name}"
            )
        components = modal_submission(modal, {**(values or {}), **by_custom_id})
        source = self.stage.messages.get(modal.interaction.source_message_id or 0)
        data = {"custom_id": modal.custom_id, "components": components}
        member = self.in_channel(modal.interaction.channel) if modal.interaction.guild_id else self.in_dm()
        return await member._start(MODAL_SUBMIT, f"modal {modal.title!r}", data, source=source, owner=self)

    # --- reading -------------------------------------------------------------------------------------
    async def wait_ephemeral(
        self,
        predicate: Callable[[Message], Any] | None = None,
        *,
        timeout: float | None = None,
        since: int | None = None,
    ) -> Message:
        """An ephemeral message to this member, new or changed since their last action."""
        start = self._since if since is None else since

        def mine() -> list[Message]:
            messages = sorted(self.stage.messages.values(), key=lambda m: m.id)
            return [m for m in messages if m.visible_to == self.user.id and not m.deleted and not m.loading]

        return await self.stage.wait_for(
            lambda: first_match([m for m in mine() if m.revision > start], predicate),
            lambda: f"an ephemeral message to {self.name}" + describe_messages(mine()),
            timeout=timeout,
        )

    async def wait_modal(self, *, timeout: float | None = None) -> Modal:
        """The modal the bot opened in answer to this member's last action."""
        if self.last is None:
            raise StageError(f"{self.name} has done nothing that could open a modal")
        return await self.last.modal(timeout=timeout)

    async def wait_dm(
        self, predicate: Callable[[Message], Any] | None = None, *, timeout: float | None = None
    ) -> Message:
        """A DM from the bot to this member."""
        return await self.stage.wait_message(self.stage.dm_channel(self.user), predicate, timeout=timeout)

    # --- plumbing --------------------------------------------------------------------------------
    def _command(self, name: str) -> Json:
        command = self.stage.find_command(name, self.guild.id if self.guild else None)
        if command is None:
            known = sorted({n for scope in self.stage.commands.values() for n in scope})
            raise StageError(
                f"/{name} is not a command the bot registered (registered: {known}). Members only see synced "
                "commands: after loading a test extension, `await bot.tree.sync()`."
            )
        if self.guild is None:
            contexts = command.get("contexts")
            if (
                command.get("guild_id")
                or command.get("dm_permission") is False
                or (contexts is not None and BOT_DM_CONTEXT not in contexts)
            ):
                raise StageError(f"/{name} is not available in DMs")
            return command
        required = command.get("default_member_permissions")
        if required is not None and name not in self.stage.command_permission_overrides:
            needed, held = int(required), self.permissions
            if held & needed != needed and not held & ADMINISTRATOR:
                raise StageError(
                    f"{self.name} cannot see /{name}: it needs permissions {needed:#x} "
                    "(default_member_permissions); stage.override_command_permissions() lifts that"
                )
        return command

    def _require_visible(self, message: Message) -> None:
        if not self.can_see(message):
            raise StageError(f"{self.name} cannot see message {message.id} ({message.summary()})")

    async def _start(
        self,
        kind: int,
        description: str,
        data: Json,
        *,
        source: Message | None = None,
        owner: StageMember | None = None,
    ) -> InteractionHandle:
        channel = self.stage.channels[source.channel_id] if source is not None else self.channel
        record = self.stage.new_interaction(kind, self.user, channel, description, source)
        actor = owner or self
        actor._since = self.stage.revision
        await self.stage.start_interaction(record, data, source)
        actor.last = InteractionHandle(self.stage, actor, record)
        return actor.last
