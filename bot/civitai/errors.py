"""Typed errors of the orchestrator client, each with a message a member can act on.

The client turns every non-success answer into one of these; the single error handler of the
cogs shows ``user_message``. Field-level problems are reported under the Discord option names
(``network_dim``, not ``steps[0].input.networkDim``) so the member knows what to change.
No message ever contains a token; text the orchestrator sent is passed through ``redact``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.errors import UserFacingError
from bot.logging_setup import redact

from .models import ProblemDetails

# Input field of the flux1 training step (path below ``steps[N].input``) → Discord option name.
OPTION_FOR_API_FIELD: dict[str, str] = {
    "modelVariant": "variant",
    "steps": "steps",
    "epochs": "epochs",
    "lr": "lr",
    "networkDim": "network_dim",
    "networkAlpha": "network_alpha",
    "lrScheduler": "lr_scheduler",
    "optimizerType": "optimizer",
    "noiseOffset": "noise_offset",
    "flipAugmentation": "flip_augmentation",
    "shuffleTokens": "shuffle_tokens",
    "keepTokens": "keep_tokens",
    "trainTextEncoder": "train_text_encoder",
    "triggerWord": "trigger_word",
    "continueFrom": "continue_from",
    "samples.prompts": "sample_prompts",
    "samples.negativePrompt": "negative_prompt",
    "samples.cfgScale": "sample_cfg",
    "samples.strength": "sample_strength",
    "samples": "sample_prompts",
    "trainingData": "dataset",
    "batchSize": "batch_size",
}
_OPTION_BY_LOWER = {key.lower(): option for key, option in OPTION_FOR_API_FIELD.items()}

# What to suggest for a refused field (civitai-api.md, troubleshooting table).
_FIX_HINTS: dict[str, str] = {
    "variant": "choose dev or schnell",
    "steps": "use at most 10000 steps",
    "dataset": "the dataset link may have expired or be private: submit again and the bot signs a fresh one",
}

_STEP_INPUT_PREFIX = re.compile(r"^(?:\$\.)?(?:steps\[\d+\]\.)?input(?:\.|$)", re.IGNORECASE)
_INDEX = re.compile(r"\[\d+\]")
# Fields of the workflow itself: an unprefixed key naming one of these is not a training option.
_WORKFLOW_FIELDS = frozenset({"steps", "tags", "callbacks", "metadata", "externalid", "arguments", "tips"})
# Names the service may use in a bare ``detail`` text for a field the table knows under its path.
_DETAIL_ALIASES = {"sourceUrl": "dataset", "network_dim": "network_dim", "network_alpha": "network_alpha"}


def _option_of(plain: str) -> str | None:
    parts = _INDEX.sub("", plain).split(".")
    for length in range(len(parts), 0, -1):
        option = _OPTION_BY_LOWER.get(".".join(parts[:length]).lower())
        if option is not None:
            return option
    return None


def option_for_api_path(path: str) -> str:
    """The option a problem+json error key refers to, in every form the service uses:
    ``steps[0].input.networkDim``, ``$.steps[0].input.networkDim``, ``input.networkDim`` and the
    bare ``trainingData.sourceUrl`` of Civitai's troubleshooting table. Workflow-level keys
    (``externalId``, ``tags``…) and unknown ones are returned as they are (``request`` when
    empty)."""
    key = path.strip().removeprefix("$.")
    rest = _STEP_INPUT_PREFIX.sub("", key, count=1)
    under_input = rest != key or key.lower().startswith("steps[")
    if not under_input and _INDEX.sub("", key.split(".")[0]).lower() in _WORKFLOW_FIELDS:
        return key or "request"
    option = _option_of(rest)
    if option is not None:
        return option
    return (_INDEX.sub("", rest) if under_input else key) or "request"


_DETAIL_FIELDS = sorted({**OPTION_FOR_API_FIELD, **_DETAIL_ALIASES, "trainingData.sourceUrl": "dataset"}.items(),
                        key=lambda item: -len(item[0]))


def option_named_in(detail: str) -> str | None:
    """The option a free-text refusal is about ("trainingData.sourceUrl not reachable",
    "modelVariant required", "steps out of range"), or None when it names no field."""
    found = [
        (match.start(), option)
        for api_name, option in _DETAIL_FIELDS
        if (match := re.search(rf"(?<![\w.]){re.escape(api_name)}(?![\w])", detail, re.IGNORECASE))
    ]
    return min(found)[1] if found else None


def _rename_api_fields(message: str) -> str:
    """Replace API field names the server quotes in a message by the option names."""
    for api_name, option in OPTION_FOR_API_FIELD.items():
        if "." not in api_name and api_name != option and option != "dataset":
            message = re.sub(rf"\b{api_name}\b", option, message, flags=re.IGNORECASE)
    return message


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


class TrainingInputError(UserFacingError):
    """Options refused locally, before any request. ``field_errors``: option → messages."""

    def __init__(self, field_errors: Mapping[str, list[str]]) -> None:
        self.field_errors = {field: list(messages) for field, messages in field_errors.items()}
        lines = [message for messages in self.field_errors.values() for message in messages]
        super().__init__(
            "Some options are not valid:\n" + _bullets(lines) + "\nFix them and run the command again.",
            title="Invalid training options",
        )


class OrchestratorError(UserFacingError):
    """Base of every error the orchestrator client raises."""

    retryable = False
    # True when the request may have reached the orchestrator but no answer came back.
    answer_lost = False
    # Set by the client's retries: how many attempts of the call ended with ``answer_lost``.
    unanswered_attempts = 0

    def __init__(self, user_message: str, *, status: int | None = None, title: str = "Civitai error") -> None:
        super().__init__(user_message, title=title)
        self.status = status


class OrchestratorValidationError(OrchestratorError):
    """A 400 problem+json: ``field_errors`` maps option names to the orchestrator's messages."""

    def __init__(self, field_errors: Mapping[str, list[str]], *, detail: str | None = None, status: int = 400) -> None:
        self.field_errors = {field: list(messages) for field, messages in field_errors.items()}
        lines = []
        for field, messages in self.field_errors.items():
            hint = _FIX_HINTS.get(field)
            text = "; ".join(messages) + (f" ({hint})" if hint else "")
            lines.append(f"{field}: {text}")
        if not lines:
            lines.append(detail or "the request was refused without a reason")
        super().__init__(
            "Civitai refused the training request:\n" + _bullets(lines) + "\nChange the option(s) and try again.",
            status=status,
            title="Civitai refused the request",
        )

    @property
    def refuses_dataset(self) -> bool:
        """The service would not take the training data (e.g. it cannot fetch the zip's URL)."""
        return "dataset" in self.field_errors

    @classmethod
    def from_problem(cls, problem: ProblemDetails, *, status: int = 400) -> OrchestratorValidationError:
        """Field errors keyed by option; a problem with only a ``detail`` text that names a field
        ("trainingData.sourceUrl not reachable") counts as that field's error."""
        fields: dict[str, list[str]] = {}
        for path, messages in (problem.errors or {}).items():
            option = option_for_api_path(path)
            fields.setdefault(option, []).extend(redact(_rename_api_fields(m)) for m in messages)
        detail = redact(problem.detail or problem.title or "") or None
        if not fields and problem.detail:
            named = option_named_in(problem.detail)
            if named is not None:
                fields[named] = [redact(_rename_api_fields(problem.detail))]
        return cls(fields, detail=detail, status=problem.status or status)


