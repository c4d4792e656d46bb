"""HMAC-signed, expiring download URLs for normalised datasets (DESIGN §4, ``hosted``).

The orchestrator's ``trainingData.sourceUrl`` must match its AIR pattern (civitai-api.md): only
letters, digits, ``_ - / .`` after the scheme, no query string and no port. So the expiry and the
signature live in the path, both URL-safe:

    {PUBLIC_URL}/datasets/{digest}/{expires}/{signature}/dataset.zip

The signing key is derived from SECRET_KEY with its own HKDF context, so it is independent of the
key that encrypts tokens at rest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.config import Settings, ensure_secret_key

_KEY_CONTEXT = b"lora-trainer-bot/dataset-url-signature/v1"
DEFAULT_TTL_SECONDS = 24 * 3600

# The orchestrator's ZipTrainingData.sourceUrl pattern, in Python syntax (.NET ``(?<name>`` is
# ``(?P<name>`` here). tests/web check that it is still the one in the official OpenAPI document.
SOURCE_URL_PATTERN = re.compile(
    r"^(?:urn:)?(?:air:)?(?:(?P<ecosystem>[a-zA-Z0-9_\-\/]+):)?(?:(?P<type>[a-zA-Z0-9_\-\/]+):)?"
    r"(?P<source>[a-zA-Z0-9_\-\/]+):(?P<id>[a-zA-Z0-9_\-\/\.]+)"
    r"(?:@(?P<version>[a-zA-Z0-9_\-\/.=,%+:]+))?(?:\.(?P<format>[a-zA-Z0-9_\-]+))?$"
)
# What civitai-api.md documents on top of the regex: one colon (the scheme's), no port, no query.
_PATH_SAFE = re.compile(r"^[A-Za-z0-9_\-/.]*$")
# A digest is a path segment we put on disk look-ups: keep it to a conservative alphabet.
DIGEST_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_EXPIRES_PATTERN = re.compile(r"^[0-9]{1,12}$")
_SUFFIX_PATTERN = re.compile(r"^\.[a-z0-9]{1,5}$")


class SignatureCheck(Enum):
    VALID = "valid"
    BAD = "bad"  # wrong signature, or a digest/expiry that was not signed
    EXPIRED = "expired"  # genuine, but past its expiry


def dataset_signing_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_CONTEXT).derive(secret_key.encode("utf-8"))


def _signature(digest: str, expires: int, key: bytes) -> str:
    mac = hmac.new(key, f"dataset:{digest}:{expires}".encode(), hashlib.sha256).digest()
    # URL-safe base64 without padding: letters, digits, "-" and "_" only.
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign_dataset_url(public_url: str, digest: str, expires_at: int, key: bytes) -> str:
    if not DIGEST_PATTERN.fullmatch(digest):
        raise ValueError("dataset digest must be 1-128 letters, digits, '-' or '_'")
    signature = _signature(digest, expires_at, key)
    return f"{public_url.rstrip('/')}/datasets/{digest}/{expires_at}/{signature}/dataset.zip"


def _image_signature(digest: str, index: int, expires: int, key: bytes) -> str:
    # Its own message: a link to one image never opens the zip or another image.
    mac = hmac.new(key, f"dataset-image:{digest}:{index}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign_image_url(public_url: str, digest: str, index: int, suffix: str, expires_at: int, key: bytes) -> str:
    """A link to the ``index``-th image of a stored dataset (captioning's ``mediaUrl``)."""
    if not DIGEST_PATTERN.fullmatch(digest) or not _SUFFIX_PATTERN.fullmatch(suffix):
        raise ValueError("dataset digest must be 1-128 letters, digits, '-' or '_', and suffix '.jpg'-like")
    signature = _image_signature(digest, index, expires_at, key)
    return f"{public_url.rstrip('/')}/datasets/{digest}/{expires_at}/{signature}/images/{index}{suffix}"


def check_image_signature(
    digest: str, index: str, expires: str, signature: str, key: bytes, now: float
) -> SignatureCheck:
    if not (DIGEST_PATTERN.fullmatch(digest) and _EXPIRES_PATTERN.fullmatch(expires) and index.isdigit()):
        return SignatureCheck.BAD
    expected = _image_signature(digest, int(index), int(expires), key)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8")):
        return SignatureCheck.BAD
    return SignatureCheck.VALID if now < int(expires) else SignatureCheck.EXPIRED


def check_dataset_signature(digest: str, expires: str, signature: str, key: bytes, now: float) -> SignatureCheck:
    """Check the path parts of a signed URL. Expiry is only reported for a genuine signature."""
    if not (DIGEST_PATTERN.fullmatch(digest) and _EXPIRES_PATTERN.fullmatch(expires)):
        return SignatureCheck.BAD
    expected = _signature(digest, int(expires), key)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8")):
        return SignatureCheck.BAD
    return SignatureCheck.VALID if now < int(expires) else SignatureCheck.EXPIRED


def verify(digest: str, expires: str, signature: str, key: bytes, now: float) -> bool:
    return check_dataset_signature(digest, expires, signature, key, now) is SignatureCheck.VALID


@dataclass(frozen=True)
class DatasetUrlSigner:
    """What the submit path calls to get a ``sourceUrl`` for a stored dataset."""

    public_url: str
    key: bytes
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> DatasetUrlSigner | None:
        """None when PUBLIC_URL is unset (the ``hosted`` transport is then unavailable)."""
        if not settings.public_url:
            return None
        key = dataset_signing_key(ensure_secret_key(settings).get_secret_value())
        return cls(settings.public_url, key, settings.dataset_url_ttl_seconds)

    def url_for(self, digest: str, *, now: float | None = None) -> str:
        expires_at = int(time.time() if now is None else now) + self.ttl_seconds
        return sign_dataset_url(self.public_url, digest, expires_at, self.key)

    def image_url(self, digest: str, index: int, suffix: str, *, now: float | None = None) -> str:
        expires_at = int(time.time() if now is None else now) + self.ttl_seconds
        return sign_image_url(self.public_url, digest, index, suffix.lower(), expires_at, self.key)


def public_url_problems(public_url: str) -> list[str]:
    """What is wrong with PUBLIC_URL for callbacks and hosted datasets, each with the fix."""
    problems: list[str] = []
    try:
        parts = urlsplit(public_url.strip())
        port = parts.port
    except ValueError:
        return [f"PUBLIC_URL {public_url!r} is not a valid URL: use the form https://bot.example.com"]
    if parts.scheme != "https":
        problems.append(
            "PUBLIC_URL must start with https:// — the orchestrator only calls https URLs; "
            "put the bot behind a TLS reverse proxy (Caddy, nginx, a tunnel)"
        )
    if not parts.hostname:
        problems.append("PUBLIC_URL has no host name: use the form https://bot.example.com")
    host_port = parts.netloc.rpartition("@")[2].rpartition("]")[2]  # drop credentials and IPv6 brackets
    if port is not None or ":" in host_port:
        problems.append(
            "PUBLIC_URL has a port: dataset URLs with a port do not match the orchestrator's sourceUrl "
            "pattern; serve it on the default https port (443) through a reverse proxy"
        )
    if "@" in parts.netloc:
        problems.append("PUBLIC_URL contains user credentials ('user@host'): remove them")
    if parts.query or parts.fragment or "?" in public_url or "#" in public_url:
        problems.append("PUBLIC_URL has a query string or fragment ('?…', '#…'): remove it")
    host_and_path = (parts.hostname or "") + parts.path
    if not _PATH_SAFE.fullmatch(host_and_path):
        problems.append(
            "PUBLIC_URL contains characters the orchestrator's sourceUrl pattern refuses: host and path "
            "may use only letters, digits, '_', '-', '/' and '.'"
        )
    if not problems:
        sample = sign_dataset_url(public_url, "0" * 64, 2_000_000_000, b"probe")
        if not SOURCE_URL_PATTERN.fullmatch(sample):
            problems.append(
                "dataset URLs built on PUBLIC_URL do not match the orchestrator's sourceUrl pattern: "
                "use a plain https://host/path URL"
            )
    return problems
