"""Interactions as Discord runs them: what the bot receives, and the record of how it answered.

A slash command's payload is built from the command definition the bot synced (option types,
subcommands, choices, ranges), the way the Discord client would: it refuses to send what the
client would not let a member type (a missing required option, a value outside the choices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.stage.model import Channel, Json, Message, User

if TYPE_CHECKING:
    from tests.stage.server import Stage

# Interaction types.
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
# Callback types.
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE_RESULT, MODAL = (
    4,
    5,
    6,
    7,
    8,
    9,
)
CALLBACKS_FOR = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE},
}
# Option types.
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(
    1, 12
)


class StageError(AssertionError):
    """The test asked for something impossible on Discord, or the stage saw a problem."""


@dataclass
class Attachment:
    """A file a member attaches to a slash command option (``dataset=Attachment("d.zip", data)``)."""

    filename: str
    data: bytes
    content_type: str | None = None


@dataclass
class Modal:
    """A modal the bot opened for a member; submit it with ``member.submit_modal``."""

    custom_id: str
    title: str
    components: list[Json]
    interaction: InteractionRecord

    @property
    def inputs(self) -> list[Json]:
        """The modal's inputs (text inputs and selects), whether in action rows or labels."""
        out = []
        for item in self.components:
            if item.get("type") == 1:
                out += [c for c in item.get("components", []) if "custom_id" in c]
            elif item.get("type") == 18 and "custom_id" in item.get("component", {}):
                out.append(item["component"] | {"label": item.get("label")})
        return out


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int
    user: User
    channel: Channel
    guild_id: int | None
    created_at: float
    deadline: float
    expires_at: float
    description: str  # "/train flux1", "button 'Confirm'"…: how reports name it
    payload: Json = field(default_factory=dict)
    source_message_id: int | None = None  # the message whose component was used
    response_type: int | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    modal: Modal | None = None
    choices: list[Json] | None = None
    failure: str | None = None

    @property
    def answered(self) -> bool:
        return self.response_type is not None


# --- building what the bot receives -----------------------------------------------------------
def interaction_payload(stage: Stage, record: InteractionRecord, data: Json, message: Message | None = None) -> Json:
    channel, user = record.channel, record.user
    payload: Json = {
        "id": str(record.id),
        "application_id": str(stage.application_id),
        "type": record.type,
        "data": data,
        "channel_id": str(channel.id),
        "channel": stage.channel_payload(channel),
        "token": record.token,
        "version": 1,
        "app_permissions": str(stage.bot_permissions(channel)),
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": stage.attachment_size_limit(channel),
    }
    if record.guild_id is not None:
        guild = stage.guilds[record.guild_id]
        member = guild.members[user.id].payload()
        member["permissions"] = str(guild.permissions_of(user.id))
        payload |= {
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "member": member,
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
        }
    else:
        payload |= {"user": user.payload(), "authorizing_integration_owners": {"1": str(user.id)}, "context": 1}
    if message is not None:
        payload["message"] = stage.message_payload(message)
    return payload