class BlobRefused(OrchestratorValidationError):
    """Civitai's moderation refused an uploaded image (422, or a blob that came back blocked).

    A validation error: the run was surely not submitted, and the member learns which image
    to replace before anything is paid."""

    def __init__(self, filename: str, reason: str | None) -> None:
        self.filename = filename
        self.reason = redact(reason)[:300] if reason else "it did not pass Civitai's moderation"
        super().__init__({"dataset": [f"{filename}: {self.reason}"]}, status=422)
        self.user_message = (
            f"Civitai refused the image **{filename}** when the bot uploaded it: {self.reason}.\n"
            "Remove or replace that image in the zip and run `/train flux1` again. Nothing was charged."
        )
        self.title = "Image refused by Civitai"

    @property
    def refuses_dataset(self) -> bool:
        return False  # one image, not the way the dataset was sent


class InsufficientBuzz(OrchestratorError):
    """403 on submit: not enough Buzz on the paying account (or a tier that may not run this)."""

    def __init__(self, *, price: int | None = None, detail: str | None = None) -> None:
        self.price = price
        self.detail = redact(detail)[:300] if detail else None
        cost = f" for the {price:,} Buzz this run costs" if price is not None else ""
        said = f"\nCivitai said: {self.detail}" if self.detail else ""
        super().__init__(
            f"The Civitai account paying for this run does not have enough Buzz{cost} "
            "(or its membership may not run it). Add Buzz on civitai.com or lower steps/epochs, "
            f"then try again. Nothing was charged.{said}",
            status=403,
            title="Not enough Buzz",
        )


