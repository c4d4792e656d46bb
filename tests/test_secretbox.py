"""Token encryption: round trip, clean failure with the wrong key, nothing readable at rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.clock import Clock
from bot.config import Settings
from bot.errors import UserFacingError
from bot.logging_setup import redact
from bot.secretbox import SecretBox, SecretDecryptError
from bot.services import Services
from storage import Store

TOKEN = "civitai-token-0123456789abcdef-plaintext"


def box(key: str = "the-secret-key") -> SecretBox:
    return SecretBox(SecretStr(key))


def test_round_trip_with_a_fresh_iv_each_time() -> None:
    first, second = box().encrypt(TOKEN), box().encrypt(TOKEN)
    assert first != second
    assert TOKEN not in first
    assert box().decrypt(first) == TOKEN == box().decrypt(second)
    assert box().decrypt(box().encrypt("ünïcode ✓")) == "ünïcode ✓"


@pytest.mark.parametrize("ciphertext", [box().encrypt(TOKEN), "not a fernet token", "ĳ non-ascii", ""])
def test_wrong_key_or_garbage_fails_cleanly(ciphertext: str) -> None:
    with pytest.raises(SecretDecryptError) as caught:
        box("another-key").decrypt(ciphertext)
    error = caught.value
    assert isinstance(error, UserFacingError)
    text = str(error) + error.user_message + repr(error)
    assert TOKEN not in text
    assert not ciphertext or ciphertext not in text
    assert "SECRET_KEY" in error.user_message and "/account token" in error.user_message
    assert error.__cause__ is None and error.__suppress_context__


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        SecretBox(SecretStr(""))
    with pytest.raises(ValueError):
        box().encrypt("")
    assert "the-secret-key" not in repr(box())


def test_handled_tokens_are_redacted_from_logs() -> None:
    box().decrypt(box().encrypt("decrypted-token-value-xyz"))
    assert redact("token=decrypted-token-value-xyz") == "token=***"


async def test_token_plaintext_never_reaches_the_database_files(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    store = await Store.open(path)
    try:
        ciphertext = box().encrypt(TOKEN)
        await store.users.set_token_ciphertext(1, ciphertext)
        await store.guilds.set_token_ciphertext(2, box().encrypt(TOKEN))
        files = [path, Path(f"{path}-wal")]
        raw = b"".join(p.read_bytes() for p in files if p.exists())
        assert ciphertext.encode() in raw  # the scan reads where the data really is
        assert TOKEN.encode() not in raw
        assert box().decrypt(await store.users.get_token_ciphertext(1) or "") == TOKEN
    finally:
        await store.close()
    assert TOKEN.encode() not in path.read_bytes()


async def test_services_build_a_secretbox_from_the_secret_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings = Settings(_env_file=None, data_dir=tmp_path, command_cooldown_seconds=4)  # type: ignore[call-arg]
    clock = Clock()
    services = await Services.start(settings, clock)
    try:
        assert (tmp_path / "secret.key").exists()  # generated on first start
        clock.advance(days=3)
        entry = await services.store.audit.add(1, 2, "test")
        assert abs((entry.at - clock.now()).total_seconds()) < 1  # the store follows the bot's clock
        assert services.secretbox.decrypt(services.secretbox.encrypt(TOKEN)) == TOKEN
        assert (await services.store.guilds.get(1)).cooldown_seconds == 4
    finally:
        await services.close()
    # The same data folder gives the same key after a restart.
    again = await Services.start(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    try:
        assert again.secretbox.decrypt(services.secretbox.encrypt(TOKEN)) == TOKEN
    finally:
        await again.close()
