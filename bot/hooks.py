"""Per-job secrets for orchestrator callback URLs.

The orchestrator signs nothing (civitai-api.md, "Callbacks"): a callback is authenticated only by
an unguessable secret in its URL, ``{PUBLIC_URL}/hooks/civitai/{job}/{secret}``. The store keeps
only the SHA-256 of the secret, so a leaked database does not let anyone forge callbacks, and the
comparison is constant-time so response timing reveals nothing about the stored hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# 32 random bytes → 43 URL-safe characters: letters, digits, "-" and "_", safe in a path segment.
HOOK_SECRET_BYTES = 32


def new_hook_secret() -> str:
    return secrets.token_urlsafe(HOOK_SECRET_BYTES)


def hash_hook_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def verify_hook_secret(secret: str, stored_hash: str) -> bool:
    # Compared as bytes: compare_digest refuses non-ASCII str, and a corrupt row must not raise.
    return hmac.compare_digest(hash_hook_secret(secret).encode(), stored_hash.encode("utf-8"))


def hook_url(public_url: str, job_id: str, secret: str) -> str:
    """The callback URL to register on the job's workflow."""
    return f"{public_url.rstrip('/')}/hooks/civitai/{job_id}/{secret}"


# ``python -m bot doctor`` posts here through PUBLIC_URL: a real round trip to the hook endpoint.
DOCTOR_PROBE_PATH = "/hooks/doctor/{nonce}"


def doctor_proof(secret_key: str, nonce: str) -> str:
    """The answer to the doctor's probe. Only a process holding the same SECRET_KEY can give it,
    so the doctor knows PUBLIC_URL reaches this bot and not some other server."""
    message = f"lora-trainer-bot/doctor-probe/{nonce}".encode()
    return hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).hexdigest()