class Forbidden(OrchestratorError):
    def __init__(self) -> None:
        super().__init__(
            "Civitai does not allow this token to do that. Check the token's permissions on civitai.com.",
            status=403,
            title="Not allowed by Civitai",
        )


class Unauthorized(OrchestratorError):
    def __init__(self) -> None:
        super().__init__(
            "Civitai refused the API token: it is invalid, expired or revoked. Create a new API key on "
            "civitai.com (Account settings → API Keys) and link it again with /account token "
            "(or /admin token set for the server's token).",
            status=401,
            title="Civitai token refused",
        )


class NotFound(OrchestratorError):
    def __init__(self, what: str = "That run") -> None:
        super().__init__(
            f"{what} was not found on Civitai: it may have been deleted or be older than 30 days.",
            status=404,
            title="Not found on Civitai",
        )


class Conflict(OrchestratorError):
    def __init__(self, detail: str | None = None) -> None:
        said = f" ({redact(detail)[:200]})" if detail else ""
        super().__init__(
            f"The job changed on Civitai while this was being done{said}. Refresh it and try again.",
            status=409,
            title="Job changed meanwhile",
        )


class RateLimited(OrchestratorError):
    retryable = True

    def __init__(self, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(
            "Civitai is rate-limiting requests right now. Nothing was charged; wait a minute and try again.",
            status=429,
            title="Civitai is busy",
        )


class OrchestratorServerError(OrchestratorError):
    retryable = True

    def __init__(self, status: int) -> None:
        super().__init__(
            f"Civitai's orchestrator had an internal error (HTTP {status}). Nothing was charged; "
            "try again in a few minutes.",
            status=status,
            title="Civitai is having trouble",
        )


class OrchestratorRequestError(OrchestratorError):
    """Any other refusal (400 without field errors, 413, 415, 422…)."""

    def __init__(self, status: int, detail: str | None = None) -> None:
        self.detail = redact(detail)[:300] if detail else None
        said = f": {self.detail}" if self.detail else ""
        super().__init__(f"Civitai refused the request (HTTP {status}){said}.", status=status)


class OrchestratorUnreachable(OrchestratorError):
    retryable = True

    def __init__(self, reason: str = "could not be reached", *, answer_lost: bool = True) -> None:
        # A connection that was never made sent nothing; a dropped one may have sent it all.
        self.answer_lost = answer_lost
        super().__init__(
            f"Civitai's orchestrator {reason}. Nothing was charged for a run that did not start, and "
            "trying the same job again never charges twice: try again in a few minutes.",
            title="Civitai unreachable",
        )


class OrchestratorTimeout(OrchestratorUnreachable):
    def __init__(self) -> None:
        super().__init__("did not answer in time")


class DownloadTooLarge(OrchestratorError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"The file from Civitai is larger than the {max_bytes // (1024 * 1024)} MB this bot accepts.",
            title="File too large",
        )


class UnexpectedResponse(OrchestratorError):
    """A success status whose body is not what the API documents."""

    def __init__(self, status: int) -> None:
        super().__init__(
            f"Civitai answered in an unexpected way (HTTP {status}). Try again in a few minutes; "
            "if it keeps happening, tell the bot's operator.",
            status=status,
        )


class UnsafeRedirect(OrchestratorError):
    """A download redirected somewhere the bot does not follow (not https, or too many hops)."""

    def __init__(self, why: str = "to an address that is not https") -> None:
        super().__init__(
            f"Civitai's download link redirected {why}, so the bot did not follow it. Try again later; "
            "if it keeps happening, tell the bot's operator.",
            title="Download not followed",
        )


class DownloadLinkExpired(OrchestratorError):
    def __init__(self) -> None:
        super().__init__(
            "The download link from Civitai has expired. Ask for the file again to get a fresh link.",
            status=403,
            title="Link expired",
        )
