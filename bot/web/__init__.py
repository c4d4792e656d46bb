"""The embedded web server (callbacks, signed dataset downloads, health, metrics)."""

from bot.web.protocols import CallbackTarget, DatasetFiles, DeliveryOutcome, HookJobs, HookSink
from bot.web.server import WebServer
from bot.web.signing import DatasetUrlSigner, public_url_problems, sign_dataset_url

__all__ = [
    "CallbackTarget",
    "DatasetFiles",
    "DatasetUrlSigner",
    "DeliveryOutcome",
    "HookJobs",
    "HookSink",
    "WebServer",
    "public_url_problems",
    "sign_dataset_url",
]