class CommandBuilder:
    """Turns ``("train flux1", {"steps": 1000, ...})`` into application command data."""

    def __init__(self, stage: Stage, command: Json, member_guild_id: int | None) -> None:
        self.stage = stage
        self.command = command
        self.guild_id = member_guild_id
        self.resolved: dict[str, dict[str, Json]] = {}

    def build(self, path: list[str], values: dict[str, Any], *, focused: str | None = None) -> Json:
        node: Json = self.command
        options: list[Json] = []
        container: list[Json] = options
        for part in path[1:]:
            sub = _find_option(node, part, kinds=(SUB_COMMAND, SUB_COMMAND_GROUP))
            entry: Json = {"type": sub["type"], "name": part, "options": []}
            container.append(entry)
            container, node = entry["options"], sub
        if any(o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in node.get("options", [])):
            names = [o["name"] for o in node.get("options", [])]
            raise StageError(f"/{' '.join(path)} needs a subcommand: one of {names}")
        for name, value in values.items():
            option = _find_option(node, name, kinds=None)
            if name == focused:
                container.append({"type": option["type"], "name": name, "value": str(value), "focused": True})
            else:
                container.append({"type": option["type"], "name": name, "value": self._value(path, option, value)})
        if focused is None:
            missing = [o["name"] for o in node.get("options", []) if o.get("required") and o["name"] not in values]
            if missing:
                raise StageError(f"Discord would not send /{' '.join(path)} without required options {missing}")
        data: Json = {"id": str(self.command["id"]), "name": self.command["name"], "type": 1, "options": options}
        if self.command.get("guild_id"):
            data["guild_id"] = self.command["guild_id"]
        if self.resolved:
            data["resolved"] = self.resolved
        return data

    def _value(self, path: list[str], option: Json, value: Any) -> Any:
        kind, name = option["type"], option["name"]
        where = f"/{' '.join(path)} {name}"
        if kind == ATTACHMENT:
            if not isinstance(value, Attachment):
                raise StageError(f"{where} takes an Attachment(filename, data)")
            stored = self.stage.store_file(value.filename, value.data, value.content_type)
            self.resolved.setdefault("attachments", {})[str(stored.id)] = stored.payload() | {"ephemeral": True}
            return str(stored.id)
        if kind == USER:
            user = self.stage.user(value)
            self.resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if self.guild_id is not None and user.id in self.stage.guilds[self.guild_id].members:
                member = self.stage.guilds[self.guild_id].members[user.id].payload()
                member.pop("user")
                self.resolved.setdefault("members", {})[str(user.id)] = member
            return str(user.id)
        if kind == CHANNEL:
            channel = self.stage.channel(value)
            self.resolved.setdefault("channels", {})[str(channel.id)] = self.stage.channel_payload(channel) | {
                "permissions": str(self.stage.bot_permissions(channel))
            }
            return str(channel.id)
        if kind == ROLE:
            if self.guild_id is None:
                raise StageError(f"{where}: roles only exist in a server")
            role = self.stage.guilds[self.guild_id].role_named(str(value))
            self.resolved.setdefault("roles", {})[str(role.id)] = role.payload()
            return str(role.id)
        expected: dict[int, type | tuple[type, ...]] = {STRING: str, INTEGER: int, BOOLEAN: bool, NUMBER: (int, float)}
        expected_type = expected.get(kind)
        wrong = expected_type is not None and not isinstance(value, expected_type)
        if wrong or (kind in (INTEGER, NUMBER) and isinstance(value, bool)):
            raise StageError(f"{where} takes a {expected_type}, not {value!r}")
        _check_range(where, option, value)
        return value


def _find_option(node: Json, name: str, *, kinds: tuple[int, ...] | None) -> Json:
    for option in node.get("options") or []:
        if option["name"] == name and (kinds is None or option["type"] in kinds):
            return option
    names = [o["name"] for o in node.get("options") or []]
    raise StageError(f"/{node['name']} has no {'subcommand' if kinds else 'option'} {name!r}; it has {names}")


def _check_range(where: str, option: Json, value: Any) -> None:
    """What the Discord client enforces before sending: choices, numeric ranges, lengths."""
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise StageError(f"{where}: {value!r} is not one of the choices {[c['value'] for c in choices]}")
    low, high = option.get("min_value"), option.get("max_value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (low is not None and value < low) or (high is not None and value > high):
            raise StageError(f"{where}: Discord only accepts {low}..{high}, not {value}")
    if isinstance(value, str):
        shortest, longest = option.get("min_length", 0), option.get("max_length", 6000)
        if not shortest <= len(value) <= longest:
            raise StageError(f"{where}: Discord only accepts {shortest}..{longest} characters, not {len(value)}")


def modal_submission(modal: Modal, values: dict[str, Any]) -> list[Json]:
    """The ``components`` of a modal submit: each input's value by custom_id or label."""

    def answer(item: Json) -> Json:
        keys = (item.get("custom_id"), item.get("label"))
        given = next((values[k] for k in keys if k in values), None)
        if item.get("type") == 4:
            value = str(given) if given is not None else item.get("value") or ""
            if item.get("required", True) and not value:
                raise StageError(f"modal {modal.title!r}: {keys[1] or keys[0]!r} is required")
            return {"type": 4, "custom_id": item["custom_id"], "value": value}
        chosen = list(given) if given is not None else []
        return {"type": item["type"], "custom_id": item["custom_id"], "values": chosen}

    known = {k for item in modal.inputs for k in (item.get("custom_id"), item.get("label")) if k}
    unknown = set(values) - known
    if unknown:
        raise StageError(f"modal {modal.title!r} has no inputs {sorted(unknown)}; it has {sorted(known)}")
    out = []
    for item in modal.components:
        if item.get("type") == 1:
            out.append({"type": 1, "components": [answer(c) for c in item.get("components", []) if "custom_id" in c]})
        elif item.get("type") == 18:
            out.append({"type": 18, "component": answer(item["component"] | {"label": item.get("label")})})
    return out
