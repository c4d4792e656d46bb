"""``python -m bot db …``: migrate the configured database, or copy one database into another.

    python -m bot db migrate [--url URL]
    python -m bot db copy --from sqlite:///data/bot.sqlite3 --to postgresql://bot@db/bot
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit

from storage import Store
from storage.copy import CopyRefused, copy_store


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def migrate(url: str) -> int:
    try:
        store = await Store.open(url)
    except Exception as exc:
        print(f"cannot migrate {shown(url)}: {exc}", file=sys.stderr)
        return 1
    try:
        version, latest = await store.schema_version()
        print(f"{shown(url)} ({await store.describe()}): schema version {version} of {latest}")
    finally:
        await store.close()
    return 0


async def copy(source_url: str, target_url: str) -> int:
    if source_url == target_url:
        print("--from and --to are the same database: nothing to copy", file=sys.stderr)
        return 2
    stores: list[Store] = []
    try:
        for url in (source_url, target_url):
            try:
                stores.append(await Store.open(url))
            except Exception as exc:
                print(f"cannot open {shown(url)}: {exc}", file=sys.stderr)
                return 1
        source, target = stores
        try:
            copied = await copy_store(source, target)
        except CopyRefused as exc:
            print(f"nothing copied: {exc}", file=sys.stderr)
            return 1
    finally:
        for store in stores:
            await store.close()
    for table, count in copied.items():
        print(f"{table}: {count} row(s)")
    print(f"copied {sum(copied.values())} row(s) from {shown(source_url)} to {shown(target_url)}")
    print("now set DATABASE_URL to the new database and restart the bot")
    return 0
