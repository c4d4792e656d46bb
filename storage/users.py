"""Per-member settings and the member's own Civitai token (ciphertext only)."""

from __future__ import annotations

from storage.db import Database, optional_time
from storage.models import UserSettings

DEFAULT_DM_NOTIFY = True


class UserRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: int) -> UserSettings:
        row = await self.db.one(
            "SELECT dm_notify, token_ciphertext IS NOT NULL, updated_at FROM user_settings WHERE user_id = ?",
            (user_id,),
        )
        if row is None:
            return UserSettings(user_id=user_id, dm_notify=DEFAULT_DM_NOTIFY, has_token=False, updated_at=None)
        return UserSettings(
            user_id=user_id,
            dm_notify=DEFAULT_DM_NOTIFY if row[0] is None else bool(row[0]),
            has_token=bool(row[1]),
            updated_at=optional_time(row[2]),
        )

    async def set_dm_notify(self, user_id: int, enabled: bool) -> UserSettings:
        await self.db.upsert(
            "user_settings", "user_id", user_id, {"dm_notify": int(enabled), "updated_at": self.db.now()}
        )
        return await self.get(user_id)

    async def set_token_ciphertext(self, user_id: int, ciphertext: str) -> None:
        await self.db.upsert(
            "user_settings", "user_id", user_id, {"token_ciphertext": ciphertext, "updated_at": self.db.now()}
        )

    async def get_token_ciphertext(self, user_id: int) -> str | None:
        row = await self.db.one("SELECT token_ciphertext FROM user_settings WHERE user_id = ?", (user_id,))
        return row[0] if row is not None else None

    async def clear_token(self, user_id: int) -> bool:
        changed = await self.db.run(
            "UPDATE user_settings SET token_ciphertext = NULL, updated_at = ?"
            " WHERE user_id = ? AND token_ciphertext IS NOT NULL",
            (self.db.now(), user_id),
        )
        return changed > 0
