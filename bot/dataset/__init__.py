"""Dataset intake (DESIGN §4): fetch safely, validate, normalise, report. No Discord here."""

from bot.dataset.check import check_zip
from bot.dataset.errors import DatasetError
from bot.dataset.intake import intake_from_stream, intake_from_url
from bot.dataset.report import Change, DatasetResult, Refusal, Resolution, Skipped
from bot.dataset.store import DatasetStore

__all__ = [
    "Change",
    "DatasetError",
    "DatasetResult",
    "DatasetStore",
    "Refusal",
    "Resolution",
    "Skipped",
    "check_zip",
    "intake_from_stream",
    "intake_from_url",
]
