"""The audit trail: every setting change, submit, cancel and failure, stored and announced.

``AuditTrail.record`` writes the entry to the store first (the record that counts), then hands
it to listeners in the background. The Discord side registers one listener that posts a
one-line summary to the server's log channel (``cogs.audit_log``), so core code such as the
tracker can audit without knowing about Discord. A listener that fails never affects the
action being audited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from storage import Store
from storage.models import AuditEntry, Job

log = logging.getLogger(__name__)

# The handled event that makes a run's end audited once (``record_job_end``).
AUDIT_END_KEY = "audit:end"

AuditListener = Callable[[AuditEntry], Awaitable[None]]

# action → (emoji, sentence); the sentence is formatted with the entry's details.
_SENTENCES: dict[str, tuple[str, str]] = {
    "settings.channels.add": ("📍", "allowed /train in <#{channel}>"),
    "settings.channels.remove": ("📍", "stopped allowing /train in <#{channel}>"),
    "settings.channels.clear": ("📍", "allowed /train in every channel again"),
    "settings.role": ("🎭", "{role_text}"),
    "settings.limits": ("📏", "changed limits: {changes}"),
    "settings.payer": ("💳", "set who pays to **{payer}**"),
    "settings.threads": ("🧵", "set job threads to **{mode}**"),
    "settings.log_channel": ("📜", "{log_text}"),
    "settings.server_token.set": ("🔑", "linked a Civitai token for this server"),
    "settings.server_token.clear": ("🔑", "removed this server's Civitai token"),
    "member.block": ("⛔", "blocked <@{member}> from training{reason_text}"),
    "member.unblock": ("✅", "unblocked <@{member}>"),
    "job.submit": ("📤", "submitted `{job}` ({name}, {price} Buzz)"),
    "job.cancel": ("🚫", "cancelled `{job}` ({name}) of <@{owner}>"),
    "job.failed": ("❌", "saw run `{job}` ({name}) of <@{owner}> end {status}: {reason}"),
    "job.lost": ("❓", "closed run `{job}` ({name}) of <@{owner}> as lost: {reason}"),
}


class _Blank(dict[str, Any]):
    """Formatting values: a detail the entry lacks reads as "?" instead of raising."""

    def __missing__(self, key: str) -> str:
        return "?"


def describe(entry: AuditEntry) -> str:
    """One line for the log channel: who did what (mentions render as names, never ping)."""
    details = _Blank(entry.details)
    role, channel, reason = details.get("role"), details.get("channel"), details.get("reason")
    details.setdefault(
        "role_text", f"required the <@&{role}> role to train" if role else "let everyone train (no role required)"
    )
    details.setdefault("log_text", f"sent audit lines to <#{channel}>" if channel else "turned audit lines off")
    details.setdefault("reason_text", f" ({reason})" if reason else "")
    emoji, sentence = _SENTENCES.get(entry.action, ("•", entry.action + _plain(entry.details)))
    actor = f"<@{entry.actor_id}>" if entry.actor_id is not None else "The bot"
    return f"{emoji} {actor} {sentence.format_map(details)}"[:2000]


def _plain(details: Mapping[str, Any]) -> str:
    return "".join(f" · {key}={value}" for key, value in sorted(details.items()))


class AuditTrail:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[AuditListener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, listener: AuditListener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: AuditListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def record(
        self,
        guild_id: int | None,
        actor_id: int | None,
        action: str,
        details: Mapping[str, Any] | None = None,
        *,
        subject_id: int | None = None,
    ) -> AuditEntry:
        """Store the entry, then notify listeners without waiting for them. Details must never
        hold a secret: they are stored as they are and shown in the log channel."""
        entry = await self.store.audit.add(guild_id, actor_id, action, details, subject_id=subject_id)
        self._announce(entry)
        return entry

    async def record_job_end(self, job: Job, actor_id: int | None, action: str, **details: Any) -> AuditEntry | None:
        """Record how a run ended (``job.failed``, ``job.lost``) once per job, whoever notices it
        first (the tracker, a cancel) and however often: None when it was recorded already."""
        facts = {"job": job.id, "name": job.name, "owner": job.user_id, **details}
        entry = await self.store.audit.add_once(
            job.id, AUDIT_END_KEY, job.guild_id, actor_id, action, facts, subject_id=job.user_id
        )
        if entry is not None:
            self._announce(entry)
        return entry

    def _announce(self, entry: AuditEntry) -> None:
        for listener in list(self._listeners):
            task = asyncio.create_task(self._notify(listener, entry), name=f"audit:{entry.action}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the listeners already running (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @staticmethod
    async def _notify(listener: AuditListener, entry: AuditEntry) -> None:
        try:
            await listener(entry)
        except Exception:
            log.warning("An audit listener failed for %s (entry %d)", entry.action, entry.id, exc_info=True)
