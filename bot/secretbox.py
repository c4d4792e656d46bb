"""Encryption of Civitai tokens at rest with a key derived from SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with its 32-byte key derived from
SECRET_KEY by HKDF-SHA256 under a fixed context string, so SECRET_KEY can be any text and the
same key never serves another purpose. Callers encrypt before the store and decrypt after it:
the database only ever holds ciphertext.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from bot.errors import UserFacingError
from bot.logging_setup import register_secret

# Changing this string makes every stored token unreadable: it is part of the key.
_KEY_CONTEXT = b"lora-trainer-bot/civitai-token-encryption/v1"


class SecretDecryptError(UserFacingError):
    """A stored secret cannot be decrypted: SECRET_KEY changed, or the value was damaged."""

    def __init__(self) -> None:
        super().__init__(
            "A stored Civitai token can no longer be read: the bot's SECRET_KEY changed since it was saved. "
            "Link the token again (`/account token`, or `/admin token set` for the server's token).",
            title="Stored token unreadable",
        )


def _derive_fernet_key(secret_key: SecretStr) -> bytes:
    raw = secret_key.get_secret_value().encode("utf-8")
    if not raw:
        raise ValueError("SECRET_KEY is empty")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_CONTEXT).derive(raw)
    return base64.urlsafe_b64encode(derived)


class SecretBox:
    def __init__(self, secret_key: SecretStr) -> None:
        self._fernet = Fernet(_derive_fernet_key(secret_key))

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext as URL-safe ASCII text; a fresh random IV each time."""
        if not plaintext:
            raise ValueError("refusing to encrypt an empty secret")
        register_secret(plaintext)  # whoever holds a token in memory must never log it
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Plaintext, or SecretDecryptError whose message holds neither text."""
        try:
            plaintext = self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError, TypeError, AttributeError):
            # ``from None``: the original exception chain must not carry the ciphertext along.
            raise SecretDecryptError() from None
        register_secret(plaintext)
        return plaintext
