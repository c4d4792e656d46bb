"""What the web server needs from the rest of the bot, as small Protocols.

The server knows nothing about the store, the tracker or the dataset cache: ``bot.services``
hands it objects that satisfy these, so each side can be built and tested alone.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class DeliveryOutcome(StrEnum):
    """What became of one authenticated callback delivery (kept with the delivery record)."""

    ACCEPTED = "accepted"  # handed to the tracker
    BAD_JSON = "bad_json"  # permanent problem: answered 200 so the orchestrator does not retry
    NOT_OBJECT = "not_object"  # valid JSON, but not the documented object


class HookJobs(Protocol):
    """The job side of callbacks: provided by the store."""

    async def hook_secret_hash(self, job_id: str) -> str | None:
        """The stored SHA-256 of the job's hook secret, or None for an unknown job."""
        ...

    async def record_delivery(self, job_id: str, body_digest: str, outcome: DeliveryOutcome) -> bool:
        """Keep a record of an authenticated delivery (duplicates are normal: deliveries are retried).

        False when the job no longer exists (deleted after its secret was checked): nothing kept."""
        ...


class CallbackTarget(Protocol):
    """What acts on a callback: provided by the job tracker."""

    async def on_callback(self, job_id: str, payload: dict[str, Any]) -> None:
        """Treat the payload as a hint: refresh the job from the orchestrator and act on that."""
        ...


class HookSink(HookJobs, CallbackTarget, Protocol):
    """Everything the hook route calls."""


class DatasetFiles(Protocol):
    def path_for(self, digest: str) -> Path | None:
        """The normalised zip stored under ``digest``, or None when it is gone."""
        ...
