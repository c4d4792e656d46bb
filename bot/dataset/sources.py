"""Getting a zip onto disk: a stream of chunks (a Discord attachment) or an https URL.

Both stop as soon as the zip cap is passed and never hold the whole zip in memory. A URL is
fetched by hand, one hop at a time, so the scheme and host of every redirect are checked
before it is followed; names are resolved through ``GuardedResolver``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from bot.config import Settings
from bot.dataset.addresses import AddressPolicy, GuardedResolver
from bot.dataset.archive import _mib
from bot.dataset.errors import DatasetError

FLUSH_BYTES = 1024 * 1024
REDIRECTS = {301, 302, 303, 307, 308}
_CHECK_LINK = "Check that the link downloads the zip in a private browser window, without logging in."
_ATTACH_AGAIN = "Attach the zip again; if that keeps failing, upload it somewhere and use `dataset_url` instead."

# Called with the bytes received so far and the expected total (None when unknown).
OnBytes = Callable[[int, int | None], Awaitable[None]]


def too_big(cap: int) -> DatasetError:
    return DatasetError(
        f"The zip is larger than {_mib(cap)}, the limit.", "Split the dataset into smaller zips or shrink the images."
    )


async def write_capped(
    chunks: AsyncIterable[bytes],
    dest: Path,
    cap: int,
    *,
    on_bytes: OnBytes | None = None,
    expected: int | None = None,
) -> int:
    """Write ``chunks`` to ``dest``; refuse as soon as more than ``cap`` bytes arrive.

    ``on_bytes`` hears how far the download is after every flush to disk (about every MiB).
    """
    total = 0
    buffer = bytearray()
    file: BinaryIO = await asyncio.to_thread(dest.open, "wb")
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > cap:
                raise too_big(cap)
            buffer += chunk
            if len(buffer) >= FLUSH_BYTES:
                await asyncio.to_thread(file.write, buffer)
                buffer = bytearray()
                if on_bytes is not None:
                    await on_bytes(total, expected)
        await asyncio.to_thread(file.write, buffer)
    finally:
        await asyncio.to_thread(file.close)
    return total


async def http_chunks(url: str, *, time_limit: float) -> AsyncGenerator[bytes, None]:
    """The body of a trusted URL (a Discord attachment), chunk by chunk, within ``time_limit`` seconds.

    Attachments live on Discord's CDN, so no address guard applies; a failed download becomes
    a ``DatasetError`` that tells the member to attach the zip again.
    """
    client_timeout = aiohttp.ClientTimeout(total=time_limit)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout, trust_env=False) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise DatasetError(f"Discord answered HTTP {response.status} for the attachment.", _ATTACH_AGAIN)
            async for chunk in response.content.iter_chunked(FLUSH_BYTES):
                yield chunk
    except TimeoutError as exc:
        raise DatasetError(f"Downloading the attachment took longer than {time_limit:g} s.", _ATTACH_AGAIN) from exc
    except aiohttp.ClientError as exc:
        raise DatasetError(f"The attachment could not be downloaded ({type(exc).__name__}).", _ATTACH_AGAIN) from exc


async def download(
    url: str,
    dest: Path,
    settings: Settings,
    *,
    resolver: AbstractResolver | None = None,
    on_bytes: OnBytes | None = None,
) -> int:
    """Fetch ``url`` into ``dest`` within the size, time and redirect caps; return its size."""
    policy = AddressPolicy(allow_loopback=settings.dataset_allow_loopback)
    try:
        current = URL(url.strip())
    except (ValueError, TypeError) as exc:
        raise DatasetError("The dataset URL is not a valid link.", "Paste the full https:// link.") from exc
    policy.check_url(current)
    guarded = GuardedResolver(resolver or aiohttp.ThreadedResolver(), policy)
    try:
        async with asyncio.timeout(settings.url_timeout_seconds):
            # No DNS cache: every connection goes through the guard.
            connector = aiohttp.TCPConnector(resolver=guarded, use_dns_cache=False)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                return await _follow(session, current, dest, settings, policy, on_bytes)
    except TimeoutError as exc:
        raise DatasetError(
            f"The download took longer than {settings.url_timeout_seconds:g} s.",
            "Use a faster host, or attach the zip instead.",
        ) from exc
    except aiohttp.ClientError as exc:
        raise DatasetError(f"The dataset URL could not be downloaded ({type(exc).__name__}).", _CHECK_LINK) from exc


async def _follow(
    session: aiohttp.ClientSession,
    url: URL,
    dest: Path,
    settings: Settings,
    policy: AddressPolicy,
    on_bytes: OnBytes | None,
) -> int:
    cap = settings.max_zip_bytes
    for _hop in range(settings.url_max_redirects + 1):
        async with session.get(url, allow_redirects=False, headers={"Accept": "application/zip, */*"}) as response:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise DatasetError("The dataset URL redirects nowhere.", _CHECK_LINK)
                try:
                    url = url.join(URL(location))
                except ValueError as exc:
                    raise DatasetError("The dataset URL redirects to an invalid link.", _CHECK_LINK) from exc
                policy.check_url(url)
                continue
            if response.status != 200:
                raise DatasetError(f"The dataset URL answered HTTP {response.status}.", _CHECK_LINK)
            if response.content_type == "text/html":
                raise DatasetError(
                    "The link leads to a web page, not a zip file.",
                    "Use the direct download link (on Google Drive or Dropbox, the link that downloads the file).",
                )
            if response.content_length is not None and response.content_length > cap:
                raise too_big(cap)
            chunks = response.content.iter_chunked(FLUSH_BYTES)
            return await write_capped(chunks, dest, cap, on_bytes=on_bytes, expected=response.content_length)
    raise DatasetError(
        f"The dataset URL redirects more than {settings.url_max_redirects} times.", "Use the final download link."
    )
