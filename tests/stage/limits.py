"""Discord's limits that its OpenAPI document does not encode (or encodes looser than Discord).

discord.py checks none of these, so a bot that breaks one only finds out in production, as a
400 on a message a member was waiting for. Numbers: discord-facts.md ("Deadlines and limits").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.stage.violations import Path, Violation

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
ROWS_MAX = 5
ROW_ITEMS_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
SELECT_OPTIONS_MAX = 25
SELECT_OPTION_FIELD_MAX = 100
MODAL_TITLE_MAX = 45
MODAL_ITEMS_MAX = 5
TEXT_INPUT_LABEL_MAX = 45
TEXT_INPUT_VALUE_MAX = 4000
FILES_MAX = 10
REQUEST_BYTES_MAX = 25 * 1024 * 1024
CHOICES_MAX = 25
COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
COMMAND_DESCRIPTION_MAX = 100
COMMAND_OPTIONS_MAX = 25

IS_COMPONENTS_V2 = 1 << 15
MESSAGE_CALLBACKS = (4, 5, 7)
LINK_STYLE, PREMIUM_STYLE = 5, 6

Json = dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    field: str  # "files[0]"
    filename: str
    data: bytes
    content_type: str | None


def embed_characters(embed: Json) -> int:
    """What Discord counts towards the 6000 characters of a message's embeds."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    for field in embed.get("fields") or []:
        total += len(field.get("name") or "") + len(field.get("value") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    return total


class _Checker:
    def __init__(self, route: str) -> None:
        self.route = route
        self.found: list[Violation] = []

    def fail(self, path: Path, message: str) -> None:
        self.found.append(Violation(self.route, path, message))

    def max_len(self, path: Path, value: Any, limit: int, what: str = "characters") -> None:
        if isinstance(value, str | list) and len(value) > limit:
            self.fail(path, f"{len(value)} {what}, more than the {limit} allowed")

    # --- messages ----------------------------------------------------------------------------
    def message(self, body: Json, at: Path = ()) -> None:
        self.max_len((*at, "content"), body.get("content"), CONTENT_MAX)
        embeds = body.get("embeds") or []
        self.max_len((*at, "embeds"), embeds, EMBEDS_MAX, "embeds")
        total = sum(embed_characters(e) for e in embeds if isinstance(e, dict))
        if total > EMBED_TOTAL_MAX:
            self.fail((*at, "embeds"), f"{total} characters in all embeds together, more than the {EMBED_TOTAL_MAX}")
        if not int(body.get("flags") or 0) & IS_COMPONENTS_V2:
            self.components(body.get("components") or [], (*at, "components"))

    def components(self, rows: list[Any], at: Path) -> None:
        self.max_len(at, rows, ROWS_MAX, "action rows")
        seen: set[str] = set()
        for r, row in enumerate(rows):
            items = row.get("components") or [] if isinstance(row, dict) else []
            if isinstance(row, dict) and row.get("type") != 1:
                self.fail((*at, r, "type"), "top-level components must be action rows (type 1)")
            self.max_len((*at, r, "components"), items, ROW_ITEMS_MAX, "items")
            selects = [i for i in items if isinstance(i, dict) and i.get("type") in (3, 5, 6, 7, 8)]
            if selects and len(items) > 1:
                self.fail((*at, r, "components"), "a select menu must be alone in its action row")
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    self.component(item, (*at, r, "components", i), seen)

    def component(self, item: Json, at: Path, seen: set[str]) -> None:
        custom_id = item.get("custom_id")
        is_link = item.get("type") == 2 and item.get("style") in (LINK_STYLE, PREMIUM_STYLE)
        if custom_id is None and not is_link:
            self.fail((*at, "custom_id"), "a custom_id is required (only link buttons have none)")
        if custom_id is not None:
            if not 1 <= len(custom_id) <= CUSTOM_ID_MAX:
                self.fail((*at, "custom_id"), f"{len(custom_id)} characters, must be 1 to {CUSTOM_ID_MAX}")
            if custom_id in seen:
                self.fail((*at, "custom_id"), f"custom_id {custom_id!r} is used twice in this message")
            seen.add(custom_id)
        if item.get("type") == 2:
            self.max_len((*at, "label"), item.get("label"), BUTTON_LABEL_MAX)
            if is_link and not item.get("url") and item.get("style") == LINK_STYLE:
                self.fail((*at, "url"), "a link button needs a url")
        if item.get("type") == 3:
            options = item.get("options") or []
            self.max_len((*at, "options"), options, SELECT_OPTIONS_MAX, "options")
            for o, option in enumerate(options):
                for key in ("label", "value", "description"):
                    self.max_len((*at, "options", o, key), option.get(key), SELECT_OPTION_FIELD_MAX)

    # --- other bodies --------------------------------------------------------------------------
    def modal(self, data: Json, at: Path) -> None:
        self.max_len((*at, "title"), data.get("title"), MODAL_TITLE_MAX)
        self.max_len((*at, "custom_id"), data.get("custom_id"), CUSTOM_ID_MAX)
        items = data.get("components") or []
        self.max_len((*at, "components"), items, MODAL_ITEMS_MAX, "items")
        seen: set[str] = set()
        for inner, path in _modal_inputs(items, (*at, "components")):
            self.max_len((*path, "label"), inner.get("label"), TEXT_INPUT_LABEL_MAX)
            self.max_len((*path, "value"), inner.get("value"), TEXT_INPUT_VALUE_MAX)
            custom_id = str(inner.get("custom_id"))
            if custom_id in seen:
                self.fail((*path, "custom_id"), f"custom_id {custom_id!r} is used twice in this modal")
            seen.add(custom_id)

    def commands(self, commands: list[Any]) -> None:
        for c, command in enumerate(commands):
            if not isinstance(command, dict):
                continue
            self.command_like(command, (c,), top=True)

    def command_like(self, command: Json, at: Path, *, top: bool = False) -> None:
        name = command.get("name") or ""
        if not COMMAND_NAME.match(name) or (name != name.lower() and command.get("type", 1) == 1):
            self.fail((*at, "name"), f"{name!r} is not a valid command or option name (lowercase, 1-32 chars)")
        if command.get("type", 1) == 1 or not top:
            description = command.get("description") or ""
            if not 1 <= len(description) <= COMMAND_DESCRIPTION_MAX:
                self.fail((*at, "description"), f"{len(description)} characters, must be 1 to 100")
        options = command.get("options") or []
        self.max_len((*at, "options"), options, COMMAND_OPTIONS_MAX, "options")
        self.max_len((*at, "choices"), command.get("choices") or [], CHOICES_MAX, "choices")
        for o, option in enumerate(options):
            if isinstance(option, dict):
                self.command_like(option, (*at, "options", o))

    def files(self, uploads: list[Upload], size_limit: int) -> None:
        if len(uploads) > FILES_MAX:
            self.fail(("files",), f"{len(uploads)} files, more than the {FILES_MAX} allowed per message")
        for upload in uploads:
            if len(upload.data) > size_limit:
                self.fail(
                    (upload.field,),
                    f"{upload.filename!r} is {len(upload.data)} bytes, more than the {size_limit} byte upload limit",
                )
        total = sum(len(u.data) for u in uploads)
        if total > REQUEST_BYTES_MAX:
            self.fail(("files",), f"{total} bytes of files, more than {REQUEST_BYTES_MAX} per request")


def _modal_inputs(items: list[Any], at: Path) -> Iterable[tuple[Json, Path]]:
    """The text inputs (and selects) of a modal, in action rows or in labels (type 18)."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if item.get("type") == 1:
            for j, inner in enumerate(item.get("components") or []):
                yield inner, (*at, i, "components", j)
        elif item.get("type") == 18 and isinstance(item.get("component"), dict):
            yield item["component"], (*at, i, "component")


MESSAGE_ROUTES = {
    "POST /channels/{channel_id}/messages",
    "PATCH /channels/{channel_id}/messages/{message_id}",
    "POST /webhooks/{webhook_id}/{webhook_token}",
    "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
    "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
}
CALLBACK_ROUTE = "POST /interactions/{interaction_id}/{interaction_token}/callback"
COMMAND_ROUTES = {
    "PUT /applications/{application_id}/commands",
    "PUT /applications/{application_id}/guilds/{guild_id}/commands",
}


def check_limits(route: str, body: Any, uploads: list[Upload], size_limit: int) -> list[Violation]:
    """Every limit of Discord's that ``body`` (and its files) break, for the route it went to."""
    check = _Checker(route)
    if isinstance(body, dict) and route in MESSAGE_ROUTES:
        check.message(body)
    elif isinstance(body, dict) and route == CALLBACK_ROUTE:
        kind, data = body.get("type"), body.get("data")
        if isinstance(data, dict) and kind in MESSAGE_CALLBACKS:
            check.message(data, ("data",))
        elif isinstance(data, dict) and kind == 9:
            check.modal(data, ("data",))
        elif isinstance(data, dict) and kind == 8:
            check.max_len(("data", "choices"), data.get("choices") or [], CHOICES_MAX, "choices")
    elif isinstance(body, list) and route in COMMAND_ROUTES:
        check.commands(body)
    check.files(uploads, size_limit)
    return check.found
